"""Benchmarks: ratios against a baseline measured in the same run; medians. Never timed tests."""
