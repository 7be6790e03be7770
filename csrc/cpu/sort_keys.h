// Ascending sort of one group's reward keys. Float keys (float32, float16 and bfloat16
// rewards) go through sort_float_group, which maps every missing reward (NaN, +/-inf) to +inf
// and -0 to +0 as it loads, so the sorted finite keys come first and their count is the
// number of keys before the first +inf. By group size:
//   <= 4:            a fixed compare-exchange network in scalar registers (any CPU); up to 8
//                    on the scalar path, one ymm on both x86 paths
//   AVX-512:  <= 64,         a sorting network over as many zmm as the keys fill
//             129..144       (sort_network.inc: columns sorted across 8 registers and
//                            transposed, then bitonic merges; padding registers skipped)
//             65..128        128 keys (+inf padding) in column form in 8 zmm
//             145..512,      256, 512 or 1024 keys (+inf padding) sorted in column form,
//             561..1024      16 to 64 zmm kept in L1 and loaded a group at a time
//                            (sort_in_columns)
//             other <= 65536 quicksort (sort_partition.inc): compress partitions around a
//                            sampled median, ranges of <= 256 sorted as above
//   AVX2:     <= 32          the network over as many ymm as the keys fill
//             33..64         64 keys (+inf padding) sorted in column form (sort_network.inc:
//                            most merge stages are min/max across registers, no shuffle)
//             65..84         the network over as many ymm as the keys fill
//             85..256,       128, 256, 512 or 1024 keys (+inf padding) sorted in column form,
//             321..512,      16 to 128 ymm kept in L1 and loaded a group at a time
//             641..1024      (sort_in_columns; an unrolled network over more than 16 ymm
//                            spills and overflows the micro-op cache)
//             other <= 65536 quicksort with lane-permutation partitions, ranges of <= 128
//                            sorted as above
//   SVE:      the AVX2 path's table at 256-bit vectors (8 lanes), the AVX-512 path's at 512
//             (16 lanes), on the same network, column and partition code (sort_sve.inc)
//   NEON:     <= 256         the network over the power-of-two register count that holds them
//             <= 1024        blocks of 256 sorted by the network, merged by its last stages
//   scalar:   <= 256         the network on a 4-lane register emulated in plain C++
//   larger:          LSD radix sort, 3 passes of 11 bits
// On both x86 paths a group of at least kFewValuesMin rewards is first counted
// (sort_few_values.h): if its keys take at most kFewValuesMax distinct values (pass/fail, a few
// levels) they are written as runs, with no comparison sort.
// Float64 keys: insertion sort up to 32, std::sort above. Only the order changes, never a
// value: every path hands the same sorted keys to the shared per-group logic, so the choice of
// window and median cannot depend on the path taken.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "cpu/cpu_isa.h"
#include "cpu/sort_avx2.h"
#include "cpu/sort_avx512.h"
#include "cpu/sort_few_values.h"
#include "cpu/sort_neon.h"
#include "cpu/sort_portable.h"
#include "cpu/sort_sizes.h"
#include "cpu/sort_sve.h"
#include "gapo/group_logic.h"

namespace gapo::cpu {

constexpr int64_t kInsertionSortMax = 32;
constexpr int64_t kTinyNetworkMax = 8;
constexpr int64_t kRegisterSortMax = 256;
// Up to this size, blocks of 256 sorted in registers and merged by the network's last merge
// (log2 N steps per level); above it the radix sort's three passes cost less than the
// network's O(N log^2 N), and the fully unrolled merges would cost build time.
constexpr int64_t kBlockSortMax = 1024;

// From this size a group is first tried by counting (sort_few_values.h): below it a register
// network sorts two-valued keys about as fast as NumPy does, and the try would cost more than
// it saves.
constexpr int64_t kFewValuesMin = 512;

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

// One float key as the "register" of sort_network.inc's column network.
struct ScalarKey {
  using Reg = float;
  static float min(float a, float b) { return std::min(a, b); }
  static float max(float a, float b) { return std::max(a, b); }
};

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
    portable::sort_columns<ScalarKey>(k);  // the 19-comparator network the vector paths run on columns
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

template <int N>
inline void merge_sorted_halves(CpuIsa isa, float* keys) {
  switch (isa) {
#ifdef GAPO_CPU_ISA_NEON
    case CpuIsa::Neon:
      return neon::merge_sorted_halves<N>(keys);
#endif
    default:
      // Not reached on x86: both vector paths sort above 256 keys in column form or by
      // quicksort, and the scalar path radix-sorts; this only completes the switch.
      return portable::merge_sorted_halves<N>(keys);
  }
}

// size <= N keys sorted into buffer[0, N) (N a power of two from 256 to kBlockSortMax), +inf
// after them: blocks of 256 sorted in registers, then the network's last merge at each level.
template <int N>
inline void sort_blocks(CpuIsa isa, const float* src, int64_t size, float* buffer) {
  if constexpr (N == kRegisterSortMax) {
    if (size > 0) sort_in_registers(isa, src, size, buffer);
    std::fill(buffer + std::max<int64_t>(size, 0), buffer + N, __builtin_inff());
  } else {
    sort_blocks<N / 2>(isa, src, std::min<int64_t>(size, N / 2), buffer);
    sort_blocks<N / 2>(isa, src + N / 2, size - N / 2, buffer + N / 2);
    merge_sorted_halves<N>(isa, buffer);
  }
}

inline void block_sort(CpuIsa isa, const float* src, int64_t size, float* dst, float* buffer) {
  if (size <= 2 * kRegisterSortMax) {
    sort_blocks<2 * kRegisterSortMax>(isa, src, size, buffer);
  } else {
    sort_blocks<kBlockSortMax>(isa, src, size, buffer);
  }
  std::copy(buffer, buffer + size, dst);
}

// Storage aligned to a cache line: the quicksort's partitions and the block sort's merges load
// and store whole registers in this scratch, and on malloc's 16-byte alignment every zmm access
// spans two lines (AVX-512 block sort of 1024 keys: 1.52 ns/key against 1.02 aligned).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlignment); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};

#ifdef GAPO_CPU_ISA_X86
// Floats per register of an x86 vector path, 0 for the others.
constexpr int x86_lanes(CpuIsa isa) { return isa == CpuIsa::Avx512 ? 16 : isa == CpuIsa::Avx2 ? 8 : 0; }

// The column sort over `registers` registers (column_registers: 32, 64, or 128 on AVX2) on an
// x86 path.
inline void sort_in_columns(CpuIsa isa, int registers, const float* src, int64_t size, float* dst) {
  if (isa == CpuIsa::Avx512) {
    if (registers == 32) return avx512::sort_in_columns<32>(src, size, dst);
    return avx512::sort_in_columns<64>(src, size, dst);
  }
  if (registers == 32) return avx2::sort_in_columns<32>(src, size, dst);
  if (registers == 64) return avx2::sort_in_columns<64>(src, size, dst);
  return avx2::sort_in_columns<128>(src, size, dst);
}
#endif

// Per-task scratch of the sorts that need more than the destination.
struct SortScratch {
  std::vector<float, CacheLineAllocator<float>> merge;
  std::vector<uint32_t> radix;
  // The quicksort's two buffers of `size` keys each (sort_partition.inc).
  float* partition_buffers(int64_t size) {
    if (merge.size() < 2 * size_t(size)) merge.resize(2 * size_t(size));
    return merge.data();
  }
};

// Sorts the keys of the `size` float rewards at src into dst (src may equal dst; dst has room
// for max(size, kTinyNetworkMax) keys) and returns
// n, the count of finite rewards: dst[0, n) holds them ascending, -0 read as +0.
inline int64_t sort_float_group(CpuIsa isa, const float* src, int64_t size, float* dst, SortScratch& scratch) {
#ifdef GAPO_CPU_ISA_X86
  if (size >= kFewValuesMin && (isa == CpuIsa::Avx512 || isa == CpuIsa::Avx2)) {
    FewValues few;
    const bool counted = isa == CpuIsa::Avx512 ? avx512::count_few_values(src, size, few)
                                               : avx2::count_few_values(src, size, few);
    if (counted) return few.write_sorted(dst);
  }
#endif
  bool sorted = false;
#ifdef GAPO_CPU_ISA_SVE
  if (isa == CpuIsa::Sve) {
    sorted = size > 4 && size <= kQuicksortMax && sve_sort_rewards(src, size, dst, scratch.partition_buffers(size));
    // NEON sorts the rest: the tiny groups and those past the quicksort as on every path, and
    // every group of a thread whose vector length is no longer the one the path was chosen at.
    isa = CpuIsa::Neon;
  }
#endif
  if (sorted) {
    // by the SVE path
  } else if (size <= 2) {
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
#ifdef GAPO_CPU_ISA_X86
  } else if (isa == CpuIsa::Avx512 && size <= avx512::V::kQuicksortLeafMax) {
    avx512::sort_leaf(src, size, dst);
  } else if (isa == CpuIsa::Avx2 && size <= avx2::V::kQuicksortLeafMax) {
    avx2::sort_leaf(src, size, dst);
  } else if (const int registers = column_registers(x86_lanes(isa), size); registers > 0) {
    sort_in_columns(isa, registers, src, size, dst);
  } else if ((isa == CpuIsa::Avx512 || isa == CpuIsa::Avx2) && size <= kQuicksortMax) {
    if (isa == CpuIsa::Avx512) {
      avx512::quicksort_rewards(src, size, dst, scratch.partition_buffers(size));
    } else {
      avx2::quicksort_rewards(src, size, dst, scratch.partition_buffers(size));
    }
#endif
  } else if (size <= kRegisterSortMax) {
    sort_in_registers(isa, src, size, dst);
  } else if (size <= kBlockSortMax && isa != CpuIsa::Scalar) {
    if (scratch.merge.size() < size_t(kBlockSortMax)) scratch.merge.resize(kBlockSortMax);
    block_sort(isa, src, size, dst, scratch.merge.data());
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
