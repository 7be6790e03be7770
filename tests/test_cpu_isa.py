"""The CPU kernel's instruction-set paths (GAPO_CPU_ISA) against the reference.

Tests here run in-process on the path this process picked; ``test_every_supported_path``
re-runs them, with the CPU property suite, in a subprocess per other path the machine
supports, so each compiled sort (AVX-512, AVX2, NEON, and the portable 4-lane network of the
scalar path, which is the NEON network's logic on x86) meets the reference.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import gapo_kernels
from tests.oracle import assert_advantage_matches, assert_stats_match, expected_advantage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Every size class of the sort (tiny networks, one register, every register count, the
# merged blocks, AVX2's column sorts of 128 to 1024 keys, the quicksort, the radix sort)
# and the sizes either side of each boundary.
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 84, 85, 127, 128, 129, 200, 255, 256, 257,
         320, 321, 417, 511, 512, 513, 640, 641, 800, 801, 961, 1000, 1023, 1024, 1025, 2049, 4100]


def _batch(seed: int, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Groups of the given sizes: ties, -0.0 / +0.0, extreme magnitudes and every kind of missing."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(sizes):
        kind = i % 4
        if kind == 0:
            values = rng.normal(size=n)
        elif kind == 1:
            values = rng.choice([-0.0, 0.0, 1.0, -1.0], size=n)
        elif kind == 2:
            values = rng.choice([0.0, 0.25, 1.0], size=n) * 1e30
        else:
            values = rng.uniform(-1.0, 1.0, size=n)
        missing = rng.random(n) < (0.1 if i % 3 else 0.0)
        values[missing] = rng.choice([np.nan, np.inf, -np.inf], size=int(missing.sum()))
        parts.append(values)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.concatenate(parts), offsets


def _float32_groups(parts: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """The groups `parts`, in order, as float32 rewards and their offsets."""
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(part) for part in parts])]))
    return torch.from_numpy(np.concatenate(parts)).float(), offsets


def _assert_cpu_matches_reference(rewards: torch.Tensor, offsets: torch.Tensor, **params) -> None:
    """The CPU backend's group_stats and advantage against the reference, for these params."""
    stats = gapo_kernels.group_stats(rewards, offsets, backend="cpu", **params)
    assert_stats_match(stats, rewards, offsets, **params)
    out = gapo_kernels.advantage(rewards, offsets, backend="cpu", **params)
    assert_advantage_matches(out, rewards, offsets, **params)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("baseline", ["hdi_median", "hdi_mean", "median", "mean"])
def test_every_sort_size_class_matches_reference(dtype, stride, baseline):
    values, offsets = _batch(7, SIZES + SIZES[::-1])
    storage = torch.full((len(values) * stride,), float("nan"), dtype=dtype)
    rewards = storage[::stride]
    rewards.copy_(torch.as_tensor(values, dtype=dtype))
    off = torch.from_numpy(offsets)
    for tau in (0.5, 0.3, 1.0):
        out = gapo_kernels.advantage(rewards, off, tau=tau, baseline=baseline, scale="rms", backend="cpu")
        assert_advantage_matches(out, rewards, off, tau=tau, baseline=baseline, scale="rms")
    stats = gapo_kernels.group_stats(rewards, off, tau=0.5, baseline=baseline, backend="cpu")
    assert_stats_match(stats, rewards, off, tau=0.5, baseline=baseline)


def _small_groups(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of small groups as trainers make them, and as nobody would: uniform runs of every
    size 2..33 (all lanes alike), ragged runs of 0..40 (empty groups, singletons, all-missing,
    all-equal, large groups between the small ones, partial batches), with every kind of value."""
    rng = np.random.default_rng(seed)
    sizes = []
    for size in range(2, 34):
        sizes += [size] * int(rng.integers(7, 35))
    sizes += list(rng.integers(0, 17, size=300)) + list(rng.integers(0, 41, size=300))
    sizes += [3, 3, 40, 3, 3, 3, 0, 1, 16, 17, 16, 32, 33, 31]
    parts = []
    for i, n in enumerate(sizes):
        kind = i % 7
        if kind == 0:
            values = rng.normal(size=n)
        elif kind == 1:
            values = rng.choice([-0.0, 0.0, 1.0, -1.0], size=n)
        elif kind == 2:
            values = np.full(n, rng.choice([-2.5, 0.0, 7.0]))  # all equal
        elif kind == 3:
            values = rng.normal(size=n) * rng.choice([1e-38, 1e-30, 1e30, 1e36])  # r - Q stays a float32
        elif kind == 4:
            values = np.round(rng.normal(size=n), 1) + 1e6  # ties, far from 0
        elif kind == 5:
            values = rng.uniform(-1.0, 1.0, size=n)
            values[rng.random(n) < 0.3] = rng.choice([np.nan, np.inf, -np.inf])
        else:
            values = np.full(n, np.nan) if i % 2 else rng.choice([np.nan, 5.0], size=n)
        parts.append(values)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.concatenate(parts).astype(np.float32), offsets


@pytest.mark.parametrize("baseline", ["hdi_median", "hdi_mean", "median", "mean"])
@pytest.mark.parametrize("scale", ["rms", "std", "none"])
def test_small_groups_match_reference(baseline, scale):
    # Small float32 groups run one group per SIMD lane on the vector paths (every lane's
    # window, median, mean and scale on its own), and per group elsewhere.
    values, offsets = _small_groups(3)
    rewards, off = torch.from_numpy(values), torch.from_numpy(offsets)
    for tau in (0.5, 0.25, 0.8, 1.0):
        for eps in (1e-6, 0.0, 1e290):
            out = gapo_kernels.advantage(rewards, off, tau=tau, baseline=baseline, scale=scale, eps=eps, backend="cpu")
            assert_advantage_matches(out, rewards, off, tau=tau, baseline=baseline, scale=scale, eps=eps)
            exact_zero = expected_advantage(rewards, off, tau=tau, baseline=baseline, scale=scale, eps=eps) == 0
            assert not np.signbit(out.numpy()[exact_zero]).any(), "an advantage that is exactly 0 is +0.0"


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_first_zero_width_window_wins(tau):
    # Groups with plateaus (runs of one value) at every position: the window scan stops at the
    # first window of width 0, which must be the lowest start of the narrowest windows.
    rng = np.random.default_rng(5)
    parts = []
    for size in [20, 33, 64, 100, 257, 1000, 3000] * 6:
        values = np.sort(rng.normal(size=size))
        k = max(1, int(np.ceil(size * tau)))
        for _ in range(int(rng.integers(1, 4))):  # one to three plateaus of k or more equal values
            length = int(rng.integers(k, min(size, k + 5) + 1))
            begin = int(rng.integers(0, size - length + 1))
            values[begin:begin + length] = values[begin]
        parts.append(rng.permutation(np.round(values, 3) if rng.random() < 0.3 else values))
    _assert_cpu_matches_reference(*_float32_groups(parts), tau=tau)


def test_windows_equal_in_float_are_told_apart_in_double():
    # Each window runs from a small reward (0 .. 7.875) to one near 2^24, where floats are 2
    # apart: many widths round to one float but differ in double. The vector paths screen the
    # windows by their float widths, and must still pick the narrowest in double (the lowest
    # start among exact ties), as the reference does.
    rng = np.random.default_rng(8)
    parts = []
    for size in [40, 64, 100, 256, 514, 1000] * 8:
        small = rng.integers(0, 64, size=size // 2) / 8.0
        large = 2.0**24 + 2.0 * rng.integers(0, 4, size=size - size // 2)
        parts.append(rng.permutation(np.concatenate([small, large])))
    for size in sorted({len(part) for part in parts}):
        tau = (size // 2 + 0.5) / size  # k = size // 2 + 1: every window has both kinds
        _assert_cpu_matches_reference(*_float32_groups([part for part in parts if len(part) == size]), tau=tau)


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_windows_wider_than_the_float_range(tau):
    # Rewards from -3e38 to 3e38: a window's width in float overflows to +inf, so the float
    # screen of the vector paths' window scan sees many windows at +inf and must decide among
    # them in double, as the reference does; some groups keep a few finite-width windows.
    rng = np.random.default_rng(12)
    parts = [rng.choice([1.0, 0.6, 0.45]) * rng.uniform(-3.0e38, 3.0e38, size=size) for size in [64, 130, 257, 600, 1500] * 4]
    rewards, offsets = _float32_groups(parts)
    assert torch.isfinite(rewards).all()
    _assert_cpu_matches_reference(rewards, offsets, tau=tau)


def test_flushing_subnormals_moves_no_window():
    # torch.set_flush_denormal(True) makes the calling thread flush subnormal results to zero.
    # Normal rewards a few subnormals apart then have float differences of 0; the vector paths'
    # window scan must still count a window as of width 0 only where its keys are equal, so
    # the windows and the advantages come out as without the mode. (S is itself subnormal in
    # float32 here, and the mode flushes it on conversion: it is left out, and eps is 0 so that
    # the advantages are not subnormal too.)
    rng = np.random.default_rng(13)
    sizes = [20, 33, 64, 100, 200, 300] * 2
    rewards, offsets = _float32_groups(
        [np.ldexp(1.0 + rng.integers(0, 8, size=s) * 2.0**-23, -126 + rng.integers(0, 3, size=s)) for s in sizes])
    assert rewards.numel() <= 4096  # one task, on the calling thread, whose mode torch sets

    def results():
        out = []
        for tau in (0.3, 0.5, 0.9):
            stats = gapo_kernels.group_stats(rewards, offsets, tau=tau, backend="cpu")
            out += [stats.hdi_low, stats.hdi_high, stats.baseline, stats.min, stats.max,
                    gapo_kernels.advantage(rewards, offsets, tau=tau, eps=0.0, backend="cpu")]
        return [t.numpy().tobytes() for t in out]

    want = results()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        got = results()
    finally:
        torch.set_flush_denormal(False)
    assert got == want


@pytest.mark.parametrize("levels", [1, 2, 3, 8, 9])
def test_large_groups_of_few_levels_match_reference(levels):
    # Pass/fail and few-level rewards in large groups are sorted by counting on the vector
    # paths (up to 8 distinct values; 9 falls back to the comparison sort), with missing
    # rewards and both zeros among them.
    rng = np.random.default_rng(levels)
    values = np.array([-0.0, 0.0, 1.0, -2.5, 3e30, 0.25, 7.0, -1e-30, 5.0][:levels] if levels > 1 else [-0.0])
    parts = []
    for size in [512, 513, 700, 1024, 2049, 4096, 5000]:
        group = rng.choice(values, size=size)
        group[rng.random(size) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        parts.append(group)
    rewards, offsets = _float32_groups(parts)
    for baseline in ("hdi_median", "mean"):
        _assert_cpu_matches_reference(rewards, offsets, tau=0.5, baseline=baseline)


def test_negative_zero_sorts_as_positive_zero():
    # Every group of pure zeros of both signs: min, max and the window bounds are +0.0.
    values = np.array([-0.0, 0.0, -0.0, -0.0] * 3 + [-0.0] * 20 + [0.0, -0.0] * 150, dtype=np.float32)
    offsets = torch.tensor([0, 2, 4, 12, 32, len(values)])
    stats = gapo_kernels.group_stats(torch.from_numpy(values), offsets, backend="cpu")
    for field in ("hdi_low", "hdi_high", "min", "max"):
        got = getattr(stats, field).numpy()
        assert not np.signbit(got).any(), (field, got)


def test_build_info_reports_the_active_path():
    info = gapo_kernels.build_info()
    supported = list(info["cpu_isas_supported"])
    assert supported and supported[-1] == "scalar", supported
    requested = os.environ.get("GAPO_CPU_ISA", "")
    if requested:
        assert info["cpu_isa"] == requested, (info["cpu_isa"], requested)
    else:
        assert info["cpu_isa"] == supported[0], (info["cpu_isa"], supported)


def _run(env_isa: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GAPO_CPU_ISA=env_isa)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(bool(os.environ.get("GAPO_CPU_ISA")), reason="already running on one chosen path")
@pytest.mark.parametrize("isa", ["avx512", "avx2", "sve", "neon", "scalar"])
def test_every_supported_path(isa):
    supported = list(gapo_kernels.build_info()["cpu_isas_supported"])
    if isa not in supported:
        pytest.skip(f"this CPU/build runs {supported}, not {isa}")
    if isa == gapo_kernels.build_info()["cpu_isa"]:
        pytest.skip(f"{isa} is this process's path: the rest of the suite runs on it")
    proc = _run(isa, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                os.path.join(HERE, "test_cpu_isa.py"), os.path.join(HERE, "test_advantage.py"), "-k", "not cpu-torch and not cuda-")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout, proc.stdout[-2000:]


def test_invalid_path_name_fails_every_cpu_call_with_a_clear_error():
    code = ("import torch, gapo_kernels\n"
            "assert gapo_kernels.build_info()['cpu_isa'] == ''\n"
            "try:\n"
            "    gapo_kernels.advantage(torch.ones(4), torch.tensor([0, 4]), backend='cpu')\n"
            "except Exception as exc:\n"
            "    print('ERROR', exc)\n")
    proc = _run("avx1024", "-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERROR" in proc.stdout and "GAPO_CPU_ISA=avx1024" in proc.stdout and "scalar" in proc.stdout, proc.stdout


def test_a_cap_above_the_cpu_runs_the_best_path_below_it():
    info = gapo_kernels.build_info()
    supported, compiled = list(info["cpu_isas_supported"]), list(info["cpu_isas_compiled"])
    assert compiled[-1] == "scalar" and supported == [isa for isa in compiled if isa in supported], (compiled, supported)
    proc = _run(compiled[0], "-c", "import gapo_kernels; print(gapo_kernels.build_info()['cpu_isa'])")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == supported[0], (proc.stdout, supported)


# Every path must choose the same window and compute the same bits: the vectorised window scan
# and sum of squares keep the scalar order of operations. Each path writes its results for a
# hostile batch (ties, plateaus, NaN, wide magnitudes, every dtype, baseline and scale) and
# the files are compared byte for byte.
_BITWISE_SCRIPT = r"""
import sys, numpy as np, torch, gapo_kernels
torch.set_num_threads(1)
rng = np.random.default_rng(11)
sizes = [1, 2, 3, 5, 14, 31, 32, 33, 63, 64, 65, 127, 200, 256, 257, 1000, 1025, 3000]
parts = []
for size in sizes:
    base = rng.choice([rng.normal(size=size), np.round(rng.normal(size=size), 1), np.full(size, 0.3)])
    base = base * rng.choice([1e-30, 1.0, 1e30])
    base[rng.random(size) < 0.05] = np.nan
    parts.append(base)
# Runs of small groups (one group per SIMD lane on the vector paths): uniform and ragged sizes,
# all-equal, missing, signed zeros, and tiny rewards whose scaled eps overflows (eps = 1e290).
# Long uniform runs first, so whole batches of one contiguous size occur on every path.
small = [2] * 40 + [5] * 40 + [16] * 40 + [24] * 40 + [32] * 40 + list(rng.integers(0, 41, size=160))
for size in small:
    kind = rng.integers(0, 5)
    if kind == 0:
        base = np.full(size, rng.choice([-1.5, 0.0, 2.0]))
    elif kind == 1:
        base = rng.choice([-0.0, 0.0, 1.0], size=size)
    else:
        base = rng.normal(size=size) * rng.choice([1e-30, 1.0, 1e30])
    base[rng.random(size) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
    parts.append(base)
sizes = sizes + small
values = np.concatenate(parts)
offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]))
out = []
for eps in (0.0, 1e290):
    for baseline in ("hdi_median", "hdi_mean", "median", "mean"):
        for scale in ("rms", "std", "none"):
            out.append(torch.ops.gapo.advantage(torch.from_numpy(values).float(), offsets, 0.5, baseline, scale, eps).double().numpy())
for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
    rewards = torch.from_numpy(values).to(dtype)
    for baseline in ("hdi_median", "hdi_mean", "median", "mean"):
        for scale in ("rms", "std", "none"):
            for tau in (0.1, 0.5, 0.75, 1.0):
                adv = torch.ops.gapo.advantage(rewards, offsets, tau, baseline, scale, 1e-6)
                out.append(adv.double().numpy())
                stats = torch.ops.gapo.group_stats(rewards, offsets, tau, baseline, scale)
                out += [column.double().numpy() for column in stats]
np.save(sys.argv[1], np.concatenate(out))
"""


@pytest.mark.skipif(bool(os.environ.get("GAPO_CPU_ISA")), reason="already running on one chosen path")
def test_every_path_computes_the_same_bits(tmp_path):
    supported = list(gapo_kernels.build_info()["cpu_isas_supported"])
    if len(supported) < 2:
        pytest.skip(f"this CPU/build runs only {supported}")
    results = {}
    for isa in supported:
        path = tmp_path / f"{isa}.npy"
        proc = _run(isa, "-c", _BITWISE_SCRIPT, str(path))
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[isa] = np.load(path)
    first = supported[0]
    for isa in supported[1:]:
        assert results[isa].tobytes() == results[first].tobytes(), f"{isa} and {first} differ"


@pytest.mark.skipif(bool(os.environ.get("GAPO_CPU_ISA")), reason="the self-test runs every path itself")
def test_group_passes_self_test_of_every_x86_path(tmp_path_factory):
    # scripts/group_scans_selftest.cpp: the AVX2 and AVX-512 window scans (on float widths and
    # in double), sums of squares and advantage writes against the portable passes, bit for
    # bit, on hostile groups with the maps of every baseline, scale and eps up to 1e300.
    from tests.host_programs import ROOT as SOURCE_ROOT, build_host_program

    vector_paths = [isa for isa in gapo_kernels.build_info()["cpu_isas_supported"] if isa in ("avx512", "avx2")]
    if not vector_paths:
        pytest.skip("no x86 vector path on this CPU")
    exe = build_host_program(tmp_path_factory, SOURCE_ROOT / "scripts" / "group_scans_selftest.cpp",
                             "the group passes' self-test", "-ffp-contract=off")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for isa in vector_paths:
        assert f"{isa}: group passes checked" in proc.stdout, proc.stdout
    assert re.search(r"^0 of [1-9][0-9]* checks wrong$", proc.stdout, re.MULTILINE), proc.stdout


@pytest.mark.skipif(bool(os.environ.get("GAPO_CPU_ISA")), reason="the self-test runs every path itself")
def test_sort_self_test_of_every_path(tmp_path_factory):
    # scripts/sort_selftest.cpp: every path's sort_float_group against std::sort, at every size
    # up to 1100 and around every threshold of the size -> method table, on ties, a few levels
    # (the counting sort), missing rewards and signed zeros; the counts and bits must match.
    from tests.host_programs import ROOT as SOURCE_ROOT, build_host_program

    exe = build_host_program(tmp_path_factory, SOURCE_ROOT / "scripts" / "sort_selftest.cpp", "the sort self-test")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for isa in gapo_kernels.build_info()["cpu_isas_supported"]:
        assert f"{isa}: sorted groups of" in proc.stdout, proc.stdout
    assert re.search(r"^0 of [1-9][0-9]* sorts wrong$", proc.stdout, re.MULTILINE), proc.stdout
