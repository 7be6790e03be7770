// Which vector instruction set the CPU kernel's sorts use, picked once per process.
//
// Every path is compiled into the one library (function-level targets, see sort_avx2.h and
// sort_avx512.h), and the best one the CPU runs is chosen at load time from CPUID. The
// environment variable GAPO_CPU_ISA caps the choice, so tests and benchmarks can run each path
// the machine supports:
//   x86-64:   avx512 > avx2 (with FMA) > scalar
//   aarch64:  sve > neon > scalar
// The sve path is compiled for fixed vector lengths of 256 and 512 bits (sort_sve.h) and is
// supported where the CPU has SVE at one of them (Neoverse V1 / Graviton3: 256; A64FX: 512).
// On 128-bit SVE (Neoverse N2 and V2, Grace, Graviton4) it is not: there SVE registers are
// NEON's width and the NEON path runs the same networks.
// A cap picks the best path at or below it that this CPU supports (avx512 on an AVX2-only CPU
// runs avx2). Unset or empty means no cap. A name that is not a path of this build's
// architecture (neon on x86-64, a typo) is an error: every CPU op call fails with a message
// naming GAPO_CPU_ISA and the accepted values, rather than silently timing or testing a
// different path than the one asked for.
#pragma once

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#include <sys/prctl.h>
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif
#ifndef PR_SVE_VL_LEN_MASK
#define PR_SVE_VL_LEN_MASK 0xffff
#endif
#endif

namespace gapo::cpu {

enum class CpuIsa : int { Scalar = 0, Neon = 1, Avx2 = 2, Avx512 = 3, Sve = 4 };

inline const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512:
      return "avx512";
    case CpuIsa::Avx2:
      return "avx2";
    case CpuIsa::Neon:
      return "neon";
    case CpuIsa::Sve:
      return "sve";
    case CpuIsa::Scalar:
    default:
      return "scalar";
  }
}

// The paths of this build's architecture, best first (the order a cap walks down).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GAPO_CPU_ISA_X86 1
inline constexpr CpuIsa kCompiledIsas[] = {CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Scalar};
inline constexpr const char* kIsaChoices = "avx512, avx2, scalar";
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define GAPO_CPU_ISA_NEON 1
#ifdef GAPO_WITH_SVE  // the build compiled csrc/cpu/sort_sve256.cpp and sort_sve512.cpp (CMakeLists.txt)
#define GAPO_CPU_ISA_SVE 1
inline constexpr CpuIsa kCompiledIsas[] = {CpuIsa::Sve, CpuIsa::Neon, CpuIsa::Scalar};
inline constexpr const char* kIsaChoices = "sve, neon, scalar";
#else
inline constexpr CpuIsa kCompiledIsas[] = {CpuIsa::Neon, CpuIsa::Scalar};
inline constexpr const char* kIsaChoices = "neon, scalar";
#endif
#else
inline constexpr CpuIsa kCompiledIsas[] = {CpuIsa::Scalar};
inline constexpr const char* kIsaChoices = "scalar";
#endif

#ifdef GAPO_CPU_ISA_SVE
// The SVE vector length of this thread in bits, 0 without SVE (or off Linux). New threads
// inherit it, so the length read when the library loads is the workers' too, unless a thread
// sets its own: each SVE sort checks its thread's length (sort_sve.h).
inline int sve_vector_bits() {
#if defined(__linux__)
  if ((getauxval(AT_HWCAP) & HWCAP_SVE) == 0) return 0;
  const int length = prctl(PR_SVE_GET_VL);
  return length < 0 ? 0 : (length & PR_SVE_VL_LEN_MASK) * 8;
#else
  return 0;
#endif
}

// The vector length the sve path runs at (256 or 512), or 0 where it cannot run.
inline int sve_path_bits() {
  static const int bits = [] {
    const int length = sve_vector_bits();
    return length == 256 || length == 512 ? length : 0;
  }();
  return bits;
}
#endif

inline bool cpu_supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar:
      return true;
#ifdef GAPO_CPU_ISA_X86
    case CpuIsa::Avx512:
      // AVX-512F with the OS saving zmm state (libgcc's check includes XCR0).
      return __builtin_cpu_supports("avx512f");
    case CpuIsa::Avx2:
      // AVX2 with FMA (x86-64-v3): the path's passes fuse exact multiply-adds (group_scans_avx2.h).
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#ifdef GAPO_CPU_ISA_NEON
    case CpuIsa::Neon:
      return true;  // Advanced SIMD is part of every AArch64 CPU
#endif
#ifdef GAPO_CPU_ISA_SVE
    case CpuIsa::Sve:
      return sve_path_bits() != 0;
#endif
    default:
      return false;
  }
}

struct IsaChoice {
  CpuIsa isa = CpuIsa::Scalar;
  std::string requested;  // GAPO_CPU_ISA as read ("" when unset)
  std::string error;      // non-empty when GAPO_CPU_ISA names no path of this build
};

inline IsaChoice choose_cpu_isa(const char* request) {
  IsaChoice choice;
  choice.requested = request ? request : "";
  int start = 0;  // index into kCompiledIsas of the cap
  if (!choice.requested.empty()) {
    start = -1;
    for (int i = 0; i < static_cast<int>(std::size(kCompiledIsas)); ++i) {
      if (choice.requested == cpu_isa_name(kCompiledIsas[i])) start = i;
    }
    if (start < 0) {
      choice.error = "gapo: GAPO_CPU_ISA=" + choice.requested + " is not a CPU path of this build; expected one of " +
                     kIsaChoices + " (or unset for the best this CPU supports)";
      return choice;
    }
  }
  for (int i = start; i < static_cast<int>(std::size(kCompiledIsas)); ++i) {
    if (cpu_supports(kCompiledIsas[i])) {
      choice.isa = kCompiledIsas[i];
      break;
    }
  }
  return choice;
}

// The process-wide choice, read from GAPO_CPU_ISA on first use (the library forces that use
// when it is loaded, so a later change of the variable has no effect).
inline const IsaChoice& active_isa_choice() {
  static const IsaChoice choice = choose_cpu_isa(std::getenv("GAPO_CPU_ISA"));
  return choice;
}

// Names of the paths this build has, best first (the values GAPO_CPU_ISA accepts).
inline std::vector<std::string> compiled_cpu_isa_names() {
  std::vector<std::string> names;
  for (CpuIsa isa : kCompiledIsas) names.emplace_back(cpu_isa_name(isa));
  return names;
}

// Names of the paths this CPU supports, best first (the values GAPO_CPU_ISA can usefully take).
inline std::vector<std::string> supported_cpu_isa_names() {
  std::vector<std::string> names;
  for (CpuIsa isa : kCompiledIsas) {
    if (cpu_supports(isa)) names.emplace_back(cpu_isa_name(isa));
  }
  return names;
}

// The active path's name, or "" when GAPO_CPU_ISA is invalid (the ops then fail with its error).
inline std::string active_cpu_isa_name() {
  const IsaChoice& choice = active_isa_choice();
  return choice.error.empty() ? cpu_isa_name(choice.isa) : "";
}

}  // namespace gapo::cpu
