// The SVE path's sort at 512-bit vectors (sort_sve.inc); compiled with -msve-vector-bits=512 on
// aarch64 (CMakeLists.txt), empty elsewhere.
#define GAPO_SVE_BITS 512
#define GAPO_SVE_NAMESPACE sve512
#include "cpu/sort_sve.inc"
