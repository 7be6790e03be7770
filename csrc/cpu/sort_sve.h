// The SVE path's sort: entry points of the SVE translation units (sort_sve256.cpp,
// sort_sve512.cpp), one per vector length.
//
// SVE registers are sizeless unless the vector length is fixed at compile time, and the
// networks of sort_network.inc keep registers in arrays, so the SVE code is compiled once per
// vector length with -msve-vector-bits (each unit on its own: one length per translation unit)
// and the length the CPU has picks the unit at run time (cpu_isa.h). Every SVE instruction is
// inside those units' target regions, so nothing else of the library needs SVE.
#pragma once

#include <cstdint>

#include "cpu/cpu_isa.h"

#ifdef GAPO_CPU_ISA_SVE
namespace gapo::cpu {

// Sorts the keys of the `size` float rewards at src (size <= kQuicksortMax) into dst[0,
// size), +inf (every missing reward) last, -0 read as +0; src may equal dst. buffer: scratch
// of 2 * size floats, aligned to a cache line. Returns false, having written nothing, where
// the calling thread's vector length is not the unit's: the length is per thread, and a
// thread may change its own (prctl PR_SVE_SET_VL) after the path was chosen.
namespace sve256 {
bool sort_rewards(const float* src, int64_t size, float* dst, float* buffer);
}
namespace sve512 {
bool sort_rewards(const float* src, int64_t size, float* dst, float* buffer);
}

inline bool sve_sort_rewards(const float* src, int64_t size, float* dst, float* buffer) {
  switch (sve_path_bits()) {
    case 512:
      return sve512::sort_rewards(src, size, dst, buffer);
    case 256:
      return sve256::sort_rewards(src, size, dst, buffer);
    default:
      return false;  // no SVE at a length the path was built for
  }
}

}  // namespace gapo::cpu
#endif  // GAPO_CPU_ISA_SVE
