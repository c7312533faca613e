"""Ringfence benchmarks: ``python -m bench --help``."""
