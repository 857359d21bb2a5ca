"""Benchmarks for mikolicd and their targets; run `python -m benchmarks.run [--quick]`."""
