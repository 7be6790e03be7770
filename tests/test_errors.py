"""Every error of the spec raises before any output is written, with a message naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import _checks, reference

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
    (dict(rewards=R, offsets=O, tau=True), TypeError, "tau must be a real number"),
    (dict(rewards=R, offsets=O, eps=True), TypeError, "eps must be a real number"),
    (dict(rewards=R, offsets=O, eps=float("inf")), ValueError, "eps must be a finite number >= 0"),
    (dict(rewards=R, offsets=O, eps=float("nan")), ValueError, "eps must be a finite number >= 0"),
    (dict(rewards=R, group_ids=torch.zeros(2, 2, dtype=torch.long)), ValueError, "group_ids must be 1-D"),
    (dict(rewards=R, group_ids=torch.zeros(4, dtype=torch.bool)), TypeError, "group_ids must hold integer ids"),
]


@pytest.mark.parametrize("backend", ["cpu", "torch", "reference"])
@pytest.mark.parametrize("kwargs,error,message", BAD_CALLS)
def test_public_api_rejects_bad_input(backend, kwargs, error, message):
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(error, match=_literal(message)):
        gapo_kernels.advantage(**kwargs)


def _applies_to_reference(kwargs) -> bool:
    """The reference takes array-likes by design and has no backend or launch hint."""
    if not isinstance(kwargs["rewards"], torch.Tensor) or {"backend", "max_group_size"} & kwargs.keys():
        return False
    ids = kwargs.get("group_ids")
    return ids is None or ids.dim() == 1 and ids.dtype != torch.bool  # NumPy has its own id types


REFERENCE_BAD_CALLS = [c for c in BAD_CALLS if _applies_to_reference(c[0])]


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


# The ops themselves (torch.ops.gapo.*) are public too: their C++ checks name the argument and
# raise ValueError (std::invalid_argument), before any output exists.
ADV = torch.ops.gapo.advantage
STATS = torch.ops.gapo.group_stats
BY_IDS = torch.ops.gapo.advantage_by_ids
ROWS = torch.ops.gapo.group_rows_by_ids
IDS = torch.tensor([0, 0, 1, 1])
META_OFFSETS = torch.tensor([0, 4], device="meta")
META_IDS = torch.zeros(4, dtype=torch.long, device="meta")

OP_BAD_CALLS = [
    (ADV, (R.view(2, 2), O, 0.5, "hdi_median", "rms", 1e-6), "rewards must be 1-D"),
    (ADV, (torch.arange(4), O, 0.5, "hdi_median", "rms", 1e-6), "rewards must be float16"),
    (ADV, (R, O.float(), 0.5, "hdi_median", "rms", 1e-6), "offsets must be int32 or int64"),
    (ADV, (R, O.view(1, 3), 0.5, "hdi_median", "rms", 1e-6), "offsets must be 1-D"),
    (ADV, (R, torch.tensor([1, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must start at 0"),
    (ADV, (R, torch.tensor([0, 3]), 0.5, "hdi_median", "rms", 1e-6), "offsets must end at the number of rewards"),
    (ADV, (R, torch.tensor([0, 3, 1, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must be non-decreasing"),
    (ADV, (R, torch.tensor([0, 5, 4]), 0.5, "hdi_median", "rms", 1e-6), "offsets must be non-decreasing"),
    (ADV, (R, torch.zeros(0, dtype=torch.long), 0.5, "hdi_median", "rms", 1e-6), "offsets must have G + 1 >= 1"),
    (ADV, (R, O, 0.0, "hdi_median", "rms", 1e-6), "tau must be in (0, 1]"),
    (ADV, (R, O, float("nan"), "hdi_median", "rms", 1e-6), "tau must be in (0, 1]"),
    (ADV, (R, O, 0.5, "hdi_median", "rms", -1.0), "eps must be a finite number >= 0"),
    (ADV, (R, O, 0.5, "hdi_median", "rms", float("inf")), "eps must be a finite number >= 0"),
    (ADV, (R, O, 0.5, "mode", "rms", 1e-6), "baseline must be one of"),
    (ADV, (R, O, 0.5, "hdi_median", "iqr", 1e-6), "scale must be one of"),
    (ADV, (R, O, 0.5, "hdi_median", "rms", 1e-6, -1), "max_group_size must be >= 0"),
    (ADV, (R, META_OFFSETS, 0.5, "hdi_median", "rms", 1e-6), "offsets must be on the same device as rewards"),
    (STATS, (R.view(2, 2), O, 0.5, "hdi_median", "rms"), "rewards must be 1-D"),
    (STATS, (R, torch.tensor([0, 3, 1, 4]), 0.5, "hdi_median", "rms"), "offsets must be non-decreasing"),
    (STATS, (R, O, 2.0, "hdi_median", "rms"), "tau must be in (0, 1]"),
    (STATS, (R, O, 0.5, "hdi_median", "mad"), "scale must be one of"),
    (STATS, (R, META_OFFSETS, 0.5, "hdi_median", "rms"), "offsets must be on the same device as rewards"),
    (BY_IDS, (R, torch.zeros(3, dtype=torch.long), 0.5, "hdi_median", "rms", 1e-6), "group_ids must have one id"),
    (BY_IDS, (R, torch.zeros(4), 0.5, "hdi_median", "rms", 1e-6), "group_ids must hold integer ids"),
    (BY_IDS, (R, torch.zeros(2, 2, dtype=torch.long), 0.5, "hdi_median", "rms", 1e-6), "group_ids must be 1-D"),
    (BY_IDS, (R.half().view(2, 2), IDS, 0.5, "hdi_median", "rms", 1e-6), "rewards must be 1-D"),
    (BY_IDS, (torch.arange(4), IDS, 0.5, "hdi_median", "rms", 1e-6), "rewards must be float16"),
    (BY_IDS, (R, IDS, 0.5, "mean", "rms", -1e-6), "eps must be a finite number >= 0"),
    (BY_IDS, (R, META_IDS, 0.5, "hdi_median", "rms", 1e-6), "group_ids must be on the same device as rewards"),
    (ROWS, (torch.zeros(4),), "group_ids must hold integer ids"),
    (ROWS, (torch.zeros(2, 2, dtype=torch.long),), "group_ids must be 1-D"),
]


@pytest.mark.parametrize("op,args,message", OP_BAD_CALLS)
def test_compiled_op_rejects_bad_input(op, args, message):
    with pytest.raises(ValueError, match=_literal(message)):
        op(*args)


# One wording per error: the C++ checks (csrc/gapo/op_checks.h) and the Python ones
# (gapo_kernels/_checks.py) say the same thing, so the API reads the same on every backend.
@pytest.mark.parametrize(
    "offsets",
    [torch.tensor([1, 2, 4]), torch.tensor([0, 3, 2, 4]), torch.tensor([0, 2, 3]), torch.tensor([2, 1, 4])],
    ids=["start", "decrease", "end", "start-and-decrease"],
)
def test_offsets_errors_read_the_same_from_cpp_and_python(offsets):
    with pytest.raises(ValueError) as from_cpp:
        ADV(R, offsets, 0.5, "hdi_median", "rms", 1e-6)
    with pytest.raises(ValueError) as from_python:
        gapo_kernels.advantage(R, offsets, backend="torch")
    with pytest.raises(ValueError) as from_reference:
        reference.advantage(R.numpy(), offsets.numpy())
    assert str(from_cpp.value) == str(from_python.value) == str(from_reference.value)


def test_baseline_and_scale_names_agree_between_cpp_and_python():
    # The C++ enum order is the order of the names in its message; _checks lists the same tuple,
    # which Triton uses to number them.
    for baseline, scale in (("nope", "rms"), ("mean", "nope")):
        with pytest.raises(ValueError) as from_cpp:
            ADV(R, O, 0.5, baseline, scale, 1e-6)
        with pytest.raises(ValueError) as from_python:
            gapo_kernels.advantage(R, O, baseline=baseline, scale=scale, backend="torch")
        assert str(from_cpp.value) == str(from_python.value)
    assert _checks.BASELINES == ("hdi_median", "hdi_mean", "median", "mean")
    assert _checks.SCALES == ("rms", "std", "none")


@pytest.mark.parametrize("op,args", [
    (ADV, (R, META_OFFSETS, 0.5, "hdi_median", "rms", 1e-6)),
    (ADV, (R.to("meta"), O, 0.5, "hdi_median", "rms", 1e-6)),
    (BY_IDS, (R, META_IDS, 0.5, "hdi_median", "rms", 1e-6)),
    (BY_IDS, (R.to("meta"), IDS, 0.5, "hdi_median", "rms", 1e-6)),
    (STATS, (R.to("meta"), O, 0.5, "hdi_median", "rms")),
])
def test_ops_refuse_arguments_on_different_devices(op, args):
    # The dispatcher sends any call with a meta argument to the fake kernel: it must refuse a
    # device mix rather than hand back an uninitialised tensor.
    with pytest.raises(ValueError, match="must be on the same device as rewards"):
        op(*args)


def test_public_api_rejects_meta_rewards_with_group_ids_for_group_stats():
    with pytest.raises(ValueError, match="rewards on the meta device"):
        gapo_kernels.group_stats(R.to("meta"), group_ids=META_IDS)


def test_small_integer_ids_are_accepted():
    ids = torch.tensor([3, 1, 3, 1], dtype=torch.int8)
    expected = reference.advantage(R.double().numpy(), group_ids=ids.numpy())
    np.testing.assert_allclose(gapo_kernels.advantage(R, group_ids=ids).numpy(), expected, rtol=1e-6)


def _literal(text: str) -> str:
    import re

    return re.escape(text)
