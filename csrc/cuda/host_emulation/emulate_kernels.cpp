// Host emulation of the CUDA kernels' per-group bodies (../group_kernel.cuh), for CI without
// a GPU. Each GPU thread is a std::thread; Team::exchange, sync and allreduce are emulated with
// a std::barrier per team and shared arrays, with the same reduction trees as the device teams
// of ../cuda_team.cuh (xor butterfly inside a warp, then warp results in warp order). A block
// runs all its teams at once, each on its own slice of one block-wide buffer, as the fused
// kernel lays out its shared memory. What runs here is the real code: the launch plan
// (../launch_plan.h), the classify step, the bitonic network and its slot layout, the loads and
// stores of every storage type (float16 and bfloat16 through host types with the device's
// round-to-nearest-even conversions), the window argmin, group_logic.h's rules, the writes and
// the statistics. What it cannot cover is the device-only glue: the shuffles themselves,
// shared-memory declarations, atomics and CUB's segmented sort (std::sort stands in for it).
//
// Not part of the library (CMake compiles csrc/cuda/*.cu only). tests/test_cuda.py builds it
// with the host C++ compiler and compares its output with the NumPy reference:
//   c++ -std=c++20 -O1 -pthread -I csrc csrc/cuda/host_emulation/emulate_kernels.cpp -o emulate
//   emulate < INPUT > OUTPUT
// INPUT (little endian): int64 header[10] = {dtype, path, baseline, scale, N, G, stride,
// offsets_int64, want, hint}; double tau, eps; double rewards[N * stride] (element i at
// i * stride); int64 offsets[G + 1]. dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16 (the
// values must be exact in it). path: 0..8 one direct launch of that fused size class over every
// group, 9 the large-group path for every non-empty group, 10 the op's own launch plan (from
// the exact sizes when hint < 0, else from the hint alone). want: 1 advantages, 2 statistics,
// 3 both. OUTPUT: double advantages[N]; double stats[7][G] (baseline, scale, hdi_low,
// hdi_high, mean, min, max); int64 count[G]. Outputs are poisoned first (advantages 3e38 /
// 1e300 / 60000, counts -7), so an element the kernel never wrote shows up as a mismatch.
#include <algorithm>
#include <cmath>
#include <memory>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "../group_kernel.cuh"

namespace gapo::team {

// Host stand-ins for __half and __nv_bfloat16 with the device's conversions.
struct EmuHalf {
  _Float16 value;
};
struct EmuBfloat16 {
  uint16_t bits;
};

inline float bfloat16_to_float(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &word, sizeof(f));
  return f;
}

inline uint16_t float_to_bfloat16_rn(float f) {  // as __float2bfloat16_rn
  uint32_t word;
  std::memcpy(&word, &f, sizeof(word));
  if (std::isnan(f)) return static_cast<uint16_t>((word >> 16) | 0x40u);
  word += 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>(word >> 16);
}

template <>
struct ScalarIO<EmuHalf> {
  template <class Key>
  static Key load(const EmuHalf* p, int64_t i) { return static_cast<Key>(static_cast<float>(p[i].value)); }
  template <class Acc>
  static EmuHalf from(Acc v) { return EmuHalf{static_cast<_Float16>(static_cast<float>(v))}; }
};

template <>
struct ScalarIO<EmuBfloat16> {
  template <class Key>
  static Key load(const EmuBfloat16* p, int64_t i) { return static_cast<Key>(bfloat16_to_float(p[i].bits)); }
  template <class Acc>
  static EmuBfloat16 from(Acc v) { return EmuBfloat16{float_to_bfloat16_rn(static_cast<float>(v))}; }
};

inline double to_double(float v) { return v; }
inline double to_double(double v) { return v; }
inline double to_double(EmuHalf v) { return static_cast<float>(v.value); }
inline double to_double(EmuBfloat16 v) { return bfloat16_to_float(v.bits); }

template <class Scalar>
Scalar from_double(double v) { return ScalarIO<Scalar>::from(v); }

struct EmuShared {
  EmuShared(int threads, size_t key_bytes) : barrier(threads), slots(static_cast<size_t>(threads) * 16), exchange(key_bytes) {}
  std::barrier<> barrier;
  std::vector<unsigned char> slots;     // one reduction value (<= 16 bytes) per thread
  std::vector<unsigned char> exchange;  // the sort's exchange area
};

template <int Threads, class Key>
struct EmuTeam {
  static constexpr int kThreads = Threads;
  EmuShared* shared;
  int rank_;
  Key* buffer_;

  int rank() const { return rank_; }
  void sync() { shared->barrier.arrive_and_wait(); }
  Key* buffer() { return buffer_; }

  template <int Mask, int I>
  void exchange(const Key (&in)[I], Key (&out)[I]) {
    static_assert(Mask < Threads, "partner outside the team");
    Key* area = reinterpret_cast<Key*>(shared->exchange.data());
    sync();
    for (int i = 0; i < I; ++i) area[i * Threads + rank_] = in[i];
    sync();
    for (int i = 0; i < I; ++i) out[i] = area[i * Threads + (rank_ ^ Mask)];
  }

  template <class V, class Op>
  V allreduce(V v, Op op) {
    static_assert(sizeof(V) <= 16, "slots hold 16 bytes");
    V* slot = reinterpret_cast<V*>(shared->slots.data());
    constexpr int kWarpWidth = Threads < 32 ? Threads : 32;
    for (int m = 1; m < kWarpWidth; m <<= 1) {
      sync();
      slot[rank_] = v;
      sync();
      v = op(v, slot[rank_ ^ m]);
    }
    if constexpr (Threads > 32) {
      sync();
      if (rank_ % 32 == 0) slot[rank_ / 32] = v;
      sync();
      V total = slot[0];
      for (int w = 1; w < Threads / 32; ++w) total = op(total, slot[w]);
      v = total;
    }
    return v;
  }
};

// One block of BlockThreads threads in teams of Threads: body(team, team_in_block) on each
// thread of the teams for which busy(team_in_block) holds, every team with its own barrier and
// its Capacity-key slice of the block's buffer. A team that is not busy would return before
// touching anything (a padding team, an unused list entry): it gets no threads, which keeps
// the emulation fast.
template <int BlockThreads, int Threads, int Capacity, class Key, class Busy, class Body>
void run_block(Busy busy, Body body) {
  constexpr int kTeams = BlockThreads / Threads;
  std::vector<Key> block_buffer(static_cast<size_t>(kTeams) * Capacity + 1);
  std::vector<std::unique_ptr<EmuShared>> shared(kTeams);
  std::vector<std::thread> threads;
  for (int team_in_block = 0; team_in_block < kTeams; ++team_in_block) {
    if (!busy(team_in_block)) continue;
    shared[team_in_block] = std::make_unique<EmuShared>(Threads, sizeof(Key) * Capacity);
    for (int rank = 0; rank < Threads; ++rank) {
      threads.emplace_back([&, team_in_block, rank] {
        EmuTeam<Threads, Key> team{shared[team_in_block].get(), rank,
                                   block_buffer.data() + static_cast<size_t>(team_in_block) * Capacity};
        body(team, team_in_block);
      });
    }
  }
  for (auto& thread : threads) thread.join();
}

// A fused launch of `blocks` blocks, as fused_group_kernel maps blocks and teams to groups.
template <class Shape, class Scalar, class Key>
void emulate_fused(const KernelArgs<Scalar, Key>& a, int64_t blocks) {
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t first_team = block * Shape::kTeamsPerBlock;
    run_block<Shape::kBlockThreads, Shape::kThreads, Shape::kCapacity, Key>(
        [&](int team_in_block) { return group_of_team(a, first_team + team_in_block) >= 0; },
        [&](auto& team, int team_in_block) { fused_group<Shape>(team, a, first_team + team_in_block); });
  }
}

template <class Scalar, class Key>
void emulate_class(int size_class, int64_t blocks, const KernelArgs<Scalar, Key>& a) {
  with_size_class(size_class, [&](auto shape) { emulate_fused<decltype(shape)>(a, blocks); });
}

// Steps 1-3 of the large path over the listed segment slots.
template <class Scalar, class Key>
void emulate_large(const KernelArgs<Scalar, Key>& a, int64_t slots) {
  std::vector<Key> keys(static_cast<size_t>(a.num_rewards), static_cast<Key>(-777.0));  // unprepared: visible
  for (int64_t s = 0; s < slots; ++s) prepare_segment(a, keys.data(), s, 0, 1);
  for (int64_t s = 0; s < slots; ++s) std::sort(keys.begin() + a.segment_begin[s], keys.begin() + a.segment_end[s]);
  KernelArgs<Scalar, Key> la = a;
  la.sorted_keys = keys.data();
  for (int64_t s = 0; s < slots; ++s) {
    run_block<kLargeThreads, kLargeThreads, 0, Key>([&](int) { return la.segment_end[s] > la.segment_begin[s]; },
                                                     [&](auto& team, int) { large_group<kLargeThreads>(team, la, s); });
  }
}

// The op's run_plan (advantage_cuda.cu) with the classify kernel run group by group.
template <class Scalar, class Key>
void emulate_plan(const LaunchPlan& plan, KernelArgs<Scalar, Key> a) {
  a.size_limit = plan.size_limit;
  std::vector<int32_t> lists(static_cast<size_t>(plan.list_total) + 1, -1);
  std::vector<int32_t> lengths(kNumPaths, 0);
  std::vector<int32_t> begin(static_cast<size_t>(plan.large_segments) + 1, 0), end(begin.size(), 0);
  ListArgs l = list_layout_of(plan);
  l.lists = lists.data();
  l.lengths = lengths.data();
  l.segment_begin = begin.data();
  l.segment_end = end.data();
  if (plan.classify) {
    if (l.listed) write_uncovered_ends(a, 0, 1);
    for (int64_t g = 0; g < a.num_groups; ++g) {
      int64_t b, e;
      const int path = list_path_of(a, l, g, b, e);
      if (path >= 0) record_in_list(a, l, path, lengths[path]++, g, b, e);
    }
  }
  if (plan.direct_class >= 0) {
    KernelArgs<Scalar, Key> direct = a;
    direct.large_elsewhere = plan.large_segments > 0;
    emulate_class(plan.direct_class, plan.direct_blocks, direct);
  }
  for (int c = 0; plan.listed && c < kNumSizeClasses; ++c) {
    if (plan.blocks[c] == 0) continue;
    KernelArgs<Scalar, Key> listed = a;
    listed.list = lists.data() + plan.list_offset[c];
    listed.list_length = lengths.data() + c;
    listed.list_room = plan.list_room[c];
    emulate_class(c, plan.blocks[c], listed);
  }
  if (plan.large_segments > 0) {
    KernelArgs<Scalar, Key> la = a;
    la.list = lists.data() + plan.list_offset[kLargePath];
    la.list_length = lengths.data() + kLargePath;
    la.list_room = plan.list_room[kLargePath];
    la.segment_begin = begin.data();
    la.segment_end = end.data();
    emulate_large(la, plan.large_segments);
  }
}

// Exact sizes as the summary kernel counts them.
template <class Scalar, class Key>
SizeKnowledge exact_sizes(const KernelArgs<Scalar, Key>& a) {
  SizeKnowledge k;
  k.num_groups = a.num_groups;
  k.num_rewards = a.num_rewards;
  k.exact = true;
  for (int64_t g = 0; g < a.num_groups; ++g) {
    int64_t b, e;
    group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, b, e);
    if (e == b) {
      ++k.empty_groups;
    } else {
      ++k.histogram[path_for_size(e - b)];
    }
  }
  return k;
}

constexpr int64_t kForcedLargePath = kLargePath;
constexpr int64_t kPlannedPath = kLargePath + 1;

template <class Scalar, class Key>
void emulate(int64_t path, int64_t hint, const KernelArgs<Scalar, Key>& a) {
  if (path == kPlannedPath) {
    SizeKnowledge k = hint < 0 ? exact_sizes(a) : SizeKnowledge{};
    if (hint >= 0) {
      k.num_groups = a.num_groups;
      k.num_rewards = a.num_rewards;
      k.hint = hint;
    }
    k.every_group_needs_a_team = a.stats.count != nullptr;
    emulate_plan(plan_launch(k), a);
    return;
  }
  if (path == kForcedLargePath) {  // every non-empty group through the large path
    std::vector<int32_t> lists(static_cast<size_t>(a.num_groups) + 1), begin(lists.size(), 0), end(lists.size(), 0);
    int64_t slots = 0;
    for (int64_t g = 0; g < a.num_groups; ++g) {
      int64_t b, e;
      group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, b, e);
      if (e == b) {  // group_stats: an empty group's statistics, as a fused team writes them
        if (a.stats.count != nullptr) write_stats(a.stats, g, GroupResult<double>{}, static_cast<const Key*>(nullptr));
        continue;
      }
      lists[slots] = static_cast<int32_t>(g);
      begin[slots] = static_cast<int32_t>(b);
      end[slots] = static_cast<int32_t>(e);
      ++slots;
    }
    KernelArgs<Scalar, Key> la = a;
    la.list = lists.data();
    int32_t length = static_cast<int32_t>(slots);
    la.list_length = &length;
    la.list_room = slots;
    la.segment_begin = begin.data();
    la.segment_end = end.data();
    emulate_large(la, slots);
    return;
  }
  const int size_class = static_cast<int>(path);
  emulate_class(size_class, (a.num_groups + class_teams_per_block(size_class)) / class_teams_per_block(size_class) + 1,
                a);  // + padding teams past the last group, which must write nothing
}

}  // namespace gapo::team

namespace {

bool read_exact(FILE* f, void* dst, size_t bytes) { return bytes == 0 || std::fread(dst, 1, bytes, f) == bytes; }

template <class Scalar, class Key>
int run(const int64_t* header, double tau, double eps, const std::vector<double>& rewards,
        const std::vector<int64_t>& offsets64, FILE* out_file) {
  using namespace gapo::team;
  const int64_t path = header[1], n = header[4], groups = header[5], stride = header[6];
  const bool offsets_int64 = header[7] != 0;
  const int64_t want = header[8], hint = header[9];

  std::vector<Scalar> values;  // the storage the kernel reads
  for (double v : rewards) values.push_back(from_double<Scalar>(v));
  std::vector<int32_t> offsets32(offsets64.begin(), offsets64.end());
  const double poison = sizeof(Scalar) == 2 ? 60000.0 : (sizeof(Scalar) == 4 ? 3.0e38 : 1.0e300);
  std::vector<Scalar> adv(static_cast<size_t>(n), from_double<Scalar>(poison));
  std::vector<Key> stats(static_cast<size_t>(7 * groups), static_cast<Key>(-12345.0));
  std::vector<int64_t> count(static_cast<size_t>(groups), -7);

  KernelArgs<Scalar, Key> a;
  a.rewards = values.data();
  a.stride = stride;
  a.out = (want & 1) ? adv.data() : nullptr;
  a.offsets = offsets_int64 ? static_cast<const void*>(offsets64.data()) : static_cast<const void*>(offsets32.data());
  a.offsets_int64 = offsets_int64;
  a.num_groups = groups;
  a.num_rewards = n;
  a.params = gapo::Params{tau, eps, static_cast<gapo::Baseline>(header[2]), static_cast<gapo::Scale>(header[3])};
  if (want & 2) {
    a.stats.baseline = stats.data() + 0 * groups;
    a.stats.scale = stats.data() + 1 * groups;
    a.stats.hdi_low = stats.data() + 2 * groups;
    a.stats.hdi_high = stats.data() + 3 * groups;
    a.stats.mean = stats.data() + 4 * groups;
    a.stats.min = stats.data() + 5 * groups;
    a.stats.max = stats.data() + 6 * groups;
    a.stats.count = count.data();
  }
  emulate(path, hint, a);

  std::vector<double> adv_out, stats_out(stats.begin(), stats.end());
  for (const Scalar& v : adv) adv_out.push_back(to_double(v));
  std::fwrite(adv_out.data(), sizeof(double), adv_out.size(), out_file);
  std::fwrite(stats_out.data(), sizeof(double), stats_out.size(), out_file);
  std::fwrite(count.data(), sizeof(int64_t), count.size(), out_file);
  return 0;
}

}  // namespace

int main() {
  using namespace gapo::team;
  FILE* in = stdin;
  int64_t header[10];
  double scalars[2];
  if (!read_exact(in, header, sizeof(header)) || !read_exact(in, scalars, sizeof(scalars))) return 2;
  const int64_t n = header[4], groups = header[5], stride = header[6];
  if (n < 0 || groups < 0 || stride < 1 || header[1] < 0 || header[1] > kPlannedPath) return 2;
  std::vector<double> rewards(static_cast<size_t>(n * stride));
  std::vector<int64_t> offsets(static_cast<size_t>(groups + 1));
  if (!read_exact(in, rewards.data(), rewards.size() * sizeof(double)) ||
      !read_exact(in, offsets.data(), offsets.size() * sizeof(int64_t))) {
    return 2;
  }
  int rc = 2;
  switch (header[0]) {
    case 0: rc = run<float, float>(header, scalars[0], scalars[1], rewards, offsets, stdout); break;
    case 1: rc = run<double, double>(header, scalars[0], scalars[1], rewards, offsets, stdout); break;
    case 2: rc = run<EmuHalf, float>(header, scalars[0], scalars[1], rewards, offsets, stdout); break;
    case 3: rc = run<EmuBfloat16, float>(header, scalars[0], scalars[1], rewards, offsets, stdout); break;
    default: return 2;
  }
  return std::fflush(stdout) == 0 ? rc : 2;
}
