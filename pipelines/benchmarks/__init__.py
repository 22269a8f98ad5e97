"""Benchmarks run by `make bench` (`pipelines/bench.py`): every `*_bench.py` module here.

A benchmark module runs as `python -m pipelines.benchmarks.<name>`, prints its figures and
exits non-zero when it misses its target. Helper modules (no `_bench` suffix) are not run.
"""
