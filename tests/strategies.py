"""Hypothesis strategies for ragged reward batches shaped like real RL rewards.

Shared by every backend's property tests so that all backends face the same inputs.
A batch is (rewards: float64 ndarray, offsets: int64 ndarray); tests cast to the dtype and
index type under test.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# Reward shapes that matter for RL (the paper's section on skewed groups, plus pass/fail).
REWARD_SHAPES = (
    "binary",  # pass/fail unit tests
    "discrete",  # a few partial-credit levels
    "uniform",
    "normal",
    "left_skewed",  # most rollouts good, a tail of failures
    "right_skewed",  # most rollouts bad, a few lucky successes
    "heavy_ties",  # one value repeated, a few others
    "outliers",  # a tight cluster plus far outliers that drag the mean
)

# tau values where n * tau lands exactly on an integer for common n (0.5, 0.25, 1.0), and ones
# where the float64 product misses an integer by one ulp (100 * 0.55 = 55.00000000000001,
# 90 * 0.7 = 62.99999999999999): ceil(n * tau) must follow float64 exactly there.
SPECIAL_TAUS = (1.0, 0.5, 0.25, 0.75, 0.125, 0.1, 0.3, 0.55, 0.7, 1 / 3, 0.9, 1e-9)

taus = st.one_of(
    st.sampled_from(SPECIAL_TAUS),
    st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False),
)


def shaped_rewards(shape: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rewards of the given shape, float64."""
    if shape == "binary":
        return (rng.random(n) < rng.random()).astype(np.float64)
    if shape == "discrete":
        levels = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
        return rng.choice(levels[: rng.integers(2, 6)], size=n)
    if shape == "uniform":
        return rng.uniform(-1.0, 1.0, size=n)
    if shape == "normal":
        return rng.normal(rng.normal(), rng.uniform(0.1, 3.0), size=n)
    if shape == "left_skewed":
        return 1.0 - rng.exponential(0.3, size=n) ** 2
    if shape == "right_skewed":
        return rng.exponential(0.3, size=n) ** 2
    if shape == "heavy_ties":
        values = np.full(n, rng.choice([0.0, 1.0, -0.5]))
        flips = rng.random(n) < 0.15
        values[flips] = rng.choice([2.0, -3.0, 0.5], size=int(flips.sum()))
        return values
    if shape == "outliers":
        values = rng.normal(0.5, 0.05, size=n)
        far = rng.random(n) < 0.1
        values[far] = rng.choice([-20.0, 25.0, 100.0], size=int(far.sum()))
        return values
    raise ValueError(shape)


def _inject_missing(values: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    missing = rng.random(len(values)) < rate
    values = values.copy()
    values[missing] = rng.choice([np.nan, np.inf, -np.inf], size=int(missing.sum()))
    return values


group_sizes = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 8, 16]),  # empty, singleton, pairs and trainer-typical sizes
    st.integers(min_value=0, max_value=300),
)


@st.composite
def ragged_batches(draw, max_groups: int = 10, sizes=group_sizes, allow_missing: bool = True):
    """(rewards float64 [N], offsets int64 [G + 1]) with mixed shapes, sizes and missing rewards."""
    sizes = draw(st.lists(sizes, min_size=0, max_size=max_groups))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    missing_rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0])) if allow_missing else 0.0
    rng = np.random.default_rng(seed)
    parts = []
    for n in sizes:
        shape = REWARD_SHAPES[draw(st.integers(0, len(REWARD_SHAPES) - 1))]
        parts.append(_inject_missing(shaped_rewards(shape, n, rng), rng, missing_rate))
    rewards = np.concatenate(parts) if parts else np.zeros(0)
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    return rewards, offsets


def shuffled_group_ids(offsets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random non-contiguous ids for a CSR batch: (ids per row in shuffled order, permutation).

    rewards[perm] with ids gives the same groups as rewards with offsets; ids are arbitrary
    large, negative and non-consecutive integers.
    """
    rng = np.random.default_rng(seed)
    sizes = np.diff(offsets)
    labels = rng.choice(np.arange(-(10**12), 10**12, 7_919_993, dtype=np.int64), size=len(sizes), replace=False)
    ids = np.repeat(labels, sizes)
    perm = rng.permutation(len(ids))
    return ids[perm], perm
