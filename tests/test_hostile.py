"""Inputs a hostile user would try: extreme magnitudes, tiny eps, signed zeros, strided views of
every tensor argument, grad-requiring and meta tensors, unsigned and huge ids. Every backend that
runs on the CPU (and the raw ops) must give the contract's answer, never NaN or garbage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import reference
from gapo_kernels._checks import BASELINES, SCALES
from tests.oracle import assert_advantage_matches, strided_tensor

BACKENDS = ["cpu", "torch", "reference"]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
EPSILONS = [0.0, 5e-324, 1e-6]


def _finite_in(dtype: torch.dtype, values) -> list[float]:
    """The values that stay finite and non-zero (or are exactly zero) once cast to dtype."""
    cast = torch.tensor(values, dtype=torch.float64).to(dtype).double()
    keep = torch.isfinite(cast) & ((cast != 0) | (torch.tensor(values, dtype=torch.float64) == 0))
    return cast[keep].tolist()


# --- all rewards of a group equal: Q = r, S = 0, A = 0 exactly -------------------------------
MAGNITUDES = [1e-300, 5e-324, 1e-100, 1e-6, 0.1, 1.0, 1e12 + 0.3, 1e100, 1e300, 1.7e308, 0.0, -0.0]


def _equal_groups(dtype):
    values = _finite_in(dtype, MAGNITUDES + [-m for m in MAGNITUDES])
    groups = []
    for value in values:
        for size in (2, 6, 17):
            groups.append([value] * size)
        groups.append([value, float("nan"), value, float("inf"), value])  # missing rewards do not count
    return groups


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("eps", EPSILONS)
def test_all_equal_groups_give_exactly_zero(backend, dtype, eps):
    groups = _equal_groups(dtype)
    rewards = torch.tensor([v for g in groups for v in g], dtype=torch.float64).to(dtype)
    offsets = torch.tensor(np.cumsum([0] + [len(g) for g in groups]))
    for baseline in BASELINES:
        for scale in SCALES:
            kw = dict(baseline=baseline, scale=scale, backend=backend)
            out = gapo_kernels.advantage(rewards, offsets, eps=eps, **kw)
            assert torch.equal(out, torch.zeros_like(out)), (baseline, scale, out[out != 0][:5])
            stats = gapo_kernels.group_stats(rewards, offsets, **kw)
            value = torch.tensor([next(v for v in g if math.isfinite(v)) for g in groups], dtype=torch.float64)
            value = value.to(dtype).to(stats.baseline.dtype) + 0.0
            assert torch.equal(stats.baseline, value), (baseline, scale)
            assert torch.equal(stats.mean, value), (baseline, scale)
            assert torch.equal(stats.scale, torch.full_like(value, 1.0 if scale == "none" else 0.0))


def test_equal_groups_that_rounding_would_move_give_zero():
    tenths = torch.full((6,), 0.1, dtype=torch.float64)
    near_trillion = torch.full((5,), 1e12 + 0.3, dtype=torch.float64)
    for backend in BACKENDS:
        out = gapo_kernels.advantage(tenths, torch.tensor([0, 6]), baseline="mean", eps=0.0, backend=backend)
        assert torch.equal(out, torch.zeros(6, dtype=torch.float64))
        out = gapo_kernels.advantage(near_trillion, torch.tensor([0, 5]), baseline="mean", backend=backend)
        assert torch.equal(out, torch.zeros(5, dtype=torch.float64))


# --- tiny eps, overflow and underflow ----------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_eps_gives_no_nan(backend):
    rewards = torch.tensor([1.0, 1.0, 2.0, 0.0, 1.0, 3.0])
    offsets = torch.tensor([0, 2, 3, 6])
    for eps in (5e-324, 1e-320, 2.2250738585072014e-308):
        for baseline in BASELINES:
            for scale in SCALES:
                kw = dict(eps=eps, baseline=baseline, scale=scale)
                out = gapo_kernels.advantage(rewards, offsets, backend=backend, **kw)
                assert_advantage_matches(out, rewards, offsets.numpy(), **kw)
                torch.testing.assert_close(out[:3], torch.tensor([0.0, 0.0, 2.0]) if scale == "none" else
                                           torch.tensor([0.0, 0.0, 2.0 / (1 + eps)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_statistics_neither_overflow_nor_underflow(backend):
    def adv(values, **kw):
        rewards = torch.tensor(values, dtype=torch.float64)
        return gapo_kernels.advantage(rewards, torch.tensor([0, len(values)]), backend=backend, **kw)

    assert torch.equal(adv([1e308] * 4), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(adv([0.0, 1e155, 2e155], baseline="mean"),
                               torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64), rtol=1e-14, atol=0)
    torch.testing.assert_close(adv([0.0, 1e200, 2e200, 3e200], baseline="median", eps=0.0),
                               adv([0.0, 1.0, 2.0, 3.0], baseline="median", eps=0.0), rtol=1e-14, atol=0)
    # Subnormal rewards with eps = 0: (k - 2) / 1 for k = 1, 2, 3 times the smallest subnormal.
    torch.testing.assert_close(adv([5e-324, 1e-323, 1.5e-323], baseline="mean", eps=0.0),
                               torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64), rtol=1e-14, atol=0)
    # A spread wider than the double range: finite advantages; S itself is beyond range (inf).
    wide = adv([-1.7e308, 1.7e308, 0.0], baseline="mean", eps=0.0)
    torch.testing.assert_close(wide, torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64), rtol=1e-14, atol=0)
    # A huge eps on tiny rewards: the true A is tiny, never NaN.
    tiny = adv([5e-324, 1e-323, 1.5e-323], eps=10.0)
    assert torch.isfinite(tiny).all() and tiny.abs().max() < 1e-300


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("scale", ["rms", "std"])
def test_advantages_are_invariant_under_powers_of_two(backend, baseline, scale):
    g = np.random.default_rng(11)
    sizes = [2, 3, 7, 16, 40]
    values = np.concatenate([np.round(g.normal(size=n), 2) for n in sizes])
    values[[4, 20]] = np.nan
    offsets = torch.tensor(np.cumsum([0] + sizes))
    base = torch.tensor(values, dtype=torch.float64)
    kw = dict(baseline=baseline, scale=scale, eps=0.0, backend=backend)
    expected = gapo_kernels.advantage(base, offsets, **kw)
    assert_advantage_matches(expected, base, offsets.numpy(), baseline=baseline, scale=scale, eps=0.0)
    for power in (-900, -500, -60, -1, 1, 60, 500, 900):
        scaled = base * 2.0**power
        out = gapo_kernels.advantage(scaled, offsets, **kw)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12, msg=f"2^{power}")


# --- signed zeros ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_zeros_are_one_reward(backend):
    g = np.random.default_rng(3)
    pattern = np.array([0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 2.0, 0.0] * 4)
    signs = [np.where(g.random(len(pattern)) < 0.5, -1.0, 1.0) for _ in range(6)]
    signs += [np.ones(len(pattern)), -np.ones(len(pattern))]
    offsets = torch.tensor([0, 4, 10, 24, 40])  # one group of zeros only, three mixed ones
    seen = None
    for sign in signs:
        values = np.where(pattern == 0.0, sign * 0.0, pattern)
        rewards = torch.tensor(values)
        for tau in (0.25, 0.5, 1.0):
            stats = gapo_kernels.group_stats(rewards, offsets, tau=tau, backend=backend)
            bits = [t.numpy().tobytes() for t in stats]  # bit for bit: +0.0 never becomes -0.0
            out = gapo_kernels.advantage(rewards, offsets, tau=tau, backend=backend)
            if seen is None or tau not in seen:
                seen = {**(seen or {}), tau: (bits, out)}
            assert bits == seen[tau][0], (sign, tau)
            assert torch.equal(out, seen[tau][1])
            for column in (stats.baseline, stats.hdi_low, stats.hdi_high, stats.min, stats.max, stats.mean):
                assert not any(v == 0 and math.copysign(1.0, v) < 0 for v in column.tolist())


# --- strides on every tensor argument of every op ------------------------------------------------
def _strided_index(values, dtype, step=3):
    """values as a non-contiguous 1-D view whose gaps hold junk a stride-blind reader would use."""
    storage = torch.full((max(1, len(values)) * step,), 7, dtype=dtype)
    view = storage[::step][: len(values)]
    view.copy_(torch.as_tensor(values, dtype=dtype))
    assert step == 1 or not view.is_contiguous() or len(values) <= 1
    return view


def _sample():
    g = np.random.default_rng(5)
    sizes = [3, 0, 1, 7, 16, 2, 30]
    values = np.round(g.normal(size=sum(sizes)), 1)
    values[[2, 11]] = np.nan
    offsets = np.cumsum([0] + sizes)
    ids = np.repeat(g.permutation(len(sizes)) * 1000 - 3000, sizes)
    return values, offsets, ids


@pytest.mark.parametrize("rewards_stride", [1, 2])
@pytest.mark.parametrize("index_stride", [1, 3])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_raw_ops_honour_every_stride(rewards_stride, index_stride, index_dtype):
    values, offsets_np, ids_np = _sample()
    dense_rewards = torch.tensor(values, dtype=torch.float32)
    rewards = strided_tensor(values, torch.float32, "cpu", rewards_stride)
    offsets = _strided_index(offsets_np, index_dtype, index_stride)
    ids = _strided_index(ids_np, index_dtype, index_stride)
    dense_offsets = torch.tensor(offsets_np, dtype=index_dtype)
    dense_ids = torch.tensor(ids_np, dtype=index_dtype)

    out = torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6)
    assert torch.equal(out, torch.ops.gapo.advantage(dense_rewards, dense_offsets, 0.5, "hdi_median", "rms", 1e-6))
    assert_advantage_matches(out, dense_rewards, offsets_np)
    stats = torch.ops.gapo.group_stats(rewards, offsets, 0.5, "mean", "std")
    dense_stats = torch.ops.gapo.group_stats(dense_rewards, dense_offsets, 0.5, "mean", "std")
    for got, want in zip(stats, dense_stats, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    assert stats[-1].tolist() == [2, 0, 1, 7, 15, 2, 30]
    by_ids = torch.ops.gapo.advantage_by_ids(rewards, ids, 0.5, "median", "rms", 1e-6)
    assert torch.equal(by_ids, torch.ops.gapo.advantage_by_ids(dense_rewards, dense_ids, 0.5, "median", "rms", 1e-6))
    assert_advantage_matches(by_ids, dense_rewards, group_ids=ids_np, baseline="median")
    for got, want in zip(torch.ops.gapo.group_rows_by_ids(ids), torch.ops.gapo.group_rows_by_ids(dense_ids),
                         strict=True):
        assert torch.equal(got, want)


def test_strided_offsets_are_read_by_their_strides():
    r = torch.arange(10.0) ** 2
    off = torch.tensor([0, 1, 3, 10, 6, 0, 10])[::2]  # [0, 3, 6, 10]
    assert gapo_kernels.group_stats(r, off).count.tolist() == [3, 3, 4]
    assert torch.equal(gapo_kernels.advantage(r, off), gapo_kernels.advantage(r, off.contiguous()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_public_api_honours_every_stride(backend):
    values, offsets_np, ids_np = _sample()
    rewards = strided_tensor(values, torch.float64, "cpu", 2)
    dense_rewards = torch.tensor(values)
    offsets = _strided_index(offsets_np, torch.int64)
    ids = _strided_index(ids_np, torch.int64)
    out = gapo_kernels.advantage(rewards, offsets, backend=backend)
    assert_advantage_matches(out, dense_rewards, offsets_np)
    out = gapo_kernels.advantage(rewards, group_ids=ids, backend=backend)
    assert_advantage_matches(out, dense_rewards, group_ids=ids_np)
    stats = gapo_kernels.group_stats(rewards, offsets, backend=backend)
    assert stats.count.tolist() == [2, 0, 1, 7, 15, 2, 30]
    stats = gapo_kernels.group_stats(rewards, group_ids=ids, backend=backend)
    assert stats.count.tolist() == gapo_kernels.group_stats(dense_rewards, group_ids=torch.tensor(ids_np),
                                                            backend=backend).count.tolist()


# --- autograd, meta, ids -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_never_require_grad(backend):
    rewards = torch.randn(12, dtype=torch.float64, requires_grad=True)
    offsets = torch.tensor([0, 5, 12])
    ids = torch.tensor([1, 2] * 6)
    outputs = [
        gapo_kernels.advantage(rewards, offsets, backend=backend),
        gapo_kernels.advantage(rewards * 2, group_ids=ids, backend=backend),
        *gapo_kernels.group_stats(rewards, offsets, backend=backend),
        *gapo_kernels.group_stats(rewards, group_ids=ids, backend=backend),
    ]
    for out in outputs:
        assert not out.requires_grad and out.grad_fn is None
    assert_advantage_matches(outputs[0], rewards.detach(), offsets.numpy())


def test_raw_op_outputs_never_require_grad():
    rewards = torch.randn(12, dtype=torch.float64, requires_grad=True)
    offsets = torch.tensor([0, 5, 12])
    ids = torch.tensor([1, 2] * 6)
    outputs = [
        torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6),
        torch.ops.gapo.advantage_by_ids(rewards * 2, ids, 0.5, "mean", "rms", 1e-6),
        *torch.ops.gapo.group_stats(rewards, offsets, 0.5, "hdi_median", "rms"),
        *torch.ops.gapo.group_stats_with_shape(rewards, offsets, 0.5, "hdi_median", "rms"),
    ]
    for out in outputs:
        assert not out.requires_grad and out.grad_fn is None
    assert_advantage_matches(outputs[0], rewards.detach(), offsets.numpy())


@pytest.mark.parametrize("backend", ["auto", "torch", "reference"])
def test_meta_rewards_give_shape_only_results(backend):
    rewards = torch.empty(10, dtype=torch.bfloat16, device="meta")
    offsets = torch.tensor([0, 4, 10], device="meta")
    out = gapo_kernels.advantage(rewards, offsets, backend=backend)
    assert (out.device.type, out.shape, out.dtype) == ("meta", (10,), torch.bfloat16)
    out = gapo_kernels.advantage(rewards, group_ids=torch.zeros(10, dtype=torch.int64, device="meta"), backend=backend)
    assert (out.device.type, out.shape) == ("meta", (10,))
    stats = gapo_kernels.group_stats(rewards, offsets, backend=backend)
    assert all(t.device.type == "meta" and t.shape == (2,) for t in stats)
    with pytest.raises(ValueError, match="offsets must be on the same device"):
        gapo_kernels.advantage(rewards, torch.tensor([0, 10]), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32,
                                   torch.int64, torch.uint64])
def test_every_integer_id_dtype_groups_rows(backend, dtype):
    values, offsets_np, ids_np = _sample()
    info = torch.iinfo(dtype)
    labels = np.array([info.min, info.max, info.min + 5, info.max - 1, info.min + 1, info.max - 7, info.min + 9],
                      dtype=object)  # distinct, both ends of the range (past 2^63 for uint64)
    ids_np = np.repeat(labels, np.diff(offsets_np))
    ids = torch.tensor([int(v) for v in ids_np], dtype=dtype) if dtype != torch.uint64 else \
        torch.tensor(np.array(ids_np, dtype=np.uint64).view(np.int64)).view(torch.uint64)
    rewards = torch.tensor(values)
    out = gapo_kernels.advantage(rewards, group_ids=ids, backend=backend)
    assert_advantage_matches(out, rewards, offsets_np)  # the same groups as the offsets
    stats = gapo_kernels.group_stats(rewards, group_ids=ids, backend=backend)
    order = sorted(range(len(labels)), key=lambda i: int(labels[i]))  # ascending id order, exact ints
    assert stats.count.tolist() == [[2, 0, 1, 7, 15, 2, 30][i] for i in order if np.diff(offsets_np)[i] > 0]


def test_uint64_ids_past_2_63_keep_ascending_order_in_the_raw_op():
    ids = torch.tensor(np.array([2**64 - 1, 5, 2**63, 2**64 - 1], dtype=np.uint64).view(np.int64)).view(torch.uint64)
    order, offsets, unique_ids = torch.ops.gapo.group_rows_by_ids(ids)
    assert order.tolist() == [1, 2, 0, 3]
    assert offsets.tolist() == [0, 1, 2, 4]
    assert unique_ids.dtype == torch.uint64
    assert unique_ids.view(torch.int64).numpy().view(np.uint64).tolist() == [5, 2**63, 2**64 - 1]


def test_ids_spanning_the_batch_are_grouped_right_on_many_threads():
    # A counting sort over a span near N, with more threads than the machine: the histogram
    # scratch stays O(N) (the chunk count is capped) and the grouping is still exact.
    previous = torch.get_num_threads()
    torch.set_num_threads(8)
    try:
        g = torch.Generator().manual_seed(2)
        n = 200_000
        ids = torch.randint(0, n, (n,), generator=g)
        rewards = torch.rand(n, generator=g, dtype=torch.float64)
        out = gapo_kernels.advantage(rewards, group_ids=ids)
        by_torch = gapo_kernels.advantage(rewards, group_ids=ids, backend="torch")
        torch.testing.assert_close(out, by_torch, rtol=1e-12, atol=1e-12)
    finally:
        torch.set_num_threads(previous)


ID_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint64]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("id_dtype", ID_DTYPES)
@pytest.mark.parametrize("stride", [1, 3])
def test_ids_in_ascending_runs_give_the_offsets_ops_bits(dtype, id_dtype, stride):
    # Ids in ascending runs (a trainer's repeated prompt index) are taken as offsets without
    # grouping the rows; the advantages are the offsets op's, bit for bit, small groups (the
    # SIMD lanes) and large (the per-group path) alike, with missing rewards and -0.0 among them.
    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, 8, 8, 8, 5, 16, 0, 33, 200, 2, 8, 1000, 4, 4]
    sizes = [s for s in sizes if s > 0]
    values = np.concatenate([rng.normal(size=s) for s in sizes])
    values[rng.random(len(values)) < 0.05] = np.nan
    values[rng.random(len(values)) < 0.02] = -0.0
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.int64)
    first_id = {torch.int8: -100, torch.int16: -300, torch.int32: -7, torch.int64: -2**40,
                torch.uint64: 2**63 - 5}.get(id_dtype, 0)
    labels = [first_id + 7 * g for g in range(len(sizes))] if id_dtype != torch.uint8 else list(range(len(sizes)))
    ids_np = np.repeat(np.array(labels, dtype=np.uint64 if id_dtype == torch.uint64 else np.int64), sizes)
    ids = (torch.from_numpy(ids_np.view(np.int64)).view(torch.uint64) if id_dtype == torch.uint64
           else torch.from_numpy(ids_np).to(id_dtype))
    rewards = strided_tensor(values, dtype, "cpu", stride)
    want = torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6, None)
    assert torch.equal(torch.ops.gapo.advantage_by_ids(rewards, ids, 0.5, "hdi_median", "rms", 1e-6), want)
    # The same rows shuffled (strided too) take the grouping path: each row keeps its advantage.
    perm = rng.permutation(len(values))
    shuffled_rewards = strided_tensor(values[perm], dtype, "cpu", stride)
    shuffled = torch.ops.gapo.advantage_by_ids(shuffled_rewards, ids[torch.from_numpy(perm)], 0.5, "hdi_median", "rms", 1e-6)
    assert torch.equal(shuffled, want[torch.from_numpy(perm)])


@pytest.mark.parametrize("ids", [[3, 3, 1, 1, 2], [0, 0, 1, 0, 2], [5, 5, 5, 4], [1, 2, 1]])
def test_ids_not_in_ascending_runs_are_grouped(ids):
    # Descending runs, or an id that comes back after another: rows of one id in two runs must
    # still form one group.
    rewards = torch.tensor([0.5, -1.0, 2.0, 4.0, 8.0], dtype=torch.float64)[: len(ids)]
    got = torch.ops.gapo.advantage_by_ids(rewards, torch.tensor(ids), 0.5, "mean", "rms", 1e-6)
    assert_advantage_matches(got, rewards, group_ids=np.array(ids), baseline="mean")


# --- the CUDA kernel bodies (host emulation) on the same hostile groups -------------------------
from tests.test_cuda import LARGE_PATH, PLANNED_PATH, emulate, emulator  # noqa: E402, F401  (fixture)

HOSTILE_GROUPS = [
    *([v] * 6 for v in (1e-300, 5e-324, 0.1, 1e12 + 0.3, 1e300, 1.7e308, -0.0, 0.0, -2.5)),
    [0.1, float("nan"), 0.1, float("inf")],
    [1e308] * 4, [0.0, 1e155, 2e155], [5e-324, 1e-323, 1.5e-323], [-1.7e308, 1.7e308, 0.0],
    [1.0, 1.0], [2.0], [-0.0, 0.0, 1.0, -0.0], [3.0, 1e-300, 1e-300, -2.0],
]


@pytest.mark.parametrize("key_dtype,large", [(torch.float32, False), (torch.float64, False), (torch.float64, True)],
                         ids=["float32-fused", "float64-fused", "float64-large"])
def test_emulated_cuda_kernels_on_hostile_groups(emulator, key_dtype, large):
    # Each emulated launch runs one host thread per GPU lane: eps rotates over the cases to keep
    # this to a dozen launches per parametrisation.
    values = torch.tensor([v for g in HOSTILE_GROUPS for v in g], dtype=torch.float64).to(key_dtype).double().numpy()
    offsets = np.cumsum([0] + [len(g) for g in HOSTILE_GROUPS])
    path = LARGE_PATH if large else PLANNED_PATH
    rtol = 1e-10 if key_dtype == torch.float64 else 1e-6
    cases = [(baseline, scale) for baseline in BASELINES for scale in SCALES]
    for index, (baseline, scale) in enumerate(cases):
        kw = dict(tau=0.5, baseline=baseline, scale=scale, eps=EPSILONS[index % len(EPSILONS)])
        got, stats = emulate(emulator, values, offsets, path=path, key_dtype=key_dtype, **kw)
        want = reference.advantage(values, offsets, **kw)
        assert not np.isnan(got).any(), kw
        # +/-inf only where r - Q itself is beyond the double range (scale none).
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=str(kw))
        expected = reference.group_stats(values, offsets, tau=0.5, baseline=baseline, scale=scale)
        np.testing.assert_array_equal(stats.count, expected.count)
        np.testing.assert_allclose(stats.baseline, expected.baseline.astype(stats.baseline.dtype), rtol=rtol,
                                   equal_nan=True, err_msg=str(kw))
        dtype = np.float32 if key_dtype == torch.float32 else np.float64
        for name in ("hdi_low", "hdi_high", "min", "max"):
            got_bits = np.asarray(getattr(stats, name), dtype=np.float64)
            want_bits = np.asarray(getattr(expected, name)).astype(dtype).astype(np.float64)
            assert got_bits.tobytes() == want_bits.tobytes(), (name, kw)  # signed zeros included
