// gapo_kernels._C: importing it loads the ops registered in this library (ops.cpp and the
// per-device kernels). Its only Python-facing function reports how the library was built.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "cpu/cpu_isa.h"

#ifndef GAPO_VERSION
#define GAPO_VERSION "unknown"
#endif

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = GAPO_VERSION;
  info["torch_version"] = GAPO_TORCH_VERSION;  // the torch the library was compiled against
#ifdef GAPO_WITH_CUDA
  info["backends"] = py::make_tuple("cpu", "cuda");
  info["cuda_archs"] = std::string(GAPO_CUDA_ARCHS);
#else
  info["backends"] = py::make_tuple("cpu");
  info["cuda_archs"] = std::string();
#endif
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = std::string("unknown");
#endif
  info["stable_abi_target"] = "2.10";
  info["cpu_isa"] = gapo::cpu::active_cpu_isa_name();  // the CPU kernel's sort path (GAPO_CPU_ISA caps it)
  info["cpu_isas_supported"] = gapo::cpu::supported_cpu_isa_names();
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gapo_kernels compiled ops (torch.ops.gapo) and build information";
  m.def("build_info", &build_info, "How this library was built: version, compiled backends, CUDA archs.");
}
