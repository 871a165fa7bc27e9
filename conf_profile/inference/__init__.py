"""Profiling users with the student: backends (local transformers, vLLM offline, an OpenAI-compatible server)
behind one prompt, one parser and one vote (docs/inference.md). The stage calls `profile_documents`."""

from conf_profile.inference.backends import (
    Backend,
    InferenceServerError,
    LocalBackend,
    OpenAIBackend,
    VLLMBackend,
    import_vllm,
    make_backend,
)
from conf_profile.inference.profile import parse_samples, profile_documents, summary_text

__all__ = ["Backend", "InferenceServerError", "LocalBackend", "OpenAIBackend", "VLLMBackend", "import_vllm",
           "make_backend", "parse_samples", "profile_documents", "summary_text"]
