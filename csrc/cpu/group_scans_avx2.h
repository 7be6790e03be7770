// AVX2 versions of the two whole-group passes of group_logic.h (ScalarScans): the window scan
// and the sum of squared deviations, for float keys of large groups. They compute what the
// scalar passes compute, bit for bit, four doubles per instruction:
//   - hdi_start: four lanes, each keeping its narrowest window with the strict-< rule (ties
//     keep the lane's lowest start), merged by the same total order as hdi_prefer (narrowest,
//     then lowest start); so the chosen start is the scalar scan's. Widths are float differences taken in double, as in
//     window_width.
//   - sum_of_squared_deviations: the scalar pass already keeps four partial sums, element
//     i + j into part j, combined as (p0 + p1) + (p2 + p3); one ymm holds those four sums and
//     adds in the same order. Multiply and add stay separate instructions (this target has no
//     FMA), as in the scalar code, so every rounding is the same.
// Small groups keep the scalar passes (kVectorWindowScanMin, kVectorSumMin).
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

// Below these sizes the scalar passes are as fast: the call into this target region, which
// cannot be inlined into baseline code, costs about what the vector pass saves (measured on
// groups of 16 to 64 at tau = 0.5).
constexpr int64_t kVectorWindowScanMin = 32;  // windows
constexpr int64_t kVectorSumMin = 64;         // keys

inline int64_t hdi_start_floats(const float* sorted, int64_t n, int64_t k) {
  const int64_t windows = n - k + 1;  // >= kVectorWindowScanMin >= 4
  const float* high = sorted + (k - 1);  // window s is [sorted[s], high[s]]
  const auto widths_at = [&](int64_t start) {
    return _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(high + start)), _mm256_cvtps_pd(_mm_loadu_ps(sorted + start)));
  };
  const __m256d lanes = _mm256_setr_pd(0, 1, 2, 3);
  __m256d lane_width = widths_at(0);
  __m256d lane_start = lanes;  // starts as doubles: exact below 2^53
  // Lane j keeps its narrowest window, the lowest start among ties (strict <), provided it
  // sees its starts in increasing order.
  const auto visit = [&](int64_t start) {
    const __m256d width = widths_at(start);
    const __m256d narrower = _mm256_cmp_pd(width, lane_width, _CMP_LT_OQ);
    lane_width = _mm256_blendv_pd(lane_width, width, narrower);
    const __m256d starts = _mm256_add_pd(_mm256_set1_pd(static_cast<double>(start)), lanes);
    lane_start = _mm256_blendv_pd(lane_start, starts, narrower);
  };
  int64_t start = 4;
  for (; start + 4 <= windows; start += 4) visit(start);
  // The last windows % 4 windows: one more block ending at the last window. It overlaps the
  // previous block, but lane j's start in it is still above every start lane j has seen, so
  // each lane's order stays increasing; no scalar tail, so no branch per window.
  if (start < windows) visit(windows - 4);
  // Merge without branches (a mispredicted merge costs more than a mid-sized group's scan):
  // the narrowest width (min is exact), then the lowest start among the lanes that have it.
  __m256d narrowest = _mm256_min_pd(lane_width, _mm256_permute_pd(lane_width, 0b0101));
  narrowest = _mm256_min_pd(narrowest, _mm256_permute2f128_pd(narrowest, narrowest, 1));
  const __m256d is_narrowest = _mm256_cmp_pd(lane_width, narrowest, _CMP_EQ_OQ);
  const __m256d above_every_start = _mm256_set1_pd(9007199254740992.0);  // 2^53
  __m256d first = _mm256_blendv_pd(above_every_start, lane_start, is_narrowest);
  first = _mm256_min_pd(first, _mm256_permute_pd(first, 0b0101));
  first = _mm256_min_pd(first, _mm256_permute2f128_pd(first, first, 1));
  return static_cast<int64_t>(_mm256_cvtsd_f64(first));
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
      if (n - k + 1 >= kVectorWindowScanMin) return hdi_start_floats(sorted, n, k);
    }
    return ScalarScans::hdi_start(sorted, n, k);
  }
  template <class T>
  static double sum_of_squared_deviations(const T* values, int64_t n, double down, double center) {
    if constexpr (std::is_same_v<T, float>) {
      if (n >= kVectorSumMin) return sum_of_squared_deviations_floats(values, n, down, center);
    }
    return ScalarScans::sum_of_squared_deviations(values, n, down, center);
  }
};

}  // namespace gapo::cpu::avx2

#endif  // GAPO_CPU_ISA_X86
