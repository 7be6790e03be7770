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
   16..4096, the smallest one that holds the largest group), so a program holds a
   ``[ROWS, BLOCK]`` register tile of about ``TILE_ELEMS`` rewards. Per program:

   * load the groups (any input stride), upcast to the accumulation type (float32, or
     float64 for float64 rewards); a reward is *finite* when ``|r| < inf`` (NaN, +inf and
     -inf are missing), ``n`` = number of finite rewards, counted *before* anything is
     mapped; missing rewards and the padding become ``+inf`` so they sort to the end and never
     enter a window (a real ``+inf`` reward is missing too, so the two cannot be confused);
   * ``tl.sort`` along each row (bitonic, in registers);
   * ``k = min(n, max(1, ceil(n * tau)))`` with ``n * tau`` in float64 (``tau`` reaches the
     kernel as its float64 bit pattern: Triton passes Python floats as float32);
   * widths ``s[i + k - 1] - s[i]`` in **float64** for every start (``tl.gather`` of the row
     shifted by ``k - 1``), starts ``i > n - k`` masked to ``+inf``; ``i*`` = lowest index
     attaining the minimum width (a min reduction, then a min over the indices that attain
     it: the spec's strict-< scan, whatever the reduction order);
   * Q and S in the accumulation type. Sums are shifted (``mean = s0 + sum(s - s0) / n``,
     window mean ``= s[i*] + sum(s - s[i*]) / k``): more accurate, and exact when all the
     values are equal, so an all-equal group gets Q = r, S = 0 and A = 0 even with eps = 0;
   * ``A = (r - Q) * inv`` with ``inv = 1 / (S + eps)`` (0 when ``S + eps == 0``; 1 for
     ``scale="none"``, where eps is not added), singleton ``Q = 0, S = 1``, missing -> 0.

2. **Sorted-CSR kernel** (some group has more than 4096 rewards: the fallback). The rewards
   (missing ones mapped to +inf) are sorted within their groups by two stable ``torch.sort``
   passes (by value, then by group index: a segmented sort with no host sync), and one program
   per group then streams its sorted segment in ``CHUNK``-sized pieces: count + shifted sum,
   window scan (per-lane running minimum with strict ``<`` over ascending starts, then the
   lowest index among the lanes that attain the minimum), the window sum for ``hdi_mean``, the
   sum of squares, and the write over the original (unsorted, strided) rewards. It handles
   any group size and is used for the whole batch when the largest group exceeds 4096.

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

__all__ = ["advantage", "MAX_BLOCK", "MIN_BLOCK", "TILE_ELEMS", "CHUNK"]

MIN_BLOCK = 16  # smallest per-group padding
MAX_BLOCK = 4096  # largest group the tile kernel holds; larger ones take the sorted-CSR path
TILE_ELEMS = 2048  # rewards per program in the tile kernel (ROWS = TILE_ELEMS // BLOCK groups)
CHUNK = 1024  # elements per step of the sorted-CSR kernel's loops

_BASELINES = {"hdi_median": 0, "hdi_mean": 1, "median": 2, "mean": 3}
_SCALES = {"rms": 0, "std": 1, "none": 2}


# --------------------------------------------------------------------------------------------
# Tile kernel: ROWS groups of at most BLOCK rewards per program, sorted in registers.
# --------------------------------------------------------------------------------------------


@triton.jit
def _pick(s, cols, idx):
    """s[r, idx[r]] for every row r (0 where idx is out of range)."""
    return tl.sum(tl.where(cols[None, :] == idx[:, None], s, 0.0), axis=1)


@triton.jit
def _div(a, b, ACC: tl.constexpr):
    """IEEE-rounded a / b (Triton's plain float32 division may be approximate on GPUs)."""
    if ACC == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def _sqrt(a, ACC: tl.constexpr):
    """IEEE-rounded square root."""
    if ACC == tl.float64:
        return tl.sqrt(a)
    else:
        return tl.sqrt_rn(a)


@triton.jit(do_not_specialize=["tau_bits", "eps_bits"])
def _tile_kernel(
    x_ptr,
    x_stride,
    out_ptr,
    out_stride,
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
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)

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

    # Window size in float64, exactly Python's math.ceil(n * tau).
    k = tl.ceil(n.to(tl.float64) * tau).to(tl.int32)
    k = tl.minimum(tl.maximum(k, 1), n)

    # HDI start: widths in float64 (exact for float32 values), lowest start among the
    # narrowest windows. The shifted row is gathered in the accumulation type and only the
    # difference is float64, to keep register pressure down.
    num_starts = tl.where(n > 0, n - k + 1, 0)
    hi_idx = tl.maximum(tl.minimum(cols[None, :] + (k - 1)[:, None], BLOCK - 1), 0)
    hi = tl.gather(s, hi_idx, axis=1)
    width = tl.where(cols[None, :] < num_starts[:, None], hi.to(tl.float64) - s.to(tl.float64), float("inf"))
    best = tl.min(width, axis=1)
    i_star = tl.min(tl.where(width == best[:, None], cols[None, :], BLOCK), axis=1)

    n_safe = tl.maximum(n, 1)
    # Group mean (shifted sum: exact when all values are equal).
    s0 = _pick(s, cols, tl.zeros_like(n))
    mean = s0 + tl.sum(tl.where(valid, s - s0[:, None], 0.0), axis=1) / n_safe.to(ACC)

    if BASELINE == 3:  # mean
        q = mean
    elif BASELINE == 1:  # hdi_mean
        lo = _pick(s, cols, i_star)
        in_win = (cols[None, :] >= i_star[:, None]) & (cols[None, :] < (i_star + k)[:, None])
        q = lo + tl.sum(tl.where(in_win, s - lo[:, None], 0.0), axis=1) / tl.maximum(k, 1).to(ACC)
    else:  # medians: of the HDI window, or of the whole group
        if BASELINE == 0:
            m_lo = i_star
            m_cnt = k
        else:
            m_lo = tl.zeros_like(n)
            m_cnt = n
        mid = m_lo + m_cnt // 2
        upper = _pick(s, cols, mid)
        lower = _pick(s, cols, mid - 1)
        q = tl.where(m_cnt % 2 == 1, upper, (lower + upper) * 0.5)
    q = tl.where(n == 1, 0.0, q)  # singleton convention: Q = 0, S = 1

    if SCALE == 2:  # none: S = 1, eps not added
        inv = tl.full([ROWS], 1.0, ACC)
    else:
        if SCALE == 1:  # std: about the group mean
            center = mean
        else:  # rms: about Q
            center = q
        d = tl.where(valid, s - center[:, None], 0.0)
        ss = tl.sum(d * d, axis=1)
        scale = _sqrt(_div(ss, tl.maximum(n - 1, 1).to(ACC), ACC), ACC)
        scale = tl.where(n == 1, 1.0, scale)
        denom = scale + eps
        inv = tl.where(denom > 0, _div(tl.full([ROWS], 1.0, ACC), denom, ACC), 0.0)

    # Write. The rewards are read again (an L2 hit) rather than kept live across the sort.
    pos = start[:, None] + cols[None, :]
    x = tl.load(x_ptr + pos * x_stride, mask=in_grp, other=0.0).to(ACC)
    a = tl.where(tl.abs(x) < float("inf"), (x - q[:, None]) * inv[:, None], 0.0)
    # A group larger than the tile (a max_group_size hint that was too small): NaN in every row.
    oversize = size > BLOCK
    a = tl.where(oversize[:, None], float("nan"), a)
    tl.store(out_ptr + pos * out_stride, a.to(out_ptr.dtype.element_ty), mask=in_grp)
    tile_max = tl.max(size)
    for c in range(BLOCK, tile_max, BLOCK):
        rest = (cols[None, :] + c) < size[:, None]
        nan_tile = tl.full([ROWS, BLOCK], float("nan"), ACC)
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
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)

    g = tl.program_id(0).to(tl.int64)
    start = tl.load(off_ptr + g).to(tl.int64)
    size = tl.load(off_ptr + g + 1).to(tl.int64) - start
    cols = tl.arange(0, CHUNK).to(tl.int64)
    base = srt_ptr + start  # this group's values, ascending, missing ones (+inf) at the end

    # Pass 1: n (finite values come first) and the shifted sum for the mean.
    s0 = tl.load(base, mask=size > 0, other=0.0)
    cnt = tl.zeros([CHUNK], tl.int64)
    acc = tl.zeros([CHUNK], ACC)
    for c in range(0, size, CHUNK):
        i = c + cols
        v = tl.load(base + i, mask=i < size, other=float("inf"))
        f = v < float("inf")
        cnt += f.to(tl.int64)
        acc += tl.where(f, v - s0, 0.0)
    n = tl.sum(cnt, axis=0)
    n_safe = tl.maximum(n, 1)
    mean = s0 + tl.sum(acc, axis=0) / n_safe.to(ACC)

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

    if BASELINE == 3:  # mean
        q = mean
    elif BASELINE == 1:  # hdi_mean
        lo_v = tl.load(base + i_star, mask=n > 0, other=0.0)
        wacc = tl.zeros([CHUNK], ACC)
        for c in range(0, k, CHUNK):
            i = c + cols
            v = tl.load(base + i_star + i, mask=i < k, other=0.0)
            wacc += tl.where(i < k, v - lo_v, 0.0)
        q = lo_v + tl.sum(wacc, axis=0) / tl.maximum(k, 1).to(ACC)
    else:
        if BASELINE == 0:
            m_lo = i_star
            m_cnt = k
        else:
            m_lo = i_star * 0
            m_cnt = n
        mid = m_lo + m_cnt // 2
        upper = tl.load(base + mid, mask=n > 0, other=0.0)
        lower = tl.load(base + mid - 1, mask=(n > 0) & (m_cnt % 2 == 0), other=0.0)
        q = tl.where(m_cnt % 2 == 1, upper, (lower + upper) * 0.5)
    q = tl.where(n == 1, 0.0, q)

    if SCALE == 2:
        inv = tl.full([], 1.0, ACC)
    else:
        if SCALE == 1:
            center = mean
        else:
            center = q
        sacc = tl.zeros([CHUNK], ACC)
        for c in range(0, n, CHUNK):
            i = c + cols
            v = tl.load(base + i, mask=i < n, other=0.0)
            d = tl.where(i < n, v - center, 0.0)
            sacc += d * d
        ss = tl.sum(sacc, axis=0)
        scale = _sqrt(_div(ss, tl.maximum(n - 1, 1).to(ACC), ACC), ACC)
        scale = tl.where(n == 1, 1.0, scale)
        denom = scale + eps
        inv = tl.where(denom > 0, _div(tl.full([], 1.0, ACC), denom, ACC), 0.0)

    # Write over the original (unsorted, strided) rewards of the group.
    for c in range(0, size, CHUNK):
        i = c + cols
        m = i < size
        x = tl.load(x_ptr + (start + i) * x_stride, mask=m, other=0.0).to(ACC)
        a = tl.where(tl.abs(x) < float("inf"), (x - q) * inv, 0.0)
        tl.store(out_ptr + (start + i) * out_stride, a.to(out_ptr.dtype.element_ty), mask=m)


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


def _launch_tile(rewards, offsets, out, num_groups, block, tau_bits, eps_bits, baseline, scale, acc):
    rows = max(1, min(TILE_ELEMS // block, triton.next_power_of_2(num_groups)))
    num_warps = max(1, min(16, rows * block // 256))
    grid = (triton.cdiv(num_groups, rows),)
    _tile_kernel[grid](
        rewards, rewards.stride(0), out, out.stride(0), offsets, num_groups, tau_bits, eps_bits,
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
