// Transparent huge pages for the large buffers the CPU ops write.
//
// An output of many megabytes is fresh memory on most calls: allocations that large go back to
// the OS when freed (glibc maps anything above 32 MiB on its own and unmaps it on free), so
// each call faults in a page per 4 KiB it writes, and on a virtual machine those faults cost
// about as much as the kernel's work (10^7 rewards: 40 MB written, ~10 ms of faults). Asking
// for huge pages over the buffer's whole 2 MiB pages turns 512 faults into one. It is a hint:
// the kernel ignores it where transparent huge pages are off, and no byte of the buffer changes.
// Where THP defrag is "madvise" (a common default), a fault in an advised range may compact
// memory when no huge page is free; a long-running process that would rather not can set
// GAPO_HUGE_PAGES=0 (read once per process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gapo::cpu {

// Below this many bytes a buffer holds at most one whole huge page: not worth a system call.
constexpr size_t kHugePageAdviceMinBytes = size_t(8) << 20;

inline bool huge_page_advice_enabled() {
  static const bool enabled = [] {
    const char* setting = std::getenv("GAPO_HUGE_PAGES");
    return setting == nullptr || std::strcmp(setting, "0") != 0;
  }();
  return enabled;
}

inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(1) << 21;  // x86-64, and aarch64 with 4 KiB pages
  if (bytes < kHugePageAdviceMinBytes || !huge_page_advice_enabled()) return;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (first + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (first + bytes) & ~(kHugePage - 1);
  // Only whole huge pages inside the buffer: memory around it is not ours to advise.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace gapo::cpu
