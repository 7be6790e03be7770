// Ascending sort of one group's reward keys. Float keys (float32, float16 and bfloat16
// rewards) go through sort_float_group, which maps every missing reward (NaN, +/-inf) to +inf
// and -0 to +0 as it loads, so the sorted finite keys come first and their count is the
// number of keys before the first +inf. By group size:
//   <= 4:            a fixed compare-exchange network in scalar registers (any CPU); up to 8
//                    on the scalar path, one ymm on both x86 paths
//   <= 256:          a bitonic network in vector registers, for the path cpu_isa.h picked
//                    (AVX-512, AVX2, NEON, or the 4-lane portable register of the scalar path)
//   <= 512:          two blocks of 256 sorted by that network, then merged
//   larger:          LSD radix sort, 3 passes of 11 bits
// Float64 keys: insertion sort up to 32, std::sort above. Only the order changes, never a
// value: every path hands the same sorted keys to the shared per-group logic, so the choice of
// window and median cannot depend on the path taken.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/cpu_isa.h"
#include "cpu/sort_avx2.h"
#include "cpu/sort_avx512.h"
#include "cpu/sort_neon.h"
#include "cpu/sort_portable.h"
#include "gapo/group_logic.h"

namespace gapo::cpu {

constexpr int64_t kInsertionSortMax = 32;
constexpr int64_t kTinyNetworkMax = 8;
constexpr int64_t kRegisterSortMax = 256;
// One merge level: a merge costs ~2 ns per key per level (each pick waits on the previous
// one's loads), so from 1024 keys the radix sort's three passes are cheaper.
constexpr int64_t kBlockMergeMax = 512;

static_assert(portable::kRegisterSortMax == kRegisterSortMax);

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

// Fixed networks for groups of at most 8 keys, padded with +inf to 2, 4 or 8 (Knuth's
// optimal 1-, 5- and 19-comparator networks). Each compare-exchange is a branch-free min/max,
// so a batch of tiny groups runs at a few cycles per key.
inline void compare_exchange(float& a, float& b) {
  const float lo = std::min(a, b);
  const float hi = std::max(a, b);
  a = lo;
  b = hi;
}

// Sorts size <= Width keys, padded with +inf to Width, into dst[0, Width): the keys stay in
// registers and leave by one 4-byte store each, which the per-group logic's 4-byte loads read
// straight from the store buffer (a copy of the array would be read back in wider pieces,
// which stalls on every group).
template <int Width>
inline void sort_tiny(const float* src, int64_t size, float* dst) {
  float k[Width];
  for (int i = 0; i < Width; ++i) k[i] = i < size ? portable::V::key_of(src[i]) : __builtin_inff();
  if constexpr (Width == 2) {
    compare_exchange(k[0], k[1]);
  } else if constexpr (Width == 4) {
    compare_exchange(k[0], k[1]), compare_exchange(k[2], k[3]);
    compare_exchange(k[0], k[2]), compare_exchange(k[1], k[3]);
    compare_exchange(k[1], k[2]);
  } else {
    static_assert(Width == 8);
    compare_exchange(k[0], k[2]), compare_exchange(k[1], k[3]), compare_exchange(k[4], k[6]), compare_exchange(k[5], k[7]);
    compare_exchange(k[0], k[4]), compare_exchange(k[1], k[5]), compare_exchange(k[2], k[6]), compare_exchange(k[3], k[7]);
    compare_exchange(k[0], k[1]), compare_exchange(k[2], k[3]), compare_exchange(k[4], k[5]), compare_exchange(k[6], k[7]);
    compare_exchange(k[2], k[4]), compare_exchange(k[3], k[5]);
    compare_exchange(k[1], k[4]), compare_exchange(k[3], k[6]);
    compare_exchange(k[1], k[2]), compare_exchange(k[3], k[4]), compare_exchange(k[5], k[6]);
  }
  for (int i = 0; i < Width; ++i) dst[i] = k[i];
}

inline void sort_in_registers(CpuIsa isa, const float* src, int64_t size, float* dst) {
  switch (isa) {
#ifdef GAPO_CPU_ISA_X86
    case CpuIsa::Avx512:
      return avx512::sort_up_to_256(src, size, dst);
    case CpuIsa::Avx2:
      return avx2::sort_up_to_256(src, size, dst);
#endif
#ifdef GAPO_CPU_ISA_NEON
    case CpuIsa::Neon:
      return neon::sort_up_to_256(src, size, dst);
#endif
    default:
      return portable::sort_up_to_256(src, size, dst);
  }
}

// Merges sorted a[0, na) and b[0, nb) into out; the choice of the next key is a select, not a
// branch (a branch mispredicts on about every other key of random data).
inline void merge_sorted(const float* a, int64_t na, const float* b, int64_t nb, float* out) {
  int64_t i = 0;
  int64_t j = 0;
  while (i < na && j < nb) {
    const float x = a[i];
    const float y = b[j];
    const bool take_b = y < x;
    *out++ = take_b ? y : x;
    j += take_b;
    i += !take_b;
  }
  while (i < na) *out++ = a[i++];
  while (j < nb) *out++ = b[j++];
}

// Blocks of kRegisterSortMax keys sorted in registers, then merged bottom-up between dst and
// scratch (size floats). The result ends in dst.
inline void block_merge_sort(CpuIsa isa, const float* src, int64_t size, float* dst, float* scratch) {
  for (int64_t b = 0; b < size; b += kRegisterSortMax) {
    sort_in_registers(isa, src + b, std::min(kRegisterSortMax, size - b), dst + b);
  }
  float* from = dst;
  float* to = scratch;
  for (int64_t width = kRegisterSortMax; width < size; width *= 2) {
    for (int64_t lo = 0; lo < size; lo += 2 * width) {
      const int64_t mid = std::min(lo + width, size);
      const int64_t hi = std::min(lo + 2 * width, size);
      merge_sorted(from + lo, mid - lo, from + mid, hi - mid, to + lo);
    }
    std::swap(from, to);
  }
  if (from != dst) std::copy(from, from + size, dst);
}

// Per-task scratch of the sorts that need more than the destination.
struct SortScratch {
  std::vector<float> merge;
  std::vector<uint32_t> radix;
};

// Sorts the keys of the `size` float rewards at src into dst (src may equal dst; dst has room
// for max(size, kTinyNetworkMax) keys) and returns
// n, the count of finite rewards: dst[0, n) holds them ascending, -0 read as +0.
inline int64_t sort_float_group(CpuIsa isa, const float* src, int64_t size, float* dst, SortScratch& scratch) {
  if (size <= 2) {
    sort_tiny<2>(src, size, dst);
  } else if (size <= 4) {
    sort_tiny<4>(src, size, dst);
  } else if (size <= kTinyNetworkMax && isa == CpuIsa::Scalar) {
    sort_tiny<8>(src, size, dst);
#ifdef GAPO_CPU_ISA_X86
  } else if (size <= kTinyNetworkMax) {
    // One ymm: 6 network steps where one zmm takes 10, and a group this small is latency-bound.
    avx2::sort_up_to_256(src, size, dst);
#endif
  } else if (size <= kRegisterSortMax) {
    sort_in_registers(isa, src, size, dst);
  } else if (size <= kBlockMergeMax) {
    if (static_cast<int64_t>(scratch.merge.size()) < size) scratch.merge.resize(size);
    block_merge_sort(isa, src, size, dst, scratch.merge.data());
  } else {
    for (int64_t i = 0; i < size; ++i) dst[i] = portable::V::key_of(src[i]);
    radix_sort_floats(dst, size, scratch.radix);
  }
  int64_t n = size;
  while (n > 0 && dst[n - 1] == __builtin_inff()) --n;  // the missing rewards, sorted last
  return n;
}

// Ascending sort of n finite float64 keys.
inline void sort_double_keys(double* keys, int64_t n) {
  if (n <= kInsertionSortMax) return insertion_sort(keys, n);
  std::sort(keys, keys + n);
}

}  // namespace gapo::cpu
