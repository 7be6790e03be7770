"""The shape of each group's reward distribution, as the GAPO paper measures it.

The paper (arXiv 2510.21830) motivates GAPO with one measurement: on real code-editing
rollouts 14.4% of prompt groups are right-skewed and 15.5% left-skewed. The authors classify
each group with a rule of thumb, which :class:`RewardShape` documents and which this package
applies to the finite rewards of every group (missing rewards are left out first):

* ``mean``, the sample variance ``v = sum(d**2) / (n - 1)`` with ``d = r - mean``, ``std = sqrt(v)``;
* ``skewness = sum(d**3) / (n * std**3)`` and (excess) ``kurtosis = sum(d**4) / (n * std**4) - 3``,
  both 0 when ``std == 0`` (the authors' conventions: Bessel std, sums divided by n);
* votes for "normal": ``|skewness| < 0.5``; ``|kurtosis| < 0.5``; ``|mean - median| < 0.1 * std``
  (passes when ``std == 0``); the 68-95-99.7 rule (with ``p_k`` the percentage of rewards within
  ``k`` std of the mean: ``|p_1 - 68.27| < 15``, ``|p_2 - 95.45| < 10`` and ``|p_3 - 99.73| < 5``);
  and, for ``n >= 8``, ``|corr(sorted rewards, ranks)| > 0.8`` (fails when a variance is 0);
* normal when at least half of the votes pass; otherwise ``|skewness| < 0.5`` is
  ``SYMMETRIC_NON_NORMAL``, ``skewness > 0.5`` is ``RIGHT_SKEWED`` and anything else
  (``skewness == 0.5`` included) is ``LEFT_SKEWED``.

A group whose finite rewards are all equal has ``std == 0`` exactly and is ``NORMAL``. Groups of
fewer than 3 finite rewards are ``TOO_FEW``, with NaN skewness and kurtosis.

:func:`shape_of_group` is the NumPy reference of the rule (the compiled kernel is
``csrc/gapo/reward_shape.h``, run by ``torch.ops.gapo.group_stats_with_shape`` beside the other
statistics from the same sort); :func:`gapo_kernels.group_stats` reports the three columns for
every group.
"""

from __future__ import annotations

import enum
import math

import numpy as np
import torch

try:  # the compiled library registers torch.ops.gapo.group_stats_with_shape when imported
    from . import _C
except ImportError:  # a source checkout that was never built: the NumPy rule serves
    _C = None

__all__ = [
    "RewardShape",
    "SHAPE_MIN_REWARDS",
    "shape_of_group",
    "shape_from_votes",
    "group_shapes",
    "shape_columns",
    "stats_with_shape_columns",
]

SHAPE_MIN_REWARDS = 3
RANK_VOTE_MIN_REWARDS = 8


class RewardShape(enum.IntEnum):
    """Class of a group's reward distribution by the GAPO authors' rule (see the module doc).

    The values are those of the ``shape`` column of :func:`gapo_kernels.group_stats`.
    """

    NORMAL = 0
    RIGHT_SKEWED = 1  # long high tail: the mean sits above the bulk of the group
    LEFT_SKEWED = 2  # long low tail: the mean sits below the bulk of the group
    SYMMETRIC_NON_NORMAL = 3  # e.g. two clusters, or heavy tails on both sides
    TOO_FEW = 4  # fewer than 3 finite rewards


def _scaled_by_power_of_two(values: np.ndarray) -> np.ndarray:
    """values * 2**-e with max |values| = m * 2**e, m in [0.5, 1): exact, keeps d**4 in range."""
    _, exponent = math.frexp(float(np.max(np.abs(values))))
    half = -exponent // 2
    return values * math.ldexp(1.0, half) * math.ldexp(1.0, -exponent - half)


def shape_of_group(rewards) -> tuple[float, float, RewardShape]:
    """(skewness, excess kurtosis, shape) of one group's rewards; NaN/inf rewards are left out."""
    values = np.asarray(rewards, dtype=np.float64)
    finite = np.sort(values[np.isfinite(values)])
    n = len(finite)
    if n < SHAPE_MIN_REWARDS:
        return math.nan, math.nan, RewardShape.TOO_FEW
    if finite[0] == finite[-1]:
        deviations = np.zeros(n)
        mean = median = float(finite[0])
    else:
        finite = _scaled_by_power_of_two(finite)  # the rule is scale-free; this avoids overflow
        mean = math.fsum(finite) / n
        median = float(finite[n // 2]) if n % 2 else (float(finite[n // 2 - 1]) + float(finite[n // 2])) / 2
        deviations = finite - mean
    sum2 = math.fsum(deviations**2)
    std = math.sqrt(sum2 / (n - 1))
    skewness = math.fsum(deviations**3) / (n * std**3) if std > 0 else 0.0
    kurtosis = math.fsum(deviations**4) / (n * std**4) - 3.0 if std > 0 else 0.0

    def percent_within(k: int) -> float:
        return int(np.count_nonzero(np.abs(deviations) <= k * std)) / n * 100

    votes = [
        abs(skewness) < 0.5,
        abs(kurtosis) < 0.5,
        abs(mean - median) < 0.1 * std if std > 0 else True,
        abs(percent_within(1) - 68.27) < 15
        and abs(percent_within(2) - 95.45) < 10
        and abs(percent_within(3) - 99.73) < 5,
    ]
    if n >= RANK_VOTE_MIN_REWARDS:
        ranks = np.arange(n) - (n - 1) / 2
        rank_sum2 = math.fsum(ranks**2)
        if rank_sum2 > 0 and sum2 > 0:
            votes.append(abs(math.fsum(ranks * deviations) / math.sqrt(rank_sum2 * sum2)) > 0.8)
        else:
            votes.append(False)

    return skewness, kurtosis, shape_from_votes(sum(votes), len(votes), skewness)


def shape_from_votes(normal_votes: int, votes: int, skewness: float) -> RewardShape:
    """The class from the votes for "normal" and the skewness (the last step of the rule)."""
    if 2 * normal_votes >= votes:  # at least half of the votes pass
        return RewardShape.NORMAL
    if abs(skewness) < 0.5:
        return RewardShape.SYMMETRIC_NON_NORMAL
    if skewness > 0.5:
        return RewardShape.RIGHT_SKEWED
    return RewardShape.LEFT_SKEWED  # skewness == 0.5 exactly lands here, as in the authors' code


def group_shapes(rewards, offsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(skewness, kurtosis, shape) per group ``rewards[offsets[g]:offsets[g + 1]]``, NumPy reference.

    Skewness and kurtosis are float64, shape int64 (values of :class:`RewardShape`).
    """
    values = np.asarray(rewards, dtype=np.float64)
    offsets = np.asarray(offsets)
    rows = [shape_of_group(values[offsets[g] : offsets[g + 1]]) for g in range(len(offsets) - 1)]
    skewness = np.array([r[0] for r in rows], dtype=np.float64)
    kurtosis = np.array([r[1] for r in rows], dtype=np.float64)
    shape = np.array([int(r[2]) for r in rows], dtype=np.int64)
    return skewness, kurtosis, shape


def stats_with_shape_columns(floats: torch.Tensor, integers: torch.Tensor) -> tuple:
    """The eleven ``GroupStats`` columns, in order, from the two blocks of ``group_stats_with_shape``."""
    q, s, low, high, mean, lowest, highest, skewness, kurtosis = floats.unbind(0)
    count, shape = integers.unbind(0)
    return q, s, low, high, mean, lowest, highest, count, skewness, kurtosis, shape


def shape_columns(rewards: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(skewness, kurtosis, shape) of each group, for already checked arguments.

    For backends without the shape columns: the compiled CPU op classifies a host copy (the
    columns are for logging, where one transfer per step is cheap), and without the compiled
    library the NumPy rule serves. Returned on the device of ``rewards``, skewness and kurtosis
    in float32 (float64 for float64 rewards), shape in int64.
    """
    stat_dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
    if _C is not None:
        host_rewards = rewards.detach().cpu() if rewards.device.type != "meta" else rewards
        host_offsets = offsets.cpu() if offsets.device.type != "meta" else offsets
        floats, integers = torch.ops.gapo.group_stats_with_shape(host_rewards, host_offsets, 0.5, "mean", "none")
        columns = stats_with_shape_columns(floats, integers)[8:]
        return tuple(column.to(rewards.device) for column in columns)
    skewness, kurtosis, shape = group_shapes(rewards.detach().to("cpu", torch.float64).numpy(), offsets.cpu().numpy())
    return (
        torch.from_numpy(skewness).to(rewards.device, stat_dtype),
        torch.from_numpy(kurtosis).to(rewards.device, stat_dtype),
        torch.from_numpy(shape).to(rewards.device),
    )
