// The NEON register type of the sorting network (sort_network.inc): 4 floats per q register.
// Advanced SIMD is part of every AArch64 CPU, so no target region is needed.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "cpu/cpu_isa.h"

#ifdef GAPO_CPU_ISA_NEON
#include <arm_neon.h>

namespace gapo::cpu::neon {

struct V {
  using Reg = float32x4_t;
  static constexpr int kLanes = 4;

  // Missing rewards (NaN, +/-inf) become +inf, -0 becomes +0.
  static Reg keys_of(Reg x) {
    const float32x4_t inf = vdupq_n_f32(__builtin_inff());
    const uint32x4_t finite = vcaltq_f32(x, inf);  // |x| < |inf|: false for NaN and +/-inf
    return vbslq_f32(finite, vaddq_f32(x, vdupq_n_f32(0.0f)), inf);
  }
  static Reg load(const float* src, int64_t first, int64_t count) {
    const int64_t left = count - first;
    if (left >= 4) return keys_of(vld1q_f32(src + first));
    float lanes[4] = {__builtin_inff(), __builtin_inff(), __builtin_inff(), __builtin_inff()};
    for (int64_t i = 0; i < left; ++i) lanes[i] = src[first + i];
    return keys_of(vld1q_f32(lanes));
  }
  static void store(float* dst, int64_t first, int64_t count, Reg v) {
    const int64_t left = count - first;
    if (left >= 4) return vst1q_f32(dst + first, v);
    float lanes[4];
    vst1q_f32(lanes, v);
    for (int64_t i = 0; i < left; ++i) dst[first + i] = lanes[i];
  }
  static Reg min(Reg a, Reg b) { return vminq_f32(a, b); }
  static Reg max(Reg a, Reg b) { return vmaxq_f32(a, b); }
  template <int J>
  static Reg swap(Reg v) {
    if constexpr (J == 1) return vrev64q_f32(v);       // lanes 1 0 3 2
    if constexpr (J == 2) return vextq_f32(v, v, 2);  // lanes 2 3 0 1
  }
  template <int K>
  static Reg flip(Reg v) {
    static_assert(K == 2 || K == 4);
    if constexpr (K == 2) return vrev64q_f32(v);
    return reverse(v);
  }
  static constexpr int kColumnSortRegisters = 0;
  static void transpose(Reg*) {}
  static Reg reverse(Reg v) {
    const float32x4_t pairs_swapped = vrev64q_f32(v);  // 1 0 3 2
    return vextq_f32(pairs_swapped, pairs_swapped, 2);  // 3 2 1 0
  }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    const uint32x4_t take_hi = {(M & 1u) ? ~0u : 0u, (M & 2u) ? ~0u : 0u, (M & 4u) ? ~0u : 0u, (M & 8u) ? ~0u : 0u};
    return vbslq_f32(take_hi, hi, lo);
  }
};

#define GAPO_SORT_STAGE_INLINE inline
#include "cpu/sort_network.inc"
#undef GAPO_SORT_STAGE_INLINE

}  // namespace gapo::cpu::neon

#endif  // GAPO_CPU_ISA_NEON
