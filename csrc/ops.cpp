// Schemas of the gapo ops. Kernels register per device in csrc/cpu and csrc/cuda; the fake
// (meta) implementations for torch.compile live in gapo_kernels/ops.py.
#include <torch/csrc/stable/library.h>

STABLE_TORCH_LIBRARY(gapo, m) {
  // Advantages of ragged groups given by CSR offsets (docs/spec.md). max_group_size is an
  // optional upper bound on offsets[g + 1] - offsets[g]: on CUDA it lets the op pick its kernel
  // without reading offsets back to the host (so the call can be captured in a CUDA graph).
  m.def(
      "advantage(Tensor rewards, Tensor offsets, float tau, str baseline, str scale, float eps, "
      "int? max_group_size=None) -> Tensor");
  // Per-group statistics for logging: (Q, S, hdi_low, hdi_high, mean, min, max, count).
  // Float outputs are float32 (float64 for float64 rewards); count is int64.
  m.def(
      "group_stats(Tensor rewards, Tensor offsets, float tau, str baseline, str scale) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // group_stats' columns and each group's (skewness, excess kurtosis, RewardShape) by the GAPO
  // authors' rule (gapo/reward_shape.h), from one sort per group, as two blocks: float rows
  // (Q, S, hdi_low, hdi_high, mean, min, max, skewness, kurtosis) and int64 rows (count, shape).
  m.def(
      "group_stats_with_shape(Tensor rewards, Tensor offsets, float tau, str baseline, str scale) "
      "-> (Tensor, Tensor)");
  // Advantages when groups are named by integer ids in any order: grouping and the
  // per-group work happen in one compiled call, and the output is in the input's row order.
  m.def(
      "advantage_by_ids(Tensor rewards, Tensor group_ids, float tau, str baseline, str scale, float eps) "
      "-> Tensor");
  // (order, offsets, unique_ids): rows of each id, grouped by ascending id, as CSR.
  m.def("group_rows_by_ids(Tensor group_ids) -> (Tensor, Tensor, Tensor)");
}
