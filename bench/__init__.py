"""Benchmarks (run from the repository root; results in BENCHMARKS.md)."""
