"""Comparison of a backend's output with the NumPy reference, shared by all backend tests."""

from __future__ import annotations

import numpy as np
import torch

from gapo_kernels import reference

# Relative tolerance of the arithmetic per output dtype (the window and median choices are
# compared exactly through group stats). float32: 1e-5 relative, the bar the spec's float32 results are held to.
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def strided_tensor(values: np.ndarray, dtype: torch.dtype, device: str, stride: int) -> torch.Tensor:
    """values as a 1-D tensor whose elements are `stride` apart in memory (non-contiguous if > 1).

    The gaps hold NaN, so a kernel that ignores the stride reads missing rewards and fails.
    """
    storage = torch.full((max(1, len(values) * stride),), float("nan"), dtype=dtype, device=device)
    view = storage[::stride][: len(values)]
    view.copy_(torch.as_tensor(values, dtype=dtype))
    return view


def upcast_numpy(rewards: torch.Tensor) -> np.ndarray:
    """The exact values the kernel sees, as float64 NumPy (bf16 has no NumPy dtype)."""
    return rewards.detach().to("cpu", torch.float64).numpy()


def expected_advantage(rewards: torch.Tensor, offsets=None, group_ids=None, **kw) -> np.ndarray:
    """Reference advantages, computed in float64 on the values of ``rewards``."""
    values = upcast_numpy(rewards)
    if offsets is not None:
        offsets = offsets.cpu().numpy() if isinstance(offsets, torch.Tensor) else np.asarray(offsets)
    if group_ids is not None:
        group_ids = group_ids.cpu().numpy() if isinstance(group_ids, torch.Tensor) else np.asarray(group_ids)
    return reference.advantage(values, offsets, group_ids=group_ids, **kw)


def assert_advantage_matches(actual: torch.Tensor, rewards: torch.Tensor, offsets=None, group_ids=None, **kw):
    """``actual`` has the dtype/device/shape of rewards and equals the reference within tolerance."""
    assert actual.dtype == rewards.dtype, (actual.dtype, rewards.dtype)
    assert actual.device == rewards.device, (actual.device, rewards.device)
    assert actual.shape == rewards.shape, (actual.shape, rewards.shape)
    expected = expected_advantage(rewards, offsets, group_ids, **kw)
    got = actual.detach().to("cpu", torch.float64).numpy()
    assert np.all(np.isfinite(got)), "advantages must be finite (missing rewards give 0)"
    rtol = RTOL[rewards.dtype]
    # atol covers entries near 0 whose error is set by the group's scale, not by themselves.
    atol = rtol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def assert_stats_match(actual, rewards: torch.Tensor, offsets, **kw):
    """Group stats agree with the reference: window bounds and counts exactly, the rest to rtol."""
    expected = reference.group_stats(upcast_numpy(rewards), offsets.cpu().numpy(), **kw)
    rtol = RTOL[rewards.dtype] if rewards.dtype == torch.float64 else 1e-5
    for name in actual._fields:
        if getattr(actual, name) is None:  # a kernel's own eight columns, without the shape ones
            continue
        got = getattr(actual, name).detach().cpu().numpy()
        want = getattr(expected, name)
        if name in ("hdi_low", "hdi_high", "min", "max", "count"):
            # These are input values (or counts): the same window must give identical numbers.
            np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64), err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True, err_msg=name)
