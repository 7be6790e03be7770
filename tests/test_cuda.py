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
from tests.host_programs import CAPACITIES, HOST_EMULATION, build_host_program
from tests.oracle import assert_advantage_matches, assert_stats_match, strided_tensor
from tests.strategies import ragged_batches, taus

# Paths of the emulation: p < LARGE_PATH is fused size class p (CAPACITIES[p] rewards at most);
# LARGE_PATH is the sorted-segment path; PLANNED_PATH runs the op's own launch plan (classify
# step, listed or direct launches, large path).
LARGE_PATH = len(CAPACITIES)
PLANNED_PATH = LARGE_PATH + 1
EMULATED_DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

epsilons = st.sampled_from([1e-6, 0.0, 0.1])


def max_group_size(offsets: np.ndarray) -> int:
    return int(np.diff(offsets).max(initial=0))


# --- host emulation of the kernel bodies (runs without a GPU) ---------------------------------
@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Path:
    return build_host_program(tmp_path_factory, HOST_EMULATION / "emulate_kernels.cpp", "the CUDA kernel emulation",
                              "-pthread")


def emulate(exe, values, offsets, *, path, key_dtype, tau, baseline, scale, eps=1e-6, stride=1,
            offsets_int64=True, want=3, hint=None):
    """(advantages, GroupStats of NumPy arrays) as the kernel bodies compute them.

    ``key_dtype`` is the storage type of the rewards (values must be exact in it); ``hint`` is
    max_group_size for PLANNED_PATH (None: the plan from the exact sizes)."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n, groups = len(values), len(offsets) - 1
    storage = np.full(n * stride, np.nan)  # strided input: the gaps hold NaN, never read
    storage[::stride] = values
    header = np.array(
        [EMULATED_DTYPES[key_dtype], path, BASELINES.index(baseline), SCALES.index(scale), n, groups, stride,
         offsets_int64, want, -1 if hint is None else hint],
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
    stat_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return GroupStats(*(torch.from_numpy(np.array(c)).to(stat_dtype) for c in stats[:7]),
                      torch.from_numpy(np.array(stats.count)))


def check_emulated(exe, rewards: torch.Tensor, offsets, *, path, hint=None, eps=1e-6, stride=1, offsets_int64=True,
                   **kw):
    """Runs the emulation on ``rewards`` (its dtype is the storage type) and compares with the reference."""
    advantages, stats = emulate(exe, rewards.double().numpy(), offsets, path=path, key_dtype=rewards.dtype, eps=eps,
                                stride=stride, offsets_int64=offsets_int64, hint=hint, **kw)
    assert_advantage_matches(torch.from_numpy(advantages.copy()).to(rewards.dtype), rewards, offsets, eps=eps, **kw)
    assert_stats_match(as_torch_stats(stats, rewards.dtype), rewards, torch.as_tensor(offsets), **kw)
    return advantages, stats


def hint_value(kind: str, offsets: np.ndarray):
    largest = max_group_size(offsets)
    return {"none": None, "exact": largest, "loose": min(1024, 2 * largest + 3), "large": max(largest, 2048)}[kind]


hints = st.sampled_from(["none", "exact", "loose", "large"])


@pytest.mark.parametrize("baseline", BASELINES)
@given(
    batch=ragged_batches(),
    tau=taus,
    scale=st.sampled_from(SCALES),
    eps=epsilons,
    dtype=st.sampled_from(list(EMULATED_DTYPES)),
    stride=st.sampled_from([1, 1, 3]),
    offsets_int64=st.booleans(),
    data=st.data(),
)
def test_emulated_kernels_match_reference(emulator, baseline, batch, tau, scale, eps, dtype, stride,
                                          offsets_int64, data):
    values, offsets = batch
    rewards = torch.as_tensor(values).to(dtype)  # the values the kernel sees
    # Any size class that holds the largest group, the large path for every group, or the op's
    # own plan (with or without a max_group_size hint).
    largest = max_group_size(offsets)
    path = data.draw(st.sampled_from([p for p, c in enumerate(CAPACITIES) if c >= largest]
                                     + [LARGE_PATH, PLANNED_PATH, PLANNED_PATH]), label="path")
    hint = hint_value(data.draw(hints, label="hint"), offsets) if path == PLANNED_PATH else None
    check_emulated(emulator, rewards, offsets, path=path, hint=hint, eps=eps, stride=stride,
                   offsets_int64=offsets_int64, tau=tau, baseline=baseline, scale=scale)


@pytest.mark.parametrize("path", range(PLANNED_PATH + 1))
def test_emulated_size_class_at_its_capacity(emulator, path):
    # Groups filling the class exactly, one short, tiny, empty and all-missing, with ties.
    capacity = CAPACITIES[path] if path < LARGE_PATH else 3000
    rng = np.random.default_rng(path)
    sizes = [capacity, capacity - 1, 1, 0, 2, 5 if capacity >= 5 else 3]
    parts = [np.round(rng.normal(size=s), 1) for s in sizes]
    parts.append(np.array([np.nan, np.inf, -np.inf]))  # all missing
    values = np.concatenate(parts)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    # Every storage type; the block-sized classes (a thread per key slot in the emulation) with two.
    for dtype in EMULATED_DTYPES if capacity <= 256 else (torch.float64, torch.bfloat16):
        rewards = torch.as_tensor(values).to(dtype)
        for baseline in BASELINES:
            check_emulated(emulator, rewards, offsets, path=path, tau=0.5, baseline=baseline, scale="rms")


def test_emulated_many_teams_per_block(emulator):
    # 300 groups of 1..4 rewards: class 0 runs 128 teams per 256-thread block, each on its own
    # slice of the block's buffer; 40 groups of 20 fill 32 teams per block of class 3.
    rng = np.random.default_rng(12)
    for sizes, path in (([int(s) for s in rng.integers(0, 5, size=300)], 0), ([20] * 40, 3)):
        values = np.round(rng.normal(size=sum(sizes)), 2)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for dtype in (torch.float32, torch.bfloat16):
            rewards = torch.as_tensor(values).to(dtype)
            check_emulated(emulator, rewards, offsets, path=path, tau=0.5, baseline="hdi_median", scale="rms")


def test_emulated_large_groups_take_the_segment_path(emulator):
    rng = np.random.default_rng(11)
    sizes = [1025, 0, 7, 4096, 1]
    values = np.concatenate([rng.exponential(0.3, size=s) ** 2 for s in sizes])
    values[rng.random(len(values)) < 0.02] = np.nan
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for dtype in (torch.float32, torch.float64):
        rewards = torch.as_tensor(values).to(dtype)
        for path, hint in ((LARGE_PATH, None), (PLANNED_PATH, None), (PLANNED_PATH, 4096), (PLANNED_PATH, 100_000)):
            check_emulated(emulator, rewards, offsets, path=path, hint=hint, tau=0.5, baseline="hdi_median",
                           scale="rms")


def test_emulated_plan_mixes_small_and_large_groups(emulator):
    # Many small groups, a few large ones: the small ones take the fused classes (direct or
    # listed), only the large ones the segment path; with a cautious hint everything is listed.
    rng = np.random.default_rng(13)
    sizes = [16] * 200 + [2000] + [3, 0, 700] + [16] * 50 + [1500]
    values = np.round(rng.normal(size=sum(sizes)), 3)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rewards = torch.as_tensor(values).to(torch.float32)
    for hint in (None, 2048, 5000):
        check_emulated(emulator, rewards, offsets, path=PLANNED_PATH, hint=hint, tau=0.5, baseline="hdi_median",
                       scale="rms")


def test_emulated_group_beyond_the_hint_gets_nan_not_garbage(emulator):
    # A max_group_size hint smaller than a group: that group's advantages are NaN (loud), even
    # where the size class picked for the hint could hold it; other groups are still right.
    for middle, hints in ((150, (3, 5, 64, 100, 149)), (3000, (2048, 2999))):  # direct, listed, large path
        values = np.round(np.random.default_rng(middle).normal(size=3 + middle + 2), 3)
        offsets = np.array([0, 3, 3 + middle, 5 + middle])
        expected = gapo_kernels.reference.advantage(values, offsets, tau=0.5)
        for hint in hints:
            advantages, _ = emulate(emulator, values, offsets, path=PLANNED_PATH, hint=hint,
                                    key_dtype=torch.float64, tau=0.5, baseline="hdi_median", scale="rms", want=1)
            assert np.all(np.isnan(advantages[3:3 + middle])), hint
            np.testing.assert_allclose(advantages[:3], expected[:3], rtol=1e-12)
            np.testing.assert_allclose(advantages[3 + middle:], expected[3 + middle:], rtol=1e-12)


@pytest.mark.parametrize("hint", [8, 2048])
def test_emulated_rows_outside_the_offsets_are_written(emulator, hint):
    # With a hint nothing checks the offsets: rows before offsets[0] and after offsets[G] get 0,
    # never the poison the emulation fills the output with.
    values = np.arange(10, dtype=np.float64)
    for offsets in (np.array([2, 5, 8]), np.array([0, 3, 1, 2]), np.array([-4, 3, 99])):
        advantages, _ = emulate(emulator, values, offsets, path=PLANNED_PATH, hint=hint, key_dtype=torch.float32,
                                tau=0.5, baseline="hdi_median", scale="rms", want=1)
        assert np.all(np.abs(advantages) < 1e6), (offsets, advantages)
    advantages, _ = emulate(emulator, values, np.array([2, 5, 8]), path=PLANNED_PATH, hint=hint,
                            key_dtype=torch.float32, tau=0.5, baseline="hdi_median", scale="rms", want=1)
    np.testing.assert_array_equal(advantages[[0, 1, 8, 9]], 0.0)


def test_emulated_overlapping_offsets_with_a_hint_never_leave_rows_unwritten(emulator):
    # Offsets that go back make groups overlap: more large groups than N / 1025 can exist, so a
    # list runs out of room. Numbers may be wrong (the contract was broken) but every row is
    # written (NaN for a group left out), and nothing outside the batch is touched.
    values = np.round(np.random.default_rng(14).normal(size=3000), 2)
    offsets = np.array([0, 2000, 0, 2000, 0, 2000, 3000])
    advantages, _ = emulate(emulator, values, offsets, path=PLANNED_PATH, hint=4096, key_dtype=torch.float32,
                            tau=0.5, baseline="hdi_median", scale="rms", want=1)
    assert np.all(np.isnan(advantages) | (np.abs(advantages) < 1e6))


def test_emulated_signed_zeros_sort_as_one_value(emulator):
    # -0.0 and +0.0 are the same reward: the same window and Q whatever their signs, and the
    # window bounds the kernels report are +0.0.
    rng = np.random.default_rng(15)
    base = np.array([0.0] * 6 + [1.0, 2.0, -1.0, 0.5])
    for path in (2, LARGE_PATH, PLANNED_PATH):
        results = []
        for _ in range(4):
            signs = np.where(rng.random(len(base)) < 0.5, -1.0, 1.0)
            values = np.where(base == 0.0, signs * 0.0, base)
            offsets = np.array([0, len(values)])
            advantages, stats = emulate(emulator, values, offsets, path=path, key_dtype=torch.float32, tau=0.5,
                                        baseline="hdi_median", scale="rms")
            assert not np.signbit(stats.hdi_low[0]) and not np.signbit(stats.hdi_high[0])
            results.append((stats.hdi_low[0], stats.hdi_high[0], stats.baseline[0], np.abs(advantages).tolist()))
        assert all(r == results[0] for r in results), results


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
    # The side stream sleeps before it writes the rewards: an op launched on any other stream
    # would read the old (zero) rewards, long before the copy lands.
    rewards = torch.zeros(1 << 20, device="cuda")
    offsets = torch.arange(0, (1 << 20) + 1, 8, device="cuda")
    fresh = torch.rand(1 << 20, device="cuda")
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~tens of milliseconds of GPU time on this stream
        rewards.copy_(fresh)
        out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=8)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert_advantage_matches(out, fresh, offsets.cpu().numpy())


@gpu
@pytest.mark.parametrize("hint", [None, 16, 100, 2048, 5000])
def test_cuda_plans_small_and_large_groups_together(hint):
    # Many small groups and a few large ones, under every kind of plan: direct, listed (a
    # cautious hint), and the large path for the groups above 1024 only.
    g = torch.Generator().manual_seed(30)
    sizes = [16] * 3000 + [2000, 0, 3, 700, 1025] + [9] * 500 + [4096, 1]
    rewards = torch.randn(sum(sizes), generator=g).cuda()
    offsets = torch.tensor([0] + np.cumsum(sizes).tolist(), device="cuda")
    out = gapo_kernels.advantage(rewards, offsets, backend="cuda", max_group_size=hint)
    expected = gapo_kernels.reference.advantage(rewards.double().cpu().numpy(), offsets.cpu().numpy())
    got = out.double().cpu().numpy()
    bounds = offsets.cpu().numpy()
    for i, size in enumerate(sizes):
        rows = slice(bounds[i], bounds[i + 1])
        if hint is not None and size > hint:
            assert np.all(np.isnan(got[rows])), (i, size)
        else:
            np.testing.assert_allclose(got[rows], expected[rows], rtol=1e-5, atol=1e-5)


@gpu
@pytest.mark.parametrize("hint", [8, 2048])
def test_cuda_rows_outside_the_offsets_are_written(hint):
    rewards = torch.arange(10, dtype=torch.float32, device="cuda")
    for _ in range(3):  # the caching allocator hands back memory holding the last results
        out = gapo_kernels.advantage(rewards, torch.tensor([2, 5, 8], device="cuda"), backend="cuda",
                                     max_group_size=hint)
        assert torch.equal(out[[0, 1, 8, 9]].cpu(), torch.zeros(4))
        torch.cuda.synchronize()
        torch.full((10,), 777.0, device="cuda")  # a freed block full of 777 for the next round


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_signed_zeros_give_the_cpu_window_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(31)
    base = torch.tensor([0.0] * 6 + [1.0, 2.0, -1.0, 0.5, 0.0, 3.0], dtype=dtype)
    for size_class_sizes in ([12], [12] * 50 + [1500]):
        values = torch.cat([base] * (sum(size_class_sizes) // 12) + [torch.zeros(sum(size_class_sizes) % 12,
                                                                                  dtype=dtype)])
        signs = torch.where(torch.rand(len(values), generator=g) < 0.5, -1.0, 1.0).to(dtype)
        values = values * signs  # zeros of both signs
        offsets = torch.tensor([0] + np.cumsum(size_class_sizes).tolist())
        for baseline in BASELINES:
            cpu = gapo_kernels.group_stats(values, offsets, baseline=baseline, backend="cpu")
            cuda = gapo_kernels.group_stats(values.cuda(), offsets.cuda(), baseline=baseline, backend="cuda")
            for name in ("hdi_low", "hdi_high", "min", "max", "count"):
                a, b = getattr(cpu, name), getattr(cuda, name).cpu()
                assert torch.equal(a, b), (name, a, b)
                if a.is_floating_point():
                    assert torch.equal(torch.signbit(a), torch.signbit(b)), name
