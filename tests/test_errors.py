"""Every error of the spec raises before any output is written, with a message naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import reference

R = torch.tensor([0.0, 1.0, 2.0, 3.0])
O = torch.tensor([0, 2, 4])

BAD_CALLS = [
    # (kwargs for gapo_kernels.advantage, exception type, message fragment)
    (dict(rewards=R.view(2, 2), offsets=O), ValueError, "rewards must be 1-D"),
    (dict(rewards=torch.arange(4), offsets=O), TypeError, "rewards must be float16, bfloat16, float32 or float64"),
    (dict(rewards=[0.0, 1.0], offsets=O), TypeError, "rewards must be a torch.Tensor"),
    (dict(rewards=R, offsets=O.float()), TypeError, "offsets must be int32 or int64"),
    (dict(rewards=R, offsets=O.view(1, 3)), ValueError, "offsets must be 1-D"),
    (dict(rewards=R, offsets=torch.tensor([1, 2, 4])), ValueError, "offsets must start at 0"),
    (dict(rewards=R, offsets=torch.tensor([0, 2, 3])), ValueError, "offsets must end at the number of rewards"),
    (dict(rewards=R, offsets=torch.tensor([0, 3, 2, 4])), ValueError, "offsets must be non-decreasing"),
    (dict(rewards=R, offsets=O, tau=0.0), ValueError, "tau must be in (0, 1]"),
    (dict(rewards=R, offsets=O, tau=1.5), ValueError, "tau must be in (0, 1]"),
    (dict(rewards=R, offsets=O, tau=float("nan")), ValueError, "tau must be in (0, 1]"),
    (dict(rewards=R, offsets=O, tau="0.5"), TypeError, "tau must be a real number"),
    (dict(rewards=R, offsets=O, eps=-1e-6), ValueError, "eps must be a finite number >= 0"),
    (dict(rewards=R, offsets=O, baseline="trimmed"), ValueError, "baseline must be one of"),
    (dict(rewards=R, offsets=O, scale="mad"), ValueError, "scale must be one of"),
    (dict(rewards=R, offsets=O, group_ids=torch.zeros(4, dtype=torch.long)), ValueError, "got both"),
    (dict(rewards=R), ValueError, "got neither"),
    (dict(rewards=R, group_ids=torch.zeros(4)), TypeError, "group_ids must hold integer ids"),
    (dict(rewards=R, group_ids=torch.zeros(3, dtype=torch.long)), ValueError, "one id per reward"),
    (dict(rewards=R, offsets=O, backend="jax"), ValueError, "backend must be one of"),
    (dict(rewards=R, offsets=O, backend="cuda"), ValueError, "backend='cuda' needs rewards on cuda"),
    (dict(rewards=R, offsets=O, max_group_size=-1), ValueError, "max_group_size must be"),
]


@pytest.mark.parametrize("backend", ["cpu", "torch", "reference"])
@pytest.mark.parametrize("kwargs,error,message", BAD_CALLS)
def test_public_api_rejects_bad_input(backend, kwargs, error, message):
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(error, match=_literal(message)):
        gapo_kernels.advantage(**kwargs)


# The reference takes array-likes by design, so the "must be a torch.Tensor" case is not its.
REFERENCE_BAD_CALLS = [c for c in BAD_CALLS[:17] if isinstance(c[0]["rewards"], torch.Tensor)]


@pytest.mark.parametrize("kwargs,error,message", REFERENCE_BAD_CALLS)
def test_reference_rejects_bad_input_the_same_way(kwargs, error, message):
    numpy_kwargs = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    if "rewards must be float" in message:
        message = "rewards must be a floating-point array"
    if message == "offsets must be int32 or int64":
        message = "offsets must be an integer array"
    with pytest.raises(error, match=_literal(message)):
        reference.advantage(**numpy_kwargs)


def test_group_ids_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="group_ids must be on the same device"):
        gapo_kernels.advantage(R, group_ids=torch.zeros(4, dtype=torch.long, device="meta"))


def test_offsets_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="offsets must be on the same device"):
        gapo_kernels.advantage(R, torch.tensor([0, 4], device="meta"))


# The op itself (torch.ops.gapo.*) is public too: its C++ checks name the argument.
OP_BAD_CALLS = [
    ((R.view(2, 2), O, 0.5, "hdi_median", "rms", 1e-6), "rewards must be 1-D"),
    ((torch.arange(4), O, 0.5, "hdi_median", "rms", 1e-6), "rewards must be float16"),
    ((R, O.float(), 0.5, "hdi_median", "rms", 1e-6), "offsets must be int32 or int64"),
    ((R, torch.tensor([1, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must start at 0"),
    ((R, torch.tensor([0, 3]), 0.5, "hdi_median", "rms", 1e-6), "offsets must end at the number of rewards"),
    ((R, torch.tensor([0, 3, 1, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must be non-decreasing"),
    ((R, torch.tensor([0, 5, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must be non-decreasing"),
    ((R, torch.zeros(0, dtype=torch.long), 0.5, "hdi_median", "rms", 1e-6), "offsets must have G + 1 >= 1"),
    ((R, O, 0.0, "hdi_median", "rms", 1e-6), "tau must be in (0, 1]"),
    ((R, O, 0.5, "hdi_median", "rms", -1.0), "eps must be a finite number >= 0"),
    ((R, O, 0.5, "mode", "rms", 1e-6), "baseline must be one of"),
    ((R, O, 0.5, "hdi_median", "iqr", 1e-6), "scale must be one of"),
]


@pytest.mark.parametrize("args,message", OP_BAD_CALLS)
def test_compiled_op_rejects_bad_input(args, message):
    with pytest.raises(RuntimeError, match=_literal(message)):
        torch.ops.gapo.advantage(*args)


def test_compiled_by_ids_op_rejects_bad_ids():
    with pytest.raises(RuntimeError, match="group_ids must have one id per reward"):
        torch.ops.gapo.advantage_by_ids(R, torch.zeros(3, dtype=torch.long), 0.5, "hdi_median", "rms", 1e-6)
    with pytest.raises(RuntimeError, match="group_ids must be int32 or int64"):
        torch.ops.gapo.advantage_by_ids(R, torch.zeros(4), 0.5, "hdi_median", "rms", 1e-6)


def test_small_integer_ids_are_accepted():
    ids = torch.tensor([3, 1, 3, 1], dtype=torch.int8)
    expected = reference.advantage(R.double().numpy(), group_ids=ids.numpy())
    np.testing.assert_allclose(gapo_kernels.advantage(R, group_ids=ids).numpy(), expected, rtol=1e-6)


def _literal(text: str) -> str:
    import re

    return re.escape(text)
