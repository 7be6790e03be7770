"""Shared test settings: hypothesis profiles and the (device, backend) matrix."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Kernels are timed in benchmarks/, never here: no deadline. CI uses the default profile;
# GAPO_HYPOTHESIS_PROFILE=thorough runs many more examples locally.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GAPO_HYPOTHESIS_PROFILE", "default"))

CUDA_SKIP = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")

# Every (device, backend) pair whose results must equal the reference. The CUDA rows run
# unchanged on a GPU machine and are skipped, with the reason shown, elsewhere.
DEVICE_BACKENDS = [
    pytest.param("cpu", "cpu", id="cpu-cpu"),
    pytest.param("cpu", "torch", id="cpu-torch"),
    pytest.param("cuda", "cuda", id="cuda-cuda", marks=[CUDA_SKIP, pytest.mark.gpu]),
    pytest.param("cuda", "torch", id="cuda-torch", marks=[CUDA_SKIP, pytest.mark.gpu]),
]
