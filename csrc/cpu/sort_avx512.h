// The AVX-512 register type of the sorting network (sort_network.inc): 16 floats per zmm.
// Compiled for AVX-512F by a target region, called only when cpu_isa.h picked avx512.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

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
  static int partition_step(Reg v, Reg pivot, float* left, float* right_end) {
    const __mmask16 below = _mm512_cmp_ps_mask(v, pivot, OrEqual ? _CMP_LE_OQ : _CMP_LT_OQ);
    const int count_below = std::popcount(static_cast<unsigned>(below));
    _mm512_storeu_ps(left, _mm512_maskz_compress_ps(below, v));
    _mm512_storeu_ps(right_end - 16, _mm512_maskz_expand_ps(static_cast<__mmask16>(0xFFFFu << count_below), _mm512_maskz_compress_ps(static_cast<__mmask16>(~below), v)));
    return count_below;
  }
  // The same for the first `count` lanes of v alone, writing nothing else.
  template <bool OrEqual>
  static int partition_tail(Reg v, Reg pivot, int count, float* left, float* right_end) {
    const __mmask16 live = static_cast<__mmask16>((1u << count) - 1u);
    const __mmask16 below = _mm512_mask_cmp_ps_mask(live, v, pivot, OrEqual ? _CMP_LE_OQ : _CMP_LT_OQ);
    const int count_below = std::popcount(static_cast<unsigned>(below));
    const int count_above = count - count_below;
    _mm512_mask_storeu_ps(left, static_cast<__mmask16>((1u << count_below) - 1u), _mm512_maskz_compress_ps(below, v));
    _mm512_mask_storeu_ps(right_end - count_above, static_cast<__mmask16>((1u << count_above) - 1u),
                          _mm512_maskz_compress_ps(static_cast<__mmask16>(live & ~below), v));
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
  static Reg reverse(Reg v) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), v);
  }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm512_mask_blend_ps(static_cast<__mmask16>(M), lo, hi);
  }
};

#include "cpu/sort_network.inc"
#include "cpu/sort_partition.inc"

}  // namespace gapo::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#endif  // GAPO_CPU_ISA_X86
