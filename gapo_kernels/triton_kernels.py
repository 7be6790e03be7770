"""The Triton kernels of ``backend="triton"``; docs/triton.md explains their design.

``tile_kernel`` holds ROWS groups of at most BLOCK rewards per program and sorts them in
registers; ``sorted_kernel`` streams one group's segment, already sorted by the host, for groups
above the largest tile. Both end in ``baseline_scale_tail``, the numerics rule of
csrc/gapo/group_logic.h written once for Triton: power-of-two scaled statistics in float64,
all-equal groups give exactly 0, singletons Q = 0 and S = 1, and the advantage as
``A = (r * down - offset) * factor``.
"""

import triton
import triton.language as tl

from ._checks import BASELINES, SCALES

# Baseline and scale codes: the index of the name in _checks.BASELINES / SCALES, as the C++
# enums of group_logic.h number them (tests/test_triton.py checks the two agree).
HDI_MEDIAN = tl.constexpr(BASELINES.index("hdi_median"))
HDI_MEAN = tl.constexpr(BASELINES.index("hdi_mean"))
MEDIAN = tl.constexpr(BASELINES.index("median"))
MEAN = tl.constexpr(BASELINES.index("mean"))
RMS = tl.constexpr(SCALES.index("rms"))
STD = tl.constexpr(SCALES.index("std"))
NONE = tl.constexpr(SCALES.index("none"))

# Above this, eps * 2^-e could overflow: group_logic.h's advantage_map switches to unscaled.
SCALED_EPS_LIMIT = tl.constexpr(1e300)


@triton.jit
def _pow2(k):
    """2^k as a float64 for integer k in [-1022, 1023], built from its bits (exact)."""
    return ((k.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def group_scaling(lo, hi):
    """(down, up) = (2^-e, 2^e), e the frexp exponent of max(|lo|, |hi|) clamped to [-1021, 1022]."""
    m = tl.maximum(tl.abs(lo), tl.abs(hi))
    e = ((m.to(tl.int64, bitcast=True) >> 52) & 0x7FF) - 1022
    e = tl.minimum(tl.maximum(e, -1021), 1022)
    return _pow2(-e), _pow2(e)


@triton.jit
def baseline_scale_tail(n, lo, hi, down, up, mean, window_mean, median, ss_mean, eps,
                        BASELINE: tl.constexpr, SCALE: tl.constexpr):
    """The advantage map (down, offset, factor) of groups, A = (r * down - offset) * factor.

    Per group: n finite rewards, lo / hi the smallest and largest, (down, up) from
    group_scaling, and in scaled units (x = r * down) the mean, the HDI window's mean, the
    median the baseline asks for, and ss_mean = sum (x - mean)^2. The sum of squares about Q is
    ss_mean + n (mean - Q)^2 (both terms >= 0: no cancellation). Conventions: n == 0 and
    all-equal groups give A = 0 exactly, a singleton Q = 0 and S = 1.
    """
    if BASELINE == MEAN:
        q = mean
    elif BASELINE == HDI_MEAN:
        q = window_mean
    else:
        q = median
    nf = n.to(tl.float64)
    if SCALE == NONE:  # A = r - Q, unscaled, eps not added
        d_used = tl.zeros_like(q) + 1.0
        offset = q * up
        factor = tl.zeros_like(q) + 1.0
        single_factor = 1.0
    else:
        if SCALE == STD:
            center = mean
        else:
            center = q
        dev = mean - center
        s = tl.sqrt((ss_mean + nf * dev * dev) / tl.maximum(nf - 1.0, 1.0))
        scaled_eps = eps * down
        unscaled = scaled_eps > SCALED_EPS_LIMIT
        d_used = tl.where(unscaled, 1.0, down)
        offset = tl.where(unscaled, q * up, q)
        factor = tl.where(unscaled, 1.0 / (s * up + eps), 1.0 / (s + scaled_eps))
        single_factor = 1.0 / (1.0 + eps)
    single = n == 1
    flat = (n == 0) | ((n >= 2) & (lo == hi))
    d_used = tl.where(single | flat, 1.0, d_used)
    offset = tl.where(single | flat, 0.0, offset)
    factor = tl.where(flat, 0.0, tl.where(single, single_factor, factor))
    return d_used, offset, factor


@triton.jit
def baseline_median(keys, i_star, k, n, has, down, BASELINE: tl.constexpr):
    """The median a median baseline asks for, scaled by down, from a group's sorted keys.

    keys points at each group's first sorted key; the HDI window's median (i_star, k) for
    hdi_median, the whole group's (n keys) for median. -0.0 comes back as +0.0.
    """
    if BASELINE == HDI_MEDIAN:
        m_lo = i_star
        m_cnt = k
    else:
        m_lo = i_star * 0
        m_cnt = n
    mid = m_lo + m_cnt // 2
    upper = tl.load(keys + mid, mask=has, other=0.0).to(tl.float64) * down
    lower = tl.load(keys + mid - 1, mask=has & (m_cnt % 2 == 0), other=0.0).to(tl.float64) * down
    return tl.where(m_cnt % 2 == 1, upper, (lower + upper) * 0.5) + 0.0


@triton.jit
def _clamped_bounds(off_ptr, g, ok, num_rewards):
    """Group bounds clamped to [0, N] and to begin <= end, as csrc/cuda/group_kernel.cuh does."""
    start = tl.load(off_ptr + g, mask=ok, other=0).to(tl.int64)
    end = tl.load(off_ptr + g + 1, mask=ok, other=0).to(tl.int64)
    start = tl.minimum(tl.maximum(start, 0), num_rewards)
    end = tl.minimum(tl.maximum(end, start), num_rewards)
    return start, end


@triton.jit
def _write_uncovered_ends(out_ptr, out_stride, off_ptr, num_groups, num_rewards, STEP: tl.constexpr):
    """Advantage 0 for rows before offsets[0] and after offsets[G] (none for valid offsets)."""
    cols = tl.arange(0, STEP).to(tl.int64)
    head = tl.minimum(tl.maximum(tl.load(off_ptr).to(tl.int64), 0), num_rewards)
    tail = tl.minimum(tl.maximum(tl.load(off_ptr + num_groups).to(tl.int64), 0), num_rewards)
    zero = tl.zeros([STEP], tl.float32).to(out_ptr.dtype.element_ty)
    for c in range(0, head, STEP):
        tl.store(out_ptr + (c + cols) * out_stride, zero, mask=c + cols < head)
    for c in range(tail, num_rewards, STEP):
        tl.store(out_ptr + (c + cols) * out_stride, zero, mask=c + cols < num_rewards)


@triton.jit
def _write_nan_rows(out_ptr, out_stride, start, end, STEP: tl.constexpr):
    cols = tl.arange(0, STEP).to(tl.int64)
    nan = tl.full([STEP], float("nan"), tl.float32).to(out_ptr.dtype.element_ty)
    for c in range(start, end, STEP):
        tl.store(out_ptr + (c + cols) * out_stride, nan, mask=c + cols < end)


@triton.jit(do_not_specialize=["num_groups", "num_rewards", "size_limit", "skip_above", "tau_bits", "eps_bits"])
def tile_kernel(
    x_ptr, x_stride, out_ptr, out_stride, srt_ptr, off_ptr, num_groups, num_rewards,
    size_limit,  # groups larger get NaN (the max_group_size hint)
    skip_above,  # groups larger are left to sorted_kernel (which runs after this launch)
    list_ptr, list_info_ptr,  # LISTED: groups list_ptr[info[0] + r] for rows r < info[1]
    tau_bits, eps_bits,
    BASELINE: tl.constexpr, SCALE: tl.constexpr, ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    LISTED: tl.constexpr, WRITE_ENDS: tl.constexpr,
):
    # ACC: the type rewards are sorted and stored in (float32, float64 for float64 rewards).
    # Every statistic is float64. tau and eps arrive as their float64 bit patterns.
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True)
    pid = tl.program_id(0).to(tl.int64)
    if WRITE_ENDS:
        if pid == 0:
            _write_uncovered_ends(out_ptr, out_stride, off_ptr, num_groups, num_rewards, BLOCK * ROWS)
    rows = pid * ROWS + tl.arange(0, ROWS)
    if LISTED:
        list_start = tl.load(list_info_ptr).to(tl.int64)
        list_length = tl.load(list_info_ptr + 1).to(tl.int64)
        if pid * ROWS >= list_length:  # past this class's list: nothing to do
            return
        row_ok = rows < list_length
        g = tl.load(list_ptr + list_start + rows, mask=row_ok, other=0).to(tl.int64)
    else:
        row_ok = rows < num_groups
        g = rows
    start, end = _clamped_bounds(off_ptr, g, row_ok, num_rewards)
    size = end - start
    oversize = size > tl.minimum(size_limit, BLOCK)
    left_to_sorted = size > skip_above
    cols = tl.arange(0, BLOCK)
    in_grp = (cols[None, :] < size[:, None]) & ~oversize[:, None]
    x = tl.load(x_ptr + (start[:, None] + cols[None, :]) * x_stride, mask=in_grp, other=0.0).to(ACC)

    # Missing rewards (NaN, +/-inf) and padding -> +inf, after counting the finite ones;
    # -0.0 -> +0.0 so every sort orders zeros alike.
    fin = in_grp & (tl.abs(x) < float("inf"))
    n = tl.sum(fin.to(tl.int32), axis=1)
    s = tl.sort(tl.where(fin, x + 0.0, float("inf")), dim=1)
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
    # HDI start: widths in float64 (exact for float32 values), lowest start among the narrowest.
    s64 = s.to(tl.float64)
    num_starts = tl.where(n > 0, n - k + 1, 0)
    is_start = cols[None, :] < num_starts[:, None]
    hi_key = tl.load(srt[:, None] + (cols[None, :] + (k - 1)[:, None]), mask=is_start, other=0.0)
    width = tl.where(is_start, hi_key.to(tl.float64) - s64, float("inf"))
    best = tl.min(width, axis=1)
    i_star = tl.min(tl.where(width == best[:, None], cols[None, :], BLOCK), axis=1)

    has = n > 0
    lo = tl.min(tl.where(valid, s64, float("inf")), axis=1)
    hi = tl.max(tl.where(valid, s64, -float("inf")), axis=1)
    down, up = group_scaling(tl.where(has, lo, 0.0), tl.where(has, hi, 0.0))
    xs = s64 * down[:, None]
    pivot = tl.load(srt + n // 2, mask=has, other=0.0).to(tl.float64) * down
    mean = pivot + tl.sum(tl.where(valid, xs - pivot[:, None], 0.0), axis=1) / tl.maximum(n, 1).to(tl.float64)
    dm = tl.where(valid, xs - mean[:, None], 0.0)
    ss_mean = tl.sum(dm * dm, axis=1)
    window_mean = mean
    median = mean
    if BASELINE == HDI_MEAN:
        w_pivot = tl.load(srt + i_star + k // 2, mask=has, other=0.0).to(tl.float64) * down
        in_win = (cols[None, :] >= i_star[:, None]) & (cols[None, :] < (i_star + k)[:, None])
        window_mean = w_pivot + tl.sum(tl.where(in_win, xs - w_pivot[:, None], 0.0), axis=1) / tl.maximum(
            k, 1).to(tl.float64)
    if (BASELINE == HDI_MEDIAN) or (BASELINE == MEDIAN):
        median = baseline_median(srt, i_star, k, n, has, down, BASELINE)
    d_used, offset, factor = baseline_scale_tail(n, lo, hi, down, up, mean, window_mean, median, ss_mean, eps,
                                                 BASELINE, SCALE)

    # Every read of the scratch rows is done before they are overwritten (they may be `out`).
    tl.debug_barrier()
    # Write. The rewards are read again (an L2 hit) rather than kept live across the sort.
    pos = start[:, None] + cols[None, :]
    write = in_grp & ~left_to_sorted[:, None]
    r = tl.load(x_ptr + pos * x_stride, mask=write, other=0.0).to(tl.float64)
    a = tl.where(tl.abs(r) < float("inf"), (r * d_used[:, None] - offset[:, None]) * factor[:, None], 0.0)
    # Cast through ACC (float32 unless the output is float64): Triton's interpreter cannot
    # cast float64 to bfloat16 directly. For 16-bit outputs this may round twice (1 ulp).
    tl.store(out_ptr + pos * out_stride, a.to(ACC).to(out_ptr.dtype.element_ty), mask=write)
    # A group larger than the tile or the hint (and not the sorted kernel's): NaN in every row.
    nan_rows = oversize & ~left_to_sorted & row_ok
    nan_end = tl.where(nan_rows, end, start)
    nan_tile = tl.full([ROWS, BLOCK], float("nan"), tl.float32).to(out_ptr.dtype.element_ty)
    for c in range(0, tl.max(nan_end - start), BLOCK):
        rest = (cols[None, :] + c) < (nan_end - start)[:, None]
        tl.store(out_ptr + (pos + c) * out_stride, nan_tile, mask=rest)


@triton.jit(do_not_specialize=["num_groups", "num_rewards", "size_limit", "min_size", "tau_bits", "eps_bits"])
def sorted_kernel(
    x_ptr, x_stride, srt_ptr, out_ptr, out_stride, off_ptr, num_groups, num_rewards,
    size_limit,  # groups larger get NaN
    min_size,  # smaller groups are the tile kernel's: this program returns at once
    list_ptr, list_info_ptr,  # LISTED: group list_ptr[info[0] + pid] for pid < info[1]
    tau_bits, eps_bits,
    BASELINE: tl.constexpr, SCALE: tl.constexpr, ACC: tl.constexpr, CHUNK: tl.constexpr, LISTED: tl.constexpr,
):
    # srt_ptr: the rewards sorted ascending within each group (missing ones as +inf at the end
    # of their group, -0.0 as +0.0), of type ACC. Statistics: float64.
    tau = tau_bits.to(tl.int64).to(tl.float64, bitcast=True)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True)
    pid = tl.program_id(0).to(tl.int64)
    if LISTED:
        if pid >= tl.load(list_info_ptr + 1).to(tl.int64):
            return
        g = tl.load(list_ptr + tl.load(list_info_ptr).to(tl.int64) + pid).to(tl.int64)
    else:
        g = pid
    start, end = _clamped_bounds(off_ptr, g, g < num_groups, num_rewards)
    size = end - start
    if size < min_size:
        return
    if size > size_limit:
        _write_nan_rows(out_ptr, out_stride, start, end, CHUNK)
        return
    cols = tl.arange(0, CHUNK).to(tl.int64)
    base = srt_ptr + start

    # n: the finite values come first.
    cnt = tl.zeros([CHUNK], tl.int64)
    for c in range(0, size, CHUNK):
        i = c + cols
        v = tl.load(base + i, mask=i < size, other=float("inf"))
        cnt += (v < float("inf")).to(tl.int64)
    n = tl.sum(cnt, axis=0)
    has = n > 0
    lo = tl.load(base, mask=has, other=0.0).to(tl.float64)
    hi = tl.load(base + n - 1, mask=has, other=0.0).to(tl.float64)
    down, up = group_scaling(lo, hi)
    nf = tl.maximum(n, 1).to(tl.float64)

    pivot = tl.load(base + n // 2, mask=has, other=0.0).to(tl.float64) * down
    acc = tl.zeros([CHUNK], tl.float64)
    for c in range(0, n, CHUNK):
        i = c + cols
        v = tl.load(base + i, mask=i < n, other=0.0).to(tl.float64)
        acc += tl.where(i < n, v * down - pivot, 0.0)
    mean = pivot + tl.sum(acc, axis=0) / nf
    sacc = tl.zeros([CHUNK], tl.float64)
    for c in range(0, n, CHUNK):
        i = c + cols
        v = tl.load(base + i, mask=i < n, other=0.0).to(tl.float64)
        d = tl.where(i < n, v * down - mean, 0.0)
        sacc += d * d
    ss_mean = tl.sum(sacc, axis=0)

    k = tl.ceil(n.to(tl.float64) * tau).to(tl.int64)
    k = tl.minimum(tl.maximum(k, 1), n)
    # Window scan: lane j sees starts j, j + CHUNK, ... in ascending order and keeps the first
    # narrowest (strict <); then the lowest start among the lanes at the minimum.
    num_starts = tl.where(n > 0, n - k + 1, 0)
    best_w = tl.full([CHUNK], float("inf"), tl.float64)
    best_i = cols
    for c in range(0, num_starts, CHUNK):
        i = c + cols
        m = i < num_starts
        w_lo = tl.load(base + i, mask=m, other=0.0).to(tl.float64)
        w_hi = tl.load(base + i + k - 1, mask=m, other=0.0).to(tl.float64)
        w = tl.where(m, w_hi - w_lo, float("inf"))
        better = w < best_w
        best_w = tl.where(better, w, best_w)
        best_i = tl.where(better, i, best_i)
    bw = tl.min(best_w, axis=0)
    i_star = tl.min(tl.where(best_w == bw, best_i, num_starts + CHUNK), axis=0)

    window_mean = mean
    median = mean
    if BASELINE == HDI_MEAN:
        w_pivot = tl.load(base + i_star + k // 2, mask=has, other=0.0).to(tl.float64) * down
        wacc = tl.zeros([CHUNK], tl.float64)
        for c in range(0, k, CHUNK):
            i = c + cols
            v = tl.load(base + i_star + i, mask=i < k, other=0.0).to(tl.float64)
            wacc += tl.where(i < k, v * down - w_pivot, 0.0)
        window_mean = w_pivot + tl.sum(wacc, axis=0) / tl.maximum(k, 1).to(tl.float64)
    if (BASELINE == HDI_MEDIAN) or (BASELINE == MEDIAN):
        median = baseline_median(base, i_star, k, n, has, down, BASELINE)
    d_used, offset, factor = baseline_scale_tail(n, lo, hi, down, up, mean, window_mean, median, ss_mean, eps,
                                                 BASELINE, SCALE)

    # Write over the original (unsorted, strided) rewards of the group.
    for c in range(0, size, CHUNK):
        i = c + cols
        m = i < size
        r = tl.load(x_ptr + (start + i) * x_stride, mask=m, other=0.0).to(tl.float64)
        a = tl.where(tl.abs(r) < float("inf"), (r * d_used - offset) * factor, 0.0)
        tl.store(out_ptr + (start + i) * out_stride, a.to(ACC).to(out_ptr.dtype.element_ty), mask=m)
