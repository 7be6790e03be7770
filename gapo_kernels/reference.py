"""NumPy reference implementation of docs/spec.md: the oracle for every backend.

Written for clarity, not speed: one group at a time, float64 throughout, exactly-rounded sums
(``math.fsum``), and the numerics rule of csrc/gapo/group_logic.h (power-of-two scaling of each
group, all-equal groups give exactly 0, -0.0 counts as +0.0). Every other backend is tested
against this module, and it also serves ``gapo_kernels.advantage(..., backend="reference")``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import check_grouping_choice, check_hyperparameters, check_offsets_values
from ._types import GroupStats
from .shape import shape_of_group

__all__ = ["advantage", "group_stats", "window_size", "hdi_start"]


def window_size(n: int, tau: float) -> int:
    """k = min(n, max(1, ceil(n * tau))), with n * tau in float64 as Python computes it."""
    return min(n, max(1, math.ceil(n * tau)))


def hdi_start(sorted_values: np.ndarray, k: int) -> int:
    """First start i minimising s[i + k - 1] - s[i] (strict <, so ties keep the lowest i)."""
    n = len(sorted_values)
    best_start, best_width = 0, math.inf
    for i in range(n - k + 1):
        width = float(sorted_values[i + k - 1]) - float(sorted_values[i])
        if width < best_width:
            best_start, best_width = i, width
    return best_start


# The numerics rule of csrc/gapo/group_logic.h (its header has the reasoning): every group is
# worked on as x = r * 2^-e, e the frexp exponent of its largest |r| clamped to [-1021, 1022],
# so nothing overflows or underflows and advantages are invariant under r -> r * 2^k.
_MIN_EXPONENT, _MAX_EXPONENT = -1021, 1022
# Above this scaled eps a group is so tiny next to eps that A is computed unscaled.
_LARGEST_SCALED_EPS = 1e300


def _group_exponent(lo: float, hi: float) -> int:
    return min(max(math.frexp(max(abs(lo), abs(hi)))[1], _MIN_EXPONENT), _MAX_EXPONENT)


def _times_pow2(value: float, exponent: int) -> float:
    with np.errstate(over="ignore"):  # beyond the double range is +inf, as in every backend
        return float(np.ldexp(value, exponent))


def _unsigned_zero(value) -> float:
    """-0.0 as +0.0: no reported statistic depends on the sign of a zero reward."""
    return float(value) + 0.0


def _median_of_sorted(window: np.ndarray) -> float:
    k = len(window)
    if k % 2 == 1:
        return _unsigned_zero(window[k // 2])
    return _unsigned_zero((float(window[k // 2 - 1]) + float(window[k // 2])) / 2.0)


class _Group(NamedTuple):
    """One group's statistics: the reported ones and the scaled ones the advantages use."""

    stats: tuple  # (Q, S, hdi_low, hdi_high, mean, min, max, n)
    kind: str  # "empty", "singleton", "equal" (all rewards equal) or "spread"
    exponent: int = 0  # e: x = r * 2^-e
    scaled_baseline: float = 0.0  # Q'
    scaled_scale: float = 1.0  # S'


def _group_of(values: np.ndarray, tau: float, baseline: str, scale: str) -> _Group:
    """The statistics of one group's raw rewards (float64)."""
    finite = np.sort(values[np.isfinite(values)])
    n = len(finite)
    if n == 0:
        nan = math.nan
        return _Group((nan, nan, nan, nan, nan, nan, nan, 0), "empty")
    k = window_size(n, tau)
    start = hdi_start(finite, k)
    lo, hi = _unsigned_zero(finite[start]), _unsigned_zero(finite[start + k - 1])
    smallest, largest = _unsigned_zero(finite[0]), _unsigned_zero(finite[-1])
    if n == 1:
        # verl's GRPO convention for a lone rollout: Q = 0, S = 1.
        return _Group((0.0, 1.0, lo, hi, smallest, smallest, largest, 1), "singleton")
    if smallest == largest:
        # All equal: Q and the mean are that value, S = 0, every A is exactly 0.
        s = 1.0 if scale == "none" else 0.0
        return _Group((smallest, s, lo, hi, smallest, smallest, largest, n), "equal")

    e = _group_exponent(smallest, largest)
    x = np.ldexp(finite, -e)
    mean = math.fsum(x) / n
    window = x[start : start + k]
    if baseline == "hdi_median":
        q = _median_of_sorted(window)
    elif baseline == "hdi_mean":
        q = math.fsum(window) / k
    elif baseline == "median":
        q = _median_of_sorted(x)
    else:  # "mean"
        q = mean

    if scale == "none":
        s = 1.0
    else:
        center = mean if scale == "std" else q
        s = math.sqrt(math.fsum((x - center) ** 2) / (n - 1))
    reported_s = 1.0 if scale == "none" else _times_pow2(s, e)
    stats = (_times_pow2(q, e), reported_s, lo, hi, _times_pow2(mean, e), smallest, largest, n)
    return _Group(stats, "spread", e, q, s)


def _advantages_of_group(values: np.ndarray, group: _Group, scale: str, eps: float) -> np.ndarray:
    with np.errstate(over="ignore"):  # r - Q beyond the double range (scale none) is +/-inf
        return _advantages_in_range(values, group, scale, eps)


def _advantages_in_range(values: np.ndarray, group: _Group, scale: str, eps: float) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.float64)
    finite = np.isfinite(values)
    r = values[finite]
    if group.kind == "singleton":
        out[finite] = r if scale == "none" else r / (1.0 + eps)
    elif group.kind == "spread":
        q, s = group.stats[0], group.stats[1]
        scaled_eps = _times_pow2(eps, -group.exponent)
        if scale == "none":
            out[finite] = r - q
        elif scaled_eps <= _LARGEST_SCALED_EPS:
            out[finite] = (np.ldexp(r, -group.exponent) - group.scaled_baseline) / (group.scaled_scale + scaled_eps)
        else:
            out[finite] = (r - q) / (s + eps)
    # "empty" and "equal": every advantage is 0.
    return out


def _as_rewards(rewards) -> np.ndarray:
    rewards = np.asarray(rewards)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {rewards.shape}")
    if not np.issubdtype(rewards.dtype, np.floating):
        raise TypeError(f"rewards must be a floating-point array, got dtype {rewards.dtype}")
    return rewards


def _group_index_lists(num_rewards: int, offsets, group_ids) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Row indices of each group, and the sorted unique ids when grouping by ids."""
    check_grouping_choice(offsets, group_ids)
    if offsets is not None:
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or len(offsets) < 1:
            raise ValueError(f"offsets must be 1-D with G + 1 >= 1 entries, got shape {offsets.shape}")
        if not np.issubdtype(offsets.dtype, np.integer):
            raise TypeError(f"offsets must be an integer array, got dtype {offsets.dtype}")
        decreasing = np.nonzero(np.diff(offsets) < 0)[0]
        check_offsets_values(
            int(offsets[0]),
            int(offsets[-1]),
            int(decreasing[0]) if len(decreasing) else None,
            num_rewards,
        )
        return [np.arange(offsets[g], offsets[g + 1]) for g in range(len(offsets) - 1)], None

    group_ids = np.asarray(group_ids)
    if group_ids.ndim != 1 or len(group_ids) != num_rewards:
        raise ValueError(
            f"group_ids must be 1-D with one id per reward ({num_rewards}), got shape {group_ids.shape}"
        )
    if not (np.issubdtype(group_ids.dtype, np.integer) or group_ids.dtype.kind in "OUS"):
        raise TypeError(f"group_ids must hold integer ids (or string labels), got dtype {group_ids.dtype}")
    unique_ids, inverse = np.unique(group_ids, return_inverse=True)
    return [np.nonzero(inverse == g)[0] for g in range(len(unique_ids))], unique_ids


def advantage(rewards, offsets=None, *, group_ids=None, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6):
    """Advantages of ``rewards`` under the spec; same signature as ``gapo_kernels.advantage``.

    Returns an array of the dtype of ``rewards`` (computed in float64, then cast).
    """
    rewards = _as_rewards(rewards)
    check_hyperparameters(tau, baseline, scale, eps)
    groups, _ = _group_index_lists(len(rewards), offsets, group_ids)
    values = rewards.astype(np.float64)
    out = np.zeros(len(rewards), dtype=np.float64)
    for rows in groups:
        group = values[rows]
        out[rows] = _advantages_of_group(group, _group_of(group, tau, baseline, scale), scale, eps)
    return out.astype(rewards.dtype)


def group_stats(rewards, offsets=None, *, group_ids=None, tau=0.5, baseline="hdi_median", scale="rms", eps=1e-6):
    """Per-group ``GroupStats`` of float64 arrays (count and shape are int64).

    With ``group_ids`` the groups come in ascending id order.
    ``eps`` does not change any statistic; it is accepted for a uniform signature.
    """
    rewards = _as_rewards(rewards)
    check_hyperparameters(tau, baseline, scale, eps)
    groups, _ = _group_index_lists(len(rewards), offsets, group_ids)
    values = rewards.astype(np.float64)
    rows = [_group_of(values[r], tau, baseline, scale).stats + shape_of_group(values[r]) for r in groups]
    columns = list(zip(*rows)) if rows else [()] * len(GroupStats._fields)
    arrays = [np.asarray(c, dtype=np.float64) for c in columns[:7]]  # Q, S, window, mean, min, max
    arrays.append(np.asarray(columns[7], dtype=np.int64))  # count
    arrays += [np.asarray(columns[8], dtype=np.float64), np.asarray(columns[9], dtype=np.float64)]
    arrays.append(np.asarray(columns[10], dtype=np.int64))  # shape
    return GroupStats(*arrays)
