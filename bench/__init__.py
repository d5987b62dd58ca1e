"""Benchmarks: ``geo-engine bench NAME --size N --json``; figures are kept in bench/README.md."""
