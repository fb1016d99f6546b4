"""Benchmarks for r13 (load harnesses and their helpers)."""
