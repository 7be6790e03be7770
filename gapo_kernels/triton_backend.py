"""Triton backend of the GAPO advantage family (``backend="triton"``; ../shared/SPEC.md).

``gapo_kernels.ops`` imports this module lazily, only when the Triton backend is asked for,
so ``import gapo_kernels`` works without triton installed. The entry point is
:func:`advantage`, which goes through the custom op ``torch.ops.gapo_triton.advantage``
(``torch.library.custom_op`` + ``register_fake``: opaque to ``torch.compile``, checked by
``torch.library.opcheck``).

Two kernels
-----------
1. **Tile kernel** (every group has at most ``MAX_BLOCK`` = 4096 rewards: the common case).
   One program owns ``ROWS`` consecutive groups, each padded to ``BLOCK`` (a power of two,
   4..4096, the smallest one that holds the largest group), so a program holds a
   ``[ROWS, BLOCK]`` register tile of about ``TILE_ELEMS`` rewards. Per program:

   * load the groups (any input stride), upcast to the sort type ``ACC`` (float32, or
     float64 for float64 rewards); a reward is *finite* when ``|r| < inf`` (NaN, +inf and
     -inf are missing), ``n`` = number of finite rewards, counted *before* anything is
     mapped; missing rewards and the padding become ``+inf`` so they sort to the end and never
     enter a window (a real ``+inf`` reward is missing too, so the two cannot be confused);
   * ``tl.sort`` along each row (bitonic, in registers);
   * the sorted finite values are stored to the group's own rows of a scratch buffer of type
     ``ACC`` (``out`` itself for float32/float64 rewards, which it rewrites last; one extra
     buffer of N float32 for float16/bfloat16), then a CTA barrier, so that shifted and
     single elements can be read back (an L1/L2 hit). ``tl.gather`` did the same in registers but, on sm_90
     builds, kept a whole row per warp and spilled for BLOCK >= 2048;
   * ``k = min(n, max(1, ceil(n * tau)))`` with ``n * tau`` in float64 (``tau`` reaches the
     kernel as its float64 bit pattern: Triton passes Python floats as float32);
   * widths ``s[i + k - 1] - s[i]`` in **float64** for every start (exact for float32
     values), starts ``i > n - k`` masked to ``+inf``; ``i*`` = lowest index attaining the
     minimum width (a min reduction, then a min over the indices that attain it: the spec's
     strict-< scan, whatever the reduction order);
   * Q, S and A in **float64** for every input type (sorting stays in ``ACC``). Float32
     arithmetic is not enough for the spec's tolerance: in a tight group far from zero (say
     two rewards 0.8646 and 0.8652) the float32 rounding of Q alone is 1e-4 of S. Sums are
     shifted (``mean = s0 + sum(s - s0) / n``, window mean ``= s[i*] + sum(s - s[i*]) / k``):
     exact when all the values are equal, so an all-equal group gets Q = r, S = 0 and A = 0
     even with eps = 0;
   * ``A = (r - Q) * inv`` with ``inv = 1 / (S + eps)`` (0 when ``S + eps == 0``; 1 for
     ``scale="none"``, where eps is not added), singleton ``Q = 0, S = 1``, missing -> 0;
     the rewards are read again for this (not kept live across the sort).

   Sizes: ``BLOCK`` in {4, ..., 4096}, ``ROWS = max(1, TILE_ELEMS // BLOCK)`` with
   ``TILE_ELEMS = 1024`` (capped by the number of groups), ``num_warps = ROWS * BLOCK / 128``
   clamped to [1, 16] (4 rewards per thread; 8 at BLOCK = 4096). The output is cast from
   float64 through ``ACC`` (16-bit outputs may round twice: at most 1 ulp).

2. **Sorted-CSR kernel** (some group has more than 4096 rewards: the fallback). The rewards
   (missing ones mapped to +inf) are sorted within their groups by two stable ``torch.sort``
   passes (by value, then by group index: a segmented sort with no host sync), and one program
   per group then streams its sorted segment in ``CHUNK``-sized pieces: count + shifted sum,
   window scan (per-lane running minimum with strict ``<`` over ascending starts, then the
   lowest index among the lanes that attain the minimum), the window sum for ``hdi_mean``, the
   sum of squares, and the write over the original (unsorted, strided) rewards, statistics in
   float64 as above. It handles any group size and is used for the whole batch when the
   largest group exceeds 4096 (the tile size cannot be chosen per group without a host sync).

Host synchronisation
--------------------
With ``max_group_size`` given, nothing reads device memory on the host (the tile choice comes
from the hint; the fallback's ``repeat_interleave`` gets ``output_size=N``). Without it, one
small device-to-host read, ``max(diff(offsets))``, picks the tile. The hint must be at least the
largest group: a group larger than the tile the hint selected gets NaN advantages in every row
(visible, deterministic, and with no sync to detect it; ``ops`` may validate the hint where
a check is free).

Running on CPU
--------------
Triton runs CPU tensors only in its interpreter: set ``TRITON_INTERPRET=1`` before triton is
first imported (tests do). A CPU tensor without the interpreter raises a clear error.
"""

import contextlib
import math
import struct
from typing import Optional

import torch
import triton
import triton.language as tl

__all__ = ["advantage", "compile_check", "MAX_BLOCK", "MIN_BLOCK", "TILE_ELEMS", "CHUNK"]

MIN_BLOCK = 4  # smallest per-group padding (groups of 2-4 rollouts sort 4 lanes, not 16)
MAX_BLOCK = 4096  # largest group the tile kernel holds; larger ones take the sorted-CSR path
TILE_ELEMS = 1024  # rewards per program in the tile kernel (ROWS = TILE_ELEMS // BLOCK groups)
CHUNK = 1024  # elements per step of the sorted-CSR kernel's loops

_BASELINES = {"hdi_median": 0, "hdi_mean": 1, "median": 2, "mean": 3}
_SCALES = {"rms": 0, "std": 1, "none": 2}


# --------------------------------------------------------------------------------------------
# Tile kernel: ROWS groups of at most BLOCK rewards per program, sorted in registers.
# --------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["tau_bits", "eps_bits"])
def _tile_kernel(
    x_ptr,
    x_stride,
    out_ptr,
    out_stride,
    srt_ptr,
    off_ptr,
    num_groups,
    tau_bits,
    eps_bits,
    BASELINE: tl.constexpr,
    SCALE: tl.constexpr,
    ACC: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # ACC: the type rewards are sorted and stored in (float32, float64 for float64 rewards).
    # Every statistic (widths, Q, S, A before the final cast) is float64.
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True)

    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_ok = rows < num_groups
    start = tl.load(off_ptr + rows, mask=row_ok, other=0).to(tl.int64)
    size = tl.load(off_ptr + rows + 1, mask=row_ok, other=0).to(tl.int64) - start
    cols = tl.arange(0, BLOCK)
    in_grp = cols[None, :] < size[:, None]
    x = tl.load(x_ptr + (start[:, None] + cols[None, :]) * x_stride, mask=in_grp, other=0.0).to(ACC)

    # Missing rewards (NaN, +/-inf) and padding -> +inf, after counting the finite ones.
    fin = in_grp & (tl.abs(x) < float("inf"))
    n = tl.sum(fin.to(tl.int32), axis=1)
    s = tl.sort(tl.where(fin, x, float("inf")), dim=1)
    valid = cols[None, :] < n[:, None]

    # The sorted finite values go to this group's own rows of the scratch buffer (contiguous,
    # type ACC; it may be `out`, whose rows are rewritten last), so that shifted and single
    # elements can be read back. (tl.gather would keep a whole row per warp in registers,
    # which spills for long rows.)
    srt = srt_ptr + start
    tl.store(srt[:, None] + cols[None, :], s, mask=valid)
    tl.debug_barrier()

    # Window size in float64, exactly Python's math.ceil(n * tau).
    k = tl.ceil(n.to(tl.float64) * tau).to(tl.int32)
    k = tl.minimum(tl.maximum(k, 1), n)

    # HDI start: widths in float64 (exact for float32 values), lowest start among the
    # narrowest windows.
    s64 = s.to(tl.float64)
    num_starts = tl.where(n > 0, n - k + 1, 0)
    is_start = cols[None, :] < num_starts[:, None]
    hi = tl.load(srt[:, None] + (cols[None, :] + (k - 1)[:, None]), mask=is_start, other=0.0)
    width = tl.where(is_start, hi.to(tl.float64) - s64, float("inf"))
    best = tl.min(width, axis=1)
    i_star = tl.min(tl.where(width == best[:, None], cols[None, :], BLOCK), axis=1)

    has = n > 0
    # Group mean (shifted sum: exact when all values are equal).
    s0 = tl.load(srt, mask=has, other=0.0).to(tl.float64)
    mean = s0 + tl.sum(tl.where(valid, s64 - s0[:, None], 0.0), axis=1) / tl.maximum(n, 1).to(tl.float64)

    if BASELINE == 3:  # mean
        q = mean
    elif BASELINE == 1:  # hdi_mean
        lo = tl.load(srt + i_star, mask=has, other=0.0).to(tl.float64)
        in_win = (cols[None, :] >= i_star[:, None]) & (cols[None, :] < (i_star + k)[:, None])
        q = lo + tl.sum(tl.where(in_win, s64 - lo[:, None], 0.0), axis=1) / tl.maximum(k, 1).to(tl.float64)
    else:  # medians: of the HDI window, or of the whole group
        if BASELINE == 0:
            m_lo = i_star
            m_cnt = k
        else:
            m_lo = tl.zeros_like(n)
            m_cnt = n
        mid = m_lo + m_cnt // 2
        upper = tl.load(srt + mid, mask=has, other=0.0).to(tl.float64)
        lower = tl.load(srt + mid - 1, mask=has & (m_cnt % 2 == 0), other=0.0).to(tl.float64)
        q = tl.where(m_cnt % 2 == 1, upper, (lower + upper) * 0.5)
    q = tl.where(n == 1, 0.0, q)  # singleton convention: Q = 0, S = 1

    if SCALE == 2:  # none: S = 1, eps not added
        inv = tl.full([ROWS], 1.0, tl.float64)
    else:
        if SCALE == 1:  # std: about the group mean
            center = mean
        else:  # rms: about Q
            center = q
        d = tl.where(valid, s64 - center[:, None], 0.0)
        ss = tl.sum(d * d, axis=1)
        scale = tl.sqrt(ss / tl.maximum(n - 1, 1).to(tl.float64))
        scale = tl.where(n == 1, 1.0, scale)
        denom = scale + eps
        inv = tl.where(denom > 0, 1.0 / denom, 0.0)

    # Every read of the scratch rows is done before they are overwritten (they may be `out`).
    tl.debug_barrier()
    # Write. The rewards are read again (an L2 hit) rather than kept live across the sort.
    pos = start[:, None] + cols[None, :]
    x = tl.load(x_ptr + pos * x_stride, mask=in_grp, other=0.0).to(tl.float64)
    a = tl.where(tl.abs(x) < float("inf"), (x - q[:, None]) * inv[:, None], 0.0)
    # A group larger than the tile (a max_group_size hint that was too small): NaN in every row.
    oversize = size > BLOCK
    a = tl.where(oversize[:, None], float("nan"), a)
    # Cast through ACC (float32 unless the output is float64): Triton's interpreter cannot
    # cast float64 to bfloat16 directly. For 16-bit outputs this may round twice (1 ulp).
    tl.store(out_ptr + pos * out_stride, a.to(ACC).to(out_ptr.dtype.element_ty), mask=in_grp)
    tile_max = tl.max(size)
    for c in range(BLOCK, tile_max, BLOCK):
        rest = (cols[None, :] + c) < size[:, None]
        nan_tile = tl.full([ROWS, BLOCK], float("nan"), tl.float32)
        tl.store(out_ptr + (pos + c) * out_stride, nan_tile.to(out_ptr.dtype.element_ty), mask=rest)


# --------------------------------------------------------------------------------------------
# Sorted-CSR kernel: one program per group of any size, streaming its sorted segment.
# --------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["tau_bits", "eps_bits"])
def _sorted_kernel(
    x_ptr,
    x_stride,
    srt_ptr,
    out_ptr,
    out_stride,
    off_ptr,
    tau_bits,
    eps_bits,
    BASELINE: tl.constexpr,
    SCALE: tl.constexpr,
    ACC: tl.constexpr,
    CHUNK: tl.constexpr,
):
    # srt_ptr: this batch's values sorted ascending within each group, missing ones as +inf
    # at the end of their group, of type ACC (float32, or float64 for float64 rewards).
    # Statistics: float64.
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True)

    g = tl.program_id(0).to(tl.int64)
    start = tl.load(off_ptr + g).to(tl.int64)
    size = tl.load(off_ptr + g + 1).to(tl.int64) - start
    cols = tl.arange(0, CHUNK).to(tl.int64)
    base = srt_ptr + start

    # Pass 1: n (finite values come first) and the shifted sum for the mean.
    s0 = tl.load(base, mask=size > 0, other=0.0).to(tl.float64)
    cnt = tl.zeros([CHUNK], tl.int64)
    acc = tl.zeros([CHUNK], tl.float64)
    for c in range(0, size, CHUNK):
        i = c + cols
        v = tl.load(base + i, mask=i < size, other=float("inf")).to(tl.float64)
        f = v < float("inf")
        cnt += f.to(tl.int64)
        acc += tl.where(f, v - s0, 0.0)
    n = tl.sum(cnt, axis=0)
    mean = s0 + tl.sum(acc, axis=0) / tl.maximum(n, 1).to(tl.float64)

    k = tl.ceil(n.to(tl.float64) * tau).to(tl.int64)
    k = tl.minimum(tl.maximum(k, 1), n)

    # Pass 2: window scan. Lane j sees starts j, j + CHUNK, ... in ascending order and keeps
    # the first narrowest (strict <); then the lowest start among the lanes at the minimum.
    num_starts = tl.where(n > 0, n - k + 1, 0)
    best_w = tl.full([CHUNK], float("inf"), tl.float64)
    best_i = cols
    for c in range(0, num_starts, CHUNK):
        i = c + cols
        m = i < num_starts
        lo = tl.load(base + i, mask=m, other=0.0).to(tl.float64)
        hi = tl.load(base + i + k - 1, mask=m, other=0.0).to(tl.float64)
        w = tl.where(m, hi - lo, float("inf"))
        better = w < best_w
        best_w = tl.where(better, w, best_w)
        best_i = tl.where(better, i, best_i)
    bw = tl.min(best_w, axis=0)
    i_star = tl.min(tl.where(best_w == bw, best_i, num_starts + CHUNK), axis=0)

    has = n > 0
    if BASELINE == 3:  # mean
        q = mean
    elif BASELINE == 1:  # hdi_mean
        lo_v = tl.load(base + i_star, mask=has, other=0.0).to(tl.float64)
        wacc = tl.zeros([CHUNK], tl.float64)
        for c in range(0, k, CHUNK):
            i = c + cols
            v = tl.load(base + i_star + i, mask=i < k, other=0.0).to(tl.float64)
            wacc += tl.where(i < k, v - lo_v, 0.0)
        q = lo_v + tl.sum(wacc, axis=0) / tl.maximum(k, 1).to(tl.float64)
    else:
        if BASELINE == 0:
            m_lo = i_star
            m_cnt = k
        else:
            m_lo = i_star * 0
            m_cnt = n
        mid = m_lo + m_cnt // 2
        upper = tl.load(base + mid, mask=has, other=0.0).to(tl.float64)
        lower = tl.load(base + mid - 1, mask=has & (m_cnt % 2 == 0), other=0.0).to(tl.float64)
        q = tl.where(m_cnt % 2 == 1, upper, (lower + upper) * 0.5)
    q = tl.where(n == 1, 0.0, q)

    if SCALE == 2:
        inv = tl.full([], 1.0, tl.float64)
    else:
        if SCALE == 1:
            center = mean
        else:
            center = q
        sacc = tl.zeros([CHUNK], tl.float64)
        for c in range(0, n, CHUNK):
            i = c + cols
            v = tl.load(base + i, mask=i < n, other=0.0).to(tl.float64)
            d = tl.where(i < n, v - center, 0.0)
            sacc += d * d
        ss = tl.sum(sacc, axis=0)
        scale = tl.sqrt(ss / tl.maximum(n - 1, 1).to(tl.float64))
        scale = tl.where(n == 1, 1.0, scale)
        denom = scale + eps
        inv = tl.where(denom > 0, 1.0 / denom, 0.0)

    # Write over the original (unsorted, strided) rewards of the group.
    for c in range(0, size, CHUNK):
        i = c + cols
        m = i < size
        x = tl.load(x_ptr + (start + i) * x_stride, mask=m, other=0.0).to(tl.float64)
        a = tl.where(tl.abs(x) < float("inf"), (x - q) * inv, 0.0)
        tl.store(out_ptr + (start + i) * out_stride, a.to(ACC).to(out_ptr.dtype.element_ty), mask=m)


# --------------------------------------------------------------------------------------------
# Host side
# --------------------------------------------------------------------------------------------


def _float64_bits(value: float) -> int:
    """The IEEE-754 bit pattern of a float64, as a signed int64 (bitcast back in the kernel)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _interpreting() -> bool:
    return not isinstance(_tile_kernel, triton.runtime.jit.JITFunction)


def block_for(max_group_size: int) -> int:
    """The per-group padding the tile kernel uses for groups of at most ``max_group_size``."""
    return max(MIN_BLOCK, triton.next_power_of_2(max(int(max_group_size), 1)))


def _tile_warps(elements: int) -> int:
    """Warps per program of the tile kernel: 4 rewards per thread (8 for BLOCK = 4096), 1 to 16.

    Chosen from register counts of sm_90 builds (no spills; 60-120 registers per thread)."""
    return max(1, min(16, elements // 128))


def _launch_tile(rewards, offsets, out, num_groups, block, tau_bits, eps_bits, baseline, scale, acc):
    torch_acc = torch.float64 if acc == tl.float64 else torch.float32
    # Scratch for the sorted values: `out` itself when it can hold them exactly (float32 and
    # float64 rewards, contiguous output), else one buffer of N accumulation-type values.
    if out.dtype == torch_acc and (out.stride(0) == 1 or out.shape[0] <= 1):
        scratch = out
    else:
        scratch = torch.empty(rewards.shape[0], dtype=torch_acc, device=rewards.device)
    rows = max(1, min(TILE_ELEMS // block, triton.next_power_of_2(num_groups)))
    num_warps = _tile_warps(rows * block)
    grid = (triton.cdiv(num_groups, rows),)
    _tile_kernel[grid](
        rewards, rewards.stride(0), out, out.stride(0), scratch, offsets, num_groups, tau_bits, eps_bits,
        BASELINE=baseline, SCALE=scale, ACC=acc, ROWS=rows, BLOCK=block, num_warps=num_warps,
    )


def _launch_sorted(rewards, offsets, out, num_groups, tau_bits, eps_bits, baseline, scale, acc, chunk):
    torch_acc = torch.float64 if acc == tl.float64 else torch.float32
    n_total = rewards.shape[0]
    values = rewards.to(torch_acc)
    values = torch.where(torch.isfinite(values), values, torch.full_like(values, math.inf))
    sizes = (offsets[1:] - offsets[:-1]).to(torch.int64)
    segment = torch.repeat_interleave(
        torch.arange(num_groups, device=rewards.device), sizes, output_size=n_total
    )
    # Segmented ascending sort: stable by value, then stable by segment.
    by_value, perm = torch.sort(values, stable=True)
    _, perm2 = torch.sort(segment[perm], stable=True)
    srt = by_value[perm2].contiguous()
    _sorted_kernel[(num_groups,)](
        rewards, rewards.stride(0), srt, out, out.stride(0), offsets, tau_bits, eps_bits,
        BASELINE=baseline, SCALE=scale, ACC=acc, CHUNK=chunk, num_warps=4,
    )


def _advantage_impl(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
    *,
    force_sorted: bool = False,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The op's body. ``force_sorted``/``chunk`` exist for tests of the fallback path."""
    if rewards.device.type == "cpu" and not _interpreting():
        raise RuntimeError(
            "the Triton backend needs CUDA tensors; to run its kernels on CPU in Triton's "
            "interpreter (slow, for tests), set TRITON_INTERPRET=1 before triton is imported"
        )
    out = torch.empty_like(rewards)
    offsets = offsets.contiguous()  # G + 1 entries; the kernels index them densely
    num_groups = offsets.shape[0] - 1
    if rewards.shape[0] == 0 or num_groups <= 0:
        return out
    if max_group_size is None:
        # The one documented device-to-host read when no hint is given.
        max_group_size = int((offsets[1:] - offsets[:-1]).max().item())
    if max_group_size < 0:
        raise ValueError(f"max_group_size must be >= 0, got {max_group_size}")
    acc = tl.float64 if rewards.dtype == torch.float64 else tl.float32
    tau_bits, eps_bits = _float64_bits(tau), _float64_bits(eps)
    b, s = _BASELINES[baseline], _SCALES[scale]
    # Triton launches on the current CUDA device: make it the tensors' one.
    with torch.cuda.device(rewards.device) if rewards.is_cuda else contextlib.nullcontext():
        if force_sorted or max_group_size > MAX_BLOCK:
            _launch_sorted(rewards, offsets, out, num_groups, tau_bits, eps_bits, b, s, acc, chunk)
        else:
            block = block_for(max_group_size)
            _launch_tile(rewards, offsets, out, num_groups, block, tau_bits, eps_bits, b, s, acc)
    return out


@torch.library.custom_op("gapo_triton::advantage", mutates_args=())
def _advantage_op(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
) -> torch.Tensor:
    return _advantage_impl(rewards, offsets, tau, baseline, scale, eps, max_group_size)


@_advantage_op.register_fake
def _advantage_fake(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
    return torch.empty_like(rewards)


def advantage(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
) -> torch.Tensor:
    """GAPO-family advantages of ``rewards`` grouped by ``offsets`` (arguments already validated).

    ``rewards``: 1-D float16/bfloat16/float32/float64, any stride; ``offsets``: 1-D int32/int64,
    G + 1 entries, same device. Returns a tensor of ``rewards``' dtype, device and shape.
    ``max_group_size`` (optional, >= the largest group) avoids the one host read of the
    largest group size.
    """
    return _advantage_op(rewards, offsets, float(tau), baseline, scale, float(eps), max_group_size)


# --------------------------------------------------------------------------------------------
# Ahead-of-time compile check (no GPU needed): for CI and for reading register use.
# --------------------------------------------------------------------------------------------

_TL_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}


def _resource_usage(cubin: bytes) -> dict:
    """Registers and stack bytes per thread of a cubin, read with the cuobjdump triton ships."""
    import os
    import re
    import subprocess
    import tempfile

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=False).stdout
    finally:
        os.unlink(f.name)
    match = re.search(r"REG:(\d+).*?STACK:(\d+)", text, re.S)
    return {"regs": int(match.group(1)), "stack": int(match.group(2))} if match else {}


def compile_check(archs=(80, 90), configs=None) -> list:
    """Compile the kernels for CUDA ``archs`` with Triton's own ptxas, no GPU needed.

    ``configs``: (kernel, dtype, block, baseline, scale) tuples, kernel "tile" or "sorted"
    (block ignored for "sorted"); the default covers the smallest and largest tiles and both
    accumulation types. Returns one dict per build: arch, config, regs and stack (bytes of
    local memory per thread: spills) when cuobjdump is available. Raises on a compile error.
    Not available under TRITON_INTERPRET=1 (the kernels are interpreted functions then).
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if _interpreting():
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (the kernels are interpreted now)")
    if configs is None:
        configs = [
            ("tile", torch.float32, 4, "hdi_median", "rms"),
            ("tile", torch.float32, 4096, "hdi_median", "rms"),
            ("tile", torch.float64, 4096, "hdi_mean", "std"),
            ("tile", torch.bfloat16, 256, "median", "none"),
            ("sorted", torch.float32, None, "hdi_median", "rms"),
            ("sorted", torch.float64, None, "hdi_mean", "std"),
        ]
    results = []
    for arch in archs:
        for kernel, dtype, block, baseline, scale in configs:
            ty = _TL_NAMES[dtype]
            acc = tl.float64 if dtype == torch.float64 else tl.float32
            acc_ty = "fp64" if dtype == torch.float64 else "fp32"
            common = {"BASELINE": _BASELINES[baseline], "SCALE": _SCALES[scale], "ACC": acc}
            if kernel == "tile":
                rows = max(1, TILE_ELEMS // block)
                fn, warps = _tile_kernel, _tile_warps(rows * block)
                signature = {"x_ptr": f"*{ty}", "x_stride": "constexpr", "out_ptr": f"*{ty}",
                             "out_stride": "constexpr", "srt_ptr": f"*{acc_ty}", "off_ptr": "*i64",
                             "num_groups": "i32", "tau_bits": "i64", "eps_bits": "i64"}
                constexprs = {"x_stride": 1, "out_stride": 1, "ROWS": rows, "BLOCK": block, **common}
            else:
                fn, warps = _sorted_kernel, 4
                signature = {"x_ptr": f"*{ty}", "x_stride": "i64", "srt_ptr": f"*{acc_ty}", "out_ptr": f"*{ty}",
                             "out_stride": "i64", "off_ptr": "*i32", "tau_bits": "i64", "eps_bits": "i64"}
                constexprs = {"CHUNK": CHUNK, **common}
            signature.update({name: "constexpr" for name in constexprs if name not in signature})
            compiled = triton.compile(
                ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32), options={"num_warps": warps}
            )
            record = {"arch": arch, "kernel": kernel, "dtype": ty, "block": block, "baseline": baseline,
                      "scale": scale, "num_warps": warps}
            record.update(_resource_usage(compiled.asm["cubin"]))
            results.append(record)
    return results
