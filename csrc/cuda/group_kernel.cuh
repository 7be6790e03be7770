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
#include "launch_plan.h"

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

// The fused kernel's size classes, smallest first (class_threads / class_items in
// launch_plan.h, which the launch plan, the host emulation and the tests share).
template <class F>
inline void with_size_class(int index, F&& f) {
  switch (index) {
    case 0: return f(FusedShape<class_threads(0), class_items(0)>{});
    case 1: return f(FusedShape<class_threads(1), class_items(1)>{});
    case 2: return f(FusedShape<class_threads(2), class_items(2)>{});
    case 3: return f(FusedShape<class_threads(3), class_items(3)>{});
    case 4: return f(FusedShape<class_threads(4), class_items(4)>{});
    case 5: return f(FusedShape<class_threads(5), class_items(5)>{});
    case 6: return f(FusedShape<class_threads(6), class_items(6)>{});
    case 7: return f(FusedShape<class_threads(7), class_items(7)>{});
    default: return f(FusedShape<class_threads(8), class_items(8)>{});
  }
}
static_assert(kNumSizeClasses == 9 && class_capacity(kNumSizeClasses - 1) == kMaxFusedGroupSize,
              "with_size_class lists every class of launch_plan.h");

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
  // Groups larger than this get NaN advantages (the max_group_size hint; kNoLimit without).
  int64_t size_limit = kNoLimit;
  // Direct launches: groups above kMaxFusedGroupSize are left to the large path, which runs
  // after this launch (true only when the plan has one).
  bool large_elsewhere = false;
  // Listed launches: this launch's groups are list[0 .. min(*list_length, list_room)).
  const int32_t* list = nullptr;
  const int32_t* list_length = nullptr;
  int64_t list_room = 0;
  // Large path only: keys sorted per segment slot, and each slot's bounds (empty slots 0, 0).
  const Key* sorted_keys = nullptr;
  const int32_t* segment_begin = nullptr;
  const int32_t* segment_end = nullptr;
};

// offsets[i] of an int32 or int64 offsets tensor, as int64.
GAPO_TEAM_FN int64_t read_offset(const void* offsets, bool int64_offsets, int64_t i) {
  return int64_offsets ? static_cast<const int64_t*>(offsets)[i] : static_cast<const int32_t*>(offsets)[i];
}

GAPO_TEAM_FN int64_t clamp_offset(int64_t v, int64_t num_rewards) {
  return v < 0 ? 0 : (v > num_rewards ? num_rewards : v);
}

// Group g's bounds, clamped to [0, N] and to begin <= end, so offsets that break the contract
// (not checked when max_group_size is given, unless validate=True) can give wrong numbers but
// never a wild access.
GAPO_TEAM_FN void group_bounds(const void* offsets, bool int64_offsets, int64_t g, int64_t num_rewards,
                               int64_t& begin, int64_t& end) {
  const int64_t b = clamp_offset(read_offset(offsets, int64_offsets, g), num_rewards);
  const int64_t e = clamp_offset(read_offset(offsets, int64_offsets, g + 1), num_rewards);
  begin = b;
  end = e < b ? b : e;
}

// Rows no group covers get advantage 0, so the op never returns memory nothing wrote. With the
// clamped bounds above, the groups cover every row of [offsets[0], offsets[G]) between them
// (each upward step of the offsets is a group), so only the two ends can be left: [0,
// offsets[0]) and [offsets[G], N), both empty for offsets the contract allows. The rows
// first, first + step, ... of them are this thread's.
template <class Scalar, class Key>
GAPO_TEAM_FN void write_uncovered_ends(const KernelArgs<Scalar, Key>& a, int64_t first, int64_t step) {
  if (a.out == nullptr) return;
  const int64_t head = clamp_offset(read_offset(a.offsets, a.offsets_int64, 0), a.num_rewards);
  const int64_t tail = clamp_offset(read_offset(a.offsets, a.offsets_int64, a.num_groups), a.num_rewards);
  for (int64_t j = first; j < head; j += step) a.out[j] = ScalarIO<Scalar>::from(0.0);
  for (int64_t j = tail + first; j < a.num_rewards; j += step) a.out[j] = ScalarIO<Scalar>::from(0.0);
}

// NaN advantages for rows [begin, end) of a group no kernel can compute (larger than the hint),
// this thread's rows being first, first + step, ...
template <class Scalar, class Key>
GAPO_TEAM_FN void write_nan_rows(const KernelArgs<Scalar, Key>& a, int64_t begin, int64_t end, int64_t first,
                                 int64_t step) {
  if (a.out == nullptr) return;
  for (int64_t j = begin + first; j < end; j += step) a.out[j] = ScalarIO<Scalar>::from(static_cast<double>(NAN));
}

// The key a sort sees for a reward: +inf for a missing one (it sorts last), and +0.0 for -0.0,
// so the sorted order and the window are the same whatever the signs of zeros (a bitonic
// network and CUB's radix sort would otherwise order -0.0 before +0.0 or keep input order).
template <class Key>
GAPO_TEAM_FN Key sort_key(Key v) {
  return is_missing(v) ? key_infinity<Key>() : v + Key(0);
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

// This thread's sorted keys to dst (its slots of the team's buffer). On the GPU a row of 16
// bytes or more is stored as 16-byte words: a warp's scalar stores with a stride of I words
// would each be an I-way shared-memory bank conflict, the vector stores are conflict-free.
template <int I, class Key>
GAPO_TEAM_FN void store_keys(Key* dst, const Key (&keys)[I]) {
#if defined(__CUDA_ARCH__)
  if constexpr ((sizeof(Key) * I) % 16 == 0) {
    GAPO_UNROLL
    for (int w = 0; w < static_cast<int>(sizeof(Key) * I / 16); ++w) {
      int4 word;
      memcpy(&word, reinterpret_cast<const char*>(keys) + 16 * w, 16);
      reinterpret_cast<int4*>(dst)[w] = word;
    }
  } else
#endif
  {
    GAPO_UNROLL
    for (int i = 0; i < I; ++i) dst[i] = keys[i];
  }
}

// --- which group a team owns ------------------------------------------------------------------
// Direct launches map team i to group i; listed launches read the group from their list.
// -1: none (a padding team past the end), and the whole team returns at once.
template <class Scalar, class Key>
GAPO_TEAM_FN int64_t group_of_team(const KernelArgs<Scalar, Key>& a, int64_t team_index) {
  if (a.list == nullptr) return team_index < a.num_groups ? team_index : -1;
  const int64_t length = *a.list_length;
  const int64_t filled = length < a.list_room ? length : a.list_room;
  return team_index < filled ? static_cast<int64_t>(a.list[team_index]) : -1;
}

// --- fused path: load, sort, reduce, write, for one group of <= Capacity rewards ------------
// Thread rank loads elements i * Threads + rank (coalesced across the team) and keeps them
// for the write; the sort does not care which slot a key starts in. Empty groups and padding
// teams return before any load. A group larger than the capacity or the hint gets NaN
// advantages (loud, never out of bounds), unless the large path computes it after this launch.
// Every early return is taken by the whole team, so no shuffle or barrier is left waiting.
template <class Shape, class Scalar, class Key, class Team>
GAPO_TEAM_FN void fused_group(Team& team, const KernelArgs<Scalar, Key>& a, int64_t team_index) {
  constexpr int T = Shape::kThreads;
  constexpr int I = Shape::kItems;
  const int t = team.rank();
  const int64_t g = group_of_team(a, team_index);
  if (g < 0) return;
  if (a.list == nullptr && g == 0) write_uncovered_ends(a, t, T);  // listed: the classify kernel
  int64_t begin, end;
  group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, begin, end);
  const int64_t size = end - begin;
  if (size == 0) {
    if (a.stats.count != nullptr && t == 0) write_stats(a.stats, g, GroupResult<double>{}, static_cast<const Key*>(nullptr));
    return;
  }
  if (size > Shape::kCapacity || size > a.size_limit) {
    if (a.large_elsewhere && size > kMaxFusedGroupSize && size <= a.size_limit) return;
    write_nan_rows(a, begin, end, t, T);
    if (a.stats.count != nullptr && t == 0) {  // unreachable from group_stats, which reads the sizes
      write_stats(a.stats, g, GroupResult<double>{}, static_cast<const Key*>(nullptr));
      a.stats.count[g] = -1;
    }
    return;
  }

  Key original[I];
  Key keys[I];
  GAPO_UNROLL
  for (int i = 0; i < I; ++i) {
    const int64_t e = static_cast<int64_t>(i) * T + t;
    Key v = Key(0);
    if (e < size) v = ScalarIO<Scalar>::template load<Key>(a.rewards, (begin + e) * a.stride);
    original[i] = v;
    keys[i] = e < size ? sort_key(v) : key_infinity<Key>();
  }

  bitonic_sort<Shape>(team, keys);
  Key* buffer = team.buffer();
  team.sync();  // block teams: the last exchange's readers are done with the buffer
  store_keys(buffer + t * I, keys);
  team.sync();

  const RegisterView<Shape, Key> view{buffer, keys, t};
  // Q, S and A in double, sums included: in float32, rounding Q alone can cost ~1e-4 of S for a
  // tight group far from 0, over the spec's 1e-5. The sort stays on Key; fp64 here is a few
  // operations per reward against a memory-bound kernel.
  const GroupResult<double> r = reduce_group<double, double>(team, view, size, a.params);

  if (a.out != nullptr) {
    GAPO_UNROLL
    for (int i = 0; i < I; ++i) {
      const int64_t e = static_cast<int64_t>(i) * T + t;
      if (e < size) {
        a.out[begin + e] = ScalarIO<Scalar>::from(advantage_of(original[i], r.map));
      }
    }
  }
  if (a.stats.count != nullptr && t == 0) write_stats(a.stats, g, r, buffer);
}

// --- listing groups by path (the classify step of a listed or large-path plan) -----------------
struct ListArgs {
  bool listed = false;  // fused classes are listed too (else only the large path is)
  int top_path = kLargePath;
  bool empty_groups_listed = false;
  int64_t offset[kNumPaths] = {};  // path p's list is lists[offset[p] .. offset[p] + room[p])
  int64_t room[kNumPaths] = {};
  int32_t* lists = nullptr;
  int32_t* lengths = nullptr;        // kNumPaths counters, zero before the classify step
  int32_t* segment_begin = nullptr;  // large path: room[kLargePath] slots, zero before
  int32_t* segment_end = nullptr;
};

// The list layout a plan chose (host side); the caller points lists, lengths and the segment
// bounds at its memory.
inline ListArgs list_layout_of(const LaunchPlan& plan) {
  ListArgs l;
  l.listed = plan.listed;
  l.top_path = plan.top_path;
  l.empty_groups_listed = plan.empty_groups_listed;
  for (int p = 0; p < kNumPaths; ++p) {
    l.offset[p] = plan.list_offset[p];
    l.room[p] = plan.list_room[p];
  }
  return l;
}

// The path group g is listed on (-1: none), and its clamped bounds.
template <class Scalar, class Key>
GAPO_TEAM_FN int list_path_of(const KernelArgs<Scalar, Key>& a, const ListArgs& l, int64_t g, int64_t& begin,
                              int64_t& end) {
  group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, begin, end);
  return listed_path(end - begin, l.listed, l.top_path, l.empty_groups_listed);
}

// Puts group g in slot `slot` of path p's list. A full list can only come from offsets that
// break the contract (overlapping groups): that group's rows get NaN here instead.
template <class Scalar, class Key>
GAPO_TEAM_FN void record_in_list(const KernelArgs<Scalar, Key>& a, const ListArgs& l, int p, int64_t slot, int64_t g,
                                 int64_t begin, int64_t end) {
  if (slot >= l.room[p]) {
    write_nan_rows(a, begin, end, 0, 1);
    return;
  }
  l.lists[l.offset[p] + slot] = static_cast<int32_t>(g);
  if (p == kLargePath) {
    l.segment_begin[slot] = static_cast<int32_t>(begin);
    l.segment_end[slot] = static_cast<int32_t>(end);
  }
}

// --- large path: one block per listed group over keys already sorted per segment ------------
// Step 1 for reward j: the key the segmented sort sees (missing -> +inf, -0.0 -> +0.0).
template <class Scalar, class Key>
GAPO_TEAM_FN Key segment_key(const KernelArgs<Scalar, Key>& a, int64_t j) {
  return sort_key(ScalarIO<Scalar>::template load<Key>(a.rewards, j * a.stride));
}

// Step 1 for segment slot s: this thread's keys of the slot's segment (unused slots are empty).
template <class Scalar, class Key>
GAPO_TEAM_FN void prepare_segment(const KernelArgs<Scalar, Key>& a, Key* keys, int64_t slot, int64_t first,
                                  int64_t step) {
  const int64_t end = a.segment_end[slot];
  for (int64_t j = a.segment_begin[slot] + first; j < end; j += step) keys[j] = segment_key(a, j);
}

// Step 3, after the sort: reduce slot s's sorted segment, write the advantages and statistics.
template <int Threads, class Scalar, class Key, class Team>
GAPO_TEAM_FN void large_group(Team& team, const KernelArgs<Scalar, Key>& a, int64_t slot) {
  const int t = team.rank();
  const int64_t begin = a.segment_begin[slot];
  const int64_t size = a.segment_end[slot] - begin;
  if (size == 0) return;  // an unused slot: the whole block returns
  const int64_t g = a.list[slot];
  if (size > a.size_limit) {  // larger than the hint: NaN, as in the fused path
    write_nan_rows(a, begin, begin + size, t, Threads);
    return;
  }
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
