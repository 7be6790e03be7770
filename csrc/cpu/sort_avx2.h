// The AVX2 register type of the sorting network (sort_network.inc): 8 floats per ymm.
// Compiled for AVX2 by a target region, called only when cpu_isa.h picked avx2.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cpu/cpu_isa.h"

#ifdef GAPO_CPU_ISA_X86
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")
#endif

namespace gapo::cpu::avx2 {

// For each 8-bit lane mask, the lane order that puts the masked lanes first (in lane order)
// and the others after them: one vpermps then packs a register for both ends of a partition.
struct PartitionOrders {
  std::array<std::array<uint8_t, 8>, 256> order;
  constexpr PartitionOrders() : order{} {
    for (int mask = 0; mask < 256; ++mask) {
      int next = 0;
      for (int lane = 0; lane < 8; ++lane) {
        if (mask & (1 << lane)) order[mask][next++] = static_cast<uint8_t>(lane);
      }
      for (int lane = 0; lane < 8; ++lane) {
        if (!(mask & (1 << lane))) order[mask][next++] = static_cast<uint8_t>(lane);
      }
    }
  }
};
alignas(64) inline constexpr PartitionOrders kPartitionOrders{};

struct IntKeys;

struct V {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  // The register type of the column sorts held in memory (sort_in_columns).
  using ColumnKeys = IntKeys;

  // Missing rewards (NaN, +/-inf) become +inf, -0 becomes +0; `live` selects the lanes read.
  static Reg keys_of(__m256 x, __m256 live) {
    const __m256 inf = _mm256_set1_ps(__builtin_inff());
    const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 finite = _mm256_and_ps(live, _mm256_cmp_ps(magnitude, inf, _CMP_LT_OQ));
    return _mm256_blendv_ps(inf, _mm256_add_ps(x, _mm256_setzero_ps()), finite);
  }
  static __m256i live_lanes(int64_t left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg load(const float* src, int64_t first, int64_t count) {
    const int64_t left = count - first;
    if (left >= 8) return keys_of(_mm256_loadu_ps(src + first), _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    if (left <= 0) return _mm256_set1_ps(__builtin_inff());
    const __m256i live = live_lanes(left);
    return keys_of(_mm256_maskload_ps(src + first, live), _mm256_castsi256_ps(live));
  }
  static void store(float* dst, int64_t first, int64_t count, Reg v) {
    const int64_t left = count - first;
    if (left >= 8) return _mm256_storeu_ps(dst + first, v);
    if (left > 0) _mm256_maskstore_ps(dst + first, live_lanes(left), v);
  }
  static Reg loadu(const float* src) { return _mm256_loadu_ps(src); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  // The lanes of v in the order of kPartitionOrders[mask]; returns the count of lanes below the pivot.
  template <bool OrEqual>
  static unsigned lanes_below(Reg v, Reg pivot) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, pivot, OrEqual ? _CMP_LE_OQ : _CMP_LT_OQ)));
  }
  static Reg packed(Reg v, unsigned mask) {
    const __m256i order =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(kPartitionOrders.order[mask].data())));
    return _mm256_permutevar8x32_ps(v, order);
  }
  template <bool OrEqual>
  static int partition_step(Reg v, Reg pivot, int count, float* left, float* right_end) {
    const unsigned dead = 0xFFu & ~((1u << count) - 1u);
    const unsigned below = lanes_below<OrEqual>(v, pivot) & ~dead;
    // Below, then the dead lanes (the highest), then the rest: the rest end the register.
    const Reg order = packed(v, below | dead);
    _mm256_storeu_ps(left, order);
    _mm256_storeu_ps(right_end - 8, order);
    return std::popcount(below);
  }
  template <bool OrEqual>
  static int partition_last(Reg v, Reg pivot, float* left) {
    const unsigned below = lanes_below<OrEqual>(v, pivot);
    _mm256_storeu_ps(left, packed(v, below));
    return std::popcount(below);
  }
  static constexpr int64_t kQuicksortLeafMax = 128;
  // Networks span at most 16 ymm; 256 keys are sorted in column form (sort_network.inc).
  static constexpr int kNetworkRegistersMax = 16;
  // Leaves above these are padded to 64 for sort_8_registers_in_columns and to 128 for
  // sort_in_columns<16> (sort_network.inc, sort_partition.inc).
  static constexpr int64_t kColumnLeafMin = 32;
  static constexpr int64_t kColumnSortLeafMin = 84;
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  template <int J>
  static Reg swap(Reg v) {
    if constexpr (J == 1) return _mm256_permute_ps(v, 0xB1);         // lanes 1 0 3 2 in each 128 bits
    if constexpr (J == 2) return _mm256_permute_ps(v, 0x4E);         // lanes 2 3 0 1 in each 128 bits
    if constexpr (J == 4) return _mm256_permute2f128_ps(v, v, 0x01);  // the two 128-bit halves swapped
  }
  template <int K>
  static Reg flip(Reg v) {
    static_assert(K == 4);
    return _mm256_permute_ps(v, 0x1B);  // lanes 3 2 1 0 in each 128 bits
  }
  static constexpr int kColumnSortRegisters = 8;
  // Register c takes lane c of every register.
  [[gnu::always_inline]] static void transpose(Reg* v) {
    const Reg t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const Reg t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const Reg t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const Reg t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const Reg u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const Reg u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const Reg u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const Reg u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    v[0] = _mm256_permute2f128_ps(u0, u4, 0x20), v[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    v[1] = _mm256_permute2f128_ps(u1, u5, 0x20), v[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    v[2] = _mm256_permute2f128_ps(u2, u6, 0x20), v[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    v[3] = _mm256_permute2f128_ps(u3, u7, 0x20), v[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
  }
  static Reg reverse(Reg v) { return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0)); }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm256_blend_ps(lo, hi, static_cast<int>(M));
  }
  // The 8 registers from `first` of a column form over R registers, transposed: register i
  // holds the keys R i + first .. R i + first + 7.
  static void store_transposed(float* dst, int R, int first, int64_t count, const Reg* v) {
    for (int i = 0; i < 8; ++i) store(dst, int64_t(R) * i + first, count, v[i]);
  }
};

// The keys of V as int32 whose signed order is the keys' float order (a float's magnitude,
// negated for a negative float), for the column sorts held in memory (sort_in_columns): those
// are mostly min and max, and integer min/max issue on twice the ports of float min/max (4
// against 2 ymm per cycle on Zen 4; 3 against 2 on Intel cores since Skylake). Four integer
// steps map each register on load, three map it back on store; the keys stored are V's, bit
// for bit.
// AVX2, ns/key: 128 keys 0.53 against 0.60 on floats, 256: 0.57 against 0.67, 512: 0.71
// against 0.84, 1024: 0.81 against 0.95; the 64-key column sort, held in registers, stays on
// floats (0.50 against 0.54).
struct IntKeys {
  using Reg = __m256i;
  static constexpr int kLanes = 8;
  static constexpr int32_t kMissingKey = 0x7f800000;  // +inf's bits
  // The key of each lane of float bits: the magnitude, negated for a negative float (so -0 is
  // 0, as +0 is), kMissingKey for NaN and +/-inf and for the `dead` lanes.
  static Reg keys_of(Reg bits, Reg dead) {
    const Reg magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
    const Reg missing = _mm256_or_si256(_mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(kMissingKey - 1)), dead);
    return _mm256_blendv_epi8(_mm256_sign_epi32(magnitude, bits), _mm256_set1_epi32(kMissingKey), missing);
  }
  static Reg load(const float* src, int64_t first, int64_t count) {
    const int64_t left = count - first;
    if (left >= 8) return keys_of(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + first)), _mm256_setzero_si256());
    if (left <= 0) return _mm256_set1_epi32(kMissingKey);
    const __m256i live = V::live_lanes(left);
    return keys_of(_mm256_castps_si256(_mm256_maskload_ps(src + first, live)), _mm256_xor_si256(live, _mm256_set1_epi32(-1)));
  }
  // V's key (float bits) of each key: the magnitude with the key's sign.
  static void store(float* dst, int64_t first, int64_t count, Reg v) {
    const Reg bits = _mm256_or_si256(_mm256_abs_epi32(v), _mm256_and_si256(v, _mm256_set1_epi32(INT32_MIN)));
    V::store(dst, first, count, _mm256_castsi256_ps(bits));
  }
  // The 8 registers from `first` of a column form over R registers, transposed: register i
  // holds the keys R i + first .. R i + first + 7.
  static void store_transposed(float* dst, int R, int first, int64_t count, const Reg* v) {
    for (int i = 0; i < 8; ++i) store(dst, int64_t(R) * i + first, count, v[i]);
  }
  static Reg min(Reg a, Reg b) { return _mm256_min_epi32(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_epi32(a, b); }
  template <int J>
  static Reg swap(Reg v) {
    if constexpr (J == 1) return _mm256_shuffle_epi32(v, 0xB1);
    if constexpr (J == 2) return _mm256_shuffle_epi32(v, 0x4E);
    if constexpr (J == 4) return _mm256_permute2x128_si256(v, v, 0x01);
  }
  template <int K>
  static Reg flip(Reg v) {
    static_assert(K == 4);
    return _mm256_shuffle_epi32(v, 0x1B);
  }
  static Reg reverse(Reg v) { return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0)); }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    return _mm256_blend_epi32(lo, hi, static_cast<int>(M));
  }
  [[gnu::always_inline]] static void transpose(Reg* v) {
    __m256 f[8];
    for (int i = 0; i < 8; ++i) f[i] = _mm256_castsi256_ps(v[i]);
    V::transpose(f);
    for (int i = 0; i < 8; ++i) v[i] = _mm256_castps_si256(f[i]);
  }
};

#define GAPO_SORT_STAGE_INLINE [[gnu::always_inline]] inline
#include "cpu/sort_network.inc"
#undef GAPO_SORT_STAGE_INLINE

#include "cpu/sort_partition.inc"

}  // namespace gapo::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // GAPO_CPU_ISA_X86
