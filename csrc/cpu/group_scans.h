// The CPU kernel's passes over one whole group: the window scan and the sum of squared
// deviations (the Scans policy of group_stats_of_sorted, gapo/group_logic.h) and the write of
// the advantages. Past a few dozen keys these passes cost a third to a half of the sort's
// time, so each vector path (group_scans_avx2.h, group_scans_avx512.h) has its own versions;
// this file holds the portable ones and the summation order they all keep.
//
// Every CPU path computes the same bits:
//   - the window scan returns the argmin of the widths under the tie rule (narrowest, then
//     lowest start), which does not depend on the order the windows are visited in;
//   - the sum of squared deviations keeps kSumParts partial sums, element i going into part
//     i % kSumParts in increasing i, combined by halving (part j += part j + half, half = 8, 4,
//     2, 1). Sixteen parts are two AVX-512 or four AVX2 accumulators, enough independent add
//     chains to keep a core's adders busy (one chain is bound by the add latency);
//   - the advantage of each reward is advantage_of's bits. The CPU sources are compiled with
//     -ffp-contract=off, so the compiler fuses no multiply and add; the vector paths fuse one
//     by hand only where the product is exact (below), which rounds as the separate steps do.
#pragma once

#include <cstdint>
#include <cstring>

#include "gapo/group_logic.h"

namespace gapo::cpu {

constexpr int kSumParts = 16;

// A contiguous run of equal groups of at most this many rewards, run one group per SIMD lane
// (small_groups.inc), is written position by position, each position with its group's map;
// larger groups are written a whole vector of one map at a time.
constexpr int64_t kPositionWriteMax = 7;

// lane[s][i] = i / s: the group (lane) of position i in a run of kLanes groups of s rewards,
// with room for a vector read past the run's end (those entries are never used).
template <int kLanes>
struct LaneOfPosition {
  static constexpr int kPositions = kLanes * kPositionWriteMax + 16;
  uint8_t lane[kPositionWriteMax + 1][kPositions];
};

template <int kLanes>
constexpr LaneOfPosition<kLanes> make_lane_of_position() {
  LaneOfPosition<kLanes> table{};
  for (int s = 1; s <= kPositionWriteMax; ++s) {
    for (int i = 0; i < LaneOfPosition<kLanes>::kPositions; ++i) {
      table.lane[s][i] = static_cast<uint8_t>(i / s < kLanes ? i / s : kLanes - 1);
    }
  }
  return table;
}

template <int kLanes>
inline constexpr LaneOfPosition<kLanes> kLaneOfPosition = make_lane_of_position<kLanes>();

// The combine step of the summation order above (overwrites parts).
inline double combine_sum_parts(double* parts) {
  for (int half = kSumParts / 2; half >= 1; half /= 2) {
    for (int j = 0; j < half; ++j) parts[j] += parts[j + half];
  }
  return parts[0];
}

// sum_i (values[i] * down - center)^2 in the CPU's summation order. Parts that get no element
// are left out of the combine rather than added as +0.0: the same bits (every part is >= +0),
// without fifteen adds on a group of two.
template <class T>
double sum_of_squared_deviations_in_parts(const T* values, int64_t n, double down, double center) {
  const auto square = [&](int64_t i) {
    const double d = static_cast<double>(values[i]) * down - center;
    return d * d;
  };
  double parts[kSumParts];
  int used = n < kSumParts ? static_cast<int>(n) : kSumParts;
  for (int j = 0; j < used; ++j) parts[j] = square(j);
  int64_t i = used;
  for (; i + kSumParts <= n; i += kSumParts) {
    for (int j = 0; j < kSumParts; ++j) parts[j] += square(i + j);
  }
  for (int j = 0; i + j < n; ++j) parts[j] += square(i + j);
  for (int half = kSumParts / 2; half >= 1; half /= 2) {
    for (int j = 0; j < half && j + half < used; ++j) parts[j] += parts[j + half];
    used = used < half ? used : half;
  }
  return used == 0 ? 0.0 : parts[0];
}

// The vector paths (AVX2 with FMA, AVX-512) write a float group's advantages in a shorter form
// with advantage_of's bits:
//   t = fma(x, down, 0.0 - offset),   A = t * factor, rounded to float.
//   - x * down is exact for every float key x: down is a power of two, and x * down lies in
//     [2^-277, 1] in magnitude, where doubles are normal. So the fused multiply-add rounds once,
//     at the subtraction, as x * down - offset does.
//   - 0.0 - offset is +0 for a zero offset of either sign, so t is never -0 (-0 + +0 is +0):
//     advantage_of turns that -0 into +0 only after the multiply (unsigned_zero).
//   - A is then -0 only where factor is 0 (an all-equal or empty group: every advantage is +0,
//     which the paths write directly) or where t * factor underflows. A nonzero t is at least
//     2^-540 in magnitude: with e in [-148, 128] for float keys, x * down and a median are
//     multiples of 2^-278, a mean is a multiple of 2^-392 (a sum of such multiples over a count
//     below 2^63, plus one of them), and an unscaled map's offset is one of these times 2^e. So
//     from kFusedWriteMinFactor the product cannot underflow and no +0.0 needs adding; a map
//     with a smaller factor (eps near 1e300 times the group's scale) takes advantage_of's steps.
constexpr double kFusedWriteMinFactor = 0x1p-300;

inline bool fused_write_exact(const AdvantageMap& map) { return map.factor >= kFusedWriteMinFactor; }

// The advantages of a map with factor 0 (all-equal and empty groups): +0.0 for every reward, as
// advantage_of gives them.
inline void write_zero_advantages(int64_t n, float* out) { std::memset(out, 0, static_cast<size_t>(n) * sizeof(float)); }

// out[i] = advantage_of(values[i], map) for i in [0, n).
template <class T>
void write_group_advantages(const T* values, int64_t n, const AdvantageMap& map, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(advantage_of(values[i], map));
}

// The Scans policy of the scalar path (and of the vector paths' small groups), with the write
// of a group's advantages.
struct PortableScans {
  static constexpr int kSmallGroupLanes = 0;  // no lane-parallel small groups (small_groups.inc)
  template <class T>
  static int64_t hdi_start(const T* sorted, int64_t n, int64_t k) {
    return gapo::hdi_start(sorted, n, k);
  }
  template <class T>
  static double sum_of_squared_deviations(const T* values, int64_t n, double down, double center) {
    return sum_of_squared_deviations_in_parts(values, n, down, center);
  }
  template <class T>
  static void write_group_advantages(const T* values, int64_t n, const AdvantageMap& map, T* out, bool) {
    cpu::write_group_advantages(values, n, map, out);
  }
};

}  // namespace gapo::cpu
