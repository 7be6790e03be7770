// A plain-C++ register of 4 float lanes with the NEON path's lane operations, for the
// sorting network (sort_network.inc). It is the scalar path on every CPU, and on x86 it runs
// the very network the NEON path runs (same lane count, same swaps and blends), so the
// property tests of the scalar path also check the NEON path's logic.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "gapo/group_logic.h"

namespace gapo::cpu::portable {

struct V {
  struct Reg {
    float lane[4];
  };
  static constexpr int kLanes = 4;

  static float key_of(float x) { return is_missing(x) ? __builtin_inff() : x + 0.0f; }
  static Reg load(const float* src, int64_t first, int64_t count) {
    Reg r;
    for (int64_t i = 0; i < 4; ++i) r.lane[i] = first + i < count ? key_of(src[first + i]) : __builtin_inff();
    return r;
  }
  static void store(float* dst, int64_t first, int64_t count, Reg v) {
    for (int64_t i = 0; i < 4 && first + i < count; ++i) dst[first + i] = v.lane[i];
  }
  static Reg min(Reg a, Reg b) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = a.lane[i] < b.lane[i] ? a.lane[i] : b.lane[i];
    return r;
  }
  static Reg max(Reg a, Reg b) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = a.lane[i] < b.lane[i] ? b.lane[i] : a.lane[i];
    return r;
  }
  template <int J>
  static Reg swap(Reg v) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = v.lane[i ^ J];
    return r;
  }
  template <int K>
  static Reg flip(Reg v) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = v.lane[i ^ (K - 1)];
    return r;
  }
  static constexpr int kColumnSortRegisters = 0;
  static void transpose(Reg*) {}
  static Reg reverse(Reg v) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = v.lane[3 - i];
    return r;
  }
  template <unsigned M>
  static Reg blend(Reg lo, Reg hi) {
    Reg r;
    for (int i = 0; i < 4; ++i) r.lane[i] = ((M >> i) & 1u) ? hi.lane[i] : lo.lane[i];
    return r;
  }
};

#define GAPO_SORT_STAGE_INLINE inline
#include "cpu/sort_network.inc"
#undef GAPO_SORT_STAGE_INLINE

}  // namespace gapo::cpu::portable
