"""Benchmarks, run from the repository root as `python -m bench.NAME`; not installed with sercli."""
