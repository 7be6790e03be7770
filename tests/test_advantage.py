"""Property tests: every backend agrees with the NumPy reference on RL-shaped ragged batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gapo_kernels
from gapo_kernels._checks import BASELINES, SCALES
from tests.conftest import DEVICE_BACKENDS
from tests.oracle import assert_advantage_matches, assert_stats_match, strided_tensor
from tests.strategies import ragged_batches, shuffled_group_ids, taus

epsilons = st.sampled_from([1e-6, 0.0, 0.1])


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("baseline", BASELINES)
@given(
    batch=ragged_batches(),
    tau=taus,
    eps=epsilons,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    index_dtype=st.sampled_from([torch.int32, torch.int64]),
    stride=st.sampled_from([1, 1, 3]),
)
def test_advantage_matches_reference(device, backend, baseline, scale, batch, tau, eps, dtype, index_dtype, stride):
    values, offsets_np = batch
    rewards = strided_tensor(values, dtype, device, stride)
    offsets = torch.as_tensor(offsets_np, dtype=index_dtype, device=device)
    kw = dict(tau=tau, baseline=baseline, scale=scale, eps=eps)
    out = gapo_kernels.advantage(rewards, offsets, backend=backend, **kw)
    assert_advantage_matches(out, rewards, offsets_np, **kw)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("baseline", BASELINES)
@given(batch=ragged_batches(), tau=taus, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_group_stats_pick_the_reference_window(device, backend, baseline, batch, tau, dtype):
    values, offsets_np = batch
    rewards = torch.as_tensor(values, dtype=dtype, device=device)
    offsets = torch.as_tensor(offsets_np, device=device)
    for scale in SCALES:
        stats = gapo_kernels.group_stats(rewards, offsets, tau=tau, baseline=baseline, scale=scale, backend=backend)
        assert_stats_match(stats, rewards, offsets, tau=tau, baseline=baseline, scale=scale)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@given(
    batch=ragged_batches(),
    tau=taus,
    baseline=st.sampled_from(BASELINES),
    scale=st.sampled_from(SCALES),
    seed=st.integers(0, 2**31),
    id_dtype=st.sampled_from([torch.int32, torch.int64]),
)
def test_group_ids_in_any_order_match_reference(device, backend, batch, tau, baseline, scale, seed, id_dtype):
    values, offsets_np = batch
    ids_np, perm = shuffled_group_ids(offsets_np, seed)
    if id_dtype == torch.int32:
        ids_np = (ids_np // 7_919_993).astype(np.int32)  # still distinct, now fits in int32
    rewards = torch.as_tensor(values[perm], device=device)
    ids = torch.as_tensor(ids_np, dtype=id_dtype, device=device)
    kw = dict(tau=tau, baseline=baseline, scale=scale)
    out = gapo_kernels.advantage(rewards, group_ids=ids, backend=backend, **kw)
    assert_advantage_matches(out, rewards, group_ids=ids_np, **kw)
    # Same groups through offsets: identical values, row for row.
    by_offsets = gapo_kernels.advantage(torch.as_tensor(values, device=device), torch.as_tensor(offsets_np, device=device),
                                        backend=backend, **kw)
    torch.testing.assert_close(out, by_offsets[perm], rtol=0, atol=0)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@given(batch=ragged_batches(), tau=taus, baseline=st.sampled_from(BASELINES), scale=st.sampled_from(SCALES))
def test_half_precision_matches_reference_on_upcast_values(device, backend, dtype, batch, tau, baseline, scale):
    values, offsets_np = batch
    rewards = torch.as_tensor(values, device=device).to(dtype)  # the reference sees these rounded values
    kw = dict(tau=tau, baseline=baseline, scale=scale)
    out = gapo_kernels.advantage(rewards, torch.as_tensor(offsets_np, device=device), backend=backend, **kw)
    assert_advantage_matches(out, rewards, offsets_np, **kw)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_known_values_through_every_backend(device, backend):
    rewards = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1.0], device=device)
    offsets = torch.tensor([0, 8, 16], device=device)
    out = gapo_kernels.advantage(rewards, offsets, backend=backend).cpu()
    torch.testing.assert_close(out[:3], torch.full((3,), -1.5275), atol=1e-4, rtol=0)
    assert torch.equal(out[3:12], torch.zeros(9))  # Q = 1 for the first group, Q = 0 for the second
    stats = gapo_kernels.group_stats(rewards, offsets, backend=backend)
    assert stats.baseline.cpu().tolist() == [1.0, 0.0]


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_empty_batch_and_empty_groups(device, backend):
    empty = torch.zeros(0, device=device)
    assert gapo_kernels.advantage(empty, torch.zeros(1, dtype=torch.long, device=device), backend=backend).numel() == 0
    out = gapo_kernels.advantage(torch.tensor([1.0, 3.0], device=device), torch.tensor([0, 0, 2, 2], device=device),
                                 backend=backend)
    # n = 2, tau = 0.5: k = 1, both one-element windows have width 0, the first wins: Q = 1,
    # S = sqrt((0 + 2^2) / 1) = 2.
    torch.testing.assert_close(out.cpu(), torch.tensor([0.0, 2.0 / (2.0 + 1e-6)]))
