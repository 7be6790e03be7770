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
    max_size = int(sizes.max()) if num_groups > 0 and num_rewards > 0 else 0  # the one host read
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


def _group_statistics(rewards, offsets, tau: float, baseline: str, scale: str):
    values, finite, group_of_row, sorted_values, counts = _sorted_groups(rewards, offsets)
    num_groups, width = sorted_values.shape
    device = rewards.device
    valid = torch.arange(width, device=device) < counts.unsqueeze(1)  # [G, W]: the finite entries
    sorted64 = torch.where(valid, sorted_values.to(torch.float64), 0.0)
    n = counts.clamp(min=1)
    n64 = n.to(torch.float64)

    # k = min(n, max(1, ceil(n * tau))), with n * tau in float64 exactly as Python computes it.
    k = torch.ceil(counts.to(torch.float64) * tau).to(torch.int64).clamp(min=1)
    k = torch.minimum(k, n)
    starts = torch.arange(width, device=device).expand(num_groups, width)
    ends = starts + (k - 1).unsqueeze(1)
    window_fits = ends < counts.unsqueeze(1)
    widths = sorted64.gather(1, ends.clamp(max=width - 1)) - sorted64
    widths = torch.where(window_fits, widths, float("inf"))
    start = torch.argmin(widths, dim=1)  # first minimum: ties go to the lowest start

    hdi_low = _take(sorted64, start)
    hdi_high = _take(sorted64, start + k - 1)
    mean = sorted64.sum(1) / n64
    minimum = _take(sorted64, torch.zeros_like(start))
    maximum = _take(sorted64, counts - 1)

    def median(lo, size):
        return 0.5 * (_take(sorted64, lo + (size - 1) // 2) + _take(sorted64, lo + size // 2))

    if baseline == "hdi_median":
        q = median(start, k)
    elif baseline == "hdi_mean":
        prefix = torch.nn.functional.pad(sorted64.cumsum(1), (1, 0))
        q = (_take(prefix, start + k) - _take(prefix, start)) / k.to(torch.float64)
    elif baseline == "median":
        q = median(torch.zeros_like(start), counts)
    else:  # "mean"
        q = mean

    if scale == "none":
        s = torch.ones_like(mean)
    else:
        center = mean if scale == "std" else q
        deviations = torch.where(valid, sorted64 - center.unsqueeze(1), 0.0)
        s = torch.sqrt((deviations * deviations).sum(1) / (n64 - 1).clamp(min=1))

    singleton = counts == 1  # verl's convention: Q = 0, S = 1
    q = torch.where(singleton, 0.0, q)
    s = torch.where(singleton, 1.0, s)
    empty = counts == 0
    stats = [torch.where(empty, float("nan"), t) for t in (q, s, hdi_low, hdi_high, mean, minimum, maximum)]
    return stats, counts, values, finite, group_of_row


def advantage(rewards: torch.Tensor, offsets: torch.Tensor, tau: float, baseline: str, scale: str, eps: float,
              max_group_size: int | None = None) -> torch.Tensor:
    """Advantages; arguments already validated by ``gapo_kernels.advantage``."""
    (q, s, *_), _, values, finite, group_of_row = _group_statistics(rewards, offsets, tau, baseline, scale)
    if scale == "none":
        inverse = torch.ones_like(s)
    else:
        divisor = s + eps
        # divisor == 0 only when every reward equals Q and eps == 0: A = 0, not 0 / 0.
        inverse = torch.where(divisor > 0, 1.0 / divisor, 0.0)
    q_row = q[group_of_row]
    inverse_row = inverse[group_of_row]
    out = torch.where(finite, (values.to(torch.float64) - q_row) * inverse_row, 0.0)
    return out.to(rewards.dtype)


def group_stats(rewards: torch.Tensor, offsets: torch.Tensor, tau: float, baseline: str, scale: str) -> GroupStats:
    """Per-group statistics; float32 (float64 for float64 rewards), count int64."""
    stats, counts, *_ = _group_statistics(rewards, offsets, tau, baseline, scale)
    dtype = _stat_dtype(rewards.dtype)
    return GroupStats(*(t.to(dtype) for t in stats), counts)
