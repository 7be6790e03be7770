"""gapo_kernels benchmark suite. Run it with ``python -m benchmarks.run``."""
