// AVX2 versions of the two whole-group passes of group_logic.h (ScalarScans): the window scan
// and the sum of squared deviations, for float keys of large groups. They compute what the
// scalar passes compute, bit for bit, four doubles per instruction:
//   - hdi_start: four lanes, lane j scanning starts j, j + 4, ... with the strict-< rule (ties
//     keep the lane's lowest start), merged with hdi_prefer, the same total order; so the
//     chosen start is the scalar scan's. Widths are float differences taken in double, as in
//     window_width.
//   - sum_of_squared_deviations: the scalar pass already keeps four partial sums, element
//     i + j into part j, combined as (p0 + p1) + (p2 + p3); one ymm holds those four sums and
//     adds in the same order. Multiply and add stay separate instructions (this target has no
//     FMA), as in the scalar code, so every rounding is the same.
// Small groups keep the scalar passes: there the call into this target region (which cannot
// be inlined into baseline code) costs more than the pass.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cpu/cpu_isa.h"
#include "gapo/group_logic.h"

#ifdef GAPO_CPU_ISA_X86
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

namespace gapo::cpu::avx2 {

// Below this many windows (keys) the scalar pass is as fast (measured: groups of 64 gain
// nothing, groups of 256 spend a third less time on these passes).
constexpr int64_t kVectorScanMin = 128;

inline int64_t hdi_start_floats(const float* sorted, int64_t n, int64_t k) {
  const int64_t windows = n - k + 1;
  const float* high = sorted + (k - 1);  // window s is [sorted[s], high[s]]
  const auto widths_at = [&](int64_t start) {
    return _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(high + start)), _mm256_cvtps_pd(_mm_loadu_ps(sorted + start)));
  };
  __m256d lane_width = widths_at(0);
  __m256d lane_start = _mm256_setr_pd(0, 1, 2, 3);  // starts as doubles: exact below 2^53
  __m256d start_of = lane_start;
  const __m256d four = _mm256_set1_pd(4.0);
  int64_t start = 4;
  for (; start + 4 <= windows; start += 4) {
    start_of = _mm256_add_pd(start_of, four);
    const __m256d width = widths_at(start);
    const __m256d narrower = _mm256_cmp_pd(width, lane_width, _CMP_LT_OQ);
    lane_width = _mm256_blendv_pd(lane_width, width, narrower);
    lane_start = _mm256_blendv_pd(lane_start, start_of, narrower);
  }
  alignas(32) double widths[4];
  alignas(32) double starts[4];
  _mm256_store_pd(widths, lane_width);
  _mm256_store_pd(starts, lane_start);
  double best_width = widths[0];
  int64_t best_start = static_cast<int64_t>(starts[0]);
  for (int j = 1; j < 4; ++j) {
    if (hdi_prefer(widths[j], static_cast<int64_t>(starts[j]), best_width, best_start)) {
      best_width = widths[j];
      best_start = static_cast<int64_t>(starts[j]);
    }
  }
  for (; start < windows; ++start) {  // the last windows % 4, all above every lane's start
    const double width = window_width(sorted, start, k);
    if (width < best_width) {
      best_width = width;
      best_start = start;
    }
  }
  return best_start;
}

inline double sum_of_squared_deviations_floats(const float* values, int64_t n, double down, double center) {
  const __m256d scale_down = _mm256_set1_pd(down);
  const __m256d about = _mm256_set1_pd(center);
  __m256d sums = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d d = _mm256_sub_pd(_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(values + i)), scale_down), about);
    sums = _mm256_add_pd(sums, _mm256_mul_pd(d, d));
  }
  alignas(32) double part[4];
  _mm256_store_pd(part, sums);
  for (; i < n; ++i) {
    const double d = static_cast<double>(values[i]) * down - center;
    part[0] += d * d;
  }
  return (part[0] + part[1]) + (part[2] + part[3]);
}

}  // namespace gapo::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace gapo::cpu::avx2 {

// The Scans policy of group_stats_of_sorted for a CPU with AVX2: float keys of large groups
// take the vector passes, everything else the scalar ones.
struct Scans {
  template <class T>
  static int64_t hdi_start(const T* sorted, int64_t n, int64_t k) {
    if constexpr (std::is_same_v<T, float>) {
      if (n - k + 1 >= kVectorScanMin) return hdi_start_floats(sorted, n, k);
    }
    return ScalarScans::hdi_start(sorted, n, k);
  }
  template <class T>
  static double sum_of_squared_deviations(const T* values, int64_t n, double down, double center) {
    if constexpr (std::is_same_v<T, float>) {
      if (n >= kVectorScanMin) return sum_of_squared_deviations_floats(values, n, down, center);
    }
    return ScalarScans::sum_of_squared_deviations(values, n, down, center);
  }
};

}  // namespace gapo::cpu::avx2

#endif  // GAPO_CPU_ISA_X86
