"""gapo_kernels benchmark suite (issue 5). Run it with ``python -m benchmarks.run``."""
