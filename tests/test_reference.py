"""Hand-computed values that guard the reference itself (and through it every backend)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gapo_kernels import reference


def adv(rewards, offsets=None, **kw):
    rewards = np.asarray(rewards, dtype=np.float64)
    if offsets is None:
        offsets = [0, len(rewards)]
    return reference.advantage(rewards, offsets, **kw)


def test_three_zeros_five_ones_tau_half():
    # n = 8, k = 4: windows [0,0,0,1] ... [1,1,1,1]; the first zero-width window starts at 3,
    # so Q = 1. S = sqrt(3 * 1^2 / 7).
    out = adv([0, 0, 0, 1, 1, 1, 1, 1])
    s = math.sqrt(3 / 7)
    np.testing.assert_allclose(out[:3], -1 / (s + 1e-6))
    np.testing.assert_allclose(out[:3], -1.528, atol=5e-4)
    np.testing.assert_array_equal(out[3:], 0.0)


def test_binary_four_of_eight_picks_lowest_start():
    # Both [0,0,0,0] and [1,1,1,1] have width 0: the tie goes to the first start, Q = 0.
    stats = reference.group_stats(np.array([1, 0, 1, 0, 1, 0, 1, 0.0]), [0, 8])
    assert stats.baseline[0] == 0.0
    assert (stats.hdi_low[0], stats.hdi_high[0]) == (0.0, 0.0)
    out = adv([0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(out[:4], 0.0)
    np.testing.assert_allclose(out[4:], 1 / (math.sqrt(4 / 7) + 1e-6))


def test_outlier_does_not_move_gapo_baseline_but_moves_grpo():
    rewards = [0.5, 0.52, 0.49, 0.51, 0.5, 0.48, 0.5, 100.0]
    gapo = reference.group_stats(np.array(rewards), [0, 8])
    grpo = reference.group_stats(np.array(rewards), [0, 8], baseline="mean")
    # k = 4; the narrowest window is [0.5, 0.5, 0.5, 0.51] (width 0.01), median 0.5.
    assert gapo.baseline[0] == pytest.approx(0.5)
    assert grpo.baseline[0] == pytest.approx(np.mean(rewards))


def test_even_window_median_is_mean_of_middle_pair():
    # n = 4, tau = 1: the window is the whole group, Q = (2 + 3) / 2.
    stats = reference.group_stats(np.array([4.0, 1.0, 3.0, 2.0]), [0, 4], tau=1.0)
    assert stats.baseline[0] == 2.5


def test_window_size_follows_float64_ceil():
    # 100 * 0.55 is 55.00000000000001 in float64, so k = 56, not 55.
    assert reference.window_size(100, 0.55) == 56
    assert reference.window_size(90, 0.7) == 63  # 62.99999999999999 rounds up to 63
    assert reference.window_size(10, 0.5) == 5
    assert reference.window_size(3, 1e-9) == 1
    assert reference.window_size(7, 1.0) == 7


def test_singleton_and_empty_and_all_missing():
    out = adv([3.0, np.nan, np.inf, 2.0], [0, 1, 1, 3, 4])
    np.testing.assert_allclose(out, [3.0 / (1 + 1e-6), 0.0, 0.0, 2.0 / (1 + 1e-6)])
    out_none = adv([3.0, -2.0], [0, 1, 2], scale="none")
    np.testing.assert_array_equal(out_none, [3.0, -2.0])


def test_all_equal_gives_zero_even_without_eps():
    np.testing.assert_array_equal(adv([2.0, 2.0, 2.0], eps=0.0), 0.0)
    np.testing.assert_array_equal(adv([2.0, 2.0, 2.0], scale="std", eps=0.0), 0.0)


def test_missing_rewards_are_left_out_of_n():
    # Group [1, 2, 3, nan] behaves as [1, 2, 3]: n = 3, k = 2, windows [1,2] and [2,3] tie,
    # the first wins, Q = 1.5, S = sqrt((0.25 + 0.25 + 2.25) / 2).
    out = adv([1.0, 2.0, 3.0, np.nan])
    s = math.sqrt(2.75 / 2)
    np.testing.assert_allclose(out, [-0.5 / (s + 1e-6), 0.5 / (s + 1e-6), 1.5 / (s + 1e-6), 0.0])


def test_grpo_and_dr_grpo_match_their_definitions():
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.2])
    grpo = adv(rewards, baseline="mean", scale="rms")
    np.testing.assert_allclose(grpo, (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-6))
    dr_grpo = adv(rewards, baseline="mean", scale="none")
    np.testing.assert_allclose(dr_grpo, rewards - rewards.mean())


def test_std_scale_is_about_the_mean_whatever_the_baseline():
    rewards = np.array([0.0, 0.0, 0.1, 1.0, 5.0])
    out = adv(rewards, baseline="median", scale="std")
    np.testing.assert_allclose(out, (rewards - 0.1) / (rewards.std(ddof=1) + 1e-6))


def test_hdi_mean_baseline():
    # n = 6, tau = 0.5, k = 3: sorted [0, 1, 3, 4, 5, 100], widths 3, 3, 2, 96 -> start 2,
    # window [3, 4, 5], mean 4.
    stats = reference.group_stats(np.array([5.0, 0.0, 100.0, 3.0, 1.0, 4.0]), [0, 6], baseline="hdi_mean")
    assert stats.baseline[0] == 4.0
    assert (stats.hdi_low[0], stats.hdi_high[0]) == (3.0, 5.0)


def test_group_ids_match_offsets_in_input_order():
    rewards = np.array([1.0, 10.0, 2.0, 20.0, 3.0])
    by_ids = reference.advantage(rewards, group_ids=np.array([7, 9, 7, 9, 7]))
    by_offsets = reference.advantage(rewards[[0, 2, 4, 1, 3]], [0, 3, 5])
    np.testing.assert_array_equal(by_ids[[0, 2, 4, 1, 3]], by_offsets)


def test_equal_groups_report_their_value_and_zero_scale():
    # Rounding the mean of six 0.1s leaves 0.1; the residue must never become S.
    stats = reference.group_stats(np.full(6, 0.1), [0, 6], baseline="mean")
    assert (stats.baseline[0], stats.mean[0], stats.scale[0]) == (0.1, 0.1, 0.0)
    assert reference.group_stats(np.full(3, 7.0), [0, 3], scale="none").scale[0] == 1.0
    np.testing.assert_array_equal(adv(np.full(5, 1e12 + 0.3), baseline="mean", eps=0.0), 0.0)
    np.testing.assert_array_equal(adv([-0.0, 0.0, -0.0], eps=5e-324), 0.0)


def test_statistics_are_computed_on_scaled_rewards():
    # 1e308 * 4 overflows a plain sum; the scaled sum does not.
    stats = reference.group_stats(np.array([1e308, 1e308, 1e308, 9e307]), [0, 4], baseline="mean")
    assert stats.mean[0] == pytest.approx(0.975e308, rel=1e-15)
    assert math.isfinite(stats.scale[0])
    # Squares of 1e-200 underflow to 0 unscaled; scaled, S keeps every digit.
    tiny = np.array([0.0, 1e-200, 2e-200])
    np.testing.assert_allclose(reference.group_stats(tiny, [0, 3], baseline="mean").scale, [1e-200], rtol=1e-15)
    np.testing.assert_allclose(adv(tiny, baseline="mean", eps=0.0), [-1.0, 0.0, 1.0], rtol=1e-15)


def test_tiny_eps_and_tiny_groups_with_a_large_eps():
    np.testing.assert_array_equal(adv([1.0, 1.0, 2.0], [0, 2, 3], eps=5e-324), [0.0, 0.0, 2.0])
    out = adv([5e-324, 1e-323, 1.5e-323], eps=1.0)  # A = d / (S + 1) underflows to (nearly) 0
    assert np.all(np.isfinite(out)) and np.abs(out).max() < 1e-300


def test_signed_zeros_never_reach_the_statistics():
    stats = reference.group_stats(np.array([-0.0, -0.0, 1.0, -0.0, 0.0]), [0, 5], tau=0.5)
    for name in ("baseline", "hdi_low", "hdi_high", "min"):
        value = getattr(stats, name)[0]
        assert value == 0.0 and math.copysign(1.0, value) == 1.0, name
