"""The Triton backend (gapo_kernels/triton_backend.py, triton_kernels.py) against the NumPy reference.

How these tests run
-------------------
* Without a CUDA device the kernels run on CPU tensors in Triton's interpreter. This module sets
  ``TRITON_INTERPRET=1`` before it imports triton; the variable only takes effect if it is set
  before triton's FIRST import in the process (triton decorates ``tl.sort`` and friends at
  import). If something imported triton earlier without it, the CPU cases skip with that
  reason; run ``TRITON_INTERPRET=1 pytest tests/test_triton.py`` then.
* With a CUDA device (and no TRITON_INTERPRET), the same tests run compiled on ``cuda`` and the
  ``cpu`` cases skip with the reason shown; with both, both run.
* Speed-up for the interpreter (test-only, no change of results): ``tl.sort``'s compare-and-swap
  uses an xor reduction that the interpreter evaluates one element at a time in Python; below
  it is replaced by ``numpy.bitwise_xor.reduce`` (exact, ~50x faster for the whole kernel).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

if not torch.cuda.is_available() and "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton", reason="the triton package is not installed (pip install 'gapo-kernels[triton]')")
import triton.language as tl  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gapo_kernels import _checks, reference, triton_backend, triton_kernels  # noqa: E402

from tests.oracle import assert_advantage_matches  # noqa: E402
from tests.strategies import SPECIAL_TAUS, ragged_batches, taus  # noqa: E402

INTERPRETING = triton_backend._interpreting()


def _fast_interpreter_xor_reduce() -> None:
    """Vectorise the interpreter's xor reduction (tl.sort's compare-and-swap uses it)."""
    from triton.runtime import interpreter

    if getattr(interpreter.ReduceOps.apply_impl, "_gapo_fast_xor", False):
        return
    original = interpreter.ReduceOps.apply_impl

    def apply_impl(self, input):
        if self.combine_fn == tl.standard._xor_combine and self.axis is not None:
            arg = input[0]
            data = np.bitwise_xor.reduce(arg.handle.data, axis=self.axis, keepdims=self.keep_dims)
            return self.to_tensor(data, arg.dtype)
        return original(self, input)

    apply_impl._gapo_fast_xor = True
    interpreter.ReduceOps.apply_impl = apply_impl


if INTERPRETING:
    _fast_interpreter_xor_reduce()

# The interpreter evaluates both sides of every tl.where with NumPy, so masked-out lanes
# (inf - inf on padding, 1 / 0 when S + eps == 0) raise NumPy warnings that mean nothing.
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

DEVICES = [
    pytest.param(
        "cpu",
        id="cpu-interpreter",
        marks=pytest.mark.skipif(
            not INTERPRETING,
            reason="CPU tensors run only in Triton's interpreter: set TRITON_INTERPRET=1 before triton is imported",
        ),
    ),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible"),
               pytest.mark.gpu],
    ),
]
BASELINES = ("hdi_median", "hdi_mean", "median", "mean")
SCALES = ("rms", "std", "none")
EPS = (1e-6, 0.0, 0.1)

# A few examples each: the interpreter costs ~50 ms per program. The "thorough" hypothesis
# profile (GAPO_HYPOTHESIS_PROFILE=thorough) multiplies them.
_FACTOR = max(1, settings.default.max_examples // 60)


def _examples(n: int):
    return settings(max_examples=n * _FACTOR, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _as_tensors(rewards: np.ndarray, offsets: np.ndarray, device, dtype, index_dtype, stride: int = 1):
    """rewards as a (possibly strided) view of the given dtype, offsets of the given index type."""
    values = torch.as_tensor(rewards, dtype=torch.float64).to(dtype)
    if stride != 1:
        buffer = torch.full((len(rewards) * stride,), 12345.0, dtype=dtype)
        buffer[::stride] = values
        values = buffer[::stride]
        assert len(rewards) <= 1 or not values.is_contiguous()
    return values.to(device), torch.as_tensor(offsets, dtype=index_dtype, device=device)


def _check(rewards, offsets, *, tau, baseline, scale, eps, max_group_size=None, **impl_kw):
    if impl_kw:
        out = triton_backend._advantage_impl(rewards, offsets, tau, baseline, scale, eps, max_group_size, **impl_kw)
    else:
        out = triton_backend.advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size)
    assert_advantage_matches(out, rewards, offsets, tau=tau, baseline=baseline, scale=scale, eps=eps)
    return out


# ---------------------------------------------------------------------------------------------
# Property tests against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("baseline", BASELINES)
@_examples(15)
@given(
    batch=ragged_batches(max_groups=6),
    tau=taus,
    eps=st.sampled_from(EPS),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    index_dtype=st.sampled_from([torch.int32, torch.int64]),
    stride=st.sampled_from([1, 1, 3]),
    hint=st.sampled_from(["none", "exact", "cautious"]),
)
def test_tile_kernel_matches_reference(device, baseline, scale, batch, tau, eps, dtype, index_dtype, stride, hint):
    rewards, offsets = batch
    r, o = _as_tensors(rewards, offsets, device, dtype, index_dtype, stride)
    # No hint (exact sizes read back), the exact largest size, or a cautious 2048 (listed plan).
    largest = int(np.diff(offsets).max(initial=0))
    max_group_size = {"none": None, "exact": largest, "cautious": max(largest, 2048)}[hint]
    _check(r, o, tau=tau, baseline=baseline, scale=scale, eps=eps, max_group_size=max_group_size)


@pytest.mark.parametrize("device", DEVICES)
@_examples(40)
@given(
    batch=ragged_batches(max_groups=5),
    tau=taus,
    baseline=st.sampled_from(BASELINES),
    scale=st.sampled_from(SCALES),
    eps=st.sampled_from(EPS),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    index_dtype=st.sampled_from([torch.int32, torch.int64]),
    stride=st.sampled_from([1, 2]),
    chunk=st.sampled_from([16, 64]),
)
def test_sorted_fallback_matches_reference(device, batch, tau, baseline, scale, eps, dtype, index_dtype, stride, chunk):
    """The path for groups above MAX_BLOCK, forced on small groups with small chunks so its
    loops run several iterations."""
    rewards, offsets = batch
    r, o = _as_tensors(rewards, offsets, device, dtype, index_dtype, stride)
    _check(r, o, tau=tau, baseline=baseline, scale=scale, eps=eps, force_sorted=True, chunk=chunk)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@_examples(15)
@given(
    batch=ragged_batches(max_groups=4),
    tau=taus,
    baseline=st.sampled_from(BASELINES),
    scale=st.sampled_from(SCALES),
    force_sorted=st.booleans(),
)
def test_half_precision_matches_reference_on_upcast_values(device, dtype, batch, tau, baseline, scale, force_sorted):
    rewards, offsets = batch
    r, o = _as_tensors(rewards, offsets, device, dtype, torch.int64)
    _check(r, o, tau=tau, baseline=baseline, scale=scale, eps=1e-6, force_sorted=force_sorted)


# ---------------------------------------------------------------------------------------------
# Edge cases, by hand
# ---------------------------------------------------------------------------------------------


def _run(values, offsets, device, dtype=torch.float64, **kw):
    kw = {"tau": 0.5, "baseline": "hdi_median", "scale": "rms", "eps": 1e-6, **kw}
    r = torch.tensor(values, dtype=dtype, device=device)
    o = torch.tensor(offsets, dtype=torch.int64, device=device)
    out = triton_backend.advantage(r, o, kw["tau"], kw["baseline"], kw["scale"], kw["eps"])
    assert_advantage_matches(out, r, o, **kw)
    return out.cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_and_empty_groups(device):
    for offsets in ([0], [0, 0], [0, 0, 0, 0]):
        r = torch.zeros(0, dtype=torch.float32, device=device)
        o = torch.tensor(offsets, dtype=torch.int32, device=device)
        out = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6)
        assert out.shape == (0,) and out.dtype == torch.float32 and out.device == r.device
    out = _run([1.0, 2.0, 4.0], [0, 0, 2, 2, 3, 3], device)  # empty groups between real ones
    assert out[2] == pytest.approx(4.0 / (1 + 1e-6))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", SCALES)
def test_singleton_convention(device, scale):
    out = _run([3.0, -2.0, np.nan, 5.0, np.inf], [0, 1, 2, 4, 5], device, scale=scale, eps=1e-3)
    expected = np.array([3.0, -2.0, 0.0, 5.0, 0.0])
    if scale != "none":  # Q = 0, S = 1: A = r / (1 + eps); with scale none A = r
        expected = expected / (1 + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("baseline", BASELINES)
def test_two_element_groups(device, baseline):
    out = _run([1.0, 3.0, 5.0, -5.0, 2.0, 2.0], [0, 2, 4, 6], device, baseline=baseline, eps=0.0)
    # n = 2: Q is the midpoint for every baseline (k = 1 picks s[0] for the HDI ones).
    if baseline.startswith("hdi"):
        np.testing.assert_allclose(out[:2], [0.0, 2.0 / np.sqrt(4.0)])
    else:
        np.testing.assert_allclose(out[:2], [-1.0 / np.sqrt(2.0), 1.0 / np.sqrt(2.0)])
    np.testing.assert_array_equal(out[4:], [0.0, 0.0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("scale", SCALES)
def test_all_equal_gives_zero_even_without_eps(device, dtype, baseline, scale):
    # 0.1 is inexact in binary: a naive float32 mean of 37 copies is not 0.1f exactly.
    values = [0.1] * 37 + [np.nan, 7.25, 7.25, 7.25] + [-1e-3] * 300
    out = _run(values, [0, 37, 41, 341], device, dtype=dtype, baseline=baseline, scale=scale, eps=0.0)
    np.testing.assert_array_equal(out, 0.0)
    r = torch.tensor(values, dtype=dtype, device=device)
    o = torch.tensor([0, 37, 41, 341], device=device)
    out = triton_backend._advantage_impl(r, o, 0.5, baseline, scale, 0.0, force_sorted=True, chunk=16)
    np.testing.assert_array_equal(out.cpu().numpy(), 0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_missing_rewards_are_excluded_and_zero(device):
    inf, nan = np.inf, np.nan
    values = [inf, 1.0, nan, 2.0, -inf, 4.0, inf, inf, nan, -inf, 5.0, 5.0]
    out = _run(values, [0, 6, 10, 12], device, tau=1.0, baseline="mean")
    missing = ~np.isfinite(values)
    np.testing.assert_array_equal(out[missing], 0.0)
    # group 0 is [1, 2, 4] once the missing ones are out: mean 7/3, rms about it.
    s = np.sqrt(((np.array([1.0, 2.0, 4.0]) - 7 / 3) ** 2).sum() / 2)
    np.testing.assert_allclose(out[[1, 3, 5]], (np.array([1.0, 2.0, 4.0]) - 7 / 3) / (s + 1e-6))


@pytest.mark.parametrize("device", DEVICES)
def test_real_inf_reward_is_missing_not_padding(device):
    # A group whose largest real rewards are +inf: they must not count in n (n = 3, not 5).
    out = _run([0.0, 1.0, 10.0, np.inf, np.inf], [0, 5], device, tau=1.0, baseline="median", scale="none")
    np.testing.assert_array_equal(out, [-1.0, 0.0, 9.0, 0.0, 0.0])


@pytest.mark.parametrize("device", DEVICES)
def test_tie_goes_to_lowest_start(device):
    # k = 4 of 8: [0,0,0,0] and [1,1,1,1] both have width 0; the first wins, Q = 0.
    out = _run([1, 0, 1, 0, 1, 0, 1, 0.0], [0, 8], device, scale="none")
    np.testing.assert_array_equal(out, [1, 0, 1, 0, 1, 0, 1, 0])
    # Equally spaced values: every window has the same width, the first is taken.
    out = _run(list(range(10, 0, -1)), [0, 10], device, scale="none")  # k = 5: window 1..5
    np.testing.assert_array_equal(out, np.arange(10, 0, -1) - 3.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tau", [0.1, 0.3, 0.7, 0.55, 1 / 3, 1e-9, 1.0])
def test_window_size_uses_float64_ceil(device, tau):
    # Equally spaced values: start 0 always, so Q = median of s[0:k] pins k down.
    n = 100 if tau == 0.55 else 10
    k = reference.window_size(n, tau)
    assert k == min(n, max(1, int(np.ceil(n * tau))))
    out = _run(np.arange(n, dtype=np.float64), [0, n], device, tau=tau, scale="none")
    q = (k - 1) / 2
    np.testing.assert_array_equal(out, np.arange(n) - q)


@pytest.mark.parametrize("device", DEVICES)
def test_signed_zeros_and_widths_in_float64(device):
    out = _run([-0.0, 0.0, 0.0, -0.0, 1.0], [0, 5], device, scale="none")
    np.testing.assert_array_equal(np.abs(out), [0, 0, 0, 0, 1])
    # float32 values whose widths tie in float32 but not exactly: s[1] - s[0] = 2**24 + 1
    # rounds to 2**24 = s[2] - s[1]. The exact (float64) widths pick the window at start 1.
    values = [-1.0, 2.0**24, 2.0**25]
    r = torch.tensor(values, dtype=torch.float32, device=device)
    o = torch.tensor([0, 3], device=device)
    expected = np.array(values) - (2.0**24 + 2.0**25) / 2
    for force_sorted in (False, True):
        out = triton_backend._advantage_impl(r, o, 0.5, "hdi_median", "none", 0.0, force_sorted=force_sorted)
        assert_advantage_matches(out, r, o, tau=0.5, baseline="hdi_median", scale="none", eps=0.0)
        np.testing.assert_array_equal(out.cpu().numpy(), expected.astype(np.float32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stride_zero_rewards(device, dtype):
    r = torch.tensor([0.75], dtype=dtype, device=device).expand(9)  # stride 0
    o = torch.tensor([0, 4, 9], device=device)
    out = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 0.0)
    assert out.shape == (9,) and out.stride(0) in (0, 1)
    np.testing.assert_array_equal(out.cpu().numpy(), 0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_output_is_deterministic(device):
    rng = np.random.default_rng(7)
    r = torch.tensor(rng.normal(size=200), dtype=torch.float32, device=device)
    o = torch.tensor([0, 3, 50, 51, 130, 200], device=device)
    first = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6)
    second = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6)
    assert torch.equal(first, second)


# ---------------------------------------------------------------------------------------------
# Large groups (the fallback) and the max_group_size hint
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hint", [None, 6000])
def test_group_larger_than_biggest_tile_takes_the_sorted_path(device, hint):
    rng = np.random.default_rng(3)
    big = triton_backend.MAX_BLOCK + 904
    sizes = [5, big, 0, 17]
    values = rng.normal(size=sum(sizes))
    values[rng.random(len(values)) < 0.02] = np.nan
    values[10:400] = 0.5  # a dense cluster: a clear HDI inside the big group
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    r, o = _as_tensors(values, offsets, device, torch.float32, torch.int64)
    for baseline in ("hdi_median", "mean"):
        _check(r, o, tau=0.25, baseline=baseline, scale="rms", eps=1e-6, max_group_size=hint)


@pytest.mark.parametrize("device", DEVICES)
def test_group_at_the_biggest_tile_uses_the_tile_kernel(device):
    rng = np.random.default_rng(4)
    n = triton_backend.MAX_BLOCK
    r = torch.tensor(rng.exponential(size=n) ** 2, dtype=torch.float64, device=device)
    o = torch.tensor([0, n], device=device)
    _check(r, o, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_hint_larger_than_needed_is_fine_and_too_small_gives_nan(device):
    rng = np.random.default_rng(5)
    r = torch.tensor(rng.normal(size=60), dtype=torch.float32, device=device)
    o = torch.tensor([0, 10, 50, 60], device=device)
    _check(r, o, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6, max_group_size=1000)
    # Documented: a hint below the largest group (40 > 16) gives that group NaN in every row.
    out = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6, max_group_size=16).cpu()
    assert torch.isnan(out[10:50]).all()
    expected = torch.tensor(reference.advantage(r.cpu().double().numpy(), o.cpu().numpy()))
    torch.testing.assert_close(out[:10].double(), expected[:10], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[50:].double(), expected[50:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_offsets(device):
    r = torch.tensor([1.0, 2.0, 4.0, 8.0, 0.5, 0.25], device=device)
    o = torch.tensor([0, -1, 2, -1, 2, -1, 6, -1], device=device)[::2]
    assert not o.is_contiguous()
    _check(r, o, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")
@pytest.mark.parametrize("max_group_size", [64, triton_backend.MAX_BLOCK + 100])
def test_cuda_graph_capture_with_hint(max_group_size):
    """With max_group_size the op does no host sync, so it can be captured in a CUDA graph
    (tile path, and the sorted-CSR path for a hint above MAX_BLOCK)."""
    rng = np.random.default_rng(10)
    r = torch.tensor(rng.normal(size=256), dtype=torch.float32, device="cuda")
    o = torch.tensor([0, 10, 10, 64, 128, 192, 256], device="cuda")  # groups of 10, 0, 54, 64, 64, 64
    triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6, max_group_size)  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6, max_group_size)
    r.copy_(torch.tensor(rng.normal(size=256), dtype=torch.float32, device="cuda"))
    graph.replay()
    torch.cuda.synchronize()
    assert_advantage_matches(out, r, o, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6)


def test_block_choice():
    assert triton_backend.block_for(0) == triton_backend.MIN_BLOCK
    assert triton_backend.block_for(1) == triton_backend.MIN_BLOCK == 4
    assert triton_backend.block_for(8) == 8
    assert triton_backend.block_for(17) == 32
    assert triton_backend.block_for(4096) == 4096


def test_cpu_tensor_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(triton_backend, "_interpreting", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        triton_backend.advantage(torch.zeros(3), torch.tensor([0, 3]), 0.5, "hdi_median", "rms", 1e-6)


# ---------------------------------------------------------------------------------------------
# torch.library integration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "dtype,index_dtype,stride,hint",
    [(torch.float32, torch.int64, 1, None), (torch.float64, torch.int32, 2, 64), (torch.bfloat16, torch.int64, 3, None)],
)
def test_opcheck(device, dtype, index_dtype, stride, hint):
    rng = np.random.default_rng(6)
    r, o = _as_tensors(rng.normal(size=40), np.array([0, 3, 3, 20, 40]), device, dtype, index_dtype, stride)
    torch.library.opcheck(torch.ops.gapo_triton.advantage.default, (r, o, 0.5, "hdi_median", "rms", 1e-6, hint))
    torch.library.opcheck(torch.ops.gapo_triton.advantage.default, (r, o, 0.3, "mean", "none", 0.0, hint))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    # inductor on CUDA; on CPU aot_eager (same dynamo/fake-tensor tracing of the op, without
    # ~20 s of C++ compilation on a CI core). The op is opaque to the compiler either way.
    compile_backend = "inductor" if device == "cuda" else "aot_eager"
    torch._dynamo.reset()

    def step(rewards, offsets):
        adv = triton_backend.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6, 32)
        return adv * 2.0 + 1.0

    rng = np.random.default_rng(8)
    r = torch.tensor(rng.normal(size=30), dtype=torch.float32, device=device)
    o = torch.tensor([0, 8, 8, 24, 30], device=device)
    compiled = torch.compile(step, fullgraph=True, backend=compile_backend)
    torch.testing.assert_close(compiled(r, o), step(r, o))
    assert_advantage_matches((compiled(r, o) - 1.0) / 2.0, r, o, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_public_dispatch(device):
    import gapo_kernels

    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the public dispatch offers triton on CPU only with TRITON_INTERPRET=1")
    rng = np.random.default_rng(9)
    r = torch.tensor(rng.normal(size=25), dtype=torch.float32, device=device)
    o = torch.tensor([0, 1, 10, 25], dtype=torch.int32, device=device)
    for tau in SPECIAL_TAUS[:3]:
        out = gapo_kernels.advantage(r, o, tau=tau, backend="triton")
        assert_advantage_matches(out, r, o, tau=tau, baseline="hdi_median", scale="rms", eps=1e-6)
        out = gapo_kernels.advantage(r, o, tau=tau, backend="triton", max_group_size=15, scale="none")
        assert_advantage_matches(out, r, o, tau=tau, baseline="hdi_median", scale="none", eps=1e-6)


# ---------------------------------------------------------------------------------------------
# GPU code generation, checked without a GPU
# ---------------------------------------------------------------------------------------------


def test_kernels_compile_for_sm80_and_sm90_without_spills():
    """Builds the kernels for sm_80 and sm_90 with the ptxas that triton ships (no GPU needed),
    through scripts/triton_resource_usage.py in a subprocess without TRITON_INTERPRET, and
    checks that no build spills to local memory beyond a few bytes (a long row once did,
    through tl.gather). Without cuobjdump the register report is missing: skipped, saying so."""
    import json
    import subprocess

    from triton.backends import backends

    if "nvidia" not in backends:
        pytest.skip("this triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    script = os.path.join(root, "scripts", "triton_resource_usage.py")
    done = subprocess.run([sys.executable, script, "--archs", "80,90"], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    builds, tool = lines[:-1], lines[-1]["cuobjdump"]
    assert len(builds) == 14  # every configuration compiled for both archs
    if tool is None:
        pytest.skip("triton ships no cuobjdump here: the kernels compile, but registers and spills are unknown")
    assert all("regs" in b and "stack" in b for b in builds), builds
    # A few bytes of stack can be a small local array; the tl.gather layout spilled ~22 KB.
    spilled = [b for b in builds if b["stack"] > 64]
    assert not spilled, spilled


# ---------------------------------------------------------------------------------------------
# One home for the codes, the launch plan, and what the kernels write
# ---------------------------------------------------------------------------------------------


def test_baseline_and_scale_codes_match_the_cpp_enums():
    import re
    from pathlib import Path

    header = (Path(__file__).resolve().parents[1] / "csrc" / "gapo" / "group_logic.h").read_text()

    def enum(name):
        body = re.search(rf"enum class {name} : int32_t {{([^}}]*)}}", header).group(1)
        return {k.strip(): int(v) for k, v in (item.split("=") for item in body.split(",") if "=" in item)}

    cpp_baselines, cpp_scales = enum("Baseline"), enum("Scale")
    camel = {"hdi_median": "HdiMedian", "hdi_mean": "HdiMean", "median": "Median", "mean": "Mean",
             "rms": "Rms", "std": "Std", "none": "None"}
    for name, code in zip(_checks.BASELINES, (triton_kernels.HDI_MEDIAN, triton_kernels.HDI_MEAN,
                                              triton_kernels.MEDIAN, triton_kernels.MEAN)):
        assert int(code.value) == _checks.BASELINES.index(name) == cpp_baselines[camel[name]]
    for name, code in zip(_checks.SCALES, (triton_kernels.RMS, triton_kernels.STD, triton_kernels.NONE)):
        assert int(code.value) == _checks.SCALES.index(name) == cpp_scales[camel[name]]


def test_plan_one_large_group_leaves_the_small_ones_on_their_tile():
    histogram = [0] * (triton_backend.LARGE + 1)
    histogram[triton_backend.class_of_size(16)] = 65_536
    histogram[triton_backend.LARGE] = 1
    plan = triton_backend.plan_launch(65_537, 65_536 * 16 + 5_000, histogram=histogram)
    assert plan.direct_block == 16 and not plan.listed
    assert plan.skip_above == triton_backend.MAX_BLOCK and plan.sorted_groups == 65_537


def test_plan_a_cautious_hint_lists_groups_by_size():
    num_groups, num_rewards = 65_537, 65_536 * 16 + 5_000
    plan = triton_backend.plan_launch(num_groups, num_rewards, hint=8192)
    assert plan.listed and plan.direct_block is None and plan.size_limit == 8192
    for c in range(triton_backend.LARGE + 1):
        smallest = 1 if c == 0 else triton_backend.class_block(c - 1) + 1
        assert plan.rooms[c] == min(num_groups, num_rewards // smallest)
    assert plan.sorted_listed and plan.sorted_groups == num_rewards // (triton_backend.MAX_BLOCK + 1)
    # Programs launched over all classes stay within a few per thousand rewards.
    programs = sum(-(-plan.rooms[c] // triton_backend.rows_for(triton_backend.class_block(c)))
                   for c in range(triton_backend.NUM_CLASSES))
    assert programs < num_rewards // 50
    small = triton_backend.plan_launch(num_groups, num_rewards, hint=16)
    assert small.direct_block == 16 and not small.listed and small.size_limit == 16


def test_plan_ragged_sizes_are_listed_when_one_tile_would_mostly_sort_padding():
    histogram = [0] * (triton_backend.LARGE + 1)
    histogram[triton_backend.class_of_size(16)] = 65_536
    histogram[triton_backend.class_of_size(1000)] = 10
    plan = triton_backend.plan_launch(65_546, 65_536 * 16 + 10_000, histogram=histogram)
    assert plan.listed and plan.rooms[triton_backend.class_of_size(16)] == 65_536
    assert triton_backend.plan_launch(3, 40, histogram=[3] + [0] * triton_backend.LARGE).direct_block == 4


def test_rows_per_program_do_not_depend_on_the_batch():
    assert [triton_backend.rows_for(triton_backend.class_block(c)) for c in range(triton_backend.NUM_CLASSES)] == [
        256, 128, 64, 32, 16, 8, 4, 2, 1, 1, 1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hint", [None, 3, 40, 100, 2000, 9000])
def test_hinted_plans_match_reference_and_nan_beyond_the_hint(device, hint):
    rng = np.random.default_rng(20)
    sizes = [16, 3, 0, 45, 1, 16, 300, 2, 16, 7]
    values = np.round(rng.normal(size=sum(sizes)), 3)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    r, o = _as_tensors(values, offsets, device, torch.float32, torch.int64)
    out = triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", 1e-6, hint).cpu().double().numpy()
    expected = reference.advantage(values, offsets)
    for g, size in enumerate(sizes):
        rows = slice(offsets[g], offsets[g + 1])
        if hint is not None and size > hint:
            assert np.all(np.isnan(out[rows])), (g, size, hint)
        else:
            np.testing.assert_allclose(out[rows], expected[rows], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hint", [8, 200])
def test_bad_offsets_with_a_hint_write_every_row_and_stay_in_bounds(device, hint, monkeypatch):
    # Nothing checks offsets values with a hint: whatever they are, no row is left as the
    # output's uninitialised memory (poisoned here), rows outside [offsets[0], offsets[G]) are 0.
    poison = 12345.0
    monkeypatch.setattr(triton_backend, "_new_output", lambda r: torch.full_like(r, poison))
    values = np.arange(10, dtype=np.float64)
    for offsets in ([2, 5, 8], [0, 3, 1, 2], [-4, 3, 99], [0, 7, 3, 10], [5, 5]):
        r, o = _as_tensors(values, np.array(offsets), device, torch.float32, torch.int64)
        out = triton_backend._advantage_impl(r, o, 0.5, "hdi_median", "rms", 1e-6, hint).cpu().numpy()
        assert not np.any(out == poison), (offsets, out)
    r, o = _as_tensors(values, np.array([2, 5, 8]), device, torch.float32, torch.int64)
    out = triton_backend._advantage_impl(r, o, 0.5, "hdi_median", "rms", 1e-6, hint).cpu().numpy()
    np.testing.assert_array_equal(out[[0, 1, 8, 9]], 0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_offsets_without_a_hint_are_reported(device):
    r = torch.zeros(10, device=device)
    for offsets, match in (([0, 4, 9], "end at the number of rewards"), ([1, 4, 10], "start at 0"),
                           ([0, 6, 4, 10], r"offsets\[1\] > offsets\[2\]"), ([3], "start at 0")):
        with pytest.raises(ValueError, match=match):
            triton_backend.advantage(r, torch.tensor(offsets, device=device), 0.5, "hdi_median", "rms", 1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("force_sorted", [False, True])
def test_signed_zeros_give_the_same_window_and_q(device, force_sorted):
    rng = np.random.default_rng(21)
    base = np.array([0.0] * 6 + [1.0, 2.0, -1.0, 0.5, 0.0, 3.0])
    first = None
    for _ in range(4):
        values = np.where(base == 0.0, np.where(rng.random(len(base)) < 0.5, -0.0, 0.0), base)
        r, o = _as_tensors(values, np.array([0, len(values)]), device, torch.float32, torch.int64)
        out = triton_backend._advantage_impl(r, o, 0.5, "hdi_median", "rms", 0.0, force_sorted=force_sorted)
        got = np.abs(out.cpu().numpy())
        first = got if first is None else first
        np.testing.assert_array_equal(got, first)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("force_sorted", [False, True])
@pytest.mark.parametrize("baseline", BASELINES)
def test_extreme_magnitudes_and_tiny_eps(device, force_sorted, baseline):
    def run(values, offsets, scale="rms", eps=1e-6):
        r, o = _as_tensors(np.array(values), np.array(offsets), device, torch.float64, torch.int64)
        return triton_backend._advantage_impl(r, o, 0.5, baseline, scale, eps,
                                              force_sorted=force_sorted).cpu().numpy()

    # All equal at any magnitude and any eps >= 0: exactly 0.
    for v in (1e-300, 0.1, 1e12 + 0.3, 1e308, -5e-324):
        for eps in (0.0, 5e-324, 1e-6):
            out = run([v] * 6 + [1.0, 1.0], [0, 6, 8], eps=eps)
            np.testing.assert_array_equal(out, 0.0)
    # Nothing overflows or underflows where the answer is representable.
    # (A is scale-free with eps = 0: the same group at magnitude 1 is the expected value.)
    for big in ([0.0, 1e155, 2e155], [1e308, 1e308, -1e308, 1.7e308], [3e-320, 5e-324, 0.0, 1e-321]):
        unit = np.array(big) / np.abs(big).max()
        expected = reference.advantage(unit, np.array([0, len(big)]), baseline=baseline, eps=0.0)
        np.testing.assert_allclose(run(big, [0, len(big)], eps=0.0), expected, rtol=1e-12, atol=1e-12)
    if baseline == "median":
        np.testing.assert_allclose(run([0.0, 1e155, 2e155], [0, 3], eps=0.0), [-1.0, 0.0, 1.0], rtol=1e-12)
    # A tiny eps is as safe as eps = 0: [1, 1 | 2] -> [0, 0, 2 / (1 + eps)].
    np.testing.assert_allclose(run([1.0, 1.0, 2.0], [0, 2, 3], eps=5e-324), [0.0, 0.0, 2.0], rtol=1e-15)
    # Scale invariance with eps = 0: powers of two from 2^-900 to 2^900 change nothing.
    values = np.array([0.25, 1.5, -3.0, 7.0, 0.5, 2.0, 2.5])
    reference_out = run(values, [0, 7], eps=0.0)
    for k in (-900, -300, 300, 900):
        np.testing.assert_allclose(run(values * 2.0**k, [0, 7], eps=0.0), reference_out, rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")
def test_batch_size_and_eps_do_not_recompile():
    """ROWS depends on the tile only and the sizes, tau and eps are runtime values: a new batch
    size or eps = 0 must not compile the tile kernel again (it would stall a training step and a
    graph capture)."""
    caches = getattr(triton_kernels.tile_kernel, "device_caches", None)
    if caches is None:
        pytest.skip("this triton exposes no JIT cache to count compiled kernels")

    def compiled():
        try:  # triton >= 3.2: per device (kernel cache, target, backend, binder)
            return sum(len(entry[0]) for entry in caches.values())
        except (TypeError, IndexError, KeyError):
            pytest.skip("this triton's JIT cache has another layout")

    def call(groups, eps):
        o = torch.arange(0, 16 * groups + 1, 16, device="cuda")
        r = torch.rand(16 * groups, device="cuda")
        triton_backend.advantage(r, o, 0.5, "hdi_median", "rms", eps, 16)

    call(3, 1e-6)
    before = compiled()
    for groups, eps in ((1, 0.0), (7, 1e-6), (100, 0.0), (1000, 1e-3), (4097, 1e-6)):
        call(groups, eps)
    assert compiled() == before
