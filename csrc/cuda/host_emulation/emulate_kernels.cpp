// Host emulation of the CUDA kernels' per-group bodies (../group_kernel.cuh), for CI without
// a GPU. Each thread of a team is a std::thread; Team::exchange, sync and allreduce are
// emulated with a std::barrier and shared arrays, with the same reduction trees as the device
// teams of ../cuda_team.cuh (xor butterfly inside a warp, then warp results in warp order).
// What runs here is the real code of the fused and large paths: the bitonic network and its
// slot layout, the loads, the window argmin, the pivoted sums, group_logic.h's rules, the
// writes and the statistics. What it cannot cover is the device-only glue: the shuffles
// themselves, shared-memory declarations, launch geometry and CUB's segmented sort (std::sort
// stands in for it here).
//
// Not part of the library (CMake compiles csrc/cuda/*.cu only). tests/test_cuda.py builds it
// with the host C++ compiler and compares its output with the NumPy reference:
//   c++ -std=c++20 -O1 -pthread -I csrc csrc/cuda/host_emulation/emulate_kernels.cpp -o emulate
//   emulate < INPUT > OUTPUT
// INPUT (little endian): int64 header[9] = {key_is_double, path, baseline, scale, N, G, stride,
// offsets_int64, want}; double tau, eps; double rewards[N * stride] (element i at i * stride);
// int64 offsets[G + 1]. path: 0..8 the fused size classes (with_size_class in
// group_kernel.cuh), 9 the large-group path. want: 1 advantages, 2 statistics, 3 both.
// OUTPUT: double advantages[N]; double stats[7][G] (baseline, scale, hdi_low, hdi_high, mean,
// min, max); int64 count[G]. Outputs are poisoned first (advantages 3e38 / 1e300, counts -7), so an
// element the kernel never wrote shows up as a mismatch.
#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "../group_kernel.cuh"

namespace gapo::team {

struct EmuShared {
  EmuShared(int threads, size_t key_bytes)
      : barrier(threads), slots(static_cast<size_t>(threads) * 16), exchange(key_bytes), buffer(key_bytes) {}
  std::barrier<> barrier;
  std::vector<unsigned char> slots;     // one reduction value (<= 16 bytes) per thread
  std::vector<unsigned char> exchange;  // the sort's exchange area
  std::vector<unsigned char> buffer;    // Team::buffer()
};

template <int Threads, class Key>
struct EmuTeam {
  static constexpr int kThreads = Threads;
  EmuShared* shared;
  int rank_;

  int rank() const { return rank_; }
  void sync() { shared->barrier.arrive_and_wait(); }
  Key* buffer() { return reinterpret_cast<Key*>(shared->buffer.data()); }

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

template <int Threads, class Key, class Body>
void run_team(size_t key_bytes, Body body) {
  EmuShared shared(Threads, key_bytes);
  std::vector<std::thread> lanes;
  lanes.reserve(Threads);
  for (int t = 0; t < Threads; ++t) {
    lanes.emplace_back([&shared, t, &body] {
      EmuTeam<Threads, Key> team{&shared, t};
      body(team);
    });
  }
  for (auto& lane : lanes) lane.join();
}

template <class Shape, class Key>
void emulate_fused(const KernelArgs<Key, Key>& a) {
  const size_t key_bytes = sizeof(Key) * Shape::kCapacity;
  // g == num_groups is a padding team (as in a partly filled last block): it must write nothing.
  for (int64_t g = 0; g <= a.num_groups; ++g) {
    run_team<Shape::kThreads, Key>(key_bytes, [&](auto& team) { fused_group<Shape>(team, a, g); });
  }
}

constexpr int kLargeThreads = 256;  // as in advantage_cuda.cu

template <class Key>
void emulate_large(KernelArgs<Key, Key> a) {
  // Step 1 and 2 of the large path: keys with missing -> +inf, clamped bounds, sorted segments
  // (std::sort standing in for cub::DeviceSegmentedRadixSort).
  std::vector<Key> keys(static_cast<size_t>(a.num_rewards));
  for (int64_t j = 0; j < a.num_rewards; ++j) keys[j] = segment_key(a, j);
  std::vector<int32_t> begin(static_cast<size_t>(a.num_groups)), end(static_cast<size_t>(a.num_groups));
  for (int64_t g = 0; g < a.num_groups; ++g) {
    int64_t b, e;
    group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, b, e);
    begin[g] = static_cast<int32_t>(b);
    end[g] = static_cast<int32_t>(e);
    std::sort(keys.begin() + b, keys.begin() + e);
  }
  a.sorted_keys = keys.data();
  a.segment_begin = begin.data();
  a.segment_end = end.data();
  for (int64_t g = 0; g < a.num_groups; ++g) {
    run_team<kLargeThreads, Key>(0, [&](auto& team) { large_group<kLargeThreads>(team, a, g); });
  }
}

template <class Key>
void emulate(int64_t path, const KernelArgs<Key, Key>& a) {
  if (path >= kNumSizeClasses) return emulate_large<Key>(a);
  with_size_class(static_cast<int>(path), [&](auto shape) { emulate_fused<decltype(shape), Key>(a); });
}

}  // namespace gapo::team

namespace {

bool read_exact(FILE* f, void* dst, size_t bytes) { return bytes == 0 || std::fread(dst, 1, bytes, f) == bytes; }

template <class Key>
int run(const int64_t* header, double tau, double eps, const std::vector<double>& rewards,
        const std::vector<int64_t>& offsets64, FILE* out_file) {
  using namespace gapo::team;
  const int64_t path = header[1], n = header[4], groups = header[5], stride = header[6];
  const bool offsets_int64 = header[7] != 0;
  const int64_t want = header[8];

  std::vector<Key> values(rewards.begin(), rewards.end());  // the storage the kernel reads
  std::vector<int32_t> offsets32(offsets64.begin(), offsets64.end());
  const Key poison = static_cast<Key>(sizeof(Key) == 4 ? 3.0e38 : 1.0e300);
  std::vector<Key> adv(static_cast<size_t>(n), poison);
  std::vector<Key> stats(static_cast<size_t>(7 * groups), static_cast<Key>(-12345.0));
  std::vector<int64_t> count(static_cast<size_t>(groups), -7);

  KernelArgs<Key, Key> a;
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
  emulate<Key>(path, a);

  std::vector<double> adv_out(adv.begin(), adv.end()), stats_out(stats.begin(), stats.end());
  std::fwrite(adv_out.data(), sizeof(double), adv_out.size(), out_file);
  std::fwrite(stats_out.data(), sizeof(double), stats_out.size(), out_file);
  std::fwrite(count.data(), sizeof(int64_t), count.size(), out_file);
  return 0;
}

}  // namespace

int main() {
  FILE* in = stdin;
  int64_t header[9];
  double scalars[2];
  if (!read_exact(in, header, sizeof(header)) || !read_exact(in, scalars, sizeof(scalars))) return 2;
  const int64_t n = header[4], groups = header[5], stride = header[6];
  if (n < 0 || groups < 0 || stride < 1 || header[1] < 0 || header[1] > 9) return 2;
  std::vector<double> rewards(static_cast<size_t>(n * stride));
  std::vector<int64_t> offsets(static_cast<size_t>(groups + 1));
  if (!read_exact(in, rewards.data(), rewards.size() * sizeof(double)) ||
      !read_exact(in, offsets.data(), offsets.size() * sizeof(int64_t))) {
    return 2;
  }
  const int rc = header[0] != 0 ? run<double>(header, scalars[0], scalars[1], rewards, offsets, stdout)
                                : run<float>(header, scalars[0], scalars[1], rewards, offsets, stdout);
  return std::fflush(stdout) == 0 ? rc : 2;
}
