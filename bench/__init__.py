"""Benchmarks that print ratios (make bench); see docs and each module."""
