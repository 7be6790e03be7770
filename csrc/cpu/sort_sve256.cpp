// The SVE path's sort at 256-bit vectors (sort_sve.inc); compiled with -msve-vector-bits=256 on
// aarch64 (CMakeLists.txt), empty elsewhere.
#define GAPO_SVE_BITS 256
#define GAPO_SVE_NAMESPACE sve256
#include "cpu/sort_sve.inc"
