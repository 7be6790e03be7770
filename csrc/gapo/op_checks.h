// Host-side argument checks shared by the CPU and CUDA implementations of the gapo ops.
// Every message names the argument and what was expected (docs/spec.md, "Errors"); this
// file is their one home on the C++ side (gapo_kernels/_checks.py and ops.py word the same
// errors the same way, and tests/test_errors.py holds the two to identical text).
//
// A bad argument throws std::invalid_argument: torch's Python binding raises it as ValueError
// carrying exactly the message, so the raw ops and the Python API report argument errors the
// same way and no layer parses message text. Anything else (a failed CUDA call) stays a
// RuntimeError from STD_TORCH_CHECK.
//
// Checks that need the values of a device tensor are not here: the CPU kernel checks offsets
// values itself; the CUDA op checks them from the one read it makes without max_group_size
// (check_offsets_summary in advantage_cuda.cu) and, given the hint, reads nothing: it clamps
// every group's bounds on the device, and Python checks the values only with validate=True.
#pragma once

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "group_logic.h"

namespace gapo {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;

template <class... Parts>
[[noreturn]] inline void argument_error(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw std::invalid_argument(message.str());
}

// GAPO_CHECK_ARGUMENT(condition, message parts...): a ValueError in Python when false.
#define GAPO_CHECK_ARGUMENT(condition, ...)                 \
  do {                                                      \
    if (!(condition)) ::gapo::argument_error(__VA_ARGS__);  \
  } while (false)

// The names of Baseline and Scale values, in enum order (group_logic.h). _checks.BASELINES and
// _checks.SCALES list the same names in the same order; tests/test_errors.py checks it through
// the ops' own error messages.
inline constexpr std::string_view kBaselineNames[] = {"hdi_median", "hdi_mean", "median", "mean"};
inline constexpr std::string_view kScaleNames[] = {"rms", "std", "none"};

template <class Enum, size_t N>
Enum parse_name(std::string_view argument, const std::string_view (&names)[N], std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<Enum>(i);
  }
  std::ostringstream choices;
  choices << "(";
  for (size_t i = 0; i < N; ++i) choices << (i ? ", '" : "'") << names[i] << "'";
  argument_error(argument, " must be one of ", choices.str(), "), got '", name, "'");
}

inline Baseline parse_baseline(std::string_view name) { return parse_name<Baseline>("baseline", kBaselineNames, name); }

inline Scale parse_scale(std::string_view name) { return parse_name<Scale>("scale", kScaleNames, name); }

inline Params make_params(double tau, std::string_view baseline, std::string_view scale, double eps) {
  GAPO_CHECK_ARGUMENT(tau > 0.0 && tau <= 1.0, "tau must be in (0, 1], got ", tau);
  GAPO_CHECK_ARGUMENT(eps >= 0.0 && std::isfinite(eps), "eps must be a finite number >= 0, got ", eps);
  return Params{tau, eps, parse_baseline(baseline), parse_scale(scale)};
}

inline bool is_supported_reward_dtype(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::Double || t == ScalarType::Half || t == ScalarType::BFloat16;
}

inline bool is_index_dtype(ScalarType t) { return t == ScalarType::Int || t == ScalarType::Long; }

inline bool is_integer_dtype(ScalarType t) {
  switch (t) {
    case ScalarType::Byte:
    case ScalarType::Char:
    case ScalarType::Short:
    case ScalarType::Int:
    case ScalarType::Long:
    case ScalarType::UInt16:
    case ScalarType::UInt32:
    case ScalarType::UInt64:
      return true;
    default:
      return false;
  }
}

inline bool same_device(const Tensor& a, const Tensor& b) {
  return a.is_cpu() == b.is_cpu() && a.is_cuda() == b.is_cuda() && a.get_device_index() == b.get_device_index();
}

// rewards: 1-D float tensor, any strides.
inline void check_rewards(const Tensor& rewards) {
  GAPO_CHECK_ARGUMENT(rewards.dim() == 1, "rewards must be 1-D, got ", rewards.dim(), " dimensions");
  GAPO_CHECK_ARGUMENT(is_supported_reward_dtype(rewards.scalar_type()),
                      "rewards must be float16, bfloat16, float32 or float64");
}

// A 1-D index tensor the kernels index densely: strided views are copied (offsets are G + 1
// entries; group_ids are copied by the grouping pass anyway).
inline Tensor dense(const Tensor& t) { return t.is_contiguous() ? t : torch::stable::contiguous(t); }

// offsets: 1-D int32/int64 with G + 1 >= 1 entries on the device of rewards. Returns offsets
// made contiguous. Values of offsets are checked by the kernels that can afford it
// (check_offsets_partition).
inline Tensor check_rewards_and_offsets(const Tensor& rewards, const Tensor& offsets) {
  check_rewards(rewards);
  GAPO_CHECK_ARGUMENT(offsets.dim() == 1, "offsets must be 1-D, got ", offsets.dim(), " dimensions");
  GAPO_CHECK_ARGUMENT(is_index_dtype(offsets.scalar_type()), "offsets must be int32 or int64");
  GAPO_CHECK_ARGUMENT(offsets.numel() >= 1, "offsets must have G + 1 >= 1 entries, got an empty tensor");
  GAPO_CHECK_ARGUMENT(same_device(rewards, offsets), "offsets must be on the same device as rewards");
  return dense(offsets);
}

// The spec's offsets errors: offsets[0], the index i of the first offsets[i] > offsets[i + 1]
// (-1 if none) and offsets[G], against the number of rewards.
inline void check_offsets_partition(int64_t first, int64_t first_decrease, int64_t last, int64_t num_rewards) {
  GAPO_CHECK_ARGUMENT(first == 0, "offsets must start at 0, got offsets[0] = ", first);
  GAPO_CHECK_ARGUMENT(first_decrease < 0, "offsets must be non-decreasing, but offsets[", first_decrease,
                      "] > offsets[", first_decrease + 1, "]");
  GAPO_CHECK_ARGUMENT(last == num_rewards, "offsets must end at the number of rewards (", num_rewards,
                      "), got offsets[-1] = ", last);
}

// group_ids: 1-D tensor of integer ids (any integer dtype).
inline void check_group_ids(const Tensor& group_ids) {
  GAPO_CHECK_ARGUMENT(group_ids.dim() == 1, "group_ids must be 1-D, got ", group_ids.dim(), " dimensions");
  GAPO_CHECK_ARGUMENT(is_integer_dtype(group_ids.scalar_type()), "group_ids must hold integer ids");
}

inline void check_rewards_and_group_ids(const Tensor& rewards, const Tensor& group_ids) {
  check_rewards(rewards);
  check_group_ids(group_ids);
  GAPO_CHECK_ARGUMENT(same_device(rewards, group_ids), "group_ids must be on the same device as rewards");
  GAPO_CHECK_ARGUMENT(group_ids.numel() == rewards.numel(), "group_ids must have one id per reward (",
                      rewards.numel(), "), got ", group_ids.numel());
}

}  // namespace gapo
