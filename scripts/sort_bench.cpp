// Single-thread timing of the CPU kernel's float sort (sort_float_group) per group size and
// path: 2^20 standard-normal float32 keys cut into groups of each size, each group sorted into
// a separate destination; prints the best of 31 runs in ns per key (process CPU time): each run
// takes a few milliseconds, and on a shared machine the best of many short runs is the one
// figure that repeats.
//   g++ -O3 -DNDEBUG -std=c++20 -fno-math-errno -Icsrc scripts/sort_bench.cpp -o /tmp/sort_bench
//   [GAPO_SORT_BENCH_ISA=avx2] [GAPO_SORT_BENCH_HOT_DST=1] /tmp/sort_bench [size ...]        (default: 2..65536, powers of two and ragged sizes between)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "cpu/sort_keys.h"

static double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

int main(int argc, char** argv) {
  using namespace gapo::cpu;
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
  if (sizes.empty()) sizes = {8, 16, 32, 64, 100, 128, 129, 200, 256, 300, 512, 700, 1024, 1500, 2048, 3000, 4096, 5000, 65536};
  const int64_t total = int64_t(1) << 20;
  constexpr int kRuns = 31;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> keys(total);
  for (float& v : keys) v = normal(rng);
  std::vector<float> out(total + 8);
  // GAPO_SORT_BENCH_HOT_DST=1: every group sorted into the same buffer, as the advantage op
  // sorts into its task's reused scratch (the destination stays in L1; otherwise the stores
  // of 4 MB of output miss the cache and hide part of the sort's own cost).
  const char* hot_env = std::getenv("GAPO_SORT_BENCH_HOT_DST");
  const bool hot_dst = hot_env != nullptr && std::string(hot_env) == "1";
  std::printf("%8s", "size");
  // GAPO_SORT_BENCH_ISA=avx2 (say) times that path alone.
  std::vector<std::string> isas = supported_cpu_isa_names();
  if (const char* only = std::getenv("GAPO_SORT_BENCH_ISA")) isas = {only};
  for (const std::string& name : isas) std::printf(" %9s", name.c_str());
  std::printf("   ns/key, best of %d\n", kRuns);
  for (int64_t size : sizes) {
    std::printf("%8lld", static_cast<long long>(size));
    const int64_t groups = total / size;
    for (const std::string& name : isas) {
      const CpuIsa isa = choose_cpu_isa(name.c_str()).isa;
      SortScratch scratch;
      double best = 1e30;
      int64_t sink = 0;
      for (int rep = 0; rep < kRuns; ++rep) {
        const double start = cpu_seconds();
        for (int64_t g = 0; g < groups; ++g) sink += sort_float_group(isa, keys.data() + g * size, size, out.data() + (hot_dst ? 0 : g * size), scratch);
        best = std::min(best, cpu_seconds() - start);
      }
      if (sink < 0) std::printf("?");
      std::printf(" %9.3f", best / double(groups * size) * 1e9);
    }
    std::printf("\n");
  }
  return 0;
}
