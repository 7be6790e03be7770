// CPU kernel of gapo::group_stats_with_shape: the columns of gapo::group_stats followed by each
// group's skewness, excess kurtosis and RewardShape (gapo/reward_shape.h), from ONE sort per
// group: the shape columns cost only their arithmetic on top of the statistics.
//
// Each group's finite rewards are gathered into a task-local buffer, sorted with the
// advantage kernel's sort (sort_keys.h; groups of up to 16 float keys four at a time), and
// handed to group_stats_of_sorted (gapo/group_logic.h) and reward_shape_of_sorted. Parallel
// over groups like the advantage kernel.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu/sort_keys.h"
#include "gapo/op_checks.h"
#include "gapo/reward_shape.h"

namespace gapo::cpu {
namespace {

using torch::stable::Tensor;

// As in advantage_cpu.cpp: below ~4096 rewards per task the calling thread does the work.
constexpr int64_t kShapeRewardsPerTask = 4096;

template <class T>
using ShapeKey = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class Index>
void check_offsets_partition(const Index* offsets, int64_t num_groups, int64_t num_rewards) {
  STD_TORCH_CHECK(offsets[0] == 0, "gapo: offsets must start at 0, got offsets[0] = ", int64_t(offsets[0]));
  for (int64_t g = 0; g < num_groups; ++g) {
    STD_TORCH_CHECK(offsets[g] <= offsets[g + 1], "gapo: offsets must be non-decreasing, but offsets[", g,
                    "] = ", int64_t(offsets[g]), " > offsets[", g + 1, "] = ", int64_t(offsets[g + 1]));
  }
  STD_TORCH_CHECK(offsets[num_groups] == num_rewards, "gapo: offsets must end at the number of rewards (",
                  num_rewards, "), got offsets[-1] = ", int64_t(offsets[num_groups]));
}

// The eleven output columns of one reward dtype: statistics in S (float or double).
template <class S>
struct StatsColumns {
  S* baseline;
  S* scale;
  S* hdi_low;
  S* hdi_high;
  S* mean;
  S* min;
  S* max;
  int64_t* count;
  S* skewness;
  S* kurtosis;
  int64_t* shape;
};

template <class T, class Index, class S>
void write_stats_with_shape(const T* values, int64_t stride, const Index* offsets, int64_t num_groups,
                            const Params& params, const StatsColumns<S>& out) {
  using K = ShapeKey<T>;
  const int64_t num_rewards = offsets[num_groups];
  const int64_t mean_group = std::max<int64_t>(1, num_rewards / std::max<int64_t>(1, num_groups));
  const int64_t grain = std::max<int64_t>(1, kShapeRewardsPerTask / mean_group);
  const auto gather_finite = [&](int64_t first, int64_t last, K* dst) {
    int64_t n = 0;
    for (int64_t p = first; p < last; ++p) {
      const K value = static_cast<K>(values[p * stride]);
      dst[n] = value;  // branch-free compaction of the finite rewards
      n += is_missing(value) ? 0 : 1;
    }
    return n;
  };
  const auto write = [&](int64_t g, const K* sorted, int64_t n) {
    const GroupStats<double> st = group_stats_of_sorted<double>(sorted, n, params);
    out.baseline[g] = static_cast<S>(st.baseline);
    out.scale[g] = static_cast<S>(st.scale);
    out.hdi_low[g] = static_cast<S>(st.hdi_low);
    out.hdi_high[g] = static_cast<S>(st.hdi_high);
    out.mean[g] = static_cast<S>(st.mean);
    out.min[g] = static_cast<S>(st.min);
    out.max[g] = static_cast<S>(st.max);
    out.count[g] = st.count;
    const ShapeStats shape = reward_shape_of_sorted(sorted, n);
    out.skewness[g] = static_cast<S>(shape.skewness);
    out.kurtosis[g] = static_cast<S>(shape.kurtosis);
    out.shape[g] = static_cast<int64_t>(shape.shape);
  };
  constexpr bool kFloatKeys = std::is_same_v<K, float>;
  const bool batch_small_groups = kFloatKeys && batch_sort_available();
  torch::stable::parallel_for(0, num_groups, grain, [&](int64_t group_begin, int64_t group_end) {
    std::vector<K> keys;
    std::vector<uint32_t> radix_buffer;
    float batch_keys[kSortBatch][kBatchKeys];
    int64_t batch_n[kSortBatch];
    int64_t batch_group[kSortBatch];
    int batch_size = 0;
    const auto flush_batch = [&] {
      if constexpr (kFloatKeys) {
        sort_batch(batch_keys, batch_n, batch_size);
        for (int b = 0; b < batch_size; ++b) write(batch_group[b], batch_keys[b], batch_n[b]);
        batch_size = 0;
      }
    };
    for (int64_t g = group_begin; g < group_end; ++g) {
      const int64_t first = offsets[g];
      const int64_t last = offsets[g + 1];
      if constexpr (kFloatKeys) {
        if (batch_small_groups && last - first <= kBatchKeys) {
          batch_n[batch_size] = gather_finite(first, last, batch_keys[batch_size]);
          batch_group[batch_size] = g;
          if (++batch_size == kSortBatch) flush_batch();
          continue;
        }
      }
      if (static_cast<int64_t>(keys.size()) < last - first) keys.resize(last - first);
      const int64_t n = gather_finite(first, last, keys.data());
      sort_keys(keys.data(), n, radix_buffer);
      write(g, keys.data(), n);
    }
    if (batch_size > 0) flush_batch();
  });
}

// Two blocks rather than eleven tensors: each returned tensor costs about a microsecond of
// boxing, as much as the work on a hundred groups.
std::tuple<Tensor, Tensor> group_stats_with_shape_cpu(const Tensor& rewards, const Tensor& offsets, double tau,
                                                      std::string baseline, std::string scale) {
  check_rewards_and_offsets(rewards, offsets);
  const Params params = make_params(tau, baseline, scale, /*eps=*/0.0);
  const int64_t num_groups = offsets.numel() - 1;
  const bool is_double = rewards.scalar_type() == ScalarType::Double;
  const auto stat_type = is_double ? ScalarType::Double : ScalarType::Float;
  Tensor floats = torch::stable::new_empty(rewards, {9, num_groups}, stat_type);
  Tensor integers = torch::stable::new_empty(rewards, {2, num_groups}, ScalarType::Long);

  const auto run = [&](auto index_tag, auto reward_tag, auto stat_tag) {
    using Index = decltype(index_tag);
    using T = decltype(reward_tag);
    using S = decltype(stat_tag);
    const Index* off = offsets.const_data_ptr<Index>();
    check_offsets_partition(off, num_groups, rewards.numel());
    S* float_rows = floats.mutable_data_ptr<S>();
    int64_t* integer_rows = integers.mutable_data_ptr<int64_t>();
    const auto row = [&](int64_t r) { return float_rows + r * num_groups; };
    const StatsColumns<S> out{row(0), row(1), row(2),       row(3), row(4), row(5),
                              row(6), integer_rows, row(7), row(8), integer_rows + num_groups};
    write_stats_with_shape(rewards.const_data_ptr<T>(), rewards.stride(0), off, num_groups, params, out);
  };
  const auto with_reward_type = [&](auto index_tag) {
    switch (rewards.scalar_type()) {
      case ScalarType::Float:
        return run(index_tag, float{}, float{});
      case ScalarType::Double:
        return run(index_tag, double{}, double{});
      case ScalarType::Half:
        return run(index_tag, c10::Half{}, float{});
      case ScalarType::BFloat16:
        return run(index_tag, c10::BFloat16{}, float{});
      default:
        STD_TORCH_CHECK(false, "gapo: rewards must be float16, bfloat16, float32 or float64");
    }
  };
  if (offsets.scalar_type() == ScalarType::Int) {
    with_reward_type(int32_t{});
  } else {
    with_reward_type(int64_t{});
  }
  return {floats, integers};
}

}  // namespace
}  // namespace gapo::cpu

STABLE_TORCH_LIBRARY_IMPL(gapo, CPU, m) {
  m.impl("group_stats_with_shape", TORCH_BOX(&gapo::cpu::group_stats_with_shape_cpu));
}
