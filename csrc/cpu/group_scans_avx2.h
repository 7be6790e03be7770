// AVX2 versions of the CPU kernel's whole-group passes (group_scans.h) for float keys: the
// window scan, the sum of squared deviations and the write of the advantages, with the bits of
// the portable passes, four doubles (or eight floats) per instruction.
//   - hdi_start: on float widths, eight per register, deciding near ties in double
//     (window_scan.inc): the scalar scan's window.
//   - sum_of_squared_deviations: four accumulators hold the sixteen partial sums of
//     group_scans.h's order (accumulator q holds parts 4q..4q+3) and combine as it does.
//   - write_group_advantages: advantage_of per lane, in the fused form of group_scans.h
//     (fma(x, down, 0.0 - offset) * factor in double, rounded to float), 0 for missing rewards.
// The path requires FMA beside AVX2 (cpu_isa.h: x86-64-v3, as on every AVX2 CPU since Haswell
// and Zen). A multiply-add is fused only where the product is exact, so it rounds as the
// portable passes' separate steps do: the CPU sources are built with -ffp-contract=off, and no
// other multiply and add fuse.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/cpu_isa.h"
#include "cpu/group_scans.h"
#include "gapo/group_logic.h"

#ifdef GAPO_CPU_ISA_X86
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// GCC 12's AVX2 gathers and permutes start from _mm256_undefined_*(), which
// -Wmaybe-uninitialized reports wherever they are inlined; every lane is defined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gapo::cpu::avx2 {

// Below these sizes the portable passes are as fast: a call into this target region cannot
// be inlined into baseline code, and costs about what the vector pass saves.
constexpr int64_t kVectorWindowScanMin = 16;  // windows
constexpr int64_t kVectorPassMin = 16;        // keys

// Lanes i < live of four floats (the rest 0.0f).
inline __m128 load_floats(const float* src, int64_t live) {
  if (live >= 4) return _mm_loadu_ps(src);
  const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
  return _mm_maskload_ps(src, _mm_cmplt_epi32(lane, _mm_set1_epi32(static_cast<int>(live))));
}

// Eight floats per register for window_scan.inc.
struct FloatLanes {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static float least(Reg v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_min_ss(m, _mm_movehdup_ps(m)));
  }
  static unsigned at_most(Reg v, float bound) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(bound), _CMP_LE_OQ)));
  }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg hide_first_lanes(Reg v, int count) {
    const __m256i hidden = _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_inff()), _mm256_castsi256_ps(hidden));
  }
  using Index = __m256i;
  static Index lane_starts(int64_t start) {
    return _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(start)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Index select_narrower(Reg width, Reg least, Index starts, Index first) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(first), _mm256_castsi256_ps(starts),
                                                _mm256_cmp_ps(width, least, _CMP_LT_OQ)));
  }
  static void store_index(int32_t* dst, Index v) { _mm256_store_si256(reinterpret_cast<__m256i*>(dst), v); }
  // Two sets of four double lanes; starts as doubles (exact below 2^53).
  struct DoubleBest {
    __m256d width[2];
    __m256d start[2];
  };
  static DoubleBest double_best() {
    const __m256d none = _mm256_set1_pd(__builtin_inf());
    const __m256d above_every_start = _mm256_set1_pd(9007199254740992.0);  // 2^53
    return DoubleBest{{none, none}, {above_every_start, above_every_start}};
  }
  static void visit_in_double(DoubleBest& best, const float* high, const float* low, int64_t start) {
    for (int h = 0; h < 2; ++h) {
      const __m256d width = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(high + start + 4 * h)),
                                          _mm256_cvtps_pd(_mm_loadu_ps(low + start + 4 * h)));
      const __m256d narrower = _mm256_cmp_pd(width, best.width[h], _CMP_LT_OQ);
      const __m256d starts = _mm256_add_pd(_mm256_set1_pd(static_cast<double>(start + 4 * h)), _mm256_setr_pd(0, 1, 2, 3));
      best.width[h] = _mm256_blendv_pd(best.width[h], width, narrower);
      best.start[h] = _mm256_blendv_pd(best.start[h], starts, narrower);
    }
  }
  // Without branches (a mispredicted merge costs more than the rest of a mid-sized scan).
  static int64_t best_start(const DoubleBest& best) {
    const __m256d second = _mm256_or_pd(
        _mm256_cmp_pd(best.width[1], best.width[0], _CMP_LT_OQ),
        _mm256_and_pd(_mm256_cmp_pd(best.width[1], best.width[0], _CMP_EQ_OQ),
                      _mm256_cmp_pd(best.start[1], best.start[0], _CMP_LT_OQ)));
    const __m256d width = _mm256_blendv_pd(best.width[0], best.width[1], second);
    const __m256d start = _mm256_blendv_pd(best.start[0], best.start[1], second);
    __m256d narrowest = _mm256_min_pd(width, _mm256_permute_pd(width, 0b0101));
    narrowest = _mm256_min_pd(narrowest, _mm256_permute2f128_pd(narrowest, narrowest, 1));
    __m256d first = _mm256_blendv_pd(_mm256_set1_pd(9007199254740992.0), start, _mm256_cmp_pd(width, narrowest, _CMP_EQ_OQ));
    first = _mm256_min_pd(first, _mm256_permute_pd(first, 0b0101));
    first = _mm256_min_pd(first, _mm256_permute2f128_pd(first, first, 1));
    return static_cast<int64_t>(_mm256_cvtsd_f64(first));
  }
};

#include "cpu/window_scan.inc"

// d = x * down - center as one fused multiply-add: x * down is exact (group_scans.h), so d
// rounds once either way.
inline double sum_of_squared_deviations_floats(const float* values, int64_t n, double down, double center) {
  const __m256d scale_down = _mm256_set1_pd(down);
  const __m256d negated_center = _mm256_set1_pd(-center);
  __m256d sums[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  const auto square = [&](__m128 x) {
    const __m256d d = _mm256_fmadd_pd(_mm256_cvtps_pd(x), scale_down, negated_center);
    return _mm256_mul_pd(d, d);
  };
  const auto add_squares = [&](__m256d& sum, __m128 x, __m256d live) {
    sum = _mm256_add_pd(sum, _mm256_and_pd(square(x), live));
  };
  int64_t i = 0;
  for (; i + kSumParts <= n; i += kSumParts) {
    for (int q = 0; q < 4; ++q) sums[q] = _mm256_add_pd(sums[q], square(_mm_loadu_ps(values + i + 4 * q)));
  }
  // The tail: parts that get no element add exactly +0 (every partial sum is >= +0).
  const __m256d lanes = _mm256_setr_pd(0, 1, 2, 3);
  for (int q = 0; q < 4 && i + 4 * q < n; ++q) {
    const int64_t live = n - (i + 4 * q);
    const __m256d live_lanes = _mm256_cmp_pd(lanes, _mm256_set1_pd(static_cast<double>(live)), _CMP_LT_OQ);
    add_squares(sums[q], load_floats(values + i + 4 * q, live), live_lanes);
  }
  // combine_sum_parts: parts j + 8, then j + 4, j + 2, j + 1.
  const __m256d quarter = _mm256_add_pd(_mm256_add_pd(sums[0], sums[2]), _mm256_add_pd(sums[1], sums[3]));
  const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(quarter), _mm256_extractf128_pd(quarter, 1));
  return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
}

// Four advantages from four floats in the fused form (group_scans.h); kMayMiss: lanes of
// missing rewards give +0 (a group without missing rewards skips that test).
template <bool kMayMiss>
inline __m128 fused_advantages_of(__m128 x, __m256d down, __m256d negated_offset, __m256d factor) {
  const __m128 a = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_fmadd_pd(_mm256_cvtps_pd(x), down, negated_offset), factor));
  if constexpr (!kMayMiss) return a;
  return _mm_and_ps(a, _mm_cmplt_ps(_mm_andnot_ps(_mm_set1_ps(-0.0f), x), _mm_set1_ps(__builtin_inff())));
}

// Four floats a step: eight would cost a lane extract and insert per step for the conversions
// (256 keys: 22 ns a group against 30 with eight, 45 for advantage_of's separate steps).
template <bool kMayMiss>
inline void write_fused_advantages_floats(const float* values, int64_t n, const AdvantageMap& map, float* out) {
  const __m256d down = _mm256_set1_pd(map.down);
  const __m256d negated_offset = _mm256_set1_pd(0.0 - map.offset);  // +0 for either zero (group_scans.h)
  const __m256d factor = _mm256_set1_pd(map.factor);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    _mm_storeu_ps(out + i, fused_advantages_of<kMayMiss>(_mm_loadu_ps(values + i), down, negated_offset, factor));
  }
  if (i < n) {
    const __m128i live = _mm_cmplt_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(static_cast<int>(n - i)));
    _mm_maskstore_ps(out + i, live, fused_advantages_of<kMayMiss>(load_floats(values + i, n - i), down, negated_offset, factor));
  }
}

// Eight advantages from eight floats by advantage_of's steps; kMayMiss as above.
template <bool kMayMiss = true>
inline __m256 advantages_of(__m256 x, __m256d down, __m256d offset, __m256d factor) {
  const auto half = [&](__m128 part) {
    const __m256d a = _mm256_mul_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_cvtps_pd(part), down), offset), factor);
    return _mm256_cvtpd_ps(_mm256_add_pd(a, _mm256_setzero_pd()));
  };
  const __m256 a = _mm256_set_m128(half(_mm256_extractf128_ps(x, 1)), half(_mm256_castps256_ps128(x)));
  if constexpr (!kMayMiss) return a;
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  return _mm256_and_ps(a, _mm256_cmp_ps(magnitude, _mm256_set1_ps(__builtin_inff()), _CMP_LT_OQ));
}

template <bool kMayMiss>
inline void write_advantages_floats(const float* values, int64_t n, const AdvantageMap& map, float* out) {
  const __m256d down = _mm256_set1_pd(map.down);
  const __m256d offset = _mm256_set1_pd(map.offset);
  const __m256d factor = _mm256_set1_pd(map.factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, advantages_of<kMayMiss>(_mm256_loadu_ps(values + i), down, offset, factor));
  }
  if (i < n) {
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(out + i, live, advantages_of<kMayMiss>(_mm256_maskload_ps(values + i, live), down, offset, factor));
  }
}

// all_finite: the caller knows the group has no missing reward.
inline void write_group_advantages_floats(const float* values, int64_t n, const AdvantageMap& map, float* out,
                                          bool all_finite = false) {
  if (map.factor == 0.0) return write_zero_advantages(n, out);
  if (fused_write_exact(map)) {
    if (all_finite) return write_fused_advantages_floats<false>(values, n, map, out);
    return write_fused_advantages_floats<true>(values, n, map, out);
  }
  if (all_finite) return write_advantages_floats<false>(values, n, map, out);
  return write_advantages_floats<true>(values, n, map, out);
}

// The vector type of small_groups.inc's lanes: four doubles, compares as all-ones lanes.
struct Lanes {
  using Reg = __m256d;
  using Mask = __m256d;
  static constexpr int kLanes = 4;
  static Reg set1(double v) { return _mm256_set1_pd(v); }
  static Reg lane_index() { return _mm256_setr_pd(0, 1, 2, 3); }
  static void store(double* dst, Reg v) { _mm256_store_pd(dst, v); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_pd(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_pd(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_pd(a, b); }
  static Reg sqrt(Reg a) { return _mm256_sqrt_pd(a); }
  static Reg min(Reg a, Reg b) { return _mm256_min_pd(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_pd(a, b); }
  static Reg abs(Reg a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static Reg ceil(Reg a) { return _mm256_ceil_pd(a); }
  static Reg floor(Reg a) { return _mm256_floor_pd(a); }
  static Mask lt(Reg a, Reg b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static Mask eq(Reg a, Reg b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static Mask both(Mask a, Mask b) { return _mm256_and_pd(a, b); }
  static Mask either(Mask a, Mask b) { return _mm256_or_pd(a, b); }
  static Mask negate(Mask a) { return _mm256_xor_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(-1))); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm256_blendv_pd(b, a, m); }
  static Reg add_where(Mask m, Reg a, Reg b) { return _mm256_blendv_pd(a, _mm256_add_pd(a, b), m); }
  static Reg gather(const double* base, Reg index) { return _mm256_i32gather_pd(base, _mm256_cvtpd_epi32(index), 8); }
  static Reg load_keys(const float* values, const int64_t* first, const int64_t* size, int j) {
    // Built from scalars, not loaded as a vector: the caller has just stored them one by one,
    // and a wide load of narrower stores waits for them to reach the cache.
    const __m256i at = _mm256_add_epi64(_mm256_setr_epi64x(first[0], first[1], first[2], first[3]), _mm256_set1_epi64x(j));
    const __m256i live64 = _mm256_cmpgt_epi64(_mm256_setr_epi64x(size[0], size[1], size[2], size[3]), _mm256_set1_epi64x(j));
    // The gather wants one 32-bit mask lane per float: the low halves of the 64-bit lanes.
    const __m128 live = _mm_castsi128_ps(
        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(live64, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6))));
    const __m256d inf = _mm256_set1_pd(__builtin_inff());
    const __m256d x = _mm256_cvtps_pd(_mm256_mask_i64gather_ps(_mm_set1_ps(__builtin_inff()), values, at, live, 4));
    const __m256d finite = _mm256_cmp_pd(abs(x), inf, _CMP_LT_OQ);
    return _mm256_blendv_pd(inf, _mm256_add_pd(x, _mm256_setzero_pd()), finite);  // -0 read as +0
  }
  // Four rows of four keys, transposed: AVX2 gathers cost several times these loads on the CPUs
  // this path serves.
  template <int kWidth>
  static void load_run(const float* values, int64_t size, Reg* key) {
    const __m256d inf = _mm256_set1_pd(__builtin_inff());
    for (int block = 0; block < kWidth; block += 4) {
      const int64_t live = size - block;  // keys of this block in each group
      if (live <= 0) {
        for (int i = 0; i < 4 && block + i < kWidth; ++i) key[block + i] = inf;
        continue;
      }
      __m128 row[4];
      for (int l = 0; l < 4; ++l) row[l] = load_floats(values + l * size + block, live);
      _MM_TRANSPOSE4_PS(row[0], row[1], row[2], row[3]);  // row[i]: key block + i of each group
      for (int i = 0; i < 4 && block + i < kWidth; ++i) {
        const __m256d x = _mm256_cvtps_pd(row[i]);
        const __m256d finite = _mm256_cmp_pd(abs(x), inf, _CMP_LT_OQ);
        key[block + i] = i < live ? _mm256_blendv_pd(inf, _mm256_add_pd(x, _mm256_setzero_pd()), finite) : inf;
      }
    }
  }
  // group_scaling: e = (exponent field of m) - 1022, clamped to [-1021, 1022]. The field
  // (< 2^11) fills the low 32 bits of each lane, so 32-bit min and max clamp it.
  static void scale_exponents(Reg m, Reg& down, Reg& up) {
    __m256i field = _mm256_srli_epi64(_mm256_castpd_si256(m), 52);
    field = _mm256_min_epi32(_mm256_max_epi32(field, _mm256_set1_epi64x(1)), _mm256_set1_epi64x(2044));
    down = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_sub_epi64(_mm256_set1_epi64x(2045), field), 52));
    up = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(field, _mm256_set1_epi64x(1)), 52));
  }
  static double max_lane(Reg a) {
    const __m256d pairs = _mm256_max_pd(a, _mm256_permute2f128_pd(a, a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(_mm256_castpd256_pd128(pairs), _mm_unpackhi_pd(_mm256_castpd256_pd128(pairs), _mm256_castpd256_pd128(pairs))));
  }
  // Lane l of a double is 32-bit lanes 2l and 2l + 1: v's lanes for four positions.
  static Reg spread(Reg v, const uint8_t* lanes) {
    int32_t four;
    std::memcpy(&four, lanes, sizeof four);
    const __m256i lane = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
    const __m256i index = _mm256_or_si256(_mm256_slli_epi64(lane, 1),
                                          _mm256_add_epi64(_mm256_slli_epi64(lane, 33), _mm256_set1_epi64x(int64_t{1} << 32)));
    return _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), index));
  }
  static void write_lanes(const float* values, int64_t size, Reg down, Reg offset, Reg factor, float* out) {
    const uint8_t* lane_of = kLaneOfPosition<kLanes>.lane[size];
    const int64_t positions = kLanes * size;
    const auto half = [&](__m128 x, const uint8_t* lanes) {
      const __m256d a = _mm256_mul_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_cvtps_pd(x), spread(down, lanes)), spread(offset, lanes)),
                                      spread(factor, lanes));
      return _mm256_cvtpd_ps(_mm256_add_pd(a, _mm256_setzero_pd()));
    };
    for (int64_t i = 0; i < positions; i += 8) {
      const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(positions - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      const __m256 x = _mm256_maskload_ps(values + i, live);
      const __m256 finite = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(__builtin_inff()), _CMP_LT_OQ);
      const __m256 a = _mm256_set_m128(half(_mm256_extractf128_ps(x, 1), lane_of + i + 4), half(_mm256_castps256_ps128(x), lane_of + i));
      _mm256_maskstore_ps(out + i, live, _mm256_and_ps(a, finite));
    }
  }
};

// Groups of up to 16 rewards run one per lane (small_groups.inc): past that the network over
// twice the registers AVX2 has costs more than the per-group path.
constexpr int64_t kLaneGroupMax = 16;

#include "cpu/small_groups.inc"

}  // namespace gapo::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace gapo::cpu::avx2 {

#include "cpu/vector_scans.inc"

}  // namespace gapo::cpu::avx2

#endif  // GAPO_CPU_ISA_X86
