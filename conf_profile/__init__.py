"""conf-profile: label-free LLM user profiling, refreshed weekly."""

__version__ = "0.1.0"
