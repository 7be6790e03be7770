// Host-side argument checks shared by the CPU and CUDA implementations of the gapo ops.
// Every message names the argument and what was expected (../shared/SPEC.md, "Errors").
// Checks that need the values of a device tensor are not here: the CPU kernel checks offsets
// values itself; the CUDA op checks them from the one read it makes without max_group_size
// (check_offsets_summary in advantage_cuda.cu) and, given the hint, reads nothing: it clamps
// every group's bounds on the device, and Python checks the values only with validate=True.
#pragma once

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <cmath>
#include <string>

#include "group_logic.h"

namespace gapo {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;

inline Baseline parse_baseline(const std::string& name) {
  if (name == "hdi_median") return Baseline::HdiMedian;
  if (name == "hdi_mean") return Baseline::HdiMean;
  if (name == "median") return Baseline::Median;
  if (name == "mean") return Baseline::Mean;
  STD_TORCH_CHECK(false, "gapo: baseline must be one of 'hdi_median', 'hdi_mean', 'median', 'mean', got '", name, "'");
  return Baseline::HdiMedian;  // unreachable
}

inline Scale parse_scale(const std::string& name) {
  if (name == "rms") return Scale::Rms;
  if (name == "std") return Scale::Std;
  if (name == "none") return Scale::None;
  STD_TORCH_CHECK(false, "gapo: scale must be one of 'rms', 'std', 'none', got '", name, "'");
  return Scale::Rms;  // unreachable
}

inline Params make_params(double tau, const std::string& baseline, const std::string& scale, double eps) {
  STD_TORCH_CHECK(tau > 0.0 && tau <= 1.0, "gapo: tau must be in (0, 1], got ", tau);
  STD_TORCH_CHECK(eps >= 0.0 && std::isfinite(eps), "gapo: eps must be a finite number >= 0, got ", eps);
  return Params{tau, eps, parse_baseline(baseline), parse_scale(scale)};
}

inline bool is_supported_reward_dtype(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::Double || t == ScalarType::Half || t == ScalarType::BFloat16;
}

inline bool is_index_dtype(ScalarType t) { return t == ScalarType::Int || t == ScalarType::Long; }

// rewards: 1-D float tensor, any strides.
inline void check_rewards(const Tensor& rewards) {
  STD_TORCH_CHECK(rewards.dim() == 1, "gapo: rewards must be 1-D, got ", rewards.dim(), " dimensions");
  STD_TORCH_CHECK(is_supported_reward_dtype(rewards.scalar_type()),
                  "gapo: rewards must be float16, bfloat16, float32 or float64");
}

// offsets: 1-D int32/int64 with G + 1 >= 1 entries on the device of rewards. Values of offsets
// are checked by the kernels that can afford it.
inline void check_rewards_and_offsets(const Tensor& rewards, const Tensor& offsets) {
  check_rewards(rewards);
  STD_TORCH_CHECK(offsets.dim() == 1, "gapo: offsets must be 1-D, got ", offsets.dim(), " dimensions");
  STD_TORCH_CHECK(is_index_dtype(offsets.scalar_type()), "gapo: offsets must be int32 or int64");
  STD_TORCH_CHECK(offsets.numel() >= 1, "gapo: offsets must have G + 1 >= 1 entries, got an empty tensor");
  STD_TORCH_CHECK(rewards.is_cpu() == offsets.is_cpu() && rewards.get_device_index() == offsets.get_device_index(),
                  "gapo: offsets must be on the same device as rewards");
}

}  // namespace gapo
