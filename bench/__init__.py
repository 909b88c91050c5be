"""Benchmarks: one scenario per module, run from the repo root as `python -m bench.NAME`.

bench/harness.py holds what they share; bench/README.md says what each measures.
"""
