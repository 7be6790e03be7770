// The per-group logic of the GAPO advantage family (docs/spec.md), shared by every
// compiled backend. The CPU kernel and the CUDA kernel both include this file; neither has
// its own copy of the window, median or scale rules. The NumPy reference, the torch backend
// and the Triton kernels follow the numerics rule below (Triton takes the sum of squares about
// Q as sum (x - mean)^2 + n (mean - Q)^2; docs/triton.md).
//
// Everything here is a plain function over pointers and scalars so it compiles as host code
// and, under nvcc, as __host__ __device__ code. Nothing allocates and nothing touches torch.
//
// The pieces, in the order a group goes through them:
//   1. is_missing             a reward that is NaN or +/-inf is left out of the group
//   2. (caller)               ascending sort of the n finite rewards
//   3. window_size            k = min(n, max(1, ceil(n * tau))), n * tau in double
//   4. hdi_start              first i minimising s[i+k-1] - s[i] (hdi_prefer is the tie rule
//                             for parallel reductions)
//   5. GroupScaling           the power of two that brings the group into [-4, 4]
//   6. baseline_from_sorted   Q' (scaled) for each baseline; median_of_sorted for the medians
//   7. scale_from_sum_sq      S' (scaled) from the sum of squared scaled deviations
//   8. AdvantageMap           A = (r * down - offset) * factor, 0 for missing rewards
// group_stats_of_sorted composes 3..8 sequentially; a parallel backend may compose the same
// pieces with its own reductions.
//
// The numerics rule (every backend, every input dtype; all statistics in double):
//   a. -0.0 and +0.0 are one reward. Window widths are differences compared in double, where
//      -0.0 == +0.0, so the chosen start never depends on how a sort ordered the zeros; every
//      key that is reported or becomes Q (bounds, min, max, medians) is normalised with
//      unsigned_zero (v + 0.0), so no output depends on which zero came first either.
//   b. All-equal group (n >= 2 and sorted s[0] == s[n-1]): Q = mean = s[0], S = 0 (1 for
//      scale none), and every advantage is exactly 0, whatever eps >= 0. Rounding a sum of
//      equal values can leave the common value; this rule never lets that residue through.
//   c. Scaling: e = the frexp exponent of max(|s[0]|, |s[n-1]|) (max = f * 2^e, f in
//      [0.5, 1)), clamped to [-1021, 1022] so 2^e and 2^-e are normal doubles. Every finite
//      reward is used as x = r * 2^-e (exact but for subnormal results), so |x| < 4. The mean,
//      Q, the deviations d = x - center and S' = sqrt(sum d^2 / (n - 1)) are computed on x:
//      |d| < 8 bounds the squares from above, and two distinct scaled rewards differ by at
//      least 2^-54, so some |d| >= 2^-55 and the sum of squares cannot underflow. Reported
//      statistics are scaled back: Q = Q' * 2^e, S = S' * 2^e, mean = mean' * 2^e (S is
//      +inf only where the true S exceeds the double range). Sums use a pivot taken from the
//      group (the middle key) so |mean| >> spread costs no cancellation.
//   d. Advantages: A = (x - Q') / (S' + eps * 2^-e), which is scale-free: multiplying every
//      reward by 2^k gives the same bits while nothing under- or overflows. If eps * 2^-e
//      > 1e300 (a group of tiny rewards with a large eps: it could overflow), A is computed
//      unscaled, (r - Q) / (S + eps), whose true value is then below 8e-300. S' > 0 in every group that is not
//      all-equal, so the divisor is never 0 and no 0 * inf can arise: a tiny eps (5e-324)
//      is as safe as eps = 0. Scale none: A = r - Q, unscaled.
//   e. Singleton (n == 1): Q = 0, S = 1, A = r / (1 + eps) (r for scale none). Empty or all
//      missing: count 0, NaN statistics, every A = 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GAPO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GAPO_HOST_DEVICE inline
#endif

namespace gapo {

// The numbering is the order of the names in op_checks.h (kBaselineNames, kScaleNames), which
// is also the order of gapo_kernels/_checks.BASELINES and SCALES (tests/test_errors.py).
enum class Baseline : int32_t { HdiMedian = 0, HdiMean = 1, Median = 2, Mean = 3 };
enum class Scale : int32_t { Rms = 0, Std = 1, None = 2 };

struct Params {
  double tau;  // in (0, 1]
  double eps;  // >= 0
  Baseline baseline;
  Scale scale;
};

// Everything the op reports per group. Every backend accumulates in double (Acc = double), as
// the contract requires: a float32 Q can be off by ~1e-4 of S for a tight group far from 0,
// more than the 1e-5 relative that float32 results are held to.
template <class Acc>
struct GroupStats {
  Acc baseline;   // Q
  Acc scale;      // S as used (1 for Scale::None and for singletons)
  Acc hdi_low;    // s[i*]
  Acc hdi_high;   // s[i* + k - 1]
  Acc mean;       // mean of the finite rewards
  Acc min;        // s[0]
  Acc max;        // s[n - 1]
  int64_t count;  // n, finite rewards only
};

template <class T>
GAPO_HOST_DEVICE bool is_missing(T value) {
#if defined(__CUDA_ARCH__)
  return !isfinite(static_cast<double>(value));
#else
  return !std::isfinite(static_cast<double>(value));
#endif
}

// The missing test of a float without the round trip through double (same answer for every
// float: the conversion keeps NaN, +/-inf and finiteness). Declared before every caller so
// overload resolution picks it for float arguments everywhere: GPUs convert float to double
// at a fraction of the float rate.
GAPO_HOST_DEVICE bool is_missing(float value) {
#if defined(__CUDA_ARCH__)
  return !isfinite(value);  // CUDA's device overload for float
#else
  return !std::isfinite(value);
#endif
}

GAPO_HOST_DEVICE int64_t window_size(int64_t n, double tau) {
  // ceil of the double product, exactly as Python's math.ceil(n * tau). Written as truncate-
  // and-bump because 0 < product <= n < 2^53: exact, and no libm call on baseline x86-64.
  const double product = static_cast<double>(n) * tau;
  int64_t k = static_cast<int64_t>(product);
  if (static_cast<double>(k) < product) ++k;
  if (k < 1) k = 1;
  if (k > n) k = n;
  return k;
}

// Window widths are compared in double on every backend: the difference of two floats is
// exact in double (for all but extreme exponent gaps), so the choice of window never depends
// on float32 rounding and matches a float64 reference bit for bit.
template <class T>
GAPO_HOST_DEVICE double window_width(const T* sorted, int64_t start, int64_t k) {
  return static_cast<double>(sorted[start + k - 1]) - static_cast<double>(sorted[start]);
}

// The tie rule as a total order on candidate windows: narrower first, then lower start.
// A parallel argmin that keeps the preferred candidate at every step picks the same window
// as the sequential strict-< scan.
GAPO_HOST_DEVICE bool hdi_prefer(double width_a, int64_t start_a, double width_b, int64_t start_b) {
  return width_a < width_b || (width_a == width_b && start_a < start_b);
}

// A window of width 0 cannot be beaten (ties keep the lowest start), so the scan stops at the
// first one: discrete rewards (pass/fail, a few levels) have one early in most groups.
template <class T>
GAPO_HOST_DEVICE int64_t hdi_start(const T* sorted, int64_t n, int64_t k) {
  int64_t best_start = 0;
  double best_width = window_width(sorted, 0, k);
  for (int64_t start = 1; start + k <= n && best_width > 0; ++start) {
    const double width = window_width(sorted, start, k);
    if (width < best_width) {  // strict: ties keep the lowest start
      best_width = width;
      best_start = start;
    }
  }
  return best_start;
}

// -0.0 as +0.0, every other value unchanged (rule a). Compilers keep the add: x + 0.0 is not
// x under IEEE rules, and no gapo target builds with -ffast-math / -fno-signed-zeros.
GAPO_HOST_DEVICE double unsigned_zero(double value) { return value + 0.0; }

// 2^k as a double, for k in [-1022, 1023] (a normal double: built from its bits, exact).
GAPO_HOST_DEVICE double pow2(int k) {
  const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

constexpr int kMinGroupExponent = -1021;
constexpr int kMaxGroupExponent = 1022;

// The power of two of rule c: x = r * down is the scaled reward, up = 1 / down scales back.
struct GroupScaling {
  int exponent;
  double down;  // 2^-e
  double up;    // 2^e
};

// e from the extreme keys of a sorted group: the frexp exponent of max(|lo|, |hi|), read from
// the bits (a libm frexp per group would cost more than a small group's whole sort).
GAPO_HOST_DEVICE GroupScaling group_scaling(double lo, double hi) {
  const double m = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
  uint64_t bits;
#if defined(__CUDA_ARCH__)
  bits = static_cast<uint64_t>(__double_as_longlong(m));
#else
  std::memcpy(&bits, &m, sizeof bits);
#endif
  int e = static_cast<int>(bits >> 52) - 1022;  // m = f * 2^e, f in [0.5, 1), for normal m
  e = e < kMinGroupExponent ? kMinGroupExponent : (e > kMaxGroupExponent ? kMaxGroupExponent : e);
  return GroupScaling{e, pow2(-e), pow2(e)};
}

// Median of sorted[lo, lo + k), scaled: the middle key, or the mean of the two middle ones
// (their scaled sum cannot overflow).
template <class T>
GAPO_HOST_DEVICE double median_of_sorted(const T* sorted, int64_t lo, int64_t k, double down) {
  const int64_t mid = lo + k / 2;
  if (k % 2 == 1) return unsigned_zero(static_cast<double>(sorted[mid]) * down);
  return unsigned_zero((static_cast<double>(sorted[mid - 1]) * down + static_cast<double>(sorted[mid]) * down) * 0.5);
}

// sum over [lo, hi) of (values[i] * down - pivot), with four independent partial sums: four
// add chains run in parallel on a CPU core (a single chain costs one add latency per
// element), and the rounding error grows more slowly.
template <class T>
GAPO_HOST_DEVICE double sum_of_deviations(const T* values, int64_t lo, int64_t hi, double down, double pivot) {
  double part[4] = {0, 0, 0, 0};
  int64_t i = lo;
  for (; i + 4 <= hi; i += 4) {
    for (int j = 0; j < 4; ++j) part[j] += static_cast<double>(values[i + j]) * down - pivot;
  }
  for (; i < hi; ++i) part[0] += static_cast<double>(values[i]) * down - pivot;
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// Mean of the scaled values[lo, hi), about the pivot values[(lo + hi) / 2] * down.
template <class T>
GAPO_HOST_DEVICE double scaled_mean(const T* values, int64_t lo, int64_t hi, double down) {
  const double pivot = static_cast<double>(values[lo + (hi - lo) / 2]) * down;
  return pivot + sum_of_deviations(values, lo, hi, down, pivot) / static_cast<double>(hi - lo);
}

// sum_i (values[i] * down - center)^2 over [0, n), with the same four partial sums.
template <class T>
GAPO_HOST_DEVICE double sum_of_squared_deviations(const T* values, int64_t n, double down, double center) {
  double part[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) {
      const double d = static_cast<double>(values[i + j]) * down - center;
      part[j] += d * d;
    }
  }
  for (; i < n; ++i) {
    const double d = static_cast<double>(values[i]) * down - center;
    part[0] += d * d;
  }
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// The two passes over a whole group (the window scan and the sum of squares), as a policy of
// group_stats_of_sorted: on large groups they are most of the per-group work, and the CPU
// kernel substitutes SIMD versions with the same results, bit for bit (cpu/group_scans_avx2.h).
// Every other caller uses these.
struct ScalarScans {
  template <class T>
  GAPO_HOST_DEVICE static int64_t hdi_start(const T* sorted, int64_t n, int64_t k) {
    return gapo::hdi_start(sorted, n, k);
  }
  template <class T>
  GAPO_HOST_DEVICE static double sum_of_squared_deviations(const T* values, int64_t n, double down, double center) {
    return gapo::sum_of_squared_deviations(values, n, down, center);
  }
};

// Q' (scaled) for a group of n >= 2 sorted finite keys. window_mean (scaled) is only read for
// HdiMean (a parallel caller computes it with a reduction; sequential callers pass
// scaled_mean over the window).
template <class T>
GAPO_HOST_DEVICE double baseline_from_sorted(Baseline baseline, const T* sorted, int64_t n, int64_t k,
                                             int64_t start, double down, double mean, double window_mean) {
  switch (baseline) {
    case Baseline::HdiMedian:
      return median_of_sorted(sorted, start, k, down);
    case Baseline::HdiMean:
      return window_mean;
    case Baseline::Median:
      return median_of_sorted(sorted, 0, n, down);
    case Baseline::Mean:
    default:
      return mean;
  }
}

// The point the squared deviations are taken about: Q for rms, the group mean for std.
GAPO_HOST_DEVICE double scale_center(Scale scale, double baseline, double mean) {
  return scale == Scale::Std ? mean : baseline;
}

// S' (scaled) for n >= 2 from sum_j (x_j - scale_center)^2.
GAPO_HOST_DEVICE double scale_from_sum_sq(Scale scale, double sum_sq, int64_t n) {
  if (scale == Scale::None) return 1.0;
  return sqrt(sum_sq / static_cast<double>(n - 1));
}

// A = (r * down - offset) * factor for a finite reward r of the group: one multiply more per
// reward than (r - Q) / (S + eps), and it keeps the scale-free form of rule d.
struct AdvantageMap {
  double down;
  double offset;
  double factor;
};

// The map of a group of n >= 2 finite rewards that are not all equal, from its scaled Q' and
// S' (rule d). S' > 0 here, so the divisor is positive whatever eps >= 0 is.
GAPO_HOST_DEVICE AdvantageMap advantage_map(Scale scale, double eps, const GroupScaling& g, double baseline,
                                            double s) {
  if (scale == Scale::None) return AdvantageMap{1.0, baseline * g.up, 1.0};
  const double scaled_eps = eps * g.down;
  if (scaled_eps <= 1e300) return AdvantageMap{g.down, baseline, 1.0 / (s + scaled_eps)};
  // eps * 2^-e near overflow: tiny rewards (2^e < eps * 1e-300) with a comparatively huge eps,
  // so |A| < 8e-300. Unscaled, r - Q of tiny values is exact and S + eps >= eps > 0.
  return AdvantageMap{1.0, baseline * g.up, 1.0 / (s * g.up + eps)};
}

// All rewards equal (rule b) or none finite: A = 0 exactly.
GAPO_HOST_DEVICE AdvantageMap zero_advantage_map() { return AdvantageMap{1.0, 0.0, 0.0}; }

// n == 1 (rule e): Q = 0, S = 1.
GAPO_HOST_DEVICE AdvantageMap singleton_advantage_map(Scale scale, double eps) {
  return AdvantageMap{1.0, 0.0, scale == Scale::None ? 1.0 : 1.0 / (1.0 + eps)};
}

// A zero advantage is +0.0 whatever the zeros it came from (rule a): a reward of -0.0 at Q = 0,
// or a negative reward of an all-equal group (factor 0), would otherwise give -0.0.
template <class T>
GAPO_HOST_DEVICE double advantage_of(T reward, const AdvantageMap& map) {
  if (is_missing(reward)) return 0.0;
  return unsigned_zero((static_cast<double>(reward) * map.down - map.offset) * map.factor);
}

// Stats of a group from its n >= 0 finite keys, sorted ascending, and the map its advantages
// follow (for p.eps). The conventions for singletons, all-equal and empty groups live here.
// With a map requested, st.mean is NaN where neither Q nor S needs it.
template <class Acc, class T, class Scans = ScalarScans>
GAPO_HOST_DEVICE GroupStats<Acc> group_stats_of_sorted(const T* sorted, int64_t n, const Params& p,
                                                       AdvantageMap* map = nullptr) {
  GroupStats<Acc> st;
  st.count = n;
  if (n == 0) {
    const Acc nan = static_cast<Acc>(NAN);
    st.baseline = st.scale = st.hdi_low = st.hdi_high = st.mean = st.min = st.max = nan;
    if (map != nullptr) *map = zero_advantage_map();
    return st;
  }
  const int64_t k = window_size(n, p.tau);
  const int64_t start = Scans::hdi_start(sorted, n, k);
  st.hdi_low = static_cast<Acc>(unsigned_zero(sorted[start]));
  st.hdi_high = static_cast<Acc>(unsigned_zero(sorted[start + k - 1]));
  st.min = static_cast<Acc>(unsigned_zero(sorted[0]));
  st.max = static_cast<Acc>(unsigned_zero(sorted[n - 1]));
  if (n == 1) {  // verl's GRPO convention for a lone rollout
    st.mean = st.min;
    st.baseline = Acc(0);
    st.scale = Acc(1);
    if (map != nullptr) *map = singleton_advantage_map(p.scale, p.eps);
    return st;
  }
  if (st.min == st.max) {  // rule b
    st.mean = st.baseline = st.min;
    st.scale = p.scale == Scale::None ? Acc(1) : Acc(0);
    if (map != nullptr) *map = zero_advantage_map();
    return st;
  }
  const GroupScaling g = group_scaling(st.min, st.max);
  // The advantage path (a map wanted) skips the mean unless Q or S is taken from it: a pass
  // over the group that the default GAPO (hdi_median, rms) does not need.
  const bool need_mean = map == nullptr || p.baseline == Baseline::Mean || p.scale == Scale::Std;
  const double mean = need_mean ? scaled_mean(sorted, 0, n, g.down) : static_cast<double>(NAN);
  const double window_mean = p.baseline == Baseline::HdiMean ? scaled_mean(sorted, start, start + k, g.down) : 0.0;
  const double baseline = baseline_from_sorted(p.baseline, sorted, n, k, start, g.down, mean, window_mean);
  double s = 1.0;
  if (p.scale != Scale::None) {
    const double center = scale_center(p.scale, baseline, mean);
    s = scale_from_sum_sq(p.scale, Scans::sum_of_squared_deviations(sorted, n, g.down, center), n);
  }
  st.mean = static_cast<Acc>(mean * g.up);
  st.baseline = static_cast<Acc>(baseline * g.up);
  st.scale = p.scale == Scale::None ? Acc(1) : static_cast<Acc>(s * g.up);
  if (map != nullptr) *map = advantage_map(p.scale, p.eps, g, baseline, s);
  return st;
}

// Ascending in-place sort for small arrays: insertion sort, which beats std::sort below a few
// dozen elements and needs no scratch. Used by the CPU kernel for small groups and available
// to a per-thread GPU path.
template <class T>
GAPO_HOST_DEVICE void insertion_sort(T* values, int64_t n) {
  for (int64_t i = 1; i < n; ++i) {
    const T v = values[i];
    int64_t j = i - 1;
    while (j >= 0 && values[j] > v) {
      values[j + 1] = values[j];
      --j;
    }
    values[j + 1] = v;
  }
}

}  // namespace gapo
