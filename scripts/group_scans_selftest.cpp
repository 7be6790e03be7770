// Standalone check of the x86 vector paths' whole-group passes (csrc/cpu/group_scans_avx2.h,
// group_scans_avx512.h) against the portable ones, bit for bit, on hostile groups:
//   - the window scan: as the kernel calls it, the one-pass float scan alone and the scan in
//     double it falls back to (which scans of 2^31 windows take, too large to test here),
//     against gapo::hdi_start, over every tau, and again with subnormal results flushed to
//     zero (MXCSR's FTZ, as torch.set_flush_denormal sets it);
//   - the sum of squared deviations, about the group's own centers and arbitrary ones;
//   - the advantage write, with the maps group_stats_of_sorted makes for every baseline, scale
//     and an eps from 0 to 1e300 (the fused form, the exact form for tiny factors, and the zeros
//     of all-equal groups), with and without missing rewards.
// Groups: normal, a few levels, ulp-spaced (near-equal widths), spanning the float range (float
// widths of +inf), subnormal, random bits, signed zeros, plateaus, all equal (of either sign),
// normal keys a few subnormals apart.
// On a CPU or architecture without the paths it says so and checks nothing.
//   g++ -O2 -std=c++20 -ffp-contract=off -Icsrc scripts/group_scans_selftest.cpp -o /tmp/scans && /tmp/scans
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/cpu_isa.h"
#include "cpu/group_scans.h"
#include "cpu/group_scans_avx2.h"
#include "cpu/group_scans_avx512.h"
#include "gapo/group_logic.h"

#ifdef GAPO_CPU_ISA_X86
using namespace gapo;
using namespace gapo::cpu;

namespace {

std::mt19937_64 rng(20261128);

float random_reward(int kind, float plateau) {
  std::normal_distribution<float> normal;
  switch (kind) {
    case 0:
      return normal(rng);
    case 1:
      return static_cast<float>(rng() % 4);  // few levels: zero widths
    case 2:
      return 1.0f + static_cast<float>(rng() % 64) * 0x1p-23f;  // one ulp apart: near-equal widths
    case 3:
      return (rng() % 2 ? 3.0e38f : -3.0e38f) * (static_cast<float>(rng() % 1000) / 1000.0f);  // widths of +inf
    case 4:
      return std::ldexp(static_cast<float>(rng() % 1000), -149);  // subnormal
    case 5: {
      const uint32_t bits = static_cast<uint32_t>(rng());
      float x;
      std::memcpy(&x, &bits, sizeof x);
      return std::isfinite(x) ? x : 0.0f;
    }
    case 6:
      return rng() % 2 ? -0.0f : 0.0f;
    case 7:
      return rng() % 3 ? plateau : normal(rng) * 1e-3f + 1e3f;  // plateaus near 1000
    case 8:
      return plateau;  // all equal, of either sign: the zero map
    default:  // normal keys a few subnormals apart: float widths that flush-to-zero makes 0
      return std::ldexp(1.0f + static_cast<float>(rng() % 8) * 0x1p-23f, -126 + static_cast<int>(rng() % 3));
  }
}

struct Counts {
  long checks = 0;
  long wrong = 0;
  void check(bool right, const char* what, int size) {
    ++checks;
    if (!right && ++wrong <= 10) std::printf("WRONG: %s, %d rewards\n", what, size);
  }
};

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

template <class Path>
void check_path(const char* name, Counts& counts) {
  const Params base{0.5, 1e-6, Baseline::HdiMedian, Scale::Rms};
  const double taus[] = {0.05, 0.3, 0.5, 0.75, 0.95, 1.0};
  const double epsilons[] = {0.0, 1e-6, 1.0, 1e30, 1e290, 1e300};
  for (int trial = 0; trial < 20000; ++trial) {
    const int size = 16 + static_cast<int>(rng() % (trial % 4 == 0 ? 3000 : 600));
    const int kind = static_cast<int>(rng() % 10);
    const float plateau = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.75f;
    std::vector<float> rewards(size);
    for (float& x : rewards) x = random_reward(kind, plateau);
    const bool missing = rng() % 4 == 0;
    if (missing) {
      for (float& x : rewards) {
        if (rng() % 10 == 0) x = rng() % 2 ? NAN : (rng() % 2 ? INFINITY : -INFINITY);
      }
    }
    std::vector<float> sorted;
    for (float x : rewards) {
      if (!is_missing(x)) sorted.push_back(x + 0.0f);
    }
    std::sort(sorted.begin(), sorted.end());
    const int64_t n = static_cast<int64_t>(sorted.size());
    if (n < 2) continue;

    // The window scan, every tau with enough windows for the vector scans.
    for (double tau : taus) {
      const int64_t k = window_size(n, tau);
      const int64_t windows = n - k + 1;
      if (windows < Path::kVectorWindowScanMin) continue;
      const int64_t want = hdi_start(sorted.data(), n, k);
      counts.check(Path::hdi_start_floats(sorted.data(), n, k) == want, "window scan", size);
      using F = typename Path::FloatLanes;
      counts.check(Path::template hdi_start_by_float_widths<F>(sorted.data(), n, k) == want, "window scan on floats", size);
      counts.check(Path::template hdi_start_in_double<F>(sorted.data(), n, k) == want, "window scan in double", size);
      // With subnormal results flushed to zero (torch.set_flush_denormal): the reference,
      // in double on float keys, is unchanged.
      const unsigned csr = _mm_getcsr();
      _mm_setcsr(csr | _MM_FLUSH_ZERO_ON);
      const int64_t flushed = Path::hdi_start_floats(sorted.data(), n, k);
      const int64_t flushed_on_floats = Path::template hdi_start_by_float_widths<F>(sorted.data(), n, k);
      _mm_setcsr(csr);
      counts.check(flushed == want && flushed_on_floats == want, "window scan, flushing subnormals", size);
    }

    // The sum of squared deviations about the group's median and an arbitrary center.
    const GroupScaling scaling = group_scaling(sorted.front(), sorted.back());
    const double centers[] = {median_of_sorted(sorted.data(), 0, n, scaling.down),
                              std::normal_distribution<double>()(rng)};
    for (double center : centers) {
      const double want = sum_of_squared_deviations_in_parts(sorted.data(), n, scaling.down, center);
      const double got = Path::sum_of_squared_deviations_floats(sorted.data(), n, scaling.down, center);
      counts.check(std::memcmp(&want, &got, sizeof want) == 0, "sum of squared deviations", size);
    }

    // The write, with the maps of every baseline and scale.
    std::vector<float> want(size), got(size);
    for (int baseline = 0; baseline < 4; ++baseline) {
      for (int scale = 0; scale < 3; ++scale) {
        Params p = base;
        p.baseline = static_cast<Baseline>(baseline);
        p.scale = static_cast<Scale>(scale);
        p.tau = taus[rng() % std::size(taus)];
        p.eps = epsilons[rng() % std::size(epsilons)];
        AdvantageMap map;
        group_stats_of_sorted<double, float>(sorted.data(), n, p, &map);
        write_group_advantages(rewards.data(), size, map, want.data());
        std::fill(got.begin(), got.end(), 7.0f);
        Path::write_group_advantages_floats(rewards.data(), size, map, got.data(), false);
        counts.check(same_bits(want.data(), got.data(), size), "advantage write", size);
        if (!missing) {
          std::fill(got.begin(), got.end(), 7.0f);
          Path::write_group_advantages_floats(rewards.data(), size, map, got.data(), true);
          counts.check(same_bits(want.data(), got.data(), size), "advantage write (all finite)", size);
        }
      }
    }
  }
  std::printf("%s: group passes checked\n", name);
}

// The functions of one path's namespace, as a type.
#define GAPO_PATH_TYPE(NS)                                                                             \
  struct NS##_path {                                                                                   \
    static constexpr int64_t kVectorWindowScanMin = NS::kVectorWindowScanMin;                          \
    using FloatLanes = NS::FloatLanes;                                                                 \
    static int64_t hdi_start_floats(const float* s, int64_t n, int64_t k) {                            \
      return NS::hdi_start_floats(s, n, k);                                                            \
    }                                                                                                  \
    template <class F>                                                                                 \
    static int64_t hdi_start_in_double(const float* s, int64_t n, int64_t k) {                         \
      return NS::hdi_start_in_double<F>(s, n, k);                                                      \
    }                                                                                                  \
    template <class F>                                                                                 \
    static int64_t hdi_start_by_float_widths(const float* s, int64_t n, int64_t k) {                   \
      return NS::hdi_start_by_float_widths<F>(s, n, k);                                                \
    }                                                                                                  \
    static double sum_of_squared_deviations_floats(const float* v, int64_t n, double down, double c) { \
      return NS::sum_of_squared_deviations_floats(v, n, down, c);                                      \
    }                                                                                                  \
    static void write_group_advantages_floats(const float* v, int64_t n, const AdvantageMap& map,      \
                                              float* out, bool all_finite) {                           \
      NS::write_group_advantages_floats(v, n, map, out, all_finite);                                   \
    }                                                                                                  \
  };
GAPO_PATH_TYPE(avx2)
GAPO_PATH_TYPE(avx512)
#undef GAPO_PATH_TYPE

}  // namespace

int main() {
  Counts counts;
  if (cpu_supports(CpuIsa::Avx512)) check_path<avx512_path>("avx512", counts);
  if (cpu_supports(CpuIsa::Avx2)) check_path<avx2_path>("avx2", counts);
  std::printf("%ld of %ld checks wrong\n", counts.wrong, counts.checks);
  return counts.wrong == 0 ? 0 : 1;
}

#else
int main() {
  std::printf("no x86 vector passes on this architecture: nothing checked\n");
  return 0;
}
#endif
