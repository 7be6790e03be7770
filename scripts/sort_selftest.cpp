// Standalone check of the CPU sort of every path this build has, against std::sort: every size
// up to 1100, sizes up to 5000 and around every threshold of the size -> method table
// (sort_keys.h), missing rewards, ties (two or three distinct values, all equal), a few levels
// as the counting sort takes them (up to nine, the ninth at the end), signed zeros, ascending
// and descending input; the source must come back unchanged. Built by scripts/check_aarch64_compile.sh
// for aarch64 (and run there under qemu-aarch64 when it is installed); builds natively too:
//   g++ -O2 -std=c++20 -Icsrc scripts/sort_selftest.cpp -o /tmp/sort_selftest && /tmp/sort_selftest [PATH...]
// PATH: the paths to check (avx2, sve, ...; default: every one this CPU supports).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/sort_keys.h"

#if defined(GAPO_CPU_ISA_SVE) && !defined(PR_SVE_SET_VL)
#define PR_SVE_SET_VL 50
#endif

using namespace gapo::cpu;

// Whether the path sorts the rewards `src` into the ascending finite keys (-0 as +0) and
// leaves src unchanged.
bool sorts_right(CpuIsa isa, std::vector<float>& src, SortScratch& scratch) {
  const int size = static_cast<int>(src.size());
  std::vector<float> want;
  for (float v : src) {
    if (std::isfinite(v)) want.push_back(v + 0.0f);
  }
  std::sort(want.begin(), want.end());
  std::vector<float> dst(std::max<int>(size, kTinyNetworkMax));
  const std::vector<float> before = src;  // the rewards are the caller's: never written
  const int64_t n = sort_float_group(isa, src.data(), size, dst.data(), scratch);
  bool ok = n == static_cast<int64_t>(want.size()) &&
            std::memcmp(before.data(), src.data(), sizeof(float) * src.size()) == 0;
  for (int64_t i = 0; ok && i < n; ++i) ok = dst[i] == want[i] && !std::signbit(dst[i]) == !std::signbit(want[i]);
  return ok;
}

int main(int argc, char** argv) {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1.0f, -1.0f};
  int failures = 0;
  int checked = 0;
  // Arguments: the paths to check (default: every one this CPU supports).
  std::vector<std::string> paths = supported_cpu_isa_names();
  if (argc > 1) {
    std::vector<std::string> asked(argv + 1, argv + argc);
    std::erase_if(paths, [&](const std::string& p) { return std::find(asked.begin(), asked.end(), p) == asked.end(); });
    if (paths.empty()) {
      std::printf("none of the paths asked for is supported here\n");
      return 1;
    }
  }
  for (const std::string& name : paths) {
    const CpuIsa isa = choose_cpu_isa(name.c_str()).isa;
    SortScratch scratch;
    std::vector<int> sizes;
    for (int size = 0; size <= 1100; ++size) sizes.push_back(size);
    for (int size = 1101; size <= 5000; size += 37) sizes.push_back(size);
    for (int size = 1101; size <= 1300; ++size) sizes.push_back(size);
    for (int edge : {2048, 4096, 65536}) {
      for (int size = edge - 2; size <= edge + 2; ++size) sizes.push_back(size);
    }
    for (int size : sizes) {
      for (int trial = 0; trial < 10; ++trial) {
        std::vector<float> src(size);
        for (int i = 0; i < size; ++i) {
          float& v = src[i];
          switch (trial) {
            case 1: v = float(rng() % 3); break;                          // ties
            case 4: v = float(rng() % 2); break;                          // binary rewards, no specials
            case 5: v = 0.5f; break;                                      // all equal
            case 6: v = float(i % 2 ? i : size - i) * 0.25f; break;       // ascending, interleaved with descending
            case 7:                                                        // 2..9 levels and missing rewards
              v = rng() % 9 == 0 ? specials[rng() % 3] : float(rng() % (2 + size % 8)) * 0.5f - 1.0f;
              break;
            case 8: v = i == size - 1 ? 100.0f : float(i % 8); break;      // 8 values, a 9th at the end
            case 9: v = i < 16 ? -0.0f : (rng() % 3 == 0 ? 0.0f : (rng() % 2 ? -0.0f : 1.0f)); break;  // signed zeros
            default: v = uniform(rng);
          }
          if (trial < 4 && rng() % 5 == 0) v = specials[rng() % 7];
        }
        const bool ok = sorts_right(isa, src, scratch);
        ++checked;
        if (!ok && ++failures <= 5) std::printf("FAIL %s size %d trial %d\n", name.c_str(), size, trial);
      }
    }
    std::string path = name;
#ifdef GAPO_CPU_ISA_SVE
    if (isa == CpuIsa::Sve) path += " (" + std::to_string(sve_path_bits()) + "-bit vectors)";
#endif
    std::printf("%s: sorted groups of 0..%d keys\n", path.c_str(), sizes.back());
  }
#ifdef GAPO_CPU_ISA_SVE
  // A thread that changes its own vector length after the path was chosen (the length is per
  // thread) must still get its groups sorted right: on NEON, not by code built for the other
  // length.
  if (sve_path_bits() != 0) {
    int thread_checked = 0;
    int thread_failures = 0;
    std::thread([&] {
      if (prctl(PR_SVE_SET_VL, 16) < 0) return;  // 128-bit vectors, which every SVE CPU has
      SortScratch scratch;
      for (int size : {5, 9, 40, 64, 100, 200, 300, 700, 1000, 5000}) {
        std::vector<float> src(size);
        for (float& v : src) v = uniform(rng);
        ++thread_checked;
        if (!sorts_right(CpuIsa::Sve, src, scratch)) ++thread_failures;
      }
    }).join();
    std::printf("sve, a thread that set 128-bit vectors: %d of %d sorts wrong\n", thread_failures, thread_checked);
    if (thread_checked == 0) ++failures;  // the thread could not change its vector length: nothing was shown
    failures += thread_failures;
    checked += thread_checked;
  }
#endif
  std::printf("%d of %d sorts wrong\n", failures, checked);
  return failures == 0 ? 0 : 1;
}
