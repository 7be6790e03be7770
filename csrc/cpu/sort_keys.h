// Ascending sort of one group's finite reward keys, picked by size:
//   n <= 256 floats, CPU with AVX-512:  bitonic network in 1..16 zmm registers (no branches)
//   n <= 32:                             insertion sort (shared with the GPU header)
//   n > 256 floats:                      LSD radix sort, 3 passes of 11 bits
//   otherwise:                           std::sort
// Only the order changes, never a value: every path hands the same sorted keys to the shared
// per-group logic, so the choice of window and median cannot depend on the path taken.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gapo/group_logic.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GAPO_HAVE_AVX512_SORT 1
#include <immintrin.h>
#endif

namespace gapo::cpu {

constexpr int64_t kInsertionSortMax = 32;
constexpr int64_t kRadixSortMin = 257;

#ifdef GAPO_HAVE_AVX512_SORT
namespace detail {

// Bitonic sort of 16 * R floats held in R zmm registers. Element i = 16 * r + lane. Each
// substage (k, j) compares element i with i ^ j and keeps the max where bit j of i is set
// XOR i sits in a descending block (bit k of i set). For j >= 16 the partner is in another
// register (a plain min/max of two registers); for j < 16 it is in the same register (one
// permute). Every branch below depends only on R, k and j, so the loops fully unroll.
struct LanePermutes {
  std::array<std::array<int32_t, 16>, 4> partner;  // for j = 1, 2, 4, 8
  std::array<uint16_t, 4> bit_set;                 // lanes with bit j (or k) set: j, k = 1..8
};

constexpr LanePermutes make_lane_permutes() {
  LanePermutes p{};
  for (int b = 0; b < 4; ++b) {
    for (int lane = 0; lane < 16; ++lane) p.partner[b][lane] = lane ^ (1 << b);
  }
  for (int b = 0; b < 4; ++b) {
    for (int lane = 0; lane < 16; ++lane) {
      if (lane & (1 << b)) p.bit_set[b] |= static_cast<uint16_t>(1u << lane);
    }
  }
  return p;
}

inline constexpr LanePermutes kLanes = make_lane_permutes();

constexpr int log2_of(int v) { return v <= 1 ? 0 : 1 + log2_of(v / 2); }

template <int R>
__attribute__((target("avx512f"))) inline void bitonic_sort_avx512(float* keys, int64_t n) {
  __m512 v[R];
  const __m512 pad = _mm512_set1_ps(__builtin_inff());  // sorts last, never read back
  for (int r = 0; r < R; ++r) {
    const int64_t left = n - 16 * r;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
    v[r] = _mm512_mask_loadu_ps(pad, live, keys + 16 * r);
  }
  for (int k = 2; k <= 16 * R; k *= 2) {
    for (int j = k / 2; j >= 1; j /= 2) {
      if (j >= 16) {
        const int reg_stride = j / 16;
        for (int r = 0; r < R; ++r) {
          if (r & reg_stride) continue;
          const bool descending = ((16 * r) & k) != 0;
          const __m512 lo = _mm512_min_ps(v[r], v[r + reg_stride]);
          const __m512 hi = _mm512_max_ps(v[r], v[r + reg_stride]);
          v[r] = descending ? hi : lo;
          v[r + reg_stride] = descending ? lo : hi;
        }
      } else {
        const __m512i partner = _mm512_loadu_si512(kLanes.partner[log2_of(j)].data());
        for (int r = 0; r < R; ++r) {
          // k < 16: direction varies by lane; k >= 16: bit k of i lies in r, so the whole
          // register shares one direction.
          const uint16_t descending =
              k < 16 ? kLanes.bit_set[log2_of(k)] : (((16 * r) & k) ? uint16_t(0xFFFF) : uint16_t(0));
          const __mmask16 take_max = static_cast<__mmask16>(kLanes.bit_set[log2_of(j)] ^ descending);
          const __m512 other = _mm512_permutexvar_ps(partner, v[r]);
          v[r] = _mm512_mask_mov_ps(_mm512_min_ps(v[r], other), take_max, _mm512_max_ps(v[r], other));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t left = n - 16 * r;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
    _mm512_mask_storeu_ps(keys + 16 * r, live, v[r]);
  }
}

// B independent groups of at most 16 keys, one zmm each, sorted ascending in lockstep. One
// group's network is a chain of ten dependent permute/min/max steps (latency-bound); B chains
// interleaved keep the vector units busy, so a batch of 4 costs little more than one group.
template <int B>
__attribute__((target("avx512f"))) inline void sort16_batch_avx512(float (*keys)[16], const int64_t* n) {
  __m512 v[B];
  const __m512 pad = _mm512_set1_ps(__builtin_inff());
  for (int b = 0; b < B; ++b) v[b] = _mm512_mask_loadu_ps(pad, static_cast<__mmask16>((1u << n[b]) - 1u), keys[b]);
  for (int k = 2; k <= 16; k *= 2) {
    for (int j = k / 2; j >= 1; j /= 2) {
      const __m512i partner = _mm512_loadu_si512(kLanes.partner[log2_of(j)].data());
      const uint16_t descending = k < 16 ? kLanes.bit_set[log2_of(k)] : uint16_t(0);
      const __mmask16 take_max = static_cast<__mmask16>(kLanes.bit_set[log2_of(j)] ^ descending);
      for (int b = 0; b < B; ++b) {
        const __m512 other = _mm512_permutexvar_ps(partner, v[b]);
        v[b] = _mm512_mask_mov_ps(_mm512_min_ps(v[b], other), take_max, _mm512_max_ps(v[b], other));
      }
    }
  }
  for (int b = 0; b < B; ++b) _mm512_mask_storeu_ps(keys[b], static_cast<__mmask16>((1u << n[b]) - 1u), v[b]);
}

// Largest group sorted in registers: 16 zmm of 16 floats.
constexpr int64_t kRegisterSortMax = 256;

__attribute__((target("avx512f"))) inline void register_sort_avx512(float* keys, int64_t n) {
  if (n <= 16) return bitonic_sort_avx512<1>(keys, n);
  if (n <= 32) return bitonic_sort_avx512<2>(keys, n);
  if (n <= 64) return bitonic_sort_avx512<4>(keys, n);
  if (n <= 128) return bitonic_sort_avx512<8>(keys, n);
  return bitonic_sort_avx512<16>(keys, n);
}

inline bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

}  // namespace detail
#endif

// Order-preserving map of a float's bits to an unsigned key (negatives reversed below positives).
inline uint32_t float_to_radix_key(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

inline float radix_key_to_float(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// LSD radix sort of n floats, 3 passes of 11 bits; `buffer` is the caller's reusable scratch.
inline void radix_sort_floats(float* keys, int64_t n, std::vector<uint32_t>& buffer) {
  constexpr int kBits = 11;
  constexpr uint32_t kBuckets = 1u << kBits;
  buffer.resize(2 * static_cast<size_t>(n));
  uint32_t* a = buffer.data();
  uint32_t* b = a + n;
  std::array<std::array<uint32_t, kBuckets>, 3> counts{};
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = float_to_radix_key(keys[i]);
    a[i] = key;
    ++counts[0][key & (kBuckets - 1)];
    ++counts[1][(key >> kBits) & (kBuckets - 1)];
    ++counts[2][key >> (2 * kBits)];
  }
  for (int pass = 0; pass < 3; ++pass) {
    uint32_t total = 0;
    for (uint32_t& c : counts[pass]) {
      const uint32_t size = c;
      c = total;
      total += size;
    }
    const int shift = pass * kBits;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = a[i];
      b[counts[pass][(key >> shift) & (kBuckets - 1)]++] = key;
    }
    std::swap(a, b);
  }
  for (int64_t i = 0; i < n; ++i) keys[i] = radix_key_to_float(a[i]);
}

// Groups of at most kBatchKeys float keys are sorted kSortBatch at a time by sort_batch when
// the CPU allows it (batch_sort_available); the rest go through sort_keys one by one.
constexpr int kSortBatch = 4;
constexpr int64_t kBatchKeys = 16;

inline bool batch_sort_available() {
#ifdef GAPO_HAVE_AVX512_SORT
  return detail::cpu_has_avx512();
#else
  return false;
#endif
}

// Sorts keys[0..count) (count <= kSortBatch), keys[b] holding n[b] <= kBatchKeys floats.
inline void sort_batch(float (*keys)[kBatchKeys], const int64_t* n, int count) {
#ifdef GAPO_HAVE_AVX512_SORT
  if (count == kSortBatch) return detail::sort16_batch_avx512<kSortBatch>(keys, n);
  for (int b = 0; b < count; ++b) detail::sort16_batch_avx512<1>(keys + b, n + b);
#else
  for (int b = 0; b < count; ++b) insertion_sort(keys[b], n[b]);
#endif
}

template <class K>
inline void sort_keys(K* keys, int64_t n, std::vector<uint32_t>& radix_buffer) {
  if constexpr (std::is_same_v<K, float>) {
#ifdef GAPO_HAVE_AVX512_SORT
    if (n > 1 && n <= detail::kRegisterSortMax && detail::cpu_has_avx512()) {
      return detail::register_sort_avx512(keys, n);
    }
#endif
    if (n >= kRadixSortMin) return radix_sort_floats(keys, n, radix_buffer);
  }
  if (n <= kInsertionSortMax) return insertion_sort(keys, n);
  std::sort(keys, keys + n);
}

}  // namespace gapo::cpu
