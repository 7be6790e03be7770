"""Pure-PyTorch backend: the whole family vectorised over a padded [G, max_n] batch.

Serves any device without a compiled kernel, and is the `torch_padded` contender of the
benchmarks: the best plain PyTorch a user would write. Groups are scattered into a padded
matrix with +inf (missing rewards become +inf too, so they sort to the end and drop out of
n), sorted once with ``torch.sort``, and every statistic is read off the sorted rows.

Costs to know: one device-to-host read of the largest group size (to size the padding), and
memory G * max_n, so one huge group beside many small ones pads every group to its size.
Window widths are compared in float64, as in every backend, so the chosen window is exact.
"""

from __future__ import annotations

import torch

from ._types import GroupStats


def _stat_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _sorted_groups(rewards: torch.Tensor, offsets: torch.Tensor):
    """Padded, sorted groups and the row -> (group, column) map."""
    device = rewards.device
    num_rewards = rewards.numel()
    offsets = offsets.to(torch.int64)
    sizes = offsets[1:] - offsets[:-1]
    num_groups = sizes.numel()
    # The one host read. A zero appended, so no branch on the number of groups (under
    # torch.compile it can be a data-dependent size).
    max_size = int(torch.cat([sizes, sizes.new_zeros(1)]).max())
    group_of_row = torch.repeat_interleave(torch.arange(num_groups, device=device), sizes, output_size=num_rewards)
    column_of_row = torch.arange(num_rewards, device=device) - offsets[:-1][group_of_row]

    values = rewards.to(_stat_dtype(rewards.dtype))
    finite = torch.isfinite(values)
    padded = torch.full((num_groups, max(max_size, 1)), float("inf"), dtype=values.dtype, device=device)
    padded[group_of_row, column_of_row] = torch.where(finite, values, float("inf"))
    sorted_values = torch.sort(padded, dim=1).values
    counts = torch.zeros(num_groups, dtype=torch.int64, device=device).index_add_(0, group_of_row, finite.long())
    return values, finite, group_of_row, sorted_values, counts


def _take(sorted64: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    return sorted64.gather(1, column.clamp(0, sorted64.shape[1] - 1).unsqueeze(1)).squeeze(1)


# The numerics rule of csrc/gapo/group_logic.h (its header has the reasoning): each group is
# worked on as x = r * 2^-e, e the frexp exponent of its largest |r| clamped to [-1021, 1022].
_MIN_EXPONENT, _MAX_EXPONENT = -1021, 1022
_LARGEST_SCALED_EPS = 1e300


def _pow2(exponent: torch.Tensor) -> torch.Tensor:
    """2^exponent as float64, exact (built from the bits), for exponents in [-1022, 1023]."""
    return torch.bitwise_left_shift(exponent.to(torch.int64) + 1023, 52).view(torch.float64)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, pivot: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask, summed about pivot (no cancellation when |mean| >> spread)."""
    deviations = torch.where(mask, x - pivot.unsqueeze(1), 0.0)
    return pivot + deviations.sum(1) / size.to(torch.float64).clamp(min=1)


def _group_statistics(rewards, offsets, tau: float, baseline: str, scale: str):
    values, finite, group_of_row, sorted_values, counts = _sorted_groups(rewards, offsets)
    num_groups, width = sorted_values.shape
    device = rewards.device
    columns = torch.arange(width, device=device)
    valid = columns < counts.unsqueeze(1)  # [G, W]: the finite entries
    sorted64 = torch.where(valid, sorted_values.to(torch.float64), 0.0)
    n = counts.clamp(min=1)

    # k = min(n, max(1, ceil(n * tau))), with n * tau in float64 exactly as Python computes it.
    k = torch.ceil(counts.to(torch.float64) * tau).to(torch.int64).clamp(min=1)
    k = torch.minimum(k, n)
    starts = columns.expand(num_groups, width)
    ends = starts + (k - 1).unsqueeze(1)
    window_fits = ends < counts.unsqueeze(1)
    widths = sorted64.gather(1, ends.clamp(max=width - 1)) - sorted64
    widths = torch.where(window_fits, widths, float("inf"))
    start = torch.argmin(widths, dim=1)  # first minimum: ties go to the lowest start

    # Reported keys never carry the sign of a zero (+ 0.0 turns -0.0 into +0.0).
    hdi_low = _take(sorted64, start) + 0.0
    hdi_high = _take(sorted64, start + k - 1) + 0.0
    minimum = _take(sorted64, torch.zeros_like(start)) + 0.0
    maximum = _take(sorted64, counts - 1) + 0.0

    exponent = torch.frexp(torch.maximum(minimum.abs(), maximum.abs())).exponent
    exponent = exponent.to(torch.int64).clamp(_MIN_EXPONENT, _MAX_EXPONENT)
    down, up = _pow2(-exponent), _pow2(exponent)
    x = sorted64 * down.unsqueeze(1)
    mean = _masked_mean(x, valid, _take(x, n // 2), n)

    def median(lo, size):
        return 0.5 * (_take(x, lo + (size - 1) // 2) + _take(x, lo + size // 2)) + 0.0

    if baseline == "hdi_median":
        q = median(start, k)
    elif baseline == "hdi_mean":
        in_window = (columns >= start.unsqueeze(1)) & (columns < (start + k).unsqueeze(1))
        q = _masked_mean(x, in_window, _take(x, start + k // 2), k)
    elif baseline == "median":
        q = median(torch.zeros_like(start), counts)
    else:  # "mean"
        q = mean

    if scale == "none":
        s = torch.ones_like(mean)
    else:
        center = mean if scale == "std" else q
        deviations = torch.where(valid, x - center.unsqueeze(1), 0.0)
        s = torch.sqrt((deviations * deviations).sum(1) / (n - 1).clamp(min=1).to(torch.float64))

    singleton = counts == 1  # verl's convention: Q = 0, S = 1
    equal = (counts >= 2) & (minimum == maximum)  # all equal: Q = mean = the value, S = 0, A = 0
    empty = counts == 0
    reported_q = torch.where(singleton, 0.0, torch.where(equal, minimum, q * up))
    reported_mean = torch.where(singleton | equal, minimum, mean * up)
    if scale == "none":
        reported_s = torch.ones_like(s)
    else:
        reported_s = torch.where(singleton, 1.0, torch.where(equal, 0.0, s * up))
    stats = [torch.where(empty, float("nan"), t)
             for t in (reported_q, reported_s, hdi_low, hdi_high, reported_mean, minimum, maximum)]
    scaled = (down, up, q, s, singleton, equal | empty)
    return stats, counts, values, finite, group_of_row, scaled


def advantage(rewards: torch.Tensor, offsets: torch.Tensor, tau: float, baseline: str, scale: str, eps: float,
              max_group_size: int | None = None) -> torch.Tensor:
    """Advantages; arguments already validated by ``gapo_kernels.advantage``."""
    stats, _, values, finite, group_of_row, scaled = _group_statistics(rewards, offsets, tau, baseline, scale)
    down, up, q, s, singleton, zero = scaled
    # Per group, A = (r * down - offset) * factor (group_logic.h's AdvantageMap).
    one = torch.ones_like(down)
    if scale == "none":
        map_down, offset, factor = one, stats[0], one
    else:
        scaled_eps = eps * down
        unscaled = scaled_eps > _LARGEST_SCALED_EPS  # tiny rewards, huge eps: A below 8e-300
        map_down = torch.where(unscaled, one, down)
        offset = torch.where(unscaled, stats[0], q)
        factor = 1.0 / torch.where(unscaled, s * up + eps, s + scaled_eps)
        factor = torch.where(singleton, 1.0 / (1.0 + eps), factor)
        map_down = torch.where(singleton, one, map_down)
    offset = torch.where(singleton, 0.0, offset)
    factor = torch.where(zero, 0.0, factor)
    map_down = torch.where(zero, one, map_down)
    offset = torch.where(zero, 0.0, offset)
    r = values.to(torch.float64)
    row_value = (r * map_down[group_of_row] - offset[group_of_row]) * factor[group_of_row]
    return torch.where(finite, row_value, 0.0).to(rewards.dtype)


def group_stats(rewards: torch.Tensor, offsets: torch.Tensor, tau: float, baseline: str, scale: str) -> GroupStats:
    """Per-group statistics; float32 (float64 for float64 rewards), count int64."""
    stats, counts, *_ = _group_statistics(rewards, offsets, tau, baseline, scale)
    dtype = _stat_dtype(rewards.dtype)
    return GroupStats(*(t.to(dtype) for t in stats), counts)
