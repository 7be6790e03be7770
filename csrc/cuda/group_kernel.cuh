// The per-group bodies of the CUDA kernels, written against a small "team" interface so the
// same code runs on the GPU (csrc/cuda/cuda_team.cuh: lanes of a warp, or a whole block) and
// in a host emulation with one std::thread per lane (csrc/cuda/host_emulation/), which is how
// CI tests this logic without a GPU. Nothing in here touches CUDA intrinsics or torch.
//
// A Team has
//   static constexpr int kThreads;                     threads per group, a power of two
//   int rank() const;                                  0 .. kThreads - 1
//   void sync();                                       barrier + memory fence among the team
//   Key* buffer();                                     kCapacity keys of team-shared memory
//   template <int Mask, int I> void exchange(const Key (&in)[I], Key (&out)[I]);
//                                                      out[i] = in[i] of thread rank ^ Mask
//   template <class V, class Op> V allreduce(V v, Op op);
//                                                      same bits on every thread: a fixed tree
//                                                      of a commutative op (deterministic)
//
// The window, median, baseline, scale and divisor rules all come from ../gapo/group_logic.h;
// this file only arranges them into parallel reductions.
#pragma once

#include <cmath>
#include <cstdint>

#include "../gapo/group_logic.h"

#if defined(__CUDACC__)
#define GAPO_TEAM_FN __device__ __forceinline__
#define GAPO_UNROLL _Pragma("unroll")
#else
#define GAPO_TEAM_FN inline
#define GAPO_UNROLL
#endif

namespace gapo::team {

constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x / 2); }

// One fused-kernel size class: Threads threads per group, Items keys per thread, so groups of
// up to Threads * Items rewards. Teams of <= 32 threads are lanes of one warp (several groups
// per warp, several warps per block); larger teams are a whole block.
template <int Threads, int Items>
struct FusedShape {
  static_assert(Threads >= 2 && Threads <= 1024 && (Threads & (Threads - 1)) == 0, "Threads: power of two");
  static_assert(Items >= 1 && (Items & (Items - 1)) == 0, "Items: power of two");
  static constexpr int kThreads = Threads;
  static constexpr int kItems = Items;
  static constexpr int kCapacity = Threads * Items;
  static constexpr bool kBlockTeam = Threads > 32;
  static constexpr int kBlockThreads = kBlockTeam ? Threads : 256;
  static constexpr int kTeamsPerBlock = kBlockThreads / Threads;
};

// The fused kernel's size classes, smallest first (the design note of advantage_cuda.cu has
// the table). The op launches the first class whose capacity holds the largest group; the
// host emulation and tests/test_cuda.py index the same list.
constexpr int kNumSizeClasses = 9;

template <class F>
inline void with_size_class(int index, F&& f) {
  switch (index) {
    case 0: return f(FusedShape<2, 2>{});
    case 1: return f(FusedShape<2, 4>{});
    case 2: return f(FusedShape<4, 4>{});
    case 3: return f(FusedShape<8, 4>{});
    case 4: return f(FusedShape<16, 4>{});
    case 5: return f(FusedShape<32, 4>{});
    case 6: return f(FusedShape<32, 8>{});
    case 7: return f(FusedShape<64, 8>{});
    default: return f(FusedShape<128, 8>{});
  }
}

constexpr int64_t kMaxFusedGroupSize = 1024;  // capacity of the last class

// Index of the smallest class holding groups of max_size rewards (max_size <= 1024).
inline int size_class_for(int64_t max_size) {
  int index = 0;
  for (int64_t capacity = 4; capacity < max_size && index < kNumSizeClasses - 1; capacity *= 2) ++index;
  return index;
}

// Storage type <-> key/accumulator type. The CUDA file specialises this for __half and
// __nv_bfloat16; float and double convert with a cast.
template <class Scalar>
struct ScalarIO {
  template <class Key>
  static GAPO_TEAM_FN Key load(const Scalar* p, int64_t i) { return static_cast<Key>(p[i]); }
  template <class Acc>
  static GAPO_TEAM_FN Scalar from(Acc v) { return static_cast<Scalar>(v); }
};

template <class Key>
GAPO_TEAM_FN Key key_infinity() {
  return static_cast<Key>(INFINITY);  // missing rewards and padding sort after every finite key
}

// Per-group statistics outputs of group_stats (null pointers: advantage only).
template <class Acc>
struct StatsOut {
  Acc* baseline = nullptr;
  Acc* scale = nullptr;
  Acc* hdi_low = nullptr;
  Acc* hdi_high = nullptr;
  Acc* mean = nullptr;
  Acc* min = nullptr;
  Acc* max = nullptr;
  int64_t* count = nullptr;
};

// Everything a kernel reads and writes. Key is the sort type and the type of the statistics
// outputs: float for 16- and 32-bit rewards, double for float64. The statistics themselves are
// computed in double (reduce_group<double, ...>).
template <class Scalar, class Key>
struct KernelArgs {
  const Scalar* rewards = nullptr;  // rewards[i * stride]
  int64_t stride = 1;
  Scalar* out = nullptr;  // contiguous advantages, or null for group_stats
  const void* offsets = nullptr;  // int32 or int64, G + 1 entries
  bool offsets_int64 = true;
  int64_t num_groups = 0;
  int64_t num_rewards = 0;
  Params params{};
  StatsOut<Key> stats{};
  // Large-group path only: keys sorted per segment, and the clamped segment bounds.
  const Key* sorted_keys = nullptr;
  const int32_t* segment_begin = nullptr;
  const int32_t* segment_end = nullptr;
};

// offsets[i] of an int32 or int64 offsets tensor, as int64.
GAPO_TEAM_FN int64_t read_offset(const void* offsets, bool int64_offsets, int64_t i) {
  return int64_offsets ? static_cast<const int64_t*>(offsets)[i] : static_cast<const int32_t*>(offsets)[i];
}

// Group g's bounds, clamped to [0, N] and to begin <= end, so offsets that break the contract
// (only checked with validate=True on CUDA) can give wrong numbers but never a wild access.
GAPO_TEAM_FN void group_bounds(const void* offsets, bool int64_offsets, int64_t g, int64_t num_rewards,
                               int64_t& begin, int64_t& end) {
  int64_t b = read_offset(offsets, int64_offsets, g);
  int64_t e = read_offset(offsets, int64_offsets, g + 1);
  b = b < 0 ? 0 : (b > num_rewards ? num_rewards : b);
  e = e < b ? b : (e > num_rewards ? num_rewards : e);
  begin = b;
  end = e;
}

// --- reductions -----------------------------------------------------------------------------
struct SumOp {
  template <class V>
  GAPO_TEAM_FN V operator()(V a, V b) const { return a + b; }  // commutative: a butterfly gives
};                                                             // the same bits on every lane

struct WindowCandidate {
  double width;   // s[start + k - 1] - s[start], in double as group_logic.h prescribes
  int64_t start;
};

// hdi_prefer is a total order, so the argmin is the sequential scan's window whatever the tree.
struct PreferOp {
  GAPO_TEAM_FN WindowCandidate operator()(WindowCandidate a, WindowCandidate b) const {
    return hdi_prefer(a.width, a.start, b.width, b.start) ? a : b;
  }
};

// --- bitonic sort of Capacity keys held Items per thread -------------------------------------
// Slot e = rank * Items + i holds keys[i]; after the sort slot e holds the e-th smallest key.
// Steps with stride J < Items stay in registers; larger strides pair thread rank with
// rank ^ (J / Items) through Team::exchange (shuffles inside a warp, shared memory across).
// All indices into keys[] are compile-time constants, so the array stays in registers.
template <class Shape, int K, int J, class Team, class Key>
GAPO_TEAM_FN void bitonic_step(Team& team, Key (&keys)[Shape::kItems]) {
  constexpr int I = Shape::kItems;
  const int t = team.rank();
  if constexpr (J < I) {
    GAPO_UNROLL
    for (int i = 0; i < I; ++i) {
      if ((i & J) == 0) {
        const bool ascending = ((t * I + i) & K) == 0;
        const Key a = keys[i];
        const Key b = keys[i + J];
        const bool swap = ascending ? (b < a) : (a < b);
        keys[i] = swap ? b : a;
        keys[i + J] = swap ? a : b;
      }
    }
  } else {
    constexpr int kMask = J / I;
    Key other[I];
    team.template exchange<kMask>(keys, other);
    const bool lower = (t & kMask) == 0;           // this thread holds the lower slots of the pairs
    const bool ascending = ((t * I) & K) == 0;     // K > J >= I: the direction is per thread
    const bool keep_min = ascending == lower;
    GAPO_UNROLL
    for (int i = 0; i < I; ++i) {
      const bool take = keep_min ? (other[i] < keys[i]) : (keys[i] < other[i]);
      keys[i] = take ? other[i] : keys[i];
    }
  }
}

template <class Shape, int K, int J, class Team, class Key>
GAPO_TEAM_FN void bitonic_merge(Team& team, Key (&keys)[Shape::kItems]) {
  bitonic_step<Shape, K, J>(team, keys);
  if constexpr (J > 1) bitonic_merge<Shape, K, J / 2>(team, keys);
}

template <class Shape, int K, class Team, class Key>
GAPO_TEAM_FN void bitonic_stages(Team& team, Key (&keys)[Shape::kItems]) {
  bitonic_merge<Shape, K, K / 2>(team, keys);
  if constexpr (K < Shape::kCapacity) bitonic_stages<Shape, 2 * K>(team, keys);
}

template <class Shape, class Team, class Key>
GAPO_TEAM_FN void bitonic_sort(Team& team, Key (&keys)[Shape::kItems]) {
  bitonic_stages<Shape, 2>(team, keys);
}

// --- views of a sorted group -----------------------------------------------------------------
// A view gives random access to the sorted keys (sorted()) and visits the sorted positions this
// thread owns (for_each_in), each exactly once across the team, in a fixed order.

// Fused path: sorted keys in team-shared memory; this thread owns slots rank * Items + i,
// whose keys it still holds in registers.
template <class Shape, class Key>
struct RegisterView {
  using KeyType = Key;
  const Key* buffer;
  const Key (&keys)[Shape::kItems];
  int rank;
  GAPO_TEAM_FN const Key* sorted() const { return buffer; }
  template <class F>
  GAPO_TEAM_FN void for_each_in(int64_t lo, int64_t hi, F&& f) const {
    GAPO_UNROLL
    for (int i = 0; i < Shape::kItems; ++i) {
      const int64_t e = static_cast<int64_t>(rank) * Shape::kItems + i;
      if (e >= lo && e < hi) f(e, keys[i]);
    }
  }
};

// Large path: the segment sorted in global memory; thread rank owns rank, rank + Threads, ...
template <int Threads, class Key>
struct StridedView {
  using KeyType = Key;
  const Key* base;
  int rank;
  GAPO_TEAM_FN const Key* sorted() const { return base; }
  template <class F>
  GAPO_TEAM_FN void for_each_in(int64_t lo, int64_t hi, F&& f) const {
    for (int64_t e = lo + rank; e < hi; e += Threads) f(e, base[e]);
  }
};

// --- the statistics of one sorted group ------------------------------------------------------
template <class Acc>
struct GroupResult {
  int64_t n = 0;      // finite rewards
  int64_t k = 0;      // window size
  int64_t start = 0;  // HDI start i*
  Acc baseline = 0;   // Q
  Acc scale = 1;      // S as used
  Acc mean = 0;
  AdvantageMap map = zero_advantage_map();  // A = (r * down - offset) * factor
};

// Q, S and the window of a group whose `size` keys are sorted (missing ones as +inf, last),
// by group_logic.h's numerics rule: sums over the scaled keys x = key * 2^-e about a pivot
// from the group (s[n / 2], and the window's middle for hdi_mean), the all-equal and
// singleton conventions, and the advantage map. Every collective runs on every thread
// whatever the data (n = 0, 1, all equal, ...), so teams never diverge around a shuffle or
// barrier. Wide is the per-thread partial-sum type.
template <class Acc, class Wide, class Team, class View>
GAPO_TEAM_FN GroupResult<Acc> reduce_group(Team& team, const View& view, int64_t size, const Params& p) {
  using Key = typename View::KeyType;
  const Key* sorted = view.sorted();
  GroupResult<Acc> r;

  int finite = 0;  // 32 bits: one shuffle per step (groups here have < 2^31 rewards)
  view.for_each_in(0, size, [&](int64_t, Key key) { finite += is_missing(key) ? 0 : 1; });
  const int64_t n = team.allreduce(finite, SumOp{});
  r.n = n;

  // Window: first start minimising the width (hdi_prefer), over starts [0, n - k].
  const int64_t k = n > 0 ? window_size(n, p.tau) : 0;
  WindowCandidate best{static_cast<double>(INFINITY), INT64_MAX};
  if (n > 0) {
    for (int64_t s = team.rank(); s + k <= n; s += Team::kThreads) {
      const double width = window_width(sorted, s, k);
      if (hdi_prefer(width, s, best.width, best.start)) best = WindowCandidate{width, s};
    }
  }
  best = team.allreduce(best, PreferOp{});
  const int64_t start = n > 0 ? best.start : 0;
  r.k = k;
  r.start = start;

  const double lo = n > 0 ? static_cast<double>(sorted[0]) : 0.0;
  const double hi = n > 0 ? static_cast<double>(sorted[n - 1]) : 0.0;
  const GroupScaling g = group_scaling(lo, hi);

  // Scaled mean of the n finite keys.
  const double pivot = n > 0 ? static_cast<double>(sorted[n / 2]) * g.down : 0.0;
  Wide deviation = 0;
  view.for_each_in(0, n, [&](int64_t, Key key) {
    deviation += static_cast<Wide>(static_cast<double>(key) * g.down - pivot);
  });
  deviation = team.allreduce(deviation, SumOp{});
  const double mean = n > 0 ? pivot + static_cast<double>(deviation) / static_cast<double>(n) : 0.0;

  // Scaled mean of the window, only read for hdi_mean (baseline is uniform across the grid).
  double window_mean = 0.0;
  if (p.baseline == Baseline::HdiMean) {
    const double window_pivot = n > 0 ? static_cast<double>(sorted[start + k / 2]) * g.down : 0.0;
    Wide window_deviation = 0;
    view.for_each_in(start, start + k, [&](int64_t, Key key) {
      window_deviation += static_cast<Wide>(static_cast<double>(key) * g.down - window_pivot);
    });
    window_deviation = team.allreduce(window_deviation, SumOp{});
    window_mean = n > 0 ? window_pivot + static_cast<double>(window_deviation) / static_cast<double>(k) : 0.0;
  }
  const double baseline = n >= 2 ? baseline_from_sorted(p.baseline, sorted, n, k, start, g.down, mean, window_mean)
                                 : 0.0;

  double s = 1.0;
  if (p.scale != Scale::None) {
    const double center = scale_center(p.scale, baseline, mean);
    Wide sum_sq = 0;
    view.for_each_in(0, n, [&](int64_t, Key key) {
      const Wide d = static_cast<Wide>(static_cast<double>(key) * g.down - center);
      sum_sq += d * d;
    });
    sum_sq = team.allreduce(sum_sq, SumOp{});
    if (n >= 2) s = scale_from_sum_sq(p.scale, static_cast<double>(sum_sq), n);
  }

  if (n == 0) {
    r.map = zero_advantage_map();
  } else if (n == 1) {  // verl's convention Q = 0, S = 1 (group_stats_of_sorted's)
    r.mean = static_cast<Acc>(unsigned_zero(lo));
    r.baseline = Acc(0);
    r.scale = Acc(1);
    r.map = singleton_advantage_map(p.scale, p.eps);
  } else if (lo == hi) {  // all equal: Q = mean = the value, S = 0, A = 0
    r.mean = r.baseline = static_cast<Acc>(unsigned_zero(lo));
    r.scale = p.scale == Scale::None ? Acc(1) : Acc(0);
    r.map = zero_advantage_map();
  } else {
    r.mean = static_cast<Acc>(mean * g.up);
    r.baseline = static_cast<Acc>(baseline * g.up);
    r.scale = p.scale == Scale::None ? Acc(1) : static_cast<Acc>(s * g.up);
    r.map = advantage_map(p.scale, p.eps, g, baseline, s);
  }
  return r;
}

// One thread writes group g's statistics (computed in Acc, stored as Out). Empty group: count
// 0, NaN elsewhere. Reported keys are unsigned_zero'd as group_stats_of_sorted does.
template <class Out, class Acc, class Key>
GAPO_TEAM_FN void write_stats(const StatsOut<Out>& out, int64_t g, const GroupResult<Acc>& r, const Key* sorted) {
  const Out nan = static_cast<Out>(NAN);
  const bool any = r.n > 0;
  const auto key = [&](int64_t i) { return static_cast<Out>(unsigned_zero(static_cast<double>(sorted[i]))); };
  out.baseline[g] = any ? static_cast<Out>(r.baseline) : nan;
  out.scale[g] = any ? static_cast<Out>(r.scale) : nan;
  out.hdi_low[g] = any ? key(r.start) : nan;
  out.hdi_high[g] = any ? key(r.start + r.k - 1) : nan;
  out.mean[g] = any ? static_cast<Out>(r.mean) : nan;
  out.min[g] = any ? key(0) : nan;
  out.max[g] = any ? key(r.n - 1) : nan;
  out.count[g] = r.n;
}

// --- fused path: load, sort, reduce, write, for one group of <= Capacity rewards ------------
// Thread rank loads elements i * Threads + rank (coalesced across the team) and keeps them
// for the write; the sort does not care which slot a key starts in. A group larger than the
// capacity (a wrong max_group_size hint) gets NaN advantages: loud, never out of bounds.
template <class Shape, class Scalar, class Key, class Team>
GAPO_TEAM_FN void fused_group(Team& team, const KernelArgs<Scalar, Key>& a, int64_t g) {
  constexpr int T = Shape::kThreads;
  constexpr int I = Shape::kItems;
  const int t = team.rank();
  const bool active = g < a.num_groups;  // padding teams of the last block run, write nothing
  int64_t begin = 0, end = 0;
  if (active) group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, begin, end);
  const int64_t size = end - begin;
  const bool fits = size <= Shape::kCapacity;
  const int64_t loaded = fits ? size : 0;

  Key original[I];
  Key keys[I];
  GAPO_UNROLL
  for (int i = 0; i < I; ++i) {
    const int64_t e = static_cast<int64_t>(i) * T + t;
    Key v = Key(0);
    if (e < loaded) v = ScalarIO<Scalar>::template load<Key>(a.rewards, (begin + e) * a.stride);
    original[i] = v;
    keys[i] = (e < loaded && !is_missing(v)) ? v : key_infinity<Key>();
  }

  bitonic_sort<Shape>(team, keys);
  Key* buffer = team.buffer();
  team.sync();  // block teams: the last exchange's readers are done with the buffer
  GAPO_UNROLL
  for (int i = 0; i < I; ++i) buffer[t * I + i] = keys[i];
  team.sync();

  const RegisterView<Shape, Key> view{buffer, keys, t};
  // Q, S and A in double, sums included: in float32, rounding Q alone can cost ~1e-4 of S for a
  // tight group far from 0, over the spec's 1e-5. The sort stays on Key; fp64 here is a few
  // operations per reward against a memory-bound kernel.
  const GroupResult<double> r = reduce_group<double, double>(team, view, loaded, a.params);

  if (active && a.out != nullptr) {
    if (fits) {
      GAPO_UNROLL
      for (int i = 0; i < I; ++i) {
        const int64_t e = static_cast<int64_t>(i) * T + t;
        if (e < size) {
          a.out[begin + e] = ScalarIO<Scalar>::from(advantage_of(original[i], r.map));
        }
      }
    } else {
      for (int64_t e = t; e < size; e += T) a.out[begin + e] = ScalarIO<Scalar>::from(static_cast<Key>(NAN));
    }
  }
  if (active && a.stats.count != nullptr && t == 0) {
    if (fits) {
      write_stats(a.stats, g, r, buffer);
    } else {  // unreachable from group_stats, which reads the true maximum size first
      GroupResult<double> overflow;
      write_stats(a.stats, g, overflow, buffer);
      a.stats.count[g] = -1;
    }
  }
}

// --- large path: one block per group over keys already sorted per segment -------------------
// Step 1 for reward j: the key the segmented sort sees (missing -> +inf, sorting last).
template <class Scalar, class Key>
GAPO_TEAM_FN Key segment_key(const KernelArgs<Scalar, Key>& a, int64_t j) {
  const Key v = ScalarIO<Scalar>::template load<Key>(a.rewards, j * a.stride);
  return is_missing(v) ? key_infinity<Key>() : v;
}

// Step 3, after the sort: reduce the sorted segment, write the advantages and statistics.
template <int Threads, class Scalar, class Key, class Team>
GAPO_TEAM_FN void large_group(Team& team, const KernelArgs<Scalar, Key>& a, int64_t g) {
  const int t = team.rank();
  const int64_t begin = a.segment_begin[g];
  const int64_t size = a.segment_end[g] - begin;
  const StridedView<Threads, Key> view{a.sorted_keys + begin, t};
  // Statistics in double, as in the fused path (thousands of terms per thread, too).
  const GroupResult<double> r = reduce_group<double, double>(team, view, size, a.params);
  if (a.out != nullptr) {
    for (int64_t e = t; e < size; e += Threads) {
      const Key reward = ScalarIO<Scalar>::template load<Key>(a.rewards, (begin + e) * a.stride);
      a.out[begin + e] = ScalarIO<Scalar>::from(advantage_of(reward, r.map));
    }
  }
  if (a.stats.count != nullptr && t == 0) write_stats(a.stats, g, r, view.sorted());
}

}  // namespace gapo::team
