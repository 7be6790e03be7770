// The AVX-512 register type of the sorting network (sort_network.inc): 16 floats per zmm.
// Compiled for AVX-512F by a target region, called only when cpu_isa.h picked avx512.
#pragma once

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cpu/cpu_isa.h"

#ifdef GAPO_CPU_ISA_X86
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,popcnt")
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wuninitialized and
// -Wmaybe-uninitialized report wherever they are inlined; every lane is defined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gapo::cpu::avx512 {

struct IntKeys;

struct V {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  // The register type of the column sorts held in memory (sort_in_columns).
  using ColumnKeys = IntKeys;

  static __mmask16 live_lanes(int64_t first, int64_t count) {
    const int64_t left = count - first;
    return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
  }
  static Reg load(const float* src, int64_t first, int64_t count) {
    const __mmask16 live = live_lanes(first, count);
    const __m512 inf = _mm512_set1_ps(__builtin_inff());
    const __m512 x = _mm512_maskz_loadu_ps(live, live ? src + first : src);
    // |x| < inf is false for NaN and +/-inf; x + 0 turns -0 into +0.
    const __mmask16 finite = _mm512_mask_cmp_ps_mask(live, _mm512_abs_ps(x), inf, _CMP_LT_OQ);
    return _mm512_mask_add_ps(inf, finite, x, _mm512_setzero_ps());
  }
  static void store(float* dst, int64_t first, int64_t count, Reg v) {
    const __mmask16 live = live_lanes(first, count);
    if (live) _mm512_mask_storeu_ps(dst + first, live, v);
  }
  static Reg loadu(const float* src) { return _mm512_loadu_ps(src); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  template <bool OrEqual>
  static int partition_step(Reg v, Reg pivot, int count, float* left, float* right_end) {
    const __mmask16 live = static_cast<__mmask16>((1u << count) - 1u);
    const __mmask16 below = _mm512_mask_cmp_ps_mask(live, v, pivot, OrEqual ? _CMP_LE_OQ : _CMP_LT_OQ);
    const int count_below = std::popcount(static_cast<unsigned>(below));
    const int count_above = count - count_below;
    _mm512_storeu_ps(left, _mm512_maskz_compress_ps(below, v));
    // The others compressed, then moved up to end the register.
    const __mmask16 top = static_cast<__mmask16>(0xFFFFu << (16 - count_above));
    _mm512_storeu_ps(right_end - 16, _mm512_maskz_expand_ps(top, _mm512_maskz_compress_ps(static_cast<__mmask16>(live & ~below), v)));
    return count_below;
  }
  template <bool OrEqual>
  static int partition_last(Reg v, Reg pivot, float* left) {
    const __mmask16 below = _mm512_cmp_ps_mask(v, pivot, OrEqual ? _CMP_LE_OQ : _CMP_LT_OQ);
    const int count_below = std::popcount(static_cast<unsigned>(below));
    const __mmask16 rest = static_cast<__mmask16>(0xFFFFu << count_below);
    const Reg others = _mm512_maskz_expand_ps(rest, _mm512_maskz_compress_ps(static_cast<__mmask16>(~below), v));
    _mm512_storeu_ps(left, _mm512_mask_blend_ps(rest, _mm512_maskz_compress_ps(below, v), others));
    return count_below;
  }
  static constexpr int64_t kQuicksortLeafMax = 256;
  // Leaves above these are padded to 128 for sort_8_registers_in_columns and to 256 for
  // sort_in_columns<16> (sort_network.inc, sort_partition.inc).
  static constexpr int64_t kColumnLeafMin = 64;
  static constexpr int64_t kColumnSortLeafMin = 144;
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  template <int J>
  static Reg swap(Reg v) {
    if constexpr (J == 1) return _mm512_permute_ps(v, 0xB1);       // lanes 1 0 3 2 in each 128 bits
    if constexpr (J == 2) return _mm512_permute_ps(v, 0x4E);       // lanes 2 3 0 1 in each 128 bits
    if constexpr (J == 4) return _mm512_shuffle_f32x4(v, v, 0xB1);  // 128-bit blocks 1 0 3 2
    if constexpr (J == 8) return _mm512_shuffle_f32x4(v, v, 0x4E);  // 128-bit blocks 2 3 0 1
  }
  template <int K>
  static Reg flip(Reg v) {
    static_assert(K == 4 || K == 8);
    if constexpr (K == 4) return _mm512_permute_ps(v, 0x1B);  // lanes 3 2 1 0 in each 128 bits
    if constexpr (K == 8) return _mm512_permutexvar_ps(_mm512_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8), v);
  }
  static constexpr int kColumnSortRegisters = 8;
  [[gnu::always_inline]] static void transpose(Reg* v) {
    // Transpose each 256-bit half: lane c of each half of register c takes lane c of that
    // half of every register, now a sorted column.
    const Reg t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
    const Reg t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
    const Reg t4 = _mm512_unpacklo_ps(v[4], v[5]), t5 = _mm512_unpackhi_ps(v[4], v[5]);
    const Reg t6 = _mm512_unpacklo_ps(v[6], v[7]), t7 = _mm512_unpackhi_ps(v[6], v[7]);
    const Reg u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
    const Reg u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
    const Reg u4 = _mm512_shuffle_ps(t4, t6, 0x44), u5 = _mm512_shuffle_ps(t4, t6, 0xEE);
    const Reg u6 = _mm512_shuffle_ps(t5, t7, 0x44), u7 = _mm512_shuffle_ps(t5, t7, 0xEE);
    // Within each 256-bit half: the low 128 bits of a and b, then their high 128 bits.
    const __m512i lows = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i highs = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    v[0] = _mm512_permutex2var_ps(u0, lows, u4), v[4] = _mm512_permutex2var_ps(u0, highs, u4);
    v[1] = _mm512_permutex2var_ps(u1, lows, u5), v[5] = _mm512_permutex2var_ps(u1, highs, u5);
    v[2] = _mm512_permutex2var_ps(u2, lows, u6), v[6] = _mm512_permutex2var_ps(u2, highs, u6);
    v[3] = _mm512_permutex2var_ps(u3, lows, u7), v[7] = _mm512_permutex2var_ps(u3, highs, u7);
  }
  static Reg reverse(Reg v) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), v);
  }
  // The 8 registers from `first` of a column form over R >= 8 registers, transposed (transpose
  // works on each 256-bit half): lanes 0..7 of register i hold the keys R i + first ..
  // R i + first + 7, lanes 8..15 the keys R (i + 8) + first .. R (i + 8) + first + 7.
  static void store_transposed(float* dst, int R, int first, int64_t count, const Reg* v) {
    for (int i = 0; i < 8; ++i) {
      const int64_t low = int64_t(R) * i + first;
      const int64_t high = int64_t(R) * (i + 8) + first;  // >= 8 R >= 64: dst + high - 8 stays in dst
      const __mmask16 low_lanes = static_cast<__mmask16>(live_lanes(low, count) & 0xFFu);
      const __mmask16 high_lanes = static_cast<__mmask16>((live_lanes(high, count) & 0xFFu) << 8);
      if (low_lanes) _mm512_mask_storeu_ps(dst + low, low_lanes, v[i]);
      if (high_lanes) _mm512_mask_storeu_ps(dst + high - 8, high_lanes, v[i]);
    }
  }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm512_mask_blend_ps(static_cast<__mmask16>(M), lo, hi);
  }
};

// The keys of V as int32 whose signed order is their float order, for the column sorts held in
// memory (sort_in_columns), as AVX2's IntKeys (sort_avx2.h): a key is the float's magnitude,
// negated for a negative float (-0 and +0 meet at 0), +inf's bits for a missing reward.
// Integer min/max issue at twice the rate of float min/max on Zen 4 (2 zmm per cycle against 1).
struct IntKeys {
  using Reg = __m512i;
  static constexpr int kLanes = 16;
  static constexpr int32_t kMissingKey = 0x7f800000;  // +inf's bits
  static Reg load(const float* src, int64_t first, int64_t count) {
    const __mmask16 live = V::live_lanes(first, count);
    const Reg bits = _mm512_maskz_loadu_epi32(live, live ? src + first : src);
    const Reg magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 negative = _mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512());
    const __mmask16 finite = _mm512_mask_cmplt_epi32_mask(live, magnitude, _mm512_set1_epi32(kMissingKey));
    const Reg key = _mm512_mask_sub_epi32(magnitude, negative, _mm512_setzero_si512(), magnitude);
    return _mm512_mask_mov_epi32(_mm512_set1_epi32(kMissingKey), finite, key);
  }
  // V's key (float bits) of each key: the magnitude with the key's sign.
  static __m512 floats_of(Reg v) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_abs_epi32(v), _mm512_and_si512(v, _mm512_set1_epi32(INT32_MIN))));
  }
  static void store(float* dst, int64_t first, int64_t count, Reg v) { V::store(dst, first, count, floats_of(v)); }
  static void store_transposed(float* dst, int R, int first, int64_t count, const Reg* v) {
    __m512 keys[8];
    for (int i = 0; i < 8; ++i) keys[i] = floats_of(v[i]);
    V::store_transposed(dst, R, first, count, keys);
  }
  static Reg min(Reg a, Reg b) { return _mm512_min_epi32(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_epi32(a, b); }
  template <int J>
  static Reg swap(Reg v) {
    if constexpr (J == 1) return _mm512_shuffle_epi32(v, _MM_PERM_CDAB);   // lanes 1 0 3 2 in each 128 bits
    if constexpr (J == 2) return _mm512_shuffle_epi32(v, _MM_PERM_BADC);   // lanes 2 3 0 1 in each 128 bits
    if constexpr (J == 4) return _mm512_shuffle_i32x4(v, v, 0xB1);        // 128-bit blocks 1 0 3 2
    if constexpr (J == 8) return _mm512_shuffle_i32x4(v, v, 0x4E);        // 128-bit blocks 2 3 0 1
  }
  template <int K>
  static Reg flip(Reg v) {
    static_assert(K == 4 || K == 8);
    if constexpr (K == 4) return _mm512_shuffle_epi32(v, _MM_PERM_ABCD);  // lanes 3 2 1 0 in each 128 bits
    if constexpr (K == 8) return _mm512_permutexvar_epi32(_mm512_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8), v);
  }
  static Reg reverse(Reg v) {
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), v);
  }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm512_mask_blend_epi32(static_cast<__mmask16>(M), lo, hi);
  }
  [[gnu::always_inline]] static void transpose(Reg* v) {
    __m512 f[8];
    for (int i = 0; i < 8; ++i) f[i] = _mm512_castsi512_ps(v[i]);
    V::transpose(f);
    for (int i = 0; i < 8; ++i) v[i] = _mm512_castps_si512(f[i]);
  }
};

#define GAPO_SORT_STAGE_INLINE [[gnu::always_inline]] inline
#include "cpu/sort_network.inc"
#undef GAPO_SORT_STAGE_INLINE
#include "cpu/sort_partition.inc"

}  // namespace gapo::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#endif  // GAPO_CPU_ISA_X86
