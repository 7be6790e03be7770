// AVX-512 versions of the CPU kernel's whole-group passes (group_scans.h) for float keys, with
// the bits of the portable passes, eight doubles (or sixteen floats) per instruction; the same
// scheme as group_scans_avx2.h, with mask registers for the tails and the blends:
//   - hdi_start: on float widths, sixteen per register, deciding near ties in double
//     (window_scan.inc);
//   - sum_of_squared_deviations: two accumulators hold the sixteen partial sums of
//     group_scans.h's order (parts 0..7 and 8..15);
//   - write_group_advantages: advantage_of per lane in the fused form of group_scans.h,
//     rounded to float, 0 for missing rewards.
// Only AVX-512F instructions are used (the path is picked on AVX-512F alone). A multiply-add is
// fused only where the product is exact, so it rounds as the portable passes' separate steps
// do: the CPU sources are built with -ffp-contract=off, and no other multiply and add fuse.
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
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wuninitialized and
// -Wmaybe-uninitialized report wherever they are inlined; every lane is defined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gapo::cpu::avx512 {

// Below these sizes the portable passes are as fast (the call into this target region cannot
// be inlined into baseline code).
constexpr int64_t kVectorWindowScanMin = 16;  // windows
constexpr int64_t kVectorPassMin = 16;        // keys

inline __mmask16 first_lanes(int64_t live) {
  return live >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << live) - 1u);
}

// The low and high eight floats of x as doubles.
inline __m512d low_doubles(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
inline __m512d high_doubles(__m512 x) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}

// Sixteen floats per register for window_scan.inc.
struct FloatLanes {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static float least(Reg v) { return _mm512_reduce_min_ps(v); }
  static unsigned at_most(Reg v, float bound) {
    return static_cast<unsigned>(_mm512_cmp_ps_mask(v, _mm512_set1_ps(bound), _CMP_LE_OQ));
  }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg hide_first_lanes(Reg v, int count) {
    return _mm512_mask_mov_ps(v, static_cast<__mmask16>((1u << count) - 1u), _mm512_set1_ps(__builtin_inff()));
  }
  using Index = __m512i;
  static Index lane_starts(int64_t start) {
    return _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(start)),
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  }
  static Index select_narrower(Reg width, Reg least, Index starts, Index first) {
    return _mm512_mask_mov_epi32(first, _mm512_cmp_ps_mask(width, least, _CMP_LT_OQ), starts);
  }
  static void store_index(int32_t* dst, Index v) { _mm512_store_si512(dst, v); }
  // Two sets of eight double lanes; starts as 64-bit integers.
  struct DoubleBest {
    __m512d width[2];
    __m512i start[2];
  };
  static DoubleBest double_best() {
    const __m512d none = _mm512_set1_pd(__builtin_inf());
    const __m512i above_every_start = _mm512_set1_epi64(INT64_MAX);
    return DoubleBest{{none, none}, {above_every_start, above_every_start}};
  }
  static void visit_in_double(DoubleBest& best, const float* high, const float* low, int64_t start) {
    for (int h = 0; h < 2; ++h) {
      const __m512d width = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(high + start + 8 * h)),
                                          _mm512_cvtps_pd(_mm256_loadu_ps(low + start + 8 * h)));
      const __mmask8 narrower = _mm512_cmp_pd_mask(width, best.width[h], _CMP_LT_OQ);
      const __m512i starts = _mm512_add_epi64(_mm512_set1_epi64(start + 8 * h), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
      best.width[h] = _mm512_mask_mov_pd(best.width[h], narrower, width);
      best.start[h] = _mm512_mask_mov_epi64(best.start[h], narrower, starts);
    }
  }
  static int64_t best_start(const DoubleBest& best) {
    const __mmask8 second =
        _mm512_cmp_pd_mask(best.width[1], best.width[0], _CMP_LT_OQ) |
        (_mm512_cmp_pd_mask(best.width[1], best.width[0], _CMP_EQ_OQ) & _mm512_cmp_epi64_mask(best.start[1], best.start[0], _MM_CMPINT_LT));
    const __m512d width = _mm512_mask_mov_pd(best.width[0], second, best.width[1]);
    const __m512i start = _mm512_mask_mov_epi64(best.start[0], second, best.start[1]);
    const __mmask8 narrowest = _mm512_cmp_pd_mask(width, _mm512_set1_pd(_mm512_reduce_min_pd(width)), _CMP_EQ_OQ);
    return _mm512_mask_reduce_min_epi64(narrowest, start);
  }
};

#include "cpu/window_scan.inc"

// d = x * down - center as one fused multiply-add: x * down is exact (group_scans.h), so d
// rounds once either way.
inline double sum_of_squared_deviations_floats(const float* values, int64_t n, double down, double center) {
  const __m512d scale_down = _mm512_set1_pd(down);
  const __m512d negated_center = _mm512_set1_pd(-center);
  __m512d low_parts = _mm512_setzero_pd(), high_parts = _mm512_setzero_pd();  // parts 0..7, 8..15
  const auto add_squares = [&](__m512d& sum, __m512d x, __mmask8 live) {
    const __m512d d = _mm512_fmadd_pd(x, scale_down, negated_center);
    sum = _mm512_mask_add_pd(sum, live, sum, _mm512_mul_pd(d, d));
  };
  int64_t i = 0;
  for (; i + kSumParts <= n; i += kSumParts) {
    const __m512 x = _mm512_loadu_ps(values + i);
    add_squares(low_parts, low_doubles(x), 0xFF);
    add_squares(high_parts, high_doubles(x), 0xFF);
  }
  if (i < n) {
    const __mmask16 live = first_lanes(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(live, values + i);
    add_squares(low_parts, low_doubles(x), static_cast<__mmask8>(live));
    add_squares(high_parts, high_doubles(x), static_cast<__mmask8>(live >> 8));
  }
  // combine_sum_parts: parts j + 8, then j + 4, j + 2, j + 1.
  const __m512d eighth = _mm512_add_pd(low_parts, high_parts);
  const __m256d quarter = _mm256_add_pd(_mm512_castpd512_pd256(eighth), _mm512_extractf64x4_pd(eighth, 1));
  const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(quarter), _mm256_extractf128_pd(quarter, 1));
  return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
}

// Eight advantages from eight floats in the fused form (group_scans.h); kMayMiss: lanes of
// missing rewards give +0 (a group without missing rewards skips that test).
template <bool kMayMiss>
inline __m256 fused_advantages_of(__m256 x, __m512d down, __m512d negated_offset, __m512d factor) {
  const __m256 a = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_fmadd_pd(_mm512_cvtps_pd(x), down, negated_offset), factor));
  if constexpr (!kMayMiss) return a;
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  return _mm256_and_ps(a, _mm256_cmp_ps(magnitude, _mm256_set1_ps(__builtin_inff()), _CMP_LT_OQ));
}

// Eight floats a step: sixteen would cost a lane extract and insert per step for the
// conversions.
template <bool kMayMiss>
inline void write_fused_advantages_floats(const float* values, int64_t n, const AdvantageMap& map, float* out) {
  const __m512d down = _mm512_set1_pd(map.down);
  const __m512d negated_offset = _mm512_set1_pd(0.0 - map.offset);  // +0 for either zero (group_scans.h)
  const __m512d factor = _mm512_set1_pd(map.factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, fused_advantages_of<kMayMiss>(_mm256_loadu_ps(values + i), down, negated_offset, factor));
  }
  if (i < n) {
    const __mmask8 live = static_cast<__mmask8>(first_lanes(n - i));
    const __m256 x = _mm512_castps512_ps256(_mm512_maskz_loadu_ps(live, values + i));
    _mm512_mask_storeu_ps(out + i, live, _mm512_castps256_ps512(fused_advantages_of<kMayMiss>(x, down, negated_offset, factor)));
  }
}

// Sixteen advantages from sixteen floats by advantage_of's steps; kMayMiss as above.
template <bool kMayMiss = true>
inline __m512 advantages_of(__m512 x, __m512d down, __m512d offset, __m512d factor) {
  const auto half = [&](__m512d r) {
    const __m512d a = _mm512_mul_pd(_mm512_sub_pd(_mm512_mul_pd(r, down), offset), factor);
    return _mm512_cvtpd_ps(_mm512_add_pd(a, _mm512_setzero_pd()));
  };
  const __m512 a = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(half(low_doubles(x)))),
                                                       _mm256_castps_pd(half(high_doubles(x))), 1));
  if constexpr (!kMayMiss) return a;
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ), a);
}

template <bool kMayMiss>
inline void write_advantages_floats(const float* values, int64_t n, const AdvantageMap& map, float* out) {
  const __m512d down = _mm512_set1_pd(map.down);
  const __m512d offset = _mm512_set1_pd(map.offset);
  const __m512d factor = _mm512_set1_pd(map.factor);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, advantages_of<kMayMiss>(_mm512_loadu_ps(values + i), down, offset, factor));
  }
  if (i < n) {
    const __mmask16 live = first_lanes(n - i);
    _mm512_mask_storeu_ps(out + i, live,
                          advantages_of<kMayMiss>(_mm512_maskz_loadu_ps(live, values + i), down, offset, factor));
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

// The vector type of small_groups.inc's lanes: eight doubles, mask registers for compares.
struct Lanes {
  using Reg = __m512d;
  using Mask = __mmask8;
  static constexpr int kLanes = 8;
  static Reg set1(double v) { return _mm512_set1_pd(v); }
  static Reg lane_index() { return _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7); }
  static void store(double* dst, Reg v) { _mm512_store_pd(dst, v); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_pd(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_pd(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_pd(a, b); }
  static Reg sqrt(Reg a) { return _mm512_sqrt_pd(a); }
  static Reg min(Reg a, Reg b) { return _mm512_min_pd(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_pd(a, b); }
  static Reg abs(Reg a) { return _mm512_abs_pd(a); }
  static Reg ceil(Reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC); }
  static Reg floor(Reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static Mask lt(Reg a, Reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static Mask eq(Reg a, Reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static Mask both(Mask a, Mask b) { return a & b; }
  static Mask either(Mask a, Mask b) { return a | b; }
  static Mask negate(Mask a) { return static_cast<Mask>(~a); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm512_mask_blend_pd(m, b, a); }
  static Reg add_where(Mask m, Reg a, Reg b) { return _mm512_mask_add_pd(a, m, a, b); }
  static Reg gather(const double* base, Reg index) { return _mm512_i32gather_pd(_mm512_cvtpd_epi32(index), base, 8); }
  static Reg load_keys(const float* values, const int64_t* first, const int64_t* size, int j) {
    // Built from scalars, not loaded as a vector: the caller has just stored them one by one,
    // and a wide load of narrower stores waits for them to reach the cache.
    const __m512i at = _mm512_add_epi64(
        _mm512_setr_epi64(first[0], first[1], first[2], first[3], first[4], first[5], first[6], first[7]),
        _mm512_set1_epi64(j));
    const __mmask8 live = _mm512_cmplt_epi64_mask(
        _mm512_set1_epi64(j), _mm512_setr_epi64(size[0], size[1], size[2], size[3], size[4], size[5], size[6], size[7]));
    const __m512d inf = _mm512_set1_pd(__builtin_inff());
    const __m512d x = _mm512_cvtps_pd(_mm512_mask_i64gather_ps(_mm256_set1_ps(__builtin_inff()), live, at, values, 4));
    const __mmask8 finite = _mm512_cmp_pd_mask(_mm512_abs_pd(x), inf, _CMP_LT_OQ);
    return _mm512_mask_add_pd(inf, finite, x, _mm512_setzero_pd());  // -0 read as +0
  }
  template <int kWidth>
  static void load_run(const float* values, int64_t size, Reg* key) {
    const __m256i group_start = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(size)));
    const __m512d inf = _mm512_set1_pd(__builtin_inff());
    for (int j = 0; j < kWidth; ++j) {
      if (j >= size) {
        key[j] = inf;
        continue;
      }
      const __m512d x = _mm512_cvtps_pd(_mm256_i32gather_ps(values + j, group_start, 4));
      const __mmask8 finite = _mm512_cmp_pd_mask(_mm512_abs_pd(x), inf, _CMP_LT_OQ);
      key[j] = _mm512_mask_add_pd(inf, finite, x, _mm512_setzero_pd());  // -0 read as +0
    }
  }
  // group_scaling: e = (exponent field of m) - 1022, clamped to [-1021, 1022].
  static void scale_exponents(Reg m, Reg& down, Reg& up) {
    __m512i field = _mm512_srli_epi64(_mm512_castpd_si512(m), 52);
    field = _mm512_min_epi64(_mm512_max_epi64(field, _mm512_set1_epi64(1)), _mm512_set1_epi64(2044));
    down = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_sub_epi64(_mm512_set1_epi64(2045), field), 52));
    up = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(field, _mm512_set1_epi64(1)), 52));
  }
  static double max_lane(Reg a) { return _mm512_reduce_max_pd(a); }
  static void write_lanes(const float* values, int64_t size, Reg down, Reg offset, Reg factor, float* out) {
    const uint8_t* lane_of = kLaneOfPosition<kLanes>.lane[size];
    const int64_t positions = kLanes * size;
    const auto half = [&](__m512d x, const uint8_t* lanes) {
      const __m512i lane = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(lanes)));
      const __m512d a = _mm512_mul_pd(
          _mm512_sub_pd(_mm512_mul_pd(x, _mm512_permutexvar_pd(lane, down)), _mm512_permutexvar_pd(lane, offset)),
          _mm512_permutexvar_pd(lane, factor));
      return _mm512_cvtpd_ps(_mm512_add_pd(a, _mm512_setzero_pd()));
    };
    for (int64_t i = 0; i < positions; i += 16) {
      const __mmask16 live = first_lanes(positions - i);
      const __m512 x = _mm512_maskz_loadu_ps(live, values + i);
      const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ);
      const __m512d both = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(half(low_doubles(x), lane_of + i))),
                                              _mm256_castps_pd(half(high_doubles(x), lane_of + i + 8)), 1);
      _mm512_mask_storeu_ps(out + i, live, _mm512_maskz_mov_ps(finite, _mm512_castpd_ps(both)));
    }
  }
};

// Groups of up to 32 rewards run one per lane (small_groups.inc): past 16 they still beat the
// per-group path, whose statistics wait on one division chain per group.
constexpr int64_t kLaneGroupMax = 32;

#include "cpu/small_groups.inc"

}  // namespace gapo::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace gapo::cpu::avx512 {

#include "cpu/vector_scans.inc"

}  // namespace gapo::cpu::avx512

#endif  // GAPO_CPU_ISA_X86
