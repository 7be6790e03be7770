// The AVX-512 register type of the sorting network (sort_network.inc): 16 floats per zmm.
// Compiled for AVX-512F by a target region, called only when cpu_isa.h picked avx512.
#pragma once

#include <algorithm>
#include <bit>
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

struct V {
  using Reg = __m512;
  static constexpr int kLanes = 16;

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
  static void transpose(Reg* v) {
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
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm512_mask_blend_ps(static_cast<__mmask16>(M), lo, hi);
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
