"""torch.library integration: opcheck on every op, torch.compile through the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapo_kernels
from tests.oracle import assert_advantage_matches


def sample_batch(dtype=torch.float32, index_dtype=torch.int64):
    g = torch.Generator().manual_seed(0)
    sizes = [16, 0, 1, 2, 7, 33, 16]
    rewards = torch.randn(sum(sizes), generator=g).to(dtype)
    rewards[3] = float("nan")
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=index_dtype)
    return rewards, offsets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("baseline,scale", [("hdi_median", "rms"), ("mean", "none"), ("median", "std")])
def test_opcheck_advantage(dtype, index_dtype, baseline, scale):
    rewards, offsets = sample_batch(dtype, index_dtype)
    torch.library.opcheck(torch.ops.gapo.advantage.default, (rewards, offsets, 0.5, baseline, scale, 1e-6))
    torch.library.opcheck(torch.ops.gapo.advantage.default, (rewards, offsets, 0.5, baseline, scale, 1e-6, 64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_group_stats_and_by_ids(dtype):
    rewards, offsets = sample_batch(dtype)
    # opcheck compares eager and traced outputs without equal_nan, so leave out the empty group
    # (whose stats are NaN by contract); test_advantage covers empty groups.
    offsets = torch.tensor([0, 16, 17, 19, 26, 59, 75])  # sample_batch's groups minus the empty one
    torch.library.opcheck(torch.ops.gapo.group_stats.default, (rewards, offsets, 0.25, "hdi_median", "rms"))
    ids = torch.randint(-5, 5, rewards.shape, generator=torch.Generator().manual_seed(1))
    torch.library.opcheck(torch.ops.gapo.advantage_by_ids.default, (rewards, ids, 0.5, "hdi_mean", "rms", 1e-6))


def test_opcheck_group_rows_by_ids():
    ids = torch.tensor([4, -1, 4, 9, -1, 4])
    # Its output sizes depend on the data, so the dynamic-shape AOT test does not apply.
    torch.library.opcheck(
        torch.ops.gapo.group_rows_by_ids.default, (ids,), test_utils=("test_schema", "test_faketensor")
    )
    order, offsets, unique_ids = torch.ops.gapo.group_rows_by_ids(ids)
    assert order.tolist() == [1, 4, 0, 2, 5, 3]
    assert offsets.tolist() == [0, 2, 5, 6]
    assert unique_ids.tolist() == [-1, 4, 9]


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_torch_compile_fullgraph_through_public_api(backend):
    rewards, offsets = sample_batch()

    def step(r, o):
        return gapo_kernels.advantage(r * 2.0, o, tau=0.5, backend=backend) + 1.0

    compiled = torch.compile(step, fullgraph=True, backend="inductor" if backend == "cpu" else "eager")
    out = compiled(rewards, offsets)
    expected = gapo_kernels.advantage(rewards * 2.0, offsets, backend="reference") + 1.0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # A second batch of another size reuses or recompiles the graph, and is still right.
    rewards2 = torch.randn(40)
    offsets2 = torch.tensor([0, 10, 25, 40])
    assert_advantage_matches(compiled(rewards2, offsets2) - 1.0, rewards2 * 2.0, offsets2.numpy())


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("grouping", ["offsets", "group_ids"])
def test_torch_compile_fullgraph_dynamic(backend, grouping):
    # dynamic=True traces tau and eps as symbolic floats and sizes as symbols: the argument
    # checks must be plain comparisons, and the fake kernels must accept symbolic shapes.
    def step(r, groups, tau, eps):
        kwargs = {grouping: groups}
        return gapo_kernels.advantage(r, tau=tau, eps=eps, backend=backend, **kwargs)

    compiled = torch.compile(step, fullgraph=True, dynamic=True, backend="aot_eager")
    for size, num_groups in ((48, 3), (80, 5)):
        rewards = torch.randn(size, generator=torch.Generator().manual_seed(size))
        offsets = torch.arange(0, size + 1, size // num_groups)
        groups = offsets if grouping == "offsets" else torch.arange(size) % num_groups
        out = compiled(rewards, groups, 0.25, 1e-3)
        if grouping == "offsets":
            assert_advantage_matches(out, rewards, offsets.numpy(), tau=0.25, eps=1e-3)
        else:
            assert_advantage_matches(out, rewards, group_ids=groups.numpy(), tau=0.25, eps=1e-3)


def test_build_info_reports_the_compiled_backends():
    info = gapo_kernels.build_info()
    assert info["version"] == gapo_kernels.__version__
    assert "cpu" in info["backends"]
    assert gapo_kernels.available_backends("cpu")[0] == "cpu"
