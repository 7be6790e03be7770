// How the ops library was built, for gapo_kernels.build_info() and for C++ callers that load
// the library with torch.ops.load_library. Plain C so the Python module needs no torch headers.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// A JSON object (UTF-8, NUL-terminated, owned by the library, valid while it is loaded):
//   version            gapo_kernels version
//   torch_version      the torch whose headers compiled the library (any torch >= 2.10 loads it)
//   stable_abi_target  the oldest torch whose stable ABI the library uses
//   compiler           the C++ compiler
//   cpu_isa            the CPU kernel's sort path in use (avx512, avx2, sve, neon, scalar);
//                      GAPO_CPU_ISA caps it
//   cpu_isas_supported every path this library has that this CPU can run, best first
//   cpu_isas_compiled  every path this library has, best first (what GAPO_CPU_ISA accepts)
//   backends           the compiled backends that can run on this machine: "cpu", and "cuda"
//                      when the CUDA kernels were built and the NVIDIA driver can run them
//   cuda_archs         the CUDA targets compiled ("80-real,90-real,90-virtual": machine code for
//                      sm_80 and sm_90, PTX for compute_90), empty without CUDA kernels
//   cuda_version       the CUDA toolkit (and static runtime) the kernels were built with
//   cuda_driver        the CUDA version the installed driver supports ("" without a driver)
//   cuda_error         why the compiled CUDA kernels cannot run here ("" when they can)
__attribute__((visibility("default"))) const char* gapo_build_info_json(void);

#ifdef __cplusplus
}
#endif
