// The shape of one group's reward distribution, as the GAPO paper measures it (arXiv
// 2510.21830, Section 1: "14.4% right-skewed, 15.5% left-skewed"): skewness, excess kurtosis
// and a class from the authors' rule of thumb (analyze_distribution in their verl fork).
//
// The rule, for the n >= 3 finite rewards of a group (missing rewards are left out first):
//   mean, sample variance v = sum d^2 / (n - 1), std = sqrt(v), with d = r - mean
//   skewness = sum d^3 / (n * std^3), kurtosis = sum d^4 / (n * std^4) - 3   (0 when std == 0)
//   Four votes for "normal", a fifth when n >= 8; normal when at least half of them pass:
//     1. |skewness| < 0.5
//     2. |kurtosis| < 0.5
//     3. |mean - median| < 0.1 * std  (passes when std == 0)
//     4. the 68-95-99.7 rule: with p_k = 100 * #{|d| <= k * std} / n,
//        |p_1 - 68.27| < 15 and |p_2 - 95.45| < 10 and |p_3 - 99.73| < 5
//     5. (n >= 8) the correlation of the sorted rewards with their ranks 0..n-1 exceeds 0.8
//        in absolute value (fails when either variance is 0)
//   Not normal: |skewness| < 0.5 is SymmetricNonNormal, skewness > 0.5 RightSkewed, anything
//   else (skewness == 0.5 included) LeftSkewed.
// The moments mix the authors' conventions on purpose: the Bessel std, but sums divided by n.
// A group whose finite rewards are all equal has std 0 exactly (mean = that reward), so it
// takes the std == 0 branches rather than whatever a rounded mean would leave behind; it is
// Normal (votes 1-3 pass, 4 and 5 fail).
//
// Arithmetic: double throughout; the moments come from one pass of sums of powers about the
// median, moved to the mean afterwards, so the statistics agree with the authors' two-pass
// arithmetic to a few ulps (a class can differ only where a statistic is that close to a
// threshold). Rewards of extreme magnitude are first scaled by a power of two (exact), so
// neither d^4 nor std^4 overflows or underflows for any finite input.
#pragma once

#include <cmath>
#include <cstdint>

#include "group_logic.h"

namespace gapo {

// Values of the `shape` column; gapo_kernels.RewardShape mirrors them.
enum class RewardShape : int32_t {
  Normal = 0,
  RightSkewed = 1,
  LeftSkewed = 2,
  SymmetricNonNormal = 3,
  TooFew = 4,  // fewer than 3 finite rewards: no shape (skewness and kurtosis are NaN)
};

constexpr int64_t kShapeMinRewards = 3;
constexpr int64_t kRankVoteMinRewards = 8;

struct ShapeStats {
  double skewness;
  double kurtosis;  // excess
  RewardShape shape;
};

// 2^-e for the e with max_abs = m * 2^e, m in [0.5, 1), as two factors that are both normal
// doubles for every finite max_abs > 0 (2^-e alone is not for |e| > 1021).
struct PowerOfTwoScale {
  double first;
  double second;
  GAPO_HOST_DEVICE double operator()(double value) const { return value * first * second; }
};

GAPO_HOST_DEVICE PowerOfTwoScale power_of_two_scale(double max_abs) {
  int e = 0;
  (void)frexp(max_abs, &e);
  const int half = -e / 2;
  return {ldexp(1.0, half), ldexp(1.0, -e - half)};
}

struct Unscaled {
  GAPO_HOST_DEVICE double operator()(double value) const { return value; }
};

// Rewards whose largest magnitude lies in [2^-100, 2^100] need no scaling: their deviations'
// fourth powers and std^4 stay far inside the double range.
constexpr double kUnscaledMin = 7.888609052210118e-31;  // 2^-100
constexpr double kUnscaledMax = 1.2676506002282294e30;  // 2^100

// The rule for n >= 3 sorted finite rewards, not all equal, read through `scaled`, in pieces
// that reward_shape_of_spread composes (a parallel backend may split the passes).

// One pass for the mean, the central moments and the rank covariance: sums of powers of
// e = r - median, then moved to the mean (delta = mean - median) by the binomial expansions
// below. |delta| <= std, so the expansions lose no more than a few bits, and no pass has to
// wait for the mean first.
struct ShapeSums {
  double count;
  double mean;
  double median;
  double sum2;        // sum of d^2, d = r - mean
  double sum3;        // sum of d^3
  double sum4;        // sum of d^4
  double rank_cross;  // sum of (k - mean rank) * d over the sorted rewards
};

template <class T, class Scaled>
GAPO_HOST_DEVICE ShapeSums shape_sums(const T* sorted, int64_t n, Scaled scaled) {
  const auto at = [&](int64_t i) { return scaled(static_cast<double>(sorted[i])); };
  const double count = static_cast<double>(n);
  const double median = n % 2 == 1 ? at(n / 2) : (at(n / 2 - 1) + at(n / 2)) / 2.0;
  // Two partial sums of each power: two add chains per sum in flight.
  double s1[2] = {0, 0}, s2[2] = {0, 0}, s3[2] = {0, 0}, s4[2] = {0, 0}, cross[2] = {0, 0};
  const double rank_mean = (count - 1.0) / 2.0;
  const auto accumulate = [&](int j, int64_t k) {
    const double e = at(k) - median;
    const double e2 = e * e;
    s1[j] += e;
    s2[j] += e2;
    s3[j] += e2 * e;
    s4[j] += e2 * e2;
    cross[j] += (static_cast<double>(k) - rank_mean) * e;  // sum of (k - mean rank) is 0: e or d alike
  };
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    accumulate(0, i);
    accumulate(1, i + 1);
  }
  if (i < n) accumulate(0, i);
  const double e1 = s1[0] + s1[1];
  const double e2 = s2[0] + s2[1];
  const double e3 = s3[0] + s3[1];
  const double e4 = s4[0] + s4[1];
  const double delta = e1 / count;
  const double delta2 = delta * delta;
  ShapeSums sums;
  sums.count = count;
  sums.mean = median + delta;
  sums.median = median;
  sums.sum2 = e2 - delta * e1;
  sums.sum3 = e3 - 3.0 * delta * e2 + 2.0 * count * delta2 * delta;
  sums.sum4 = e4 - 4.0 * delta * e3 + 6.0 * delta2 * e2 - 3.0 * count * delta2 * delta2;
  sums.rank_cross = cross[0] + cross[1];
  return sums;
}

// Second pass: how many rewards lie within 1, 2 and 3 std of the mean.
struct WithinStd {
  int64_t one;
  int64_t two;
  int64_t three;
};

template <class T, class Scaled>
GAPO_HOST_DEVICE WithinStd within_std(const T* sorted, int64_t n, Scaled scaled, double mean, double std_dev) {
  WithinStd within{0, 0, 0};
  const double two_std = 2.0 * std_dev;
  const double three_std = 3.0 * std_dev;
  for (int64_t k = 0; k < n; ++k) {
    const double distance = fabs(scaled(static_cast<double>(sorted[k])) - mean);
    within.one += distance <= std_dev;
    within.two += distance <= two_std;
    within.three += distance <= three_std;
  }
  return within;
}

// The 68-95-99.7 vote, |100 k / n - p| < t, in integers: 100 k / n is never within rounding of
// a bound unless it equals it (which needs n to be a multiple of 10000), so this is the float
// test's answer without its three divisions.
GAPO_HOST_DEVICE bool empirical_rule_holds(const WithinStd& within, int64_t n) {
  return 5327 * n < 10000 * within.one && 10000 * within.one < 8327 * n && 8545 * n < 10000 * within.two &&
         9473 * n < 10000 * within.three;
}

template <class T, class Scaled>
GAPO_HOST_DEVICE ShapeStats reward_shape_of_spread(const T* sorted, int64_t n, Scaled scaled) {
  const ShapeSums sums = shape_sums(sorted, n, scaled);
  const double count = sums.count;
  const double std_dev = sqrt(sums.sum2 / (count - 1.0));  // > 0: the rewards are not all equal
  const double std2 = std_dev * std_dev;
  const double skewness = sums.sum3 / (count * (std2 * std_dev));
  const double kurtosis = sums.sum4 / (count * (std2 * std2)) - 3.0;

  int normal_votes = (fabs(skewness) < 0.5) + (fabs(kurtosis) < 0.5) + (fabs(sums.mean - sums.median) < 0.1 * std_dev);
  int votes = 4;
  if (n >= kRankVoteMinRewards) {
    // |corr(rewards, ranks)| > 0.8, squared, with sum over k < n of (k - mean rank)^2 =
    // n (n^2 - 1) / 12: no square root or division on the way.
    normal_votes += 12.0 * sums.rank_cross * sums.rank_cross > 0.64 * (count * (count * count - 1.0)) * sums.sum2;
    ++votes;
  }
  // The 68-95-99.7 vote costs a second pass over the rewards; it can move the count by one, so
  // it is taken only when that decides the class (rarely, for most reward distributions).
  const bool undecided = 2 * normal_votes < votes && 2 * (normal_votes + 1) >= votes;
  if (undecided) normal_votes += empirical_rule_holds(within_std(sorted, n, scaled, sums.mean, std_dev), n);

  // Branch-free: the class of random groups is unpredictable, and a mispredicted branch would
  // stall the next group's independent work.
  const bool normal = 2 * normal_votes >= votes;  // "at least half of the votes pass"
  const int32_t skewed = fabs(skewness) < 0.5 ? static_cast<int32_t>(RewardShape::SymmetricNonNormal)
                         : skewness > 0.5     ? static_cast<int32_t>(RewardShape::RightSkewed)
                                              : static_cast<int32_t>(RewardShape::LeftSkewed);
  const RewardShape shape = static_cast<RewardShape>(normal ? static_cast<int32_t>(RewardShape::Normal) : skewed);
  return {skewness, kurtosis, shape};
}

// Skewness, kurtosis and shape of n finite rewards sorted ascending.
template <class T>
GAPO_HOST_DEVICE ShapeStats reward_shape_of_sorted(const T* sorted, int64_t n) {
  if (n < kShapeMinRewards) return {static_cast<double>(NAN), static_cast<double>(NAN), RewardShape::TooFew};
  const double lowest = static_cast<double>(sorted[0]);
  const double highest = static_cast<double>(sorted[n - 1]);
  // All equal: std == 0, so skewness = kurtosis = 0; votes 1-3 pass, 4 and 5 fail.
  if (lowest == highest) return {0.0, 0.0, RewardShape::Normal};
  const double max_abs = fmax(fabs(lowest), fabs(highest));
  if (max_abs >= kUnscaledMin && max_abs <= kUnscaledMax) return reward_shape_of_spread(sorted, n, Unscaled{});
  return reward_shape_of_spread(sorted, n, power_of_two_scale(max_abs));
}

}  // namespace gapo
