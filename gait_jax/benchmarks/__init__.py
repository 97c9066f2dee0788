"""Benchmarks run by tools/benchmark.py (one module per benchmark: add_args(parser), run(args))."""
