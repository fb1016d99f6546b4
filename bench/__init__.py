"""Benchmarks: pytest-benchmark micro benches and the HTTP load harness."""
