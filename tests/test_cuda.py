"""The CUDA C++ kernels (csrc/cuda): against the NumPy reference, on a GPU and in host emulation.

Two halves:

* ``test_emulated_*`` run everywhere (CI has no GPU). They build
  csrc/cuda/host_emulation/emulate_kernels.cpp with the host C++ compiler: the kernels'
  per-group bodies (csrc/cuda/group_kernel.cuh, the code the GPU runs) with one std::thread per
  GPU thread, and compare every size class of the fused kernel and the large-group path with
  the reference on the shared hypothesis batches.
* The other tests need a CUDA device and skip, with the reason shown, without one: the same
  property tests through ``gapo_kernels.advantage(..., backend="cuda")`` and
  ``torch.ops.gapo.advantage``, all dtypes, int32/int64 offsets, strided rewards, the
  max_group_size hint, CUDA-graph capture, torch.compile, determinism, groups > 1024.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gapo_kernels
from gapo_kernels._checks import BASELINES, SCALES
from gapo_kernels._types import GroupStats
from tests.oracle import assert_advantage_matches, assert_stats_match, strided_tensor
from tests.strategies import ragged_batches, taus

ROOT = Path(__file__).resolve().parents[1]
EMULATOR_SOURCE = ROOT / "csrc" / "cuda" / "host_emulation" / "emulate_kernels.cpp"

# The fused kernel's size classes (launch_fused in csrc/cuda/advantage_cuda.cu), in order:
# path p serves groups of up to CAPACITIES[p] rewards; path LARGE_PATH is the sorted-segment path.
CAPACITIES = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
LARGE_PATH = len(CAPACITIES)

epsilons = st.sampled_from([1e-6, 0.0, 0.1])


def default_path(max_size: int) -> int:
    """The path the CUDA op picks for a batch whose largest group has max_size rewards."""
    for path, capacity in enumerate(CAPACITIES):
        if max_size <= capacity:
            return path
    return LARGE_PATH


def max_group_size(offsets: np.ndarray) -> int:
    return int(np.diff(offsets).max(initial=0))


# --- host emulation of the kernel bodies (runs without a GPU) ---------------------------------
@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no host C++ compiler to build the CUDA kernel emulation")
    exe = tmp_path_factory.mktemp("cuda_emulation") / "emulate_kernels"
    build = subprocess.run(
        [cxx, "-std=c++20", "-O1", "-pthread", f"-I{ROOT / 'csrc'}", str(EMULATOR_SOURCE), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"the kernel emulation does not compile:\n{build.stderr[-4000:]}"
    return exe


def emulate(exe, values, offsets, *, path, key_dtype, tau, baseline, scale, eps=1e-6, stride=1,
            offsets_int64=True, want=3):
    """(advantages, GroupStats of NumPy arrays) as the kernel bodies compute them."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n, groups = len(values), len(offsets) - 1
    storage = np.full(n * stride, np.nan)  # strided input: the gaps hold NaN, never read
    storage[::stride] = values
    header = np.array(
        [key_dtype == torch.float64, path, BASELINES.index(baseline), SCALES.index(scale), n, groups, stride,
         offsets_int64, want],
        dtype=np.int64,
    )
    payload = header.tobytes() + np.array([tau, eps]).tobytes() + storage.tobytes() + offsets.tobytes()
    run = subprocess.run([str(exe)], input=payload, capture_output=True)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    raw = run.stdout
    assert len(raw) == 8 * n + 8 * 7 * groups + 8 * groups
    advantages = np.frombuffer(raw[: 8 * n], dtype=np.float64)
    columns = np.frombuffer(raw[8 * n : 8 * n + 56 * groups], dtype=np.float64).reshape(7, groups)
    counts = np.frombuffer(raw[8 * n + 56 * groups :], dtype=np.int64)
    return advantages, GroupStats(*columns, counts)


def as_torch_stats(stats: GroupStats, dtype: torch.dtype) -> GroupStats:
    return GroupStats(*(torch.from_numpy(np.array(c)).to(dtype) for c in stats[:7]), torch.from_numpy(np.array(stats.count)))


@pytest.mark.parametrize("baseline", BASELINES)
@given(
    batch=ragged_batches(),
    tau=taus,
    scale=st.sampled_from(SCALES),
    eps=epsilons,
    key_dtype=st.sampled_from([torch.float32, torch.float64]),
    stride=st.sampled_from([1, 1, 3]),
    offsets_int64=st.booleans(),
    data=st.data(),
)
def test_emulated_kernels_match_reference(emulator, baseline, batch, tau, scale, eps, key_dtype, stride,
                                          offsets_int64, data):
    values, offsets = batch
    rewards = torch.as_tensor(values).to(key_dtype)  # the values the kernel sees
    # Any size class that holds the largest group (the op picks the smallest), or the large path.
    largest = max_group_size(offsets)
    path = data.draw(st.sampled_from([p for p, c in enumerate(CAPACITIES) if c >= largest] + [LARGE_PATH]),
                     label="path")
    kw = dict(tau=tau, baseline=baseline, scale=scale)
    advantages, stats = emulate(emulator, rewards.double().numpy(), offsets, path=path, key_dtype=key_dtype,
                                eps=eps, stride=stride, offsets_int64=offsets_int64, **kw)
    assert_advantage_matches(torch.from_numpy(advantages.copy()).to(key_dtype), rewards, offsets, eps=eps, **kw)
    assert_stats_match(as_torch_stats(stats, key_dtype), rewards, torch.as_tensor(offsets), **kw)


@pytest.mark.parametrize("path", range(len(CAPACITIES) + 1))
def test_emulated_size_class_at_its_capacity(emulator, path):
    # Groups filling the class exactly, one short, tiny, empty and all-missing, with ties.
    capacity = CAPACITIES[path] if path < LARGE_PATH else 3000
    rng = np.random.default_rng(path)
    sizes = [capacity, capacity - 1, 1, 0, 2, 5 if capacity >= 5 else 3]
    parts = [np.round(rng.normal(size=s), 1) for s in sizes]
    parts.append(np.array([np.nan, np.inf, -np.inf]))  # all missing
    values = np.concatenate(parts)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    for key_dtype in (torch.float32, torch.float64):
        rewards = torch.as_tensor(values).to(key_dtype)
        for baseline in BASELINES:
            kw = dict(tau=0.5, baseline=baseline, scale="rms")
            advantages, stats = emulate(emulator, rewards.double().numpy(), offsets, path=path,
                                        key_dtype=key_dtype, **kw)
            assert_advantage_matches(torch.from_numpy(advantages.copy()).to(key_dtype), rewards, offsets, **kw)
            assert_stats_match(as_torch_stats(stats, key_dtype), rewards, torch.as_tensor(offsets), **kw)


def test_emulated_large_groups_take_the_segment_path(emulator):
    rng = np.random.default_rng(11)
    sizes = [1025, 0, 7, 4096, 1]
    values = np.concatenate([rng.exponential(0.3, size=s) ** 2 for s in sizes])
    values[rng.random(len(values)) < 0.02] = np.nan
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for key_dtype in (torch.float32, torch.float64):
        rewards = torch.as_tensor(values).to(key_dtype)
        kw = dict(tau=0.5, baseline="hdi_median", scale="rms")
        advantages, stats = emulate(emulator, rewards.double().numpy(), offsets, path=default_path(4096),
                                    key_dtype=key_dtype, **kw)
        assert_advantage_matches(torch.from_numpy(advantages.copy()).to(key_dtype), rewards, offsets, **kw)
        assert_stats_match(as_torch_stats(stats, key_dtype), rewards, torch.as_tensor(offsets), **kw)


def test_emulated_group_beyond_the_hint_gets_nan_not_garbage(emulator):
    # A max_group_size hint smaller than a group: that group's advantages are NaN (loud), the
    # other groups are still right, and nothing outside the batch is touched.
    values = np.array([1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    offsets = np.array([0, 3, 10])
    advantages, _ = emulate(emulator, values, offsets, path=0, key_dtype=torch.float64, tau=0.5,
                            baseline="hdi_median", scale="rms", want=1)
    assert np.all(np.isnan(advantages[3:]))
    expected = gapo_kernels.reference.advantage(values[:3], offsets[:2], tau=0.5)
    np.testing.assert_allclose(advantages[:3], expected, rtol=1e-12)


# --- on a GPU ----------------------------------------------------------------------------------
def _cuda_kernels_built() -> bool:
    return "cuda" in gapo_kernels.available_backends("cuda") if torch.cuda.is_available() else False


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")


def gpu(test):
    """Mark a test as needing a GPU and this build's CUDA kernels (skipped with the reason otherwise)."""
    test = pytest.mark.gpu(test)
    test = pytest.mark.skipif(
        torch.cuda.is_available() and not _cuda_kernels_built(),
        reason="this build of gapo_kernels has no CUDA kernels",
    )(test)
    return CUDA(test)


hints = st.sampled_from(["none", "exact", "loose", "large"])


def hint_value(kind: str, offsets: np.ndarray):
    largest = max_group_size(offsets)
    return {"none": None, "exact": largest, "loose": min(1024, 2 * largest + 3), "large": max(largest, 2048)}[kind]


@gpu
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("baseline", BASELINES)
@given(
    batch=ragged_batches(),
    tau=taus,
    eps=epsilons,
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    index_dtype=st.sampled_from([torch.int32, torch.int64]),
    stride=st.sampled_from([1, 1, 3]),
    hint=hints,
)
def test_cuda_advantage_matches_reference(baseline, scale, batch, tau, eps, dtype, index_dtype, stride, hint):
    values, offsets_np = batch
    rewards = strided_tensor(values, dtype, "cuda", stride)
    offsets = torch.as_tensor(offsets_np, dtype=index_dtype, device="cuda")
    kw = dict(tau=tau, baseline=baseline, scale=scale, eps=eps)
    out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=hint_value(hint, offsets_np), **kw)
    assert_advantage_matches(out, rewards, offsets_np, **kw)


@gpu
@pytest.mark.parametrize("baseline", BASELINES)
@given(batch=ragged_batches(), tau=taus, dtype=st.sampled_from([torch.float32, torch.float64]),
       index_dtype=st.sampled_from([torch.int32, torch.int64]))
def test_cuda_group_stats_pick_the_reference_window(baseline, batch, tau, dtype, index_dtype):
    values, offsets_np = batch
    rewards = torch.as_tensor(values, dtype=dtype, device="cuda")
    offsets = torch.as_tensor(offsets_np, dtype=index_dtype, device="cuda")
    for scale in SCALES:
        stats = gapo_kernels.group_stats(rewards, offsets, tau=tau, baseline=baseline, scale=scale, backend="cuda")
        assert stats.baseline.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert stats.count.dtype == torch.int64 and stats.count.device.type == "cuda"
        assert_stats_match(stats, rewards, offsets, tau=tau, baseline=baseline, scale=scale)


@gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_cuda_op_called_directly(dtype, index_dtype):
    g = torch.Generator().manual_seed(1)
    sizes = torch.randint(0, 40, (500,), generator=g)
    rewards = torch.randn(int(sizes.sum()), generator=g).to(dtype).cuda()
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)]).to(index_dtype).cuda()
    for hint in (None, int(sizes.max())):
        out = torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6, hint)
        assert out.dtype == dtype and out.device == rewards.device and out.shape == rewards.shape
        assert_advantage_matches(out, rewards, offsets.cpu().numpy(), tau=0.5)
    stats = torch.ops.gapo.group_stats(rewards, offsets, 0.5, "hdi_median", "rms")
    assert_stats_match(GroupStats(*stats), rewards, offsets, tau=0.5, baseline="hdi_median", scale="rms")


@gpu
@pytest.mark.parametrize("sizes", [[1025], [5000, 3, 0, 1500, 1], [70_000, 2048]], ids=["1025", "mixed", "big"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cuda_large_groups(sizes, dtype):
    g = torch.Generator().manual_seed(sum(sizes))
    rewards = torch.randn(sum(sizes), generator=g, dtype=torch.float64)
    rewards[: sum(sizes) // 20] += 40.0  # a lump far from the bulk
    rewards[torch.randint(0, sum(sizes), (sum(sizes) // 50 + 1,), generator=g)] = float("nan")
    rewards = rewards.to(dtype).cuda()
    offsets = torch.tensor([0] + np.cumsum(sizes).tolist(), device="cuda")
    for hint in (None, max(sizes), 100_000):
        out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=hint)
        assert_advantage_matches(out, rewards, offsets.cpu().numpy())
    stats = gapo_kernels.group_stats(rewards, offsets, backend="cuda")
    assert_stats_match(stats, rewards, offsets, tau=0.5, baseline="hdi_median", scale="rms")


@gpu
@pytest.mark.parametrize("size", [2, 8, 16, 64, 256, 1000, 3000])
def test_cuda_output_is_bitwise_deterministic(size):
    g = torch.Generator().manual_seed(size)
    num_groups = max(1, 200_000 // size)
    rewards = torch.rand(num_groups * size, generator=g).cuda()
    offsets = torch.arange(0, num_groups * size + 1, size, device="cuda")
    first = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=size)
    for _ in range(3):
        assert torch.equal(gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=size), first)
    stats = [gapo_kernels.group_stats(rewards, offsets, backend="cuda") for _ in range(2)]
    for a, b in zip(*stats):
        assert torch.equal(a, b)


@gpu
@pytest.mark.parametrize("hint", [16, 2048], ids=["fused", "large-path"])
def test_cuda_graph_capture_with_hint(hint):
    g = torch.Generator().manual_seed(2)
    sizes = torch.randint(1, 17, (4000,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)]).cuda()
    rewards = torch.rand(int(sizes.sum()), generator=g).cuda()

    def step():
        return gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=hint)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture (allocator pools, lazy loading)
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for seed in (3, 4):
        rewards.copy_(torch.rand(rewards.shape, generator=torch.Generator().manual_seed(seed)).cuda())
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(captured, step())
        assert_advantage_matches(captured, rewards, offsets.cpu().numpy())


@gpu
def test_cuda_graph_capture_without_hint_is_refused_clearly():
    rewards = torch.rand(64, device="cuda")
    offsets = torch.arange(0, 65, 8, device="cuda")
    torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6, None)  # warm-up
    graph = torch.cuda.CUDAGraph()
    with pytest.raises((ValueError, RuntimeError), match="max_group_size"):
        with torch.cuda.graph(graph):
            gapo_kernels.advantage(rewards, offsets, backend="cuda")


@gpu
def test_cuda_torch_compile():
    g = torch.Generator().manual_seed(5)
    rewards = torch.rand(4096, generator=g).cuda()
    offsets = torch.arange(0, 4097, 16, device="cuda")

    @torch.compile(fullgraph=True)
    def through_the_op(r, o):
        return torch.ops.gapo.advantage(r * 2.0, o, 0.5, "hdi_median", "rms", 1e-6, 16) + 1.0

    @torch.compile
    def through_the_api(r, o):
        return gapo_kernels.advantage(r, o, backend="cuda", max_group_size=16)

    expected = torch.ops.gapo.advantage(rewards * 2.0, offsets, 0.5, "hdi_median", "rms", 1e-6, 16) + 1.0
    torch.testing.assert_close(through_the_op(rewards, offsets), expected, rtol=0, atol=0)
    torch.testing.assert_close(through_the_api(rewards, offsets),
                               gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=16))


@gpu
def test_cuda_non_contiguous_rewards_equal_contiguous():
    g = torch.Generator().manual_seed(6)
    base = torch.randn(3, 30_000, generator=g).cuda()
    column = base.t()[:, 1]  # stride 3
    assert not column.is_contiguous()
    offsets = torch.arange(0, 30_001, 10, device="cuda")
    out = gapo_kernels.advantage(column, offsets, backend="cuda", max_group_size=10)
    assert out.is_contiguous()
    assert torch.equal(out, gapo_kernels.advantage(column.contiguous(), offsets, backend="cuda", max_group_size=10))


@gpu
def test_cuda_edge_groups():
    nan, inf = float("nan"), float("inf")
    rewards = torch.tensor([3.0, nan, inf, -inf, 1.0, 1.0, 1.0, 5.0, nan, 2.0], device="cuda")
    offsets = torch.tensor([0, 1, 1, 4, 7, 10], device="cuda")  # singleton, empty, all missing, ties, mixed
    for hint in (None, 3, 8, 5000):
        out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=hint)
        assert_advantage_matches(out, rewards, offsets.cpu().numpy())
        assert out[0].item() == pytest.approx(3.0 / (1.0 + 1e-6))  # singleton: Q = 0, S = 1
        assert torch.equal(out[1:7].cpu(), torch.zeros(6))  # missing rewards and all-equal ties give 0
    stats = gapo_kernels.group_stats(rewards, offsets, backend="cuda")
    assert stats.count.cpu().tolist() == [1, 0, 0, 3, 2]
    assert math.isnan(stats.baseline[1].item()) and math.isnan(stats.baseline[2].item())
    assert torch.equal(gapo_kernels.advantage(rewards[:0], offsets[:1] * 0, backend="cuda"), rewards[:0])


@gpu
def test_cuda_hint_smaller_than_a_group_gives_nan_for_that_group():
    rewards = torch.arange(12, dtype=torch.float32, device="cuda")
    offsets = torch.tensor([0, 4, 12], device="cuda")
    out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=4)
    assert torch.isnan(out[4:]).all()
    assert_advantage_matches(out[:4], rewards[:4], np.array([0, 4]))


@gpu
def test_cuda_without_hint_checks_offsets_values():
    rewards = torch.rand(10, device="cuda")
    with pytest.raises(ValueError, match="must end at the number of rewards"):
        gapo_kernels.advantage(rewards, torch.tensor([0, 4, 9], device="cuda"), backend="cuda")
    with pytest.raises(ValueError, match="must start at 0"):
        gapo_kernels.advantage(rewards, torch.tensor([1, 4, 10], device="cuda"), backend="cuda")
    with pytest.raises(ValueError, match=r"non-decreasing, but offsets\[1\] > offsets\[2\]"):
        gapo_kernels.advantage(rewards, torch.tensor([0, 6, 4, 10], device="cuda"), backend="cuda")


@gpu
def test_cuda_runs_on_the_current_stream():
    # Work queued on a side stream must be ordered after that stream's earlier writes.
    rewards = torch.zeros(1 << 20, device="cuda")
    offsets = torch.arange(0, (1 << 20) + 1, 8, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        rewards.copy_(torch.rand(1 << 20, device="cuda"))
        out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=8)
    torch.cuda.current_stream().wait_stream(side)
    assert_advantage_matches(out, rewards, offsets.cpu().numpy())
