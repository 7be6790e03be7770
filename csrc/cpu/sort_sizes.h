// Which sort the vector paths with a column sort and a compress partition (AVX2, AVX-512,
// SVE at 256 and 512 bits) take for a group, by its size and the path's lanes per register.
// Shared by sort_keys.h and the SVE translation units (sort_sve.inc), which include nothing
// else of the x86 paths.
#pragma once

#include <cstdint>

namespace gapo::cpu {

// The quicksort (sort_partition.inc) up to this size; the radix sort above it.
constexpr int64_t kQuicksortMax = int64_t(1) << 16;

// The register count R of the column sort (sort_in_columns: R registers of `lanes` keys, the
// padding included, 8 or 16 lanes) for a group of `size` rewards above the quicksort's leaves,
// or 0 for the quicksort. The column sort costs the same for every size up to its width, the
// partitions cost per key, so the column sort wins from a little above half its width.
// Measured on x86 (one thread, the sort alone, ns/key, columns against quicksort):
//   8 lanes (AVX2):     129 keys 1.09 and 1.10, 140: 0.99 and 1.02; 300: 1.17 and 1.11,
//                       320: 1.10 and 1.11; 600: 1.35 and 1.25, 640: 1.27 and 1.26, 700: 1.18
//                       and 1.31.
//   16 lanes (AVX-512): 257 keys 0.82 and 0.95, 300: 0.68 and 0.87; 513: 1.02 and 0.94, 560:
//                       0.93 and 0.92, 600: 0.87 and 0.96.
// SVE takes the table of its lane count; no SVE machine was at hand to tune it.
constexpr int column_registers(int lanes, int64_t size) {
  if (lanes == 8) {
    if (size <= 128) return 0;
    if (size <= 256) return 32;
    if (size <= 512) return size > 320 ? 64 : 0;
    if (size <= 1024) return size > 640 ? 128 : 0;
  } else if (lanes == 16) {
    if (size <= 256) return 0;
    if (size <= 512) return 32;
    if (size <= 1024) return size > 560 ? 64 : 0;
  }
  return 0;
}

}  // namespace gapo::cpu
