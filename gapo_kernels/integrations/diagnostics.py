"""Per-step GAPO diagnostics: a handful of floats, cheap enough to log at every step.

Everything comes from one :func:`gapo_kernels.group_stats` call and a few vectorised reductions
over its per-group tensors (no Python loop over groups), then one host transfer at the end.
Nothing is printed.

The numbers the paper's analysis needs (arXiv 2510.21830, Section 4):

``abs_q_minus_mean``
    mean over scorable groups of |Q - mean|: how far the robust baseline moves from GRPO's.
``hdi_width_frac``
    mean over non-constant groups of (HDI width) / (group range): near ``tau`` for a uniform
    spread, near 0 when the rewards pile up in a tight mode with outliers around it.
``frac_q_above_mean`` / ``frac_q_below_mean``
    share of scorable groups whose Q sits above / below the group mean. Q above the mean means a
    long low tail (left skew) drags the mean down; Q below, a long high tail (right skew).
    Differences within float rounding of the rewards' magnitude count as neither.
``num_singleton_groups``, ``num_missing_rewards``
    groups with one finite reward (Q = 0, S = 1 by the verl convention), and NaN / inf rewards.

``frac_shape_normal``, ``frac_shape_right_skewed``, ``frac_shape_left_skewed``, ``frac_shape_symmetric_non_normal``
    shares of the groups with 3 or more finite rewards in each :class:`gapo_kernels.RewardShape`
    (the authors' rule): the paper's "14.4% right-skewed, 15.5% left-skewed" for this batch.
    They sum to 1. ``num_shape_too_few_groups`` counts the groups too small to classify.

Also ``num_groups``, ``num_empty_groups`` (every reward missing) and ``num_constant_groups``
(two or more rewards, all equal: advantage 0, no learning signal), for context.

"Scorable" means two or more finite rewards. A mean over no group is NaN (nothing to report,
rather than a made-up 0); the trainer adapters skip NaN values when they log.
"""

from __future__ import annotations

import torch

from .._types import GroupStats
from ..shape import RewardShape

__all__ = ["DIAGNOSTIC_KEYS", "diagnostics_from_stats", "gapo_diagnostics"]

DIAGNOSTIC_KEYS = (
    "abs_q_minus_mean",
    "hdi_width_frac",
    "frac_q_above_mean",
    "frac_q_below_mean",
    "num_singleton_groups",
    "num_missing_rewards",
    "num_groups",
    "num_empty_groups",
    "num_constant_groups",
    "frac_shape_normal",
    "frac_shape_right_skewed",
    "frac_shape_left_skewed",
    "frac_shape_symmetric_non_normal",
    "num_shape_too_few_groups",
)

# The classes behind the frac_shape_* keys, in that order (RewardShape values).
_SHARED_SHAPES = (
    RewardShape.NORMAL,
    RewardShape.RIGHT_SKEWED,
    RewardShape.LEFT_SKEWED,
    RewardShape.SYMMETRIC_NON_NORMAL,
)


def diagnostics_from_stats(stats: GroupStats, num_rewards: int, *, prefix: str = "") -> dict[str, float]:
    """The diagnostics of an already computed :class:`GroupStats` of ``num_rewards`` rewards.

    ``stats`` holds tensors (from :func:`gapo_kernels.group_stats`) or NumPy arrays (from
    ``gapo_kernels.reference.group_stats``). Returns ``{prefix + key: float}`` in the order of
    :data:`DIAGNOSTIC_KEYS`.
    """
    count = torch.as_tensor(stats.count)  # NumPy stats (the reference's) work too

    def f64(values) -> torch.Tensor:  # reduce in float64: sums over up to ~1e5 groups
        return torch.as_tensor(values).to(device=count.device, dtype=torch.float64)

    q, mean = f64(stats.baseline), f64(stats.mean)
    low, high, lo_all, hi_all = f64(stats.hdi_low), f64(stats.hdi_high), f64(stats.min), f64(stats.max)

    scorable = count >= 2
    group_range = hi_all - lo_all
    constant = scorable & (group_range == 0)
    spread = scorable & (group_range > 0)
    zero = torch.zeros((), dtype=torch.float64, device=count.device)

    diff = q - mean
    # Q and the mean are computed along different paths (a window median vs a sum), so equal
    # values may differ in the last bits: ignore differences within the rewards' rounding.
    stat_eps = torch.finfo(torch.as_tensor(stats.baseline).dtype).eps
    tolerance = 8 * stat_eps * torch.maximum(lo_all.abs(), hi_all.abs())
    above = scorable & (diff > tolerance)
    below = scorable & (-diff > tolerance)

    n_scorable = scorable.sum().to(torch.float64)
    n_spread = spread.sum().to(torch.float64)
    width_frac = torch.where(spread, (high - low) / torch.where(spread, group_range, 1.0), zero)
    if stats.shape is None:  # GroupStats built without the shape columns: nothing to share
        shape = torch.full_like(count, int(RewardShape.TOO_FEW))
    else:
        shape = torch.as_tensor(stats.shape).to(count.device)
    too_few = (shape == int(RewardShape.TOO_FEW)).sum().to(torch.float64)
    n_classified = count.numel() - too_few
    shape_shares = [(shape == int(label)).sum() / n_classified for label in _SHARED_SHAPES]  # NaN: none
    values = torch.stack(
        [
            torch.where(scorable, diff.abs(), zero).sum() / n_scorable,  # NaN when no scorable group
            width_frac.sum() / n_spread,
            above.sum() / n_scorable,
            below.sum() / n_scorable,
            (count == 1).sum().to(torch.float64),
            num_rewards - count.sum().to(torch.float64),
            torch.tensor(float(count.numel()), dtype=torch.float64, device=count.device),
            (count == 0).sum().to(torch.float64),
            constant.sum().to(torch.float64),
            *shape_shares,
            too_few,
        ]
    ).tolist()  # the only host transfer
    return {prefix + key: float(value) for key, value in zip(DIAGNOSTIC_KEYS, values)}


def gapo_diagnostics(
    rewards: torch.Tensor,
    offsets: torch.Tensor | None = None,
    *,
    group_ids: torch.Tensor | None = None,
    tau: float = 0.5,
    baseline: str = "hdi_median",
    scale: str = "rms",
    backend: str = "auto",
    prefix: str = "",
) -> dict[str, float]:
    """Diagnostics of one batch of rewards, grouped as for :func:`gapo_kernels.advantage`.

    Returns a dict of Python floats (keys :data:`DIAGNOSTIC_KEYS`, each with ``prefix``) to hand
    to any logger, e.g. ``wandb.log(gapo_diagnostics(r, group_ids=ids, prefix="gapo/"))``.
    """
    import gapo_kernels  # late: the integrations import this module from gapo_kernels' own init path

    stats = gapo_kernels.group_stats(
        rewards, offsets, group_ids=group_ids, tau=tau, baseline=baseline, scale=scale, backend=backend
    )
    return diagnostics_from_stats(stats, rewards.numel(), prefix=prefix)
