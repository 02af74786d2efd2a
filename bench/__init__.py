"""arrowmapper's benchmarks: ``python -m bench`` runs the suite (see bench/bench_suite.py)."""
