// gapo_kernels._C: the Python side of the ops library. Importing it loads lib/libgapo_ops.so
// (a link dependency found through this module's RPATH), whose load registers torch.ops.gapo.
// It compiles against pybind11 alone, so each CPython gets its own small module around one
// ops library.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "build_info.h"

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info = py::module_::import("json").attr("loads")(gapo_build_info_json());
  info["backends"] = py::tuple(info["backends"]);
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gapo_kernels compiled ops (torch.ops.gapo, from lib/libgapo_ops.so) and build information";
  m.def("build_info", &build_info,
        "How the ops library was built and what it can run here: version, torch, backends, CUDA archs "
        "and driver (csrc/build_info.h).");
}
