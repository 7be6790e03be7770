// gapo_build_info_json(): what this library holds and whether its CUDA kernels can run here.
// Each entry is one add() line in describe_build(); the fields are documented in build_info.h.
#include "build_info.h"

#include "cpu/cpu_isa.h"

#include <string>
#include <utility>
#include <vector>

#ifdef GAPO_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef GAPO_VERSION
#define GAPO_VERSION "unknown"
#endif
#ifndef GAPO_TORCH_VERSION
#define GAPO_TORCH_VERSION "unknown"
#endif

namespace {

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';  // control characters never belong in these fields
    } else {
      out += c;
    }
  }
  return out + "\"";
}

class JsonObject {
 public:
  void add(const char* key, const std::string& value) { fields_.emplace_back(key, json_string(value)); }
  void add(const char* key, const std::vector<std::string>& values) {
    std::string list = "[";
    for (size_t i = 0; i < values.size(); ++i) list += (i ? ", " : "") + json_string(values[i]);
    fields_.emplace_back(key, list + "]");
  }
  std::string str() const {
    std::string out = "{";
    for (size_t i = 0; i < fields_.size(); ++i) {
      out += (i ? ", " : "") + json_string(fields_[i].first) + ": " + fields_[i].second;
    }
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

#ifdef GAPO_WITH_CUDA
std::string cuda_version_text(int version) {  // 13000 -> "13.0"
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

struct CudaStatus {
  std::string driver;  // CUDA version the driver supports, "" without a driver
  std::string error;   // why the kernels cannot run, "" when they can
};

// The runtime is linked statically, so the only thing a machine must provide is a driver at
// least as new as the runtime's major version (CUDA's minor-version compatibility covers the
// rest). cudaDriverGetVersion reads the driver's version without creating a CUDA context.
CudaStatus probe_cuda() {
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    return {"", "no NVIDIA driver was found on this machine"};
  }
  if (driver / 1000 < CUDART_VERSION / 1000) {
    return {cuda_version_text(driver),
            "the CUDA kernels were built with CUDA " + cuda_version_text(CUDART_VERSION) +
                " and need an NVIDIA driver for CUDA " + std::to_string(CUDART_VERSION / 1000) +
                ".x, but this machine's driver supports CUDA " + cuda_version_text(driver) +
                " at most: update the driver, use backend='triton' or 'torch', or build "
                "gapo_kernels from source with a CUDA " + std::to_string(driver / 1000) + " toolkit"};
  }
  return {cuda_version_text(driver), ""};
}
#endif

std::string describe_build() {
  JsonObject info;
  std::vector<std::string> backends = {"cpu"};
  info.add("version", GAPO_VERSION);
  info.add("torch_version", GAPO_TORCH_VERSION);
  info.add("stable_abi_target", "2.10");
  info.add("compiler", compiler());
  info.add("cpu_isa", gapo::cpu::active_cpu_isa_name());  // the CPU kernel's sort path (GAPO_CPU_ISA caps it)
  info.add("cpu_isas_supported", gapo::cpu::supported_cpu_isa_names());
  info.add("cpu_isas_compiled", gapo::cpu::compiled_cpu_isa_names());
#ifdef GAPO_WITH_CUDA
  const CudaStatus cuda = probe_cuda();
  if (cuda.error.empty()) backends.push_back("cuda");
  info.add("cuda_archs", GAPO_CUDA_ARCHS);
  info.add("cuda_version", cuda_version_text(CUDART_VERSION));
  info.add("cuda_driver", cuda.driver);
  info.add("cuda_error", cuda.error);
#else
  info.add("cuda_archs", "");
  info.add("cuda_version", "");
  info.add("cuda_driver", "");
  info.add("cuda_error", "this build has no CUDA kernels");
#endif
  info.add("backends", backends);
  return info.str();
}

}  // namespace

extern "C" const char* gapo_build_info_json(void) {
  static const std::string json = describe_build();  // thread-safe, computed on first use
  return json.c_str();
}
