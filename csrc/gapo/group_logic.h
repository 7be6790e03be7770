// The per-group logic of the GAPO advantage family (../shared/SPEC.md), shared by every
// compiled backend. The CPU kernel and the CUDA kernel both include this file; neither has
// its own copy of the window, median or scale rules.
//
// Everything here is a plain function over pointers and scalars so it compiles as host code
// and, under nvcc, as __host__ __device__ code. Nothing allocates and nothing touches torch.
//
// The pieces, in the order a group goes through them:
//   1. is_missing             a reward that is NaN or +/-inf is left out of the group
//   2. sort_small / (caller)  ascending sort of the n finite rewards
//   3. window_size            k = min(n, max(1, ceil(n * tau))), n * tau in double
//   4. hdi_start              first i minimising s[i+k-1] - s[i] (hdi_prefer is the tie rule
//                             for parallel reductions)
//   5. baseline_from_sorted   Q for each baseline; median_of_sorted for the medians
//   6. scale_from_sum_sq      S from the sum of squared deviations about scale_center()
//   7. advantage_of           A = (r - Q) / (S + eps), 0 for missing rewards
// group_stats_of_sorted composes 3..6 sequentially; a parallel backend may compose the same
// pieces with its own reductions.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GAPO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GAPO_HOST_DEVICE inline
#endif

namespace gapo {

// The numbering is the op's string arguments in this order; ops.cpp maps names to values.
enum class Baseline : int32_t { HdiMedian = 0, HdiMean = 1, Median = 2, Mean = 3 };
enum class Scale : int32_t { Rms = 0, Std = 1, None = 2 };

struct Params {
  double tau;  // in (0, 1]
  double eps;  // >= 0
  Baseline baseline;
  Scale scale;
};

// Everything the op reports per group. Every backend accumulates in double (Acc = double): the
// spec asks for float32 at least, but a float32 Q can be off by ~1e-4 of S for a tight group
// far from 0, more than the 1e-5 relative the results are held to.
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

template <class T>
GAPO_HOST_DEVICE int64_t hdi_start(const T* sorted, int64_t n, int64_t k) {
  int64_t best_start = 0;
  double best_width = window_width(sorted, 0, k);
  for (int64_t start = 1; start + k <= n; ++start) {
    const double width = window_width(sorted, start, k);
    if (width < best_width) {  // strict: ties keep the lowest start
      best_width = width;
      best_start = start;
    }
  }
  return best_start;
}

// Median of sorted[lo, lo + k): the middle element, or the mean of the two middle ones.
template <class Acc, class T>
GAPO_HOST_DEVICE Acc median_of_sorted(const T* sorted, int64_t lo, int64_t k) {
  const int64_t mid = lo + k / 2;
  if (k % 2 == 1) return static_cast<Acc>(sorted[mid]);
  return (static_cast<Acc>(sorted[mid - 1]) + static_cast<Acc>(sorted[mid])) / Acc(2);
}

// Sums use four independent partial sums: four add chains run in parallel on a CPU core (a
// single chain costs one add latency per element), and the rounding error grows more slowly.
template <class Acc, class T>
GAPO_HOST_DEVICE Acc sum_of(const T* values, int64_t lo, int64_t hi) {
  Acc part[4] = {0, 0, 0, 0};
  int64_t i = lo;
  for (; i + 4 <= hi; i += 4) {
    for (int j = 0; j < 4; ++j) part[j] += static_cast<Acc>(values[i + j]);
  }
  for (; i < hi; ++i) part[0] += static_cast<Acc>(values[i]);
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// sum_i (values[i] - center)^2 over [0, n), with the same four partial sums as sum_of.
template <class Acc, class T>
GAPO_HOST_DEVICE Acc sum_of_squared_deviations(const T* values, int64_t n, Acc center) {
  Acc part[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) {
      const Acc d = static_cast<Acc>(values[i + j]) - center;
      part[j] += d * d;
    }
  }
  for (; i < n; ++i) {
    const Acc d = static_cast<Acc>(values[i]) - center;
    part[0] += d * d;
  }
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// Q for a group of n >= 2 sorted finite rewards. window_sum is only read for HdiMean (a
// parallel caller computes it with a reduction; sequential callers pass sum_of(window)).
template <class Acc, class T>
GAPO_HOST_DEVICE Acc baseline_from_sorted(Baseline baseline, const T* sorted, int64_t n, int64_t k,
                                          int64_t start, Acc mean, Acc window_sum) {
  switch (baseline) {
    case Baseline::HdiMedian:
      return median_of_sorted<Acc>(sorted, start, k);
    case Baseline::HdiMean:
      return window_sum / static_cast<Acc>(k);
    case Baseline::Median:
      return median_of_sorted<Acc>(sorted, 0, n);
    case Baseline::Mean:
    default:
      return mean;
  }
}

// The point the squared deviations are taken about: Q for rms, the group mean for std.
template <class Acc>
GAPO_HOST_DEVICE Acc scale_center(Scale scale, Acc baseline, Acc mean) {
  return scale == Scale::Std ? mean : baseline;
}

// S for n >= 2 from sum_j (r_j - scale_center)^2.
template <class Acc>
GAPO_HOST_DEVICE Acc scale_from_sum_sq(Scale scale, Acc sum_sq, int64_t n) {
  if (scale == Scale::None) return Acc(1);
  return sqrt(sum_sq / static_cast<Acc>(n - 1));
}

// The divisor applied to (r - Q), folded once per group so the write loop is a multiply.
// Scale::None: A = r - Q, eps not added. S + eps == 0 happens only when every reward equals Q
// and eps == 0; then A = 0 (spec: "all rewards equal: A = 0"), not 0/0.
template <class Acc>
GAPO_HOST_DEVICE Acc inverse_divisor(Scale scale, Acc s, double eps) {
  if (scale == Scale::None) return Acc(1);
  const Acc divisor = s + static_cast<Acc>(eps);
  return divisor > Acc(0) ? Acc(1) / divisor : Acc(0);
}

template <class Acc, class T>
GAPO_HOST_DEVICE Acc advantage_of(T reward, Acc baseline, Acc inv_divisor) {
  if (is_missing(reward)) return Acc(0);
  return (static_cast<Acc>(reward) - baseline) * inv_divisor;
}

// Stats of a group from its n >= 1 finite rewards, sorted ascending. The convention for a
// singleton (Q = 0, S = 1) and the empty group (count 0, NaN elsewhere) live here too.
template <class Acc, class T>
GAPO_HOST_DEVICE GroupStats<Acc> group_stats_of_sorted(const T* sorted, int64_t n, const Params& p) {
  GroupStats<Acc> st;
  st.count = n;
  if (n == 0) {
    const Acc nan = static_cast<Acc>(NAN);
    st.baseline = st.scale = st.hdi_low = st.hdi_high = st.mean = st.min = st.max = nan;
    return st;
  }
  const int64_t k = window_size(n, p.tau);
  const int64_t start = hdi_start(sorted, n, k);
  st.hdi_low = static_cast<Acc>(sorted[start]);
  st.hdi_high = static_cast<Acc>(sorted[start + k - 1]);
  st.min = static_cast<Acc>(sorted[0]);
  st.max = static_cast<Acc>(sorted[n - 1]);
  st.mean = sum_of<Acc>(sorted, 0, n) / static_cast<Acc>(n);
  if (n == 1) {  // verl's GRPO convention for a lone rollout
    st.baseline = Acc(0);
    st.scale = Acc(1);
    return st;
  }
  const Acc window_sum = p.baseline == Baseline::HdiMean ? sum_of<Acc>(sorted, start, start + k) : Acc(0);
  st.baseline = baseline_from_sorted<Acc>(p.baseline, sorted, n, k, start, st.mean, window_sum);
  if (p.scale == Scale::None) {
    st.scale = Acc(1);
  } else {
    const Acc center = scale_center(p.scale, st.baseline, st.mean);
    st.scale = scale_from_sum_sq(p.scale, sum_of_squared_deviations(sorted, n, center), n);
  }
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
