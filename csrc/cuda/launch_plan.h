// Which launches the CUDA op makes for a batch: a plain function of what the host knows about
// the group sizes, with no CUDA in it, so CPU tests can call it (tests/test_launch_plan.py
// builds host_emulation/print_launch_plan.cpp around it).
//
// Paths. A group of n rewards belongs to path p:
//   p = 0 .. 8        fused size class p: groups of 1..4, 5..8, 9..16, ..., 513..1024 rewards
//                     (the class that holds n; class 0 also takes n = 0 where a team must write
//                     an empty group's statistics)
//   p = kLargePath    n > 1024: segmented radix sort, then a block per group
// Two ways to launch the fused classes:
//   direct   one launch of ONE class over every group g (team index = g). Best when the sizes
//            are known and similar: no list, nothing extra to read.
//   listed   a classify kernel writes each class's group indices to its own list on the device,
//            then one launch per class runs only that class's groups. Used when one class would
//            waste most of its work on padding (a loose max_group_size hint, or ragged sizes).
// Groups above 1024 are always listed for the large path, so a few large groups never send
// the small ones down it.
//
// What the host knows: either the exact histogram of paths (the op reads it back when no
// max_group_size is given: its one device-to-host read), or only the hint (nothing read, the
// call is graph-capturable). With a hint, a list's length is unknown on the host, so each list
// gets room for every group that could be in it: at most min(G, N / smallest size of the path)
// groups when the groups do not overlap (offsets as the contract says). Launches are sized for
// that room and teams past the list's real length return at once.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GAPO_PLAN_FN __host__ __device__ __forceinline__
#else
#define GAPO_PLAN_FN inline
#endif

namespace gapo::team {

constexpr int kNumSizeClasses = 9;
constexpr int kLargePath = kNumSizeClasses;
constexpr int kNumPaths = kNumSizeClasses + 1;
constexpr int64_t kMaxFusedGroupSize = 1024;  // capacity of the last class
constexpr int64_t kNoLimit = INT64_MAX;

// Threads per group and keys per thread of each fused class (FusedShape<class_threads(c),
// class_items(c)> in group_kernel.cuh):
//     class           0  1  2  3   4   5    6    7    8
//     capacity        4  8 16 32  64 128  256  512 1024
//     threads         2  2  4  8  16  32   32   64  128
//     keys/thread     2  4  4  4   4   4    8    8    8
// Keys per thread grow with the class so each thread has 8-32 bytes of loads in flight. Teams
// of <= 32 threads are lanes of a warp in 256-thread blocks; larger teams are a whole block.
GAPO_PLAN_FN constexpr int64_t class_capacity(int c) { return int64_t(4) << c; }
GAPO_PLAN_FN constexpr int class_items(int c) { return c == 0 ? 2 : (c <= 5 ? 4 : 8); }
GAPO_PLAN_FN constexpr int class_threads(int c) { return static_cast<int>(class_capacity(c) / class_items(c)); }
constexpr int kWarpClassBlockThreads = 256;
constexpr int kLargeThreads = 256;  // block of the large path's reduce kernel

GAPO_PLAN_FN constexpr int class_block_threads(int c) {
  return class_threads(c) > 32 ? class_threads(c) : kWarpClassBlockThreads;
}
GAPO_PLAN_FN constexpr int class_teams_per_block(int c) { return class_block_threads(c) / class_threads(c); }

// Smallest group size of a path (class 0: 1; the large path: 1025).
GAPO_PLAN_FN constexpr int64_t path_min_size(int p) { return p == 0 ? 1 : class_capacity(p - 1) + 1; }

// The smallest class that holds groups of `size` rewards (size <= 1024), or kLargePath.
GAPO_PLAN_FN int path_for_size(int64_t size) {
  if (size > kMaxFusedGroupSize) return kLargePath;
  int c = 0;
  while (c < kNumSizeClasses - 1 && class_capacity(c) < size) ++c;
  return c;
}

// A hint up to this size launches its class directly: the padding costs less than the list's
// extra launches. Above it, a loose hint (say 2048 for groups of 16) would make every group
// pay for the hint's class, so the groups are listed by their own size.
constexpr int64_t kDirectHintLimit = 64;

// Relative costs used to choose direct or listed launches from an exact histogram, in units of
// one key slot of a sort (a team sorts its class's capacity, whatever the group's size).
constexpr int64_t kLaunchCostSlots = int64_t(1) << 16;  // one extra launch ~ a few microseconds
constexpr int64_t kListCostSlots = 8;                  // classify and read back one group index

// What the host knows about the group sizes.
struct SizeKnowledge {
  int64_t num_groups = 0;
  int64_t num_rewards = 0;
  bool exact = false;                      // histogram read from the device
  int64_t histogram[kNumPaths] = {};       // exact: groups per path, empty groups not counted
  int64_t empty_groups = 0;                // exact: groups of size 0
  int64_t hint = kNoLimit;                 // !exact: max_group_size
  bool every_group_needs_a_team = false;   // group_stats: empty groups write their statistics
};

struct LaunchPlan {
  bool listed = false;
  // direct: the class launched over every group (team index = group index), -1 for none.
  int direct_class = -1;
  int64_t direct_blocks = 0;
  // listed: room (list entries) and blocks per path, 0 = not launched. The lists are one int32
  // array; list_offset[p] is where path p's entries start.
  int64_t list_room[kNumPaths] = {};
  int64_t list_offset[kNumPaths] = {};
  int64_t list_total = 0;
  int64_t blocks[kNumPaths] = {};
  // A group larger than this, and larger than every listed path's range, lands on top_path
  // (listed) or stays in the direct class, and gets NaN advantages there.
  int64_t size_limit = kNoLimit;
  int top_path = -1;
  bool empty_groups_listed = false;  // listed: empty groups go to class 0's list
  bool classify = false;             // a classify kernel runs (listed mode, or large groups)
  int64_t large_segments = 0;        // segment slots of the large path (0: no large path)

  int launches() const {
    int count = direct_class >= 0 ? 1 : 0;
    for (int p = 0; p < kNumSizeClasses; ++p) count += blocks[p] > 0 ? 1 : 0;
    return count;
  }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int64_t path_blocks(int p, int64_t groups) {
  return p == kLargePath ? groups : ceil_div(groups, class_teams_per_block(p));
}

inline void finish_lists(LaunchPlan& plan) {
  int64_t total = 0;
  for (int p = 0; p < kNumPaths; ++p) {
    plan.list_offset[p] = total;
    total += plan.list_room[p];
    plan.blocks[p] = plan.list_room[p] > 0 ? path_blocks(p, plan.list_room[p]) : 0;
  }
  plan.list_total = total;
  plan.large_segments = plan.list_room[kLargePath];
  plan.classify = true;
}

inline LaunchPlan plan_launch(const SizeKnowledge& k) {
  LaunchPlan plan;
  const int64_t G = k.num_groups, N = k.num_rewards;
  if (G <= 0) return plan;
  if (N <= 0 && !k.every_group_needs_a_team) return plan;

  if (!k.exact) {
    plan.size_limit = k.hint;
    const int top = path_for_size(k.hint < 1 ? 1 : k.hint);
    if (k.hint <= kDirectHintLimit) {
      plan.direct_class = top;
      plan.direct_blocks = ceil_div(G, class_teams_per_block(top));
      return plan;
    }
    plan.listed = true;
    plan.top_path = top;
    for (int p = 0; p <= top; ++p) {
      const int64_t fits = N / path_min_size(p);  // non-overlapping groups of >= that size
      plan.list_room[p] = fits < G ? fits : G;
    }
    if (k.every_group_needs_a_team) {  // not reachable from the op (group_stats reads sizes)
      plan.list_room[0] = G;
      plan.empty_groups_listed = true;
    }
    finish_lists(plan);
    return plan;
  }

  // Exact sizes: direct over the largest fused class present, or a list per class present,
  // whichever sorts fewer key slots counting each extra launch; large groups listed either way.
  int top_small = -1;
  int64_t small_groups = 0, listed_slots = 0;
  int small_classes = 0;
  for (int c = 0; c < kNumSizeClasses; ++c) {
    if (k.histogram[c] == 0) continue;
    top_small = c;
    small_groups += k.histogram[c];
    listed_slots += k.histogram[c] * (class_capacity(c) + kListCostSlots);
    ++small_classes;
  }
  const int64_t direct_slots = top_small >= 0 ? small_groups * class_capacity(top_small) : 0;
  listed_slots += (small_classes - 1) * kLaunchCostSlots + kLaunchCostSlots / 2;  // + classify
  const bool need_empty_teams = k.every_group_needs_a_team && k.empty_groups > 0;
  if (small_classes >= 2 && listed_slots < direct_slots) {
    plan.listed = true;
    for (int c = 0; c < kNumSizeClasses; ++c) plan.list_room[c] = k.histogram[c];
    if (need_empty_teams) {
      plan.list_room[0] += k.empty_groups;
      plan.empty_groups_listed = true;
    }
    plan.list_room[kLargePath] = k.histogram[kLargePath];
    plan.top_path = kLargePath;
    finish_lists(plan);
    return plan;
  }
  if (top_small >= 0 || need_empty_teams) {
    plan.direct_class = top_small >= 0 ? top_small : 0;
    plan.direct_blocks = ceil_div(G, class_teams_per_block(plan.direct_class));
  }
  if (k.histogram[kLargePath] > 0) {
    plan.list_room[kLargePath] = k.histogram[kLargePath];
    plan.top_path = kLargePath;
    finish_lists(plan);
  }
  return plan;
}

// Where the classify kernel puts group g of `size` rewards under `plan`: a path index, or -1
// for no list (empty, or handled by the direct launch).
GAPO_PLAN_FN int listed_path(int64_t size, bool listed, int top_path, bool empty_groups_listed) {
  if (size == 0) return listed && empty_groups_listed ? 0 : -1;
  const int p = path_for_size(size);
  if (!listed) return p == kLargePath ? kLargePath : -1;
  return p > top_path ? top_path : p;
}

}  // namespace gapo::team
