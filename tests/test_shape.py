"""The shape columns of group_stats (skewness, kurtosis, RewardShape) against the authors' rule.

``authors_rule`` below is an independent plain-Python transcription of ``analyze_distribution``
(TsingZ0/verl-GAPO, verl/trainer/ppo/rollout_utils.py): Python floats, the authors' order of
operations, no NumPy. Every backend and the NumPy reference must give its class exactly,
except for groups where one of the rule's statistics lies within 1e-9 (relative) of a
threshold, where a last-bit difference in the arithmetic may legitimately flip a vote. Each
test checks that such groups are rare, so no test can pass by excluding everything.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import RewardShape, reference
from gapo_kernels.integrations import gapo_diagnostics
from gapo_kernels.shape import group_shapes, shape_from_votes, shape_of_group

NEAR = 1e-9
CLASS_OF = {
    "normal": RewardShape.NORMAL,
    "right": RewardShape.RIGHT_SKEWED,
    "left": RewardShape.LEFT_SKEWED,
    "symmetric": RewardShape.SYMMETRIC_NON_NORMAL,
}


def authors_rule(rewards: list[float]) -> tuple[float, float, RewardShape, bool]:
    """(skewness, kurtosis, class, near_threshold) of a group of >= 3 finite rewards."""
    n = len(rewards)
    mean = sum(rewards) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in rewards) / (n - 1))
    skew = 0 if std == 0 else sum((x - mean) ** 3 for x in rewards) / (n * std**3)
    kurt = 0 if std == 0 else sum((x - mean) ** 4 for x in rewards) / (n * std**4) - 3
    ordered = sorted(rewards)
    median = ordered[n // 2] if n % 2 == 1 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    tests = [
        abs(skew) < 0.5,
        abs(kurt) < 0.5,
        abs(mean - median) < 0.1 * std if std > 0 else True,
        abs(sum(abs(x - mean) <= std for x in rewards) / n * 100 - 68.27) < 15
        and abs(sum(abs(x - mean) <= 2 * std for x in rewards) / n * 100 - 95.45) < 10
        and abs(sum(abs(x - mean) <= 3 * std for x in rewards) / n * 100 - 99.73) < 5,
    ]
    correlation = None
    if n >= 8:
        centre = (n - 1) / 2
        cross = sum((i - centre) * (ordered[i] - mean) for i in range(n))
        rank_var = sum((i - centre) ** 2 for i in range(n))
        value_var = sum((x - mean) ** 2 for x in ordered)
        if rank_var > 0 and value_var > 0:
            correlation = cross / math.sqrt(rank_var * value_var)
            tests.append(abs(correlation) > 0.8)
        else:
            tests.append(False)
    if sum(tests) >= len(tests) / 2:
        label = "normal"
    elif abs(skew) < 0.5:
        label = "symmetric"
    elif skew > 0.5:
        label = "right"
    else:
        label = "left"

    # How close each statistic comes to a threshold of the rule (relative where it has a scale).
    spread = max(abs(x) for x in rewards) or 1.0
    margins = [abs(abs(skew) - 0.5), abs(abs(kurt) - 0.5)]
    if std > 0:  # std == 0 exactly is the rule's own branch; a rounding residue of a mean is not
        margins.append(std / spread)
    if std > 0:
        margins.append(abs(abs(mean - median) - 0.1 * std) / std)
        margins += [abs(abs(x - mean) - k * std) / std for x in rewards for k in (1, 2, 3)]
    if correlation is not None:
        margins.append(abs(abs(correlation) - 0.8))
    return skew, kurt, CLASS_OF[label], min(margins) < NEAR


# --- groups the rule has to classify ---------------------------------------------------------
def random_group(rng: np.random.Generator) -> np.ndarray:
    """One group of 3..20 rewards (half of them 3..8), from a family chosen at random."""
    n = int(rng.integers(3, 9)) if rng.random() < 0.5 else int(rng.integers(3, 21))
    kind = rng.integers(9)
    if kind == 0:
        values = rng.normal(size=n)
    elif kind == 1:
        values = rng.exponential(size=n)  # right-skewed
    elif kind == 2:
        values = -rng.exponential(size=n)  # left-skewed
    elif kind == 3:
        values = rng.integers(0, 2, size=n).astype(float)  # pass/fail rewards: ties everywhere
    elif kind == 4:
        values = rng.choice([0.0, 0.25, 0.5, 1.0], size=n)
    elif kind == 5:
        values = rng.choice([0.0, 0.1, 0.3, 0.7, 1.0], size=n)  # not dyadic
    elif kind == 6:  # a tight cluster and an outlier or two (the paper's code-edit rewards)
        values = rng.normal(0.6, 0.02, size=n)
        values[rng.integers(n, size=int(rng.integers(1, 3)))] = rng.choice([0.0, 1.0, -1.0])
    elif kind == 7:
        values = np.round(rng.uniform(size=n), 2)
    else:
        values = rng.standard_t(2, size=n) * 10.0 ** rng.integers(-3, 4) + rng.normal() * 100
    return values


def random_batch(seed: int, num_groups: int, *, missing: float = 0.0):
    rng = np.random.default_rng(seed)
    groups = [random_group(rng) for _ in range(num_groups)]
    groups += [np.full(int(rng.integers(3, 17)), v) for v in (0.0, 0.1, 0.7, -3.3, 1e-8)]  # constant
    groups += [np.array([0.3, 0.1]), np.array([5.0]), np.array([])]  # too few
    for group in groups:
        if missing and len(group):
            group[rng.random(len(group)) < missing] = rng.choice([np.nan, np.inf, -np.inf])
    rewards = np.concatenate(groups)
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
    return rewards, offsets


def expected_columns(values: np.ndarray, offsets: np.ndarray):
    """The transcription's (skewness, kurtosis, class, near) per group, NaN-skipping."""
    rows = []
    for g in range(len(offsets) - 1):
        group = values[offsets[g] : offsets[g + 1]]
        finite = [float(x) for x in group[np.isfinite(group)]]
        if len(finite) < 3:
            rows.append((math.nan, math.nan, RewardShape.TOO_FEW, False))
        else:
            rows.append(authors_rule(finite))
    skew, kurt, shape, near = (np.array(c) for c in zip(*rows))
    return skew.astype(float), kurt.astype(float), shape.astype(np.int64), near.astype(bool)


def assert_columns_match(skew, kurt, shape, values: np.ndarray, offsets: np.ndarray, rtol: float):
    want_skew, want_kurt, want_shape, near = expected_columns(values, offsets)
    assert near.mean() < 0.03, f"{near.sum()} of {len(near)} groups sit on a threshold: the test says little"
    mismatched = np.nonzero((shape != want_shape) & ~near)[0]
    assert mismatched.size == 0, [
        (g, values[offsets[g] : offsets[g + 1]].tolist(), int(shape[g]), int(want_shape[g])) for g in mismatched[:5]
    ]
    # The authors set skewness and kurtosis to 0 when std == 0; a group that is constant up to
    # the rounding of its mean has std ~1e-17 in their arithmetic and meaningless moments.
    spread = ~near | (want_shape == RewardShape.TOO_FEW)
    np.testing.assert_allclose(skew[spread], want_skew[spread], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(kurt[spread], want_kurt[spread], rtol=rtol, atol=rtol)


# --- the compiled kernel, every backend and the reference agree with the authors -------------
@pytest.mark.parametrize("backend", ["cpu", "torch", "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_columns_follow_the_authors_rule(backend, dtype):
    values, offsets = random_batch(seed=7, num_groups=1500, missing=0.05)
    rewards = torch.from_numpy(values).to(dtype)
    stats = gapo_kernels.group_stats(rewards, torch.from_numpy(offsets), backend=backend)
    stat_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert stats.skewness.dtype == stat_dtype and stats.kurtosis.dtype == stat_dtype
    assert stats.shape.dtype == torch.int64
    exact = rewards.double().numpy()  # the values the kernel saw
    rtol = 1e-9 if dtype == torch.float64 else 2e-6
    assert_columns_match(stats.skewness.numpy(), stats.kurtosis.numpy(), stats.shape.numpy(), exact, offsets, rtol)
    # every class occurs, so none of them is tested vacuously
    assert set(stats.shape.tolist()) == set(map(int, RewardShape))


def test_numpy_reference_follows_the_authors_rule():
    values, offsets = random_batch(seed=8, num_groups=1500, missing=0.05)
    skew, kurt, shape = group_shapes(values, offsets)
    assert_columns_match(skew, kurt, shape, values, offsets, rtol=1e-9)
    stats = reference.group_stats(values, offsets)
    np.testing.assert_array_equal(stats.shape, shape)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rewards_are_classified_as_they_are_stored(dtype):
    values, offsets = random_batch(seed=9, num_groups=400)
    rewards = torch.from_numpy(values).to(dtype)
    stats = gapo_kernels.group_stats(rewards, torch.from_numpy(offsets))
    assert_columns_match(
        stats.skewness.numpy(), stats.kurtosis.numpy(), stats.shape.numpy(), rewards.double().numpy(), offsets, 2e-6
    )


def test_group_sizes_around_the_rank_vote_boundary():
    # n = 7 has four votes (normal needs 2), n = 8 five (normal needs 3): the same kind of
    # group can change class there, so sweep every size 3..9 with many groups each.
    rng = np.random.default_rng(11)
    groups = [random_group(rng)[:n] for n in range(3, 10) for _ in range(300)]
    groups = [g for g in groups if len(g) >= 3]
    values = np.concatenate(groups)
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
    stats = gapo_kernels.group_stats(torch.from_numpy(values), torch.from_numpy(offsets))
    assert_columns_match(stats.skewness.numpy(), stats.kurtosis.numpy(), stats.shape.numpy(), values, offsets, 1e-9)


def test_known_groups():
    cases = [
        ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], RewardShape.RIGHT_SKEWED),  # one success in eight
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], RewardShape.LEFT_SKEWED),  # one failure in eight
        ([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], RewardShape.NORMAL),  # the rule calls this normal
        ([1.0, 2.0, 3.0], RewardShape.NORMAL),
        ([0.7, 0.7, 0.7, 0.7], RewardShape.NORMAL),  # constant: std == 0
        ([0.0, 0.0, 2.0, 2.0, 3.0], RewardShape.SYMMETRIC_NON_NORMAL),  # two clusters, mean off the median
        ([0.5, float("nan"), 0.25], RewardShape.TOO_FEW),
    ]
    for rewards, shape in cases:
        values = np.array(rewards)
        finite = [float(x) for x in values[np.isfinite(values)]]
        if len(finite) >= 3:
            assert authors_rule(finite)[2] == shape, rewards  # the cases are the authors' answers
        stats = gapo_kernels.group_stats(torch.tensor(rewards, dtype=torch.float64), torch.tensor([0, len(rewards)]))
        assert stats.shape.tolist() == [shape], rewards
        assert shape_of_group(values)[2] == shape, rewards
    # one success in eight: skewness = (7/8)(49/64 ... ) by hand: sum d^3 / (n std^3)
    d = np.array([-1 / 8] * 7 + [7 / 8])
    want = np.sum(d**3) / (8 * np.sqrt(np.sum(d**2) / 7) ** 3)
    stats = gapo_kernels.group_stats(torch.tensor([0.0] * 7 + [1.0], dtype=torch.float64), torch.tensor([0, 8]))
    assert stats.skewness.item() == pytest.approx(want, rel=1e-12)


def test_constant_groups_take_the_std_zero_branch():
    # 0.1 * 3 does not divide back to 0.1: the rounded mean must not invent a spread.
    for value in (0.1, 0.7, -3.3, 1e-300, 1e300, 0.0):
        for n in (3, 5, 8, 16, 17):
            stats = gapo_kernels.group_stats(torch.full((n,), value, dtype=torch.float64), torch.tensor([0, n]))
            assert stats.shape.tolist() == [RewardShape.NORMAL]
            assert stats.skewness.tolist() == [0.0] and stats.kurtosis.tolist() == [0.0]
            assert shape_of_group(np.full(n, value)) == (0.0, 0.0, RewardShape.NORMAL)


def test_too_few_finite_rewards():
    inf, nan = float("inf"), float("nan")
    rewards = torch.tensor([1.0, 2.0, nan, 3.0, inf, 7.0, -inf, 8.0, 4.0, 5.0, 6.0, nan, nan, nan])
    offsets = torch.tensor([0, 2, 8, 8, 11, 14])  # 2 finite, 3 finite among NaN/inf, empty, 3, none
    stats = gapo_kernels.group_stats(rewards, offsets)
    too_few = RewardShape.TOO_FEW
    assert stats.shape.tolist() == [too_few, authors_rule([3.0, 7.0, 8.0])[2], too_few, RewardShape.NORMAL, too_few]
    assert stats.count.tolist() == [2, 3, 0, 3, 0]
    skew = stats.skewness.numpy()
    assert np.isnan(skew[[0, 2, 4]]).all() and np.isfinite(skew[[1, 3]]).all()
    assert np.isnan(stats.kurtosis.numpy()[[0, 2, 4]]).all()


def test_skewness_of_one_half_exactly_is_left_skewed():
    # The authors' last branch: neither |skew| < 0.5 nor skew > 0.5, so 0.5 itself is "left".
    assert shape_from_votes(normal_votes=1, votes=4, skewness=0.5) == RewardShape.LEFT_SKEWED
    assert shape_from_votes(normal_votes=1, votes=4, skewness=-0.5) == RewardShape.LEFT_SKEWED
    assert shape_from_votes(normal_votes=1, votes=4, skewness=0.5000000001) == RewardShape.RIGHT_SKEWED
    assert shape_from_votes(normal_votes=1, votes=4, skewness=0.4999999999) == RewardShape.SYMMETRIC_NON_NORMAL
    # at least half of the votes: 2 of 4 is normal, 2 of 5 is not
    assert shape_from_votes(normal_votes=2, votes=4, skewness=3.0) == RewardShape.NORMAL
    assert shape_from_votes(normal_votes=2, votes=5, skewness=3.0) == RewardShape.RIGHT_SKEWED
    assert shape_from_votes(normal_votes=3, votes=5, skewness=3.0) == RewardShape.NORMAL


@pytest.mark.parametrize("factor", [2.0**-1000, 1e-300, 1e-40, 1e40, 1e300, 2.0**1000])
def test_shape_is_scale_free_at_extreme_magnitudes(factor):
    values, offsets = random_batch(seed=12, num_groups=200)
    base = gapo_kernels.group_stats(torch.from_numpy(values), torch.from_numpy(offsets))
    scaled = gapo_kernels.group_stats(torch.from_numpy(values * factor), torch.from_numpy(offsets))
    spread = base.shape.numpy() != RewardShape.TOO_FEW
    assert np.isfinite(scaled.skewness.numpy()[spread]).all() and np.isfinite(scaled.kurtosis.numpy()[spread]).all()
    if np.all((values * factor) / factor == values):  # exact scaling: the arithmetic scales exactly too
        np.testing.assert_array_equal(scaled.shape.numpy(), base.shape.numpy())
        np.testing.assert_array_equal(scaled.skewness.numpy(), base.skewness.numpy())
    else:  # rounded values: the classes agree away from the thresholds
        _, _, _, near = expected_columns(values, offsets)
        agree = scaled.shape.numpy()[~near] == base.shape.numpy()[~near]
        assert agree.mean() > 0.97


def test_offsets_strides_and_group_ids_give_the_same_columns():
    values, offsets = random_batch(seed=13, num_groups=300, missing=0.05)
    rewards = torch.from_numpy(values).float()
    base = gapo_kernels.group_stats(rewards, torch.from_numpy(offsets))
    strided = torch.full((2 * len(values),), float("nan"))[::2]
    strided.copy_(rewards)
    again = gapo_kernels.group_stats(strided, torch.from_numpy(offsets).int())
    ids = torch.repeat_interleave(torch.arange(len(offsets) - 1), torch.from_numpy(np.diff(offsets)))
    permutation = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))
    by_ids = gapo_kernels.group_stats(rewards[permutation], group_ids=ids[permutation])
    non_empty = np.diff(offsets) > 0  # group_ids cannot name an empty group
    for other in (again, by_ids):
        got = [getattr(other, f) for f in ("skewness", "kurtosis", "shape")]
        want = [getattr(base, f) for f in ("skewness", "kurtosis", "shape")]
        if other is by_ids:
            want = [w[torch.from_numpy(non_empty)] for w in want]
        torch.testing.assert_close(got[2], want[2])
        torch.testing.assert_close(got[0], want[0], equal_nan=True, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got[1], want[1], equal_nan=True, rtol=1e-6, atol=1e-6)


def test_the_stats_columns_are_unchanged_by_the_shape_op():
    values, offsets = random_batch(seed=14, num_groups=200, missing=0.05)
    rewards, off = torch.from_numpy(values).float(), torch.from_numpy(offsets)
    for baseline, scale in (("hdi_median", "rms"), ("mean", "std"), ("hdi_mean", "none")):
        stats = gapo_kernels.group_stats(rewards, off, tau=0.25, baseline=baseline, scale=scale)
        plain = torch.ops.gapo.group_stats(rewards, off, 0.25, baseline, scale)
        for name, column in zip(stats._fields, plain):
            torch.testing.assert_close(getattr(stats, name), column, equal_nan=True, rtol=0, atol=0, msg=name)


def test_raw_op_checks_its_arguments_and_passes_opcheck():
    rewards, offsets = torch.rand(40), torch.tensor([0, 16, 19, 40])  # opcheck compares without NaN: no empty group
    op = torch.ops.gapo.group_stats_with_shape
    torch.library.opcheck(op.default, (rewards, offsets, 0.5, "hdi_median", "rms"))
    torch.library.opcheck(op.default, (rewards.double(), offsets.int(), 0.25, "mean", "std"))
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        op(rewards, torch.tensor([0, 20, 10, 40]), 0.5, "hdi_median", "rms")
    with pytest.raises(ValueError, match="offsets must end at the number of rewards"):
        op(rewards, torch.tensor([0, 39]), 0.5, "hdi_median", "rms")
    with pytest.raises(ValueError, match="rewards must be float16"):
        op(torch.arange(4), torch.tensor([0, 4]), 0.5, "hdi_median", "rms")
    with pytest.raises(ValueError, match="tau must be in"):
        op(rewards, offsets, 0.0, "hdi_median", "rms")
    with pytest.raises(ValueError, match="baseline must be one of"):
        op(rewards, offsets, 0.5, "trimmed", "rms")
    floats, integers = op(rewards.to("meta"), offsets.to("meta"), 0.5, "hdi_median", "rms")
    assert floats.shape == (9, 3) and integers.shape == (2, 3) and integers.dtype == torch.int64


# --- diagnostics -------------------------------------------------------------------------------
def test_diagnostics_report_the_share_of_each_shape():
    values, offsets = random_batch(seed=15, num_groups=300, missing=0.02)
    ids = torch.repeat_interleave(torch.arange(len(offsets) - 1), torch.from_numpy(np.diff(offsets)))
    got = gapo_diagnostics(torch.from_numpy(values), group_ids=ids)
    _, _, shape, _ = expected_columns(values, offsets)
    shape = shape[np.diff(offsets) > 0]  # group_ids cannot name an empty group
    classified = shape[shape != RewardShape.TOO_FEW]
    shares = {
        "frac_shape_normal": RewardShape.NORMAL,
        "frac_shape_right_skewed": RewardShape.RIGHT_SKEWED,
        "frac_shape_left_skewed": RewardShape.LEFT_SKEWED,
        "frac_shape_symmetric_non_normal": RewardShape.SYMMETRIC_NON_NORMAL,
    }
    for key, label in shares.items():
        assert got[key] == pytest.approx(np.mean(classified == label), abs=3 / len(classified)), key
    assert sum(got[key] for key in shares) == pytest.approx(1.0)
    assert got["num_shape_too_few_groups"] == np.sum(shape == RewardShape.TOO_FEW)
    # nothing to classify: NaN shares (the adapters skip NaN), not a made-up 0
    lone = gapo_diagnostics(torch.tensor([1.0, 2.0]), group_ids=torch.tensor([0, 0]))
    assert all(np.isnan(lone[key]) for key in shares) and lone["num_shape_too_few_groups"] == 1
