"""Result types shared by the torch API and the NumPy reference."""

from __future__ import annotations

from typing import Any, NamedTuple


class GroupStats(NamedTuple):
    """Per-group statistics, one entry per group, for logging and diagnostics.

    Groups are in ``offsets`` order, or in ascending order of ``group_ids``. A group with no
    finite reward has count 0 and NaN everywhere else. A singleton has baseline 0 and scale 1
    (the verl convention the advantage uses). ``scale`` is the S actually used: 1 for
    ``scale="none"``. ``hdi_low``/``hdi_high`` bound the HDI window for ``tau`` whatever the
    baseline, so the window can be logged for GRPO runs too.

    ``skewness``, ``kurtosis`` (excess) and ``shape`` (a :class:`gapo_kernels.RewardShape`
    value, int64) describe the group's distribution by the GAPO authors' rule
    (:mod:`gapo_kernels.shape`); groups of fewer than 3 finite rewards are ``TOO_FEW`` with NaN
    skewness and kurtosis. They come last and default to None so that the first eight columns
    can still be built positionally (as backends that compute only those do);
    :func:`gapo_kernels.group_stats` always fills them.
    """

    baseline: Any  # Q
    scale: Any  # S
    hdi_low: Any  # s[i*]
    hdi_high: Any  # s[i* + k - 1]
    mean: Any  # mean of the finite rewards
    min: Any  # smallest finite reward
    max: Any  # largest finite reward
    count: Any  # n, the number of finite rewards (int64)
    skewness: Any = None  # sum d^3 / (n std^3), d = r - mean, std the Bessel std
    kurtosis: Any = None  # sum d^4 / (n std^4) - 3
    shape: Any = None  # RewardShape value (int64)
