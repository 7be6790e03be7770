// Sorting a group whose rewards take only a few distinct values, by counting them. Pass/fail
// rewards (two values) and pass rates over a few tests (a handful of levels) are what RL on code
// produces most, and on them a comparison sort does log2(n) passes of work that a count does
// in one: one pass compares each vector of keys with the values seen so far and counts the
// matches, then the sorted keys are written as runs. The pass gives up at the first key that
// would make more than kFewValuesMax distinct values, which for continuous rewards is within
// the first vector (a few nanoseconds on a group this sort is tried on).
//
// Keys as everywhere in the sort (sort_keys.h): missing rewards (NaN, +/-inf) are +inf and
// sorted last, -0 is +0.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#include "cpu/cpu_isa.h"

namespace gapo::cpu {

// The most distinct finite values counted; one more gives up.
constexpr int kFewValuesMax = 8;

// The distinct values seen so far and their counts, plus the missing rewards.
struct FewValues {
  float value[kFewValuesMax];
  int64_t count[kFewValuesMax];
  int distinct = 0;
  int64_t missing = 0;

  // The slot of `key` (a finite key, +0 for zeros), added if new; -1 when that would be one too many.
  int slot_of(float key) {
    for (int j = 0; j < distinct; ++j) {
      if (value[j] == key) return j;
    }
    if (distinct == kFewValuesMax) return -1;
    value[distinct] = key;
    count[distinct] = 0;
    return distinct++;
  }

  // Writes the runs into dst (ascending, then +inf per missing reward); returns the finite count.
  int64_t write_sorted(float* dst) {
    int order[kFewValuesMax];  // slots by ascending value (insertion sort of at most 8)
    for (int j = 0; j < distinct; ++j) {
      int at = j;
      for (; at > 0 && value[order[at - 1]] > value[j]; --at) order[at] = order[at - 1];
      order[at] = j;
    }
    int64_t at = 0;
    for (int j = 0; j < distinct; ++j) {
      std::fill(dst + at, dst + at + count[order[j]], value[order[j]]);
      at += count[order[j]];
    }
    std::fill(dst + at, dst + at + missing, __builtin_inff());
    return at;
  }
};

}  // namespace gapo::cpu

#ifdef GAPO_CPU_ISA_X86
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,popcnt")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gapo::cpu::avx512 {

// Whether the finite lanes of x hold more than kFewValuesMax distinct values: sixteen
// independent compares, where the counting loop below learns it one new value at a time, a
// dependent chain through memory (~50 ns for the continuous rewards that fail it).
inline bool too_many_values(__m512 x, __mmask16 finite) {
  int distinct = 0;
  for (int j = 0; j < 16; ++j) {
    const __m512 lane_j = _mm512_permutexvar_ps(_mm512_set1_epi32(j), x);
    const unsigned same = _mm512_mask_cmp_ps_mask(finite, x, lane_j, _CMP_EQ_OQ);
    distinct += ((finite >> j) & 1u) & ((same & ((1u << j) - 1u)) == 0);  // lane j first holds its value
  }
  return distinct > kFewValuesMax;
}

struct FewValuesLanes {
  using Reg = __m512;
  static unsigned equal(Reg x, Reg value, unsigned among) {
    return _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(among), x, value, _CMP_EQ_OQ);
  }
  static Reg broadcast(float v) { return _mm512_set1_ps(v); }
  static float lane(Reg x, int i) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, x);
    return lanes[i];
  }
};

#include "cpu/few_values_count.inc"

// Counts the keys of src[0, size) into few; false when they take more than kFewValuesMax values.
inline bool count_few_values(const float* src, int64_t size, FewValues& few) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  if (size >= 16) {
    const __m512 x = _mm512_loadu_ps(src);
    if (too_many_values(x, _mm512_cmp_ps_mask(_mm512_abs_ps(x), inf, _CMP_LT_OQ))) return false;
  }
  __m512 seen[kFewValuesMax];
  for (int64_t i = 0; i < size; i += 16) {
    const int64_t left = size - i;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512 x = _mm512_maskz_loadu_ps(live, src + i);
    const __mmask16 finite = _mm512_mask_cmp_ps_mask(live, _mm512_abs_ps(x), inf, _CMP_LT_OQ);
    few.missing += std::popcount(static_cast<unsigned>(live & ~finite));
    if (!count_lanes(x, finite, seen, few)) return false;
  }
  return true;
}

}  // namespace gapo::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx2,popcnt"))), apply_to = function)
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")
#endif

namespace gapo::cpu::avx2 {

// Whether the finite keys among the sixteen of a and b take more than kFewValuesMax values (see
// the AVX-512 version).
inline bool too_many_values(__m256 a, __m256 b, unsigned finite) {
  int distinct = 0;
  for (int j = 0; j < 16; ++j) {
    const __m256 lane_j = _mm256_permutevar8x32_ps(j < 8 ? a : b, _mm256_set1_epi32(j % 8));
    const unsigned same = finite & (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a, lane_j, _CMP_EQ_OQ))) |
                                    static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(b, lane_j, _CMP_EQ_OQ))) << 8);
    distinct += ((finite >> j) & 1u) & ((same & ((1u << j) - 1u)) == 0);  // key j first holds its value
  }
  return distinct > kFewValuesMax;
}

struct FewValuesLanes {
  using Reg = __m256;
  static unsigned equal(Reg x, Reg value, unsigned among) {
    return among & static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(x, value, _CMP_EQ_OQ)));
  }
  static Reg broadcast(float v) { return _mm256_set1_ps(v); }
  static float lane(Reg x, int i) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, x);
    return lanes[i];
  }
};

#include "cpu/few_values_count.inc"

inline bool count_few_values(const float* src, int64_t size, FewValues& few) {
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  if (size >= 16) {
    const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
    const auto finite_lanes = [&](__m256 v) {
      return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_LT_OQ)));
    };
    if (too_many_values(a, b, finite_lanes(a) | finite_lanes(b) << 8)) return false;
  }
  __m256 seen[kFewValuesMax];
  for (int64_t i = 0; i < size; i += 8) {
    const int64_t left = size - i;
    __m256 x;
    unsigned live = 0xFF;
    if (left >= 8) {
      x = _mm256_loadu_ps(src + i);
    } else {
      const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane_index);
      x = _mm256_maskload_ps(src + i, lanes);
      live = (1u << left) - 1u;
    }
    const unsigned finite =
        live & static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, x), inf, _CMP_LT_OQ)));
    few.missing += std::popcount(live & ~finite);
    if (!count_lanes(x, finite, seen, few)) return false;
  }
  return true;
}

}  // namespace gapo::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // GAPO_CPU_ISA_X86
