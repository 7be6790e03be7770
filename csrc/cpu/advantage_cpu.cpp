// CPU kernels of the gapo ops.
//
// Work is split over groups with torch's parallel_for (the stable-ABI wrapper of
// at::parallel_for): one worker per thread, each taking chunks of groups from a shared counter,
// so that small batches run on the calling thread, large ones use every thread, and a late
// thread does not hold the rest back. Each worker owns its scratch buffers, grown to the
// largest group it meets: nothing is allocated per group. A group is gathered
// into the buffer without its missing rewards, sorted (sort_keys.h picks the method by size),
// and handed to the shared per-group logic in gapo/group_logic.h.
//
// Statistics are accumulated in double on the CPU (the spec asks for float32 at least): it
// costs nothing next to the sort and keeps one group of 10^6 float32 rewards exact to ~1e-12.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "cpu/cpu_isa.h"
#include "cpu/group_scans.h"
#include "cpu/group_scans_avx2.h"
#include "cpu/group_scans_avx512.h"
#include "cpu/huge_pages.h"
#include "cpu/sort_keys.h"
#include "gapo/group_logic.h"
#include "gapo/op_boxing.h"
#include "gapo/op_checks.h"
#include "gapo/reward_shape.h"

namespace gapo::cpu {
namespace {

using torch::stable::Tensor;

// The smallest chunk of work, in rewards: a batch of at most this runs on the calling thread,
// where waking the pool would cost more than the work. Measured on 2 cores: a 512 x 16 batch
// (~28 us on one thread) takes ~16 us split in two, so even trainer-sized batches use the pool.
constexpr int64_t kRewardsPerTask = 4096;

// Keys are sorted as float for 16- and 32-bit rewards (4-byte compares, no precision lost:
// half and bfloat16 convert exactly) and as double for float64 rewards.
template <class T>
using SortKey = std::conditional_t<std::is_same_v<T, double>, double, float>;

// The CPU path picked at load time (cpu_isa.h); an invalid GAPO_CPU_ISA fails every call.
CpuIsa active_cpu_isa() {
  const IsaChoice& choice = active_isa_choice();
  STD_TORCH_CHECK(choice.error.empty(), choice.error);
  return choice.isa;
}

// Read GAPO_CPU_ISA when the library loads, so the variable's value at import is the one used.
[[maybe_unused]] const IsaChoice& kIsaAtLoad = active_isa_choice();

// Fails before anything is written if offsets do not partition [0, num_rewards).
template <class Index>
void check_offsets_values(const Index* offsets, int64_t num_groups, int64_t num_rewards) {
  int64_t first_decrease = -1;
  for (int64_t g = 0; g < num_groups; ++g) {
    if (offsets[g] > offsets[g + 1]) {
      first_decrease = g;
      break;
    }
  }
  check_offsets_partition(offsets[0], first_decrease, offsets[num_groups], num_rewards);
}

// For every group g, in parallel over groups: sorts its finite rewards, then calls
//   summary = summarize(sorted_finite_keys, n)          (the statistics: no output written)
//   emit(g, first, last, sorted_finite_keys, n, summary)  (writes group g's outputs)
// Group g holds positions [first, last) of values (strided).
//
// Groups go two at a time: both sorted, both summarised, then both emitted. A summary ends in
// a chain of dependent steps (median, square root, division) that a core spends waiting on;
// with two independent chains next to each other it runs both in that time, and neither
// group's writes stand in the way (measured: 10-15% faster from 40 to 128 rewards per group).
//
// Float keys: a contiguous float32 group is sorted straight from the input (the sort's loads
// map missing rewards to +inf and -0 to +0, see sort_keys.h); any other layout or type is first
// converted into the task's scratch. Float64 keys are gathered without their missing rewards
// and sorted as double.
//
// make_small_groups(), when given, makes one sink per task: sink.take(g) may keep group g to
// handle itself (true) rather than have it sorted here, and sink.flush() ends the task.
struct NoSmallGroups {
  struct Sink {
    bool take(int64_t) { return false; }
    void flush() {}
  };
  Sink operator()() const { return {}; }
};

template <class T, class Index, class Summarize, class Emit, class MakeSmallGroups = NoSmallGroups>
void for_each_sorted_group(const T* values, int64_t stride, const Index* offsets, int64_t num_groups,
                           Summarize summarize, Emit emit, MakeSmallGroups make_small_groups = {}) {
  using K = SortKey<T>;
  const CpuIsa isa = active_cpu_isa();
  const int64_t num_rewards = offsets[num_groups];
  const int64_t mean_group = std::max<int64_t>(1, num_rewards / std::max<int64_t>(1, num_groups));
  // Groups are dealt to the workers in chunks from a shared counter: a thread that runs late (a
  // core busy with something else, as on a trainer's driver) takes fewer chunks instead of
  // holding the op back by a fixed share. About 16 chunks per thread, of at least
  // kRewardsPerTask rewards; a batch of at most kRewardsPerTask runs on the calling thread.
  const int64_t threads = std::max<int64_t>(1, torch::stable::get_num_threads());
  const int64_t chunk_rewards = std::clamp<int64_t>(num_rewards / (16 * threads), kRewardsPerTask, 65536);
  const int64_t chunk_groups = std::max<int64_t>(1, chunk_rewards / mean_group);
  const int64_t num_chunks = (num_groups + chunk_groups - 1) / chunk_groups;
  const int64_t workers = num_rewards <= kRewardsPerTask ? 1 : std::min(threads, num_chunks);
  std::atomic<int64_t> next_chunk{0};
  // Tiny groups are summarised with n as a constant, so the per-group logic inlined into each
  // call is specialised to its size (its loops unrolled, its sums fixed-length): at a few keys
  // per group that logic, not the sort, is most of the work.
  const auto summarize_sorted = [&](const K* sorted, int64_t n) {
    switch (n) {
      case 2:
        return summarize(sorted, int64_t{2});
      case 3:
        return summarize(sorted, int64_t{3});
      case 4:
        return summarize(sorted, int64_t{4});
      default:
        return summarize(sorted, n);
    }
  };
  const auto work = [&] {
    // This worker's scratch (one buffer per group of a pair), grown only when a larger group
    // arrives (never below the largest register sort, so small groups never resize it).
    std::vector<K> keys[2] = {std::vector<K>(kRegisterSortMax), std::vector<K>(kRegisterSortMax)};
    SortScratch scratch;
    auto small_groups = make_small_groups();
    // Sorts group g into keys[slot]; returns its count of finite rewards.
    const auto sort_group = [&](int64_t g, int slot) -> int64_t {
      std::vector<K>& buffer = keys[slot];
      const int64_t first = offsets[g];
      const int64_t last = offsets[g + 1];
      const int64_t size = last - first;
      if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(size);
      if constexpr (std::is_same_v<K, float>) {
        const float* src = buffer.data();
        if (std::is_same_v<T, float> && stride == 1) {
          src = reinterpret_cast<const float*>(values + first);
        } else {
          for (int64_t i = 0; i < size; ++i) buffer[i] = static_cast<float>(values[(first + i) * stride]);
        }
        return sort_float_group(isa, src, size, buffer.data(), scratch);
      } else {
        int64_t n = 0;
        for (int64_t p = first; p < last; ++p) {
          const K value = static_cast<K>(values[p * stride]);
          buffer[n] = value + K(0);  // -0 read as +0; branch-free compaction of the finite rewards
          n += is_missing(value) ? 0 : 1;
        }
        sort_double_keys(buffer.data(), n);
        return n;
      }
    };
    const auto emit_group = [&](int64_t g, int slot, int64_t n, const auto& summary) {
      emit(g, offsets[g], offsets[g + 1], keys[slot].data(), n, summary);
    };
    int64_t held = -1;  // a sorted group waiting for a partner, in keys[0]
    int64_t held_n = 0;
    for (int64_t chunk = next_chunk.fetch_add(1, std::memory_order_relaxed); chunk < num_chunks;
         chunk = next_chunk.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t group_end = std::min(num_groups, (chunk + 1) * chunk_groups);
      for (int64_t g = chunk * chunk_groups; g < group_end; ++g) {
        if (small_groups.take(g)) continue;
        if (held < 0) {
          held = g;
          held_n = sort_group(g, 0);
          continue;
        }
        const int64_t n = sort_group(g, 1);
        const auto held_summary = summarize_sorted(keys[0].data(), held_n);
        const auto summary = summarize_sorted(keys[1].data(), n);
        emit_group(held, 0, held_n, held_summary);
        emit_group(g, 1, n, summary);
        held = -1;
      }
    }
    if (held >= 0) emit_group(held, 0, held_n, summarize_sorted(keys[0].data(), held_n));
    small_groups.flush();
  };
  if (workers == 1) return work();
  torch::stable::parallel_for(0, workers, 1, [&](int64_t first_worker, int64_t end_worker) {
    for (int64_t w = first_worker; w < end_worker; ++w) work();
  });
}

// Calls f(scans) with the whole-group passes of the active path (group_scans*.h): the Scans
// policy of group_stats_of_sorted and the advantage write.
template <class F>
void with_group_scans(F&& f) {
#ifdef GAPO_CPU_ISA_X86
  const CpuIsa isa = active_cpu_isa();
  if (isa == CpuIsa::Avx512) return f(avx512::Scans{});
  if (isa == CpuIsa::Avx2) return f(avx2::Scans{});
#endif
  return f(PortableScans{});
}

// The per-task sink of small float32 groups (see write_advantages): one bin per padded width
// 2, 4, ..., Scans::kSmallGroupMax, each run through the lanes when it holds kSmallGroupLanes.
template <class Scans, class Index>
struct SmallGroupBins {
  static constexpr int kLanes = Scans::kSmallGroupLanes;
  static constexpr int kBins = std::bit_width(static_cast<uint64_t>(Scans::kSmallGroupMax)) - 1;  // widths 2^1..2^kBins
  const float* values;
  const Index* offsets;
  const Params& params;
  float* out;
  bool enabled;  // contiguous rewards
  int64_t first[kBins][kLanes];
  int64_t size[kBins][kLanes];
  int count[kBins] = {};

  bool take(int64_t g) {
    const int64_t group_first = offsets[g];
    const int64_t group_size = offsets[g + 1] - group_first;
    if (!enabled || group_size > Scans::kSmallGroupMax) return false;
    const int bin = group_size <= 2 ? 0 : std::bit_width(static_cast<uint64_t>(group_size - 1)) - 1;
    first[bin][count[bin]] = group_first;
    size[bin][count[bin]] = group_size;
    if (++count[bin] == kLanes) run(bin);
    return true;
  }
  void run(int bin) {
    Scans::small_groups_advantages(values, first[bin], size[bin], count[bin], int64_t{2} << bin, params, out);
    count[bin] = 0;
  }
  void flush() {
    for (int bin = 0; bin < kBins; ++bin) {
      if (count[bin] > 0) run(bin);
    }
  }
};

// Advantages of every group: out[p] for the reward at values[p * stride].
template <class T, class Index>
void write_advantages(const T* values, int64_t stride, const Index* offsets, int64_t num_groups, const Params& params,
                      T* out) {
  with_group_scans([&](auto scans) {
    using Scans = decltype(scans);
    // Small float32 groups go to the vector path's lanes (small_groups.inc), binned by the
    // power of two they pad to, kSmallGroupLanes groups per batch: ragged sizes fill batches
    // as well as uniform ones, and no lane pads a pair to 32 keys. Larger groups go on to the
    // per-group sort in between; each task flushes its partial batches at its end.
    const auto make_small_groups = [&] {
      if constexpr (Scans::kSmallGroupLanes > 0 && std::is_same_v<T, float>) {
        return SmallGroupBins<Scans, Index>{values, offsets, params, out, stride == 1};
      } else {
        return NoSmallGroups::Sink{};
      }
    };
    for_each_sorted_group(
        values, stride, offsets, num_groups,
        [&](const SortKey<T>* sorted, int64_t n) {
          AdvantageMap map;
          group_stats_of_sorted<double, SortKey<T>, Scans>(sorted, n, params, &map);
          return map;
        },
        [&](int64_t, int64_t first, int64_t last, const SortKey<T>*, int64_t n, const AdvantageMap& map) {
          if (stride == 1) {
            Scans::write_group_advantages(values + first, last - first, map, out + first, n == last - first);
            return;
          }
          for (int64_t p = first; p < last; ++p) out[p] = static_cast<T>(advantage_of(values[p * stride], map));
        },
        make_small_groups);
  });
}

template <class F>
void dispatch_reward_type(torch::headeronly::ScalarType type, F&& f) {
  switch (type) {
    case ScalarType::Float:
      return f(float{});
    case ScalarType::Double:
      return f(double{});
    case ScalarType::Half:
      return f(c10::Half{});
    case ScalarType::BFloat16:
      return f(c10::BFloat16{});
    default:
      STD_TORCH_CHECK(false, "gapo: rewards must be float16, bfloat16, float32 or float64");
  }
}

// Offsets: int32 or int64 (check_rewards_and_offsets has checked).
template <class F>
void dispatch_index_type(torch::headeronly::ScalarType type, F&& f) {
  if (type == ScalarType::Int) return f(int32_t{});
  return f(int64_t{});
}

// Ids: every integer dtype (check_group_ids has checked).
template <class F>
void dispatch_id_type(torch::headeronly::ScalarType type, F&& f) {
  switch (type) {
    case ScalarType::Byte:
      return f(uint8_t{});
    case ScalarType::Char:
      return f(int8_t{});
    case ScalarType::Short:
      return f(int16_t{});
    case ScalarType::UInt16:
      return f(uint16_t{});
    case ScalarType::Int:
      return f(int32_t{});
    case ScalarType::UInt32:
      return f(uint32_t{});
    case ScalarType::UInt64:
      return f(uint64_t{});
    default:
      return f(int64_t{});
  }
}

// The advantages' tensor of a batch (one per reward, the rewards' dtype), on huge pages where
// it is large (huge_pages.h).
Tensor new_advantages_like(const Tensor& rewards) {
  Tensor out = torch::stable::new_empty(rewards, {rewards.numel()});
  advise_huge_pages(out.mutable_data_ptr(), out.numel() * out.element_size());
  return out;
}

Tensor advantage_cpu(const Tensor& rewards, const Tensor& offsets_arg, double tau, std::string_view baseline,
                     std::string_view scale, double eps, std::optional<int64_t> max_group_size) {
  const Tensor offsets = check_rewards_and_offsets(rewards, offsets_arg);
  const Params params = make_params(tau, baseline, scale, eps);
  GAPO_CHECK_ARGUMENT(!max_group_size.has_value() || *max_group_size >= 0, "max_group_size must be >= 0, got ",
                      max_group_size.value_or(0));  // a GPU launch hint; the CPU reads offsets directly
  Tensor out = new_advantages_like(rewards);
  const int64_t num_groups = offsets.numel() - 1;
  dispatch_index_type(offsets.scalar_type(), [&](auto index_tag) {
    using Index = decltype(index_tag);
    const Index* off = offsets.const_data_ptr<Index>();
    check_offsets_values(off, num_groups, rewards.numel());
    dispatch_reward_type(rewards.scalar_type(), [&](auto reward_tag) {
      using T = decltype(reward_tag);
      write_advantages(rewards.const_data_ptr<T>(), rewards.stride(0), off, num_groups, params,
                       out.mutable_data_ptr<T>());
    });
  });
  return out;
}

// Where group statistics go: one pointer per column, G entries each. The shape columns are
// optional (null: not computed), so group_stats and group_stats_with_shape share one pass.
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
  S* skewness = nullptr;
  S* kurtosis = nullptr;
  int64_t* shape = nullptr;
};

// Statistics of every group from one sort per group (offsets already dense and checked for
// device, dtype and rank; their values are checked here before anything is written).
template <class S>
void write_group_stats(const Tensor& rewards, const Tensor& offsets, const Params& params, const StatsColumns<S>& out) {
  const int64_t num_groups = offsets.numel() - 1;
  dispatch_index_type(offsets.scalar_type(), [&](auto index_tag) {
    using Index = decltype(index_tag);
    const Index* off = offsets.const_data_ptr<Index>();
    check_offsets_values(off, num_groups, rewards.numel());
    dispatch_reward_type(rewards.scalar_type(), [&](auto reward_tag) {
      using T = decltype(reward_tag);
      with_group_scans([&](auto scans) {
        using Scans = decltype(scans);
        for_each_sorted_group(
            rewards.const_data_ptr<T>(), rewards.stride(0), off, num_groups,
            [&](const SortKey<T>* sorted, int64_t n) {
              return group_stats_of_sorted<double, SortKey<T>, Scans>(sorted, n, params);
            },
            [&](int64_t g, int64_t, int64_t, const SortKey<T>* sorted, int64_t n, const GroupStats<double>& st) {
              out.baseline[g] = static_cast<S>(st.baseline);
              out.scale[g] = static_cast<S>(st.scale);
              out.hdi_low[g] = static_cast<S>(st.hdi_low);
              out.hdi_high[g] = static_cast<S>(st.hdi_high);
              out.mean[g] = static_cast<S>(st.mean);
              out.min[g] = static_cast<S>(st.min);
              out.max[g] = static_cast<S>(st.max);
              out.count[g] = st.count;
              if (out.shape != nullptr) {
                const ShapeStats shape = reward_shape_of_sorted(sorted, n);
                out.skewness[g] = static_cast<S>(shape.skewness);
                out.kurtosis[g] = static_cast<S>(shape.kurtosis);
                out.shape[g] = static_cast<int64_t>(shape.shape);
              }
            });
      });
    });
  });
}

// Statistics are float32, float64 for float64 rewards.
ScalarType stat_type_of(const Tensor& rewards) {
  return rewards.scalar_type() == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
}

using StatsTuple = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

StatsTuple group_stats_cpu(const Tensor& rewards, const Tensor& offsets_arg, double tau, std::string_view baseline,
                           std::string_view scale) {
  const Tensor offsets = check_rewards_and_offsets(rewards, offsets_arg);
  const Params params = make_params(tau, baseline, scale, /*eps=*/0.0);
  const int64_t num_groups = offsets.numel() - 1;
  std::vector<Tensor> columns;
  for (int i = 0; i < 7; ++i) columns.push_back(torch::stable::new_empty(rewards, {num_groups}, stat_type_of(rewards)));
  Tensor count = torch::stable::new_empty(rewards, {num_groups}, ScalarType::Long);
  const auto write = [&](auto stat_tag) {
    using S = decltype(stat_tag);
    const auto column = [&](int i) { return columns[i].mutable_data_ptr<S>(); };
    write_group_stats(rewards, offsets, params,
                      StatsColumns<S>{column(0), column(1), column(2), column(3), column(4), column(5), column(6),
                                      count.mutable_data_ptr<int64_t>()});
  };
  if (stat_type_of(rewards) == ScalarType::Double) {
    write(double{});
  } else {
    write(float{});
  }
  return {columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6], count};
}

// group_stats plus the reward-shape columns (gapo/reward_shape.h) from the same sort, as two
// blocks rather than eleven tensors: each returned tensor costs about a microsecond of boxing,
// as much as the work on a hundred small groups. floats: [9, G] (Q, S, hdi_low, hdi_high, mean,
// min, max, skewness, kurtosis); integers: [2, G] (count, shape).
std::tuple<Tensor, Tensor> group_stats_with_shape_cpu(const Tensor& rewards, const Tensor& offsets_arg, double tau,
                                                      std::string_view baseline, std::string_view scale) {
  const Tensor offsets = check_rewards_and_offsets(rewards, offsets_arg);
  const Params params = make_params(tau, baseline, scale, /*eps=*/0.0);
  const int64_t num_groups = offsets.numel() - 1;
  Tensor floats = torch::stable::new_empty(rewards, {9, num_groups}, stat_type_of(rewards));
  Tensor integers = torch::stable::new_empty(rewards, {2, num_groups}, ScalarType::Long);
  const auto write = [&](auto stat_tag) {
    using S = decltype(stat_tag);
    S* rows = floats.mutable_data_ptr<S>();
    int64_t* integer_rows = integers.mutable_data_ptr<int64_t>();
    const auto row = [&](int64_t r) { return rows + r * num_groups; };
    write_group_stats(rewards, offsets, params,
                      StatsColumns<S>{row(0), row(1), row(2), row(3), row(4), row(5), row(6), integer_rows, row(7),
                                      row(8), integer_rows + num_groups});
  };
  if (stat_type_of(rewards) == ScalarType::Double) {
    write(double{});
  } else {
    write(float{});
  }
  return {floats, integers};
}

// Rows grouped by id, as CSR over the ids that occur, in ascending id order.
struct RowGroups {
  std::vector<int64_t> offsets;     // G + 1
  std::vector<int64_t> unique_ids;  // G, as id_key values
};

// An id as an int64 with the same order: uint64 ids flip their top bit (ids >= 2^63 stay
// above the others), every other integer type converts exactly.
template <class Id>
int64_t id_key(Id id) {
  if constexpr (std::is_same_v<Id, uint64_t>) {
    return static_cast<int64_t>(id ^ (uint64_t{1} << 63));
  } else {
    return static_cast<int64_t>(id);
  }
}

template <class Id>
Id id_of_key(int64_t key) {
  if constexpr (std::is_same_v<Id, uint64_t>) {
    return static_cast<uint64_t>(key) ^ (uint64_t{1} << 63);
  } else {
    return static_cast<Id>(key);
  }
}

// Ids spanning at most ~N values (what trainers produce: 0..G-1, repeated prompt indices) are
// grouped by a counting sort in O(N + range), parallel over row chunks with one histogram per
// chunk (chunks scatter to disjoint slots, so the order stays stable). The histograms take
// chunks * range slots, so the number of chunks is capped at N / range: scratch stays O(N)
// whatever the thread count. Sparse ids (hashes, uuids as int64) are grouped by sorting
// (id, row) pairs in O(N log N). The row order itself is reported through on_place(slot, row),
// once per row: the caller stores it (and may move the row's data along in the same pass) in
// whatever index type fits.
template <class Id, class OnPlace>
RowGroups group_rows(const Id* ids, int64_t n, OnPlace on_place) {
  RowGroups out;
  out.offsets.push_back(0);
  if (n == 0) return out;
  // A plain min/max loop vectorises; std::minmax_element's branches make it ~6x slower.
  int64_t min_id = id_key(ids[0]);
  int64_t max_id = min_id;
  for (int64_t i = 1; i < n; ++i) {
    min_id = std::min<int64_t>(min_id, id_key(ids[i]));
    max_id = std::max<int64_t>(max_id, id_key(ids[i]));
  }
  const uint64_t span = static_cast<uint64_t>(max_id) - static_cast<uint64_t>(min_id);
  if (span < static_cast<uint64_t>(std::max<int64_t>(n, 1024))) {
    const int64_t range = static_cast<int64_t>(span) + 1;
    const int64_t max_chunks = std::min<int64_t>(std::max<int64_t>(1, n / range), torch::stable::get_num_threads());
    const int64_t chunks = std::clamp<int64_t>(n / (4 * kRewardsPerTask), 1, max_chunks);
    const auto chunk_begin = [n, chunks](int64_t c) { return n * c / chunks; };
    std::vector<int64_t> cursor(chunks * range, 0);  // per chunk: count, then next slot
    torch::stable::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* count = cursor.data() + c * range;
        for (int64_t i = chunk_begin(c); i < chunk_begin(c + 1); ++i) ++count[id_key(ids[i]) - min_id];
      }
    });
    int64_t start = 0;
    for (int64_t r = 0; r < range; ++r) {
      const int64_t group_start = start;
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t size = cursor[c * range + r];
        cursor[c * range + r] = start;
        start += size;
      }
      if (start == group_start) continue;
      out.offsets.push_back(start);
      out.unique_ids.push_back(min_id + r);
    }
    torch::stable::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* next = cursor.data() + c * range;
        for (int64_t i = chunk_begin(c); i < chunk_begin(c + 1); ++i) {
          const int64_t slot = next[id_key(ids[i]) - min_id]++;
          on_place(slot, i);
        }
      }
    });
    return out;
  }
  std::vector<std::pair<int64_t, int64_t>> pairs(n);
  for (int64_t i = 0; i < n; ++i) pairs[i] = {id_key(ids[i]), i};
  std::sort(pairs.begin(), pairs.end());
  for (int64_t i = 0; i < n; ++i) {
    on_place(i, pairs[i].second);
    if (i > 0 && pairs[i].first != pairs[i - 1].first) out.offsets.push_back(i);
    if (i == 0 || pairs[i].first != pairs[i - 1].first) out.unique_ids.push_back(pairs[i].first);
  }
  out.offsets.push_back(n);
  return out;
}

// Groups the rows of contiguous `ids` of any integer dtype.
template <class OnPlace>
RowGroups group_rows_of(const Tensor& ids, OnPlace on_place) {
  RowGroups groups;
  dispatch_id_type(ids.scalar_type(), [&](auto id_tag) {
    using Id = decltype(id_tag);
    groups = group_rows(ids.const_data_ptr<Id>(), ids.numel(), on_place);
  });
  return groups;
}

// The offsets of ids whose groups are already contiguous runs in ascending id order (what a
// trainer's repeated prompt index gives: 0 0 0 1 1 1 ...), or nothing: then each run is one
// whole group, and the rows need no grouping.
template <class Id>
std::optional<std::vector<int64_t>> offsets_of_ascending_runs(const Id* ids, int64_t n) {
  std::vector<int64_t> offsets{0};
  for (int64_t i = 1; i < n; ++i) {
    if (ids[i] == ids[i - 1]) continue;
    if (id_key(ids[i]) < id_key(ids[i - 1])) return std::nullopt;  // an id may come back later
    offsets.push_back(i);
  }
  if (n > 0) offsets.push_back(n);
  return offsets;
}

Tensor advantage_by_ids_cpu(const Tensor& rewards, const Tensor& group_ids_arg, double tau, std::string_view baseline,
                            std::string_view scale, double eps) {
  check_rewards_and_group_ids(rewards, group_ids_arg);
  const Params params = make_params(tau, baseline, scale, eps);
  const Tensor group_ids = dense(group_ids_arg);
  Tensor out = new_advantages_like(rewards);
  std::optional<std::vector<int64_t>> runs;
  dispatch_id_type(group_ids.scalar_type(), [&](auto id_tag) {
    using Id = decltype(id_tag);
    runs = offsets_of_ascending_runs(group_ids.const_data_ptr<Id>(), group_ids.numel());
  });
  dispatch_reward_type(rewards.scalar_type(), [&](auto reward_tag) {
    using T = decltype(reward_tag);
    if (runs) {
      write_advantages(rewards.const_data_ptr<T>(), rewards.stride(0), runs->data(),
                       static_cast<int64_t>(runs->size()) - 1, params, out.mutable_data_ptr<T>());
      return;
    }
    // The grouping pass also copies each reward to its group's slot (sequential reads, scattered
    // writes), so the kernel reads groups contiguously and writes them in group order, as the
    // offsets op does (small float32 groups in SIMD lanes, vector writes); one more pass puts
    // each advantage back on its row. The order is kept in 4-byte slots when the batch allows
    // (half the traffic of int64).
    const T* values = rewards.const_data_ptr<T>();
    const int64_t stride = rewards.stride(0);
    const int64_t n = rewards.numel();
    // Every slot of both is written (by the grouping, by the kernel), so neither is zero-filled.
    std::unique_ptr<T[]> grouped(new T[n]);
    std::unique_ptr<T[]> grouped_advantages(new T[n]);
    advise_huge_pages(grouped.get(), n * sizeof(T));
    advise_huge_pages(grouped_advantages.get(), n * sizeof(T));
    const auto run = [&](auto slot_tag) {
      using Slot = decltype(slot_tag);
      std::unique_ptr<Slot[]> order(new Slot[n]);
      advise_huge_pages(order.get(), n * sizeof(Slot));
      const RowGroups groups = group_rows_of(group_ids, [&](int64_t slot, int64_t row) {
        order[slot] = static_cast<Slot>(row);
        grouped[slot] = values[row * stride];
      });
      write_advantages(grouped.get(), 1, groups.offsets.data(), static_cast<int64_t>(groups.offsets.size()) - 1, params,
                       grouped_advantages.get());
      T* rows = out.mutable_data_ptr<T>();
      const Slot* order_of = order.get();
      const T* advantages = grouped_advantages.get();
      // order is a permutation, so the chunks write disjoint rows.
      torch::stable::parallel_for(0, n, 4 * kRewardsPerTask, [&](int64_t begin, int64_t end) {
        for (int64_t slot = begin; slot < end; ++slot) rows[order_of[slot]] = advantages[slot];
      });
    };
    if (n <= std::numeric_limits<int32_t>::max()) {
      run(int32_t{});
    } else {
      run(int64_t{});
    }
  });
  return out;
}

Tensor int64_tensor_from(const std::vector<int64_t>& values, const Tensor& like) {
  Tensor t = torch::stable::new_empty(like, {static_cast<int64_t>(values.size())}, ScalarType::Long);
  std::copy(values.begin(), values.end(), t.mutable_data_ptr<int64_t>());
  return t;
}

// (order, offsets, unique_ids): unique_ids has the dtype of group_ids.
std::tuple<Tensor, Tensor, Tensor> group_rows_by_ids_cpu(const Tensor& group_ids_arg) {
  check_group_ids(group_ids_arg);
  GAPO_CHECK_ARGUMENT(group_ids_arg.is_cpu(), "group_ids must be on the CPU for the CPU kernel");
  const Tensor group_ids = dense(group_ids_arg);
  Tensor order = torch::stable::new_empty(group_ids, {group_ids.numel()}, ScalarType::Long);
  int64_t* order_of = order.mutable_data_ptr<int64_t>();
  const RowGroups groups = group_rows_of(group_ids, [order_of](int64_t slot, int64_t row) { order_of[slot] = row; });
  const int64_t num_groups = static_cast<int64_t>(groups.unique_ids.size());
  Tensor unique_ids = torch::stable::new_empty(group_ids, {num_groups});
  dispatch_id_type(group_ids.scalar_type(), [&](auto id_tag) {
    using Id = decltype(id_tag);
    Id* dst = unique_ids.mutable_data_ptr<Id>();
    for (int64_t g = 0; g < num_groups; ++g) dst[g] = id_of_key<Id>(groups.unique_ids[g]);
  });
  return {order, int64_tensor_from(groups.offsets, group_ids), unique_ids};
}

}  // namespace
}  // namespace gapo::cpu

STABLE_TORCH_LIBRARY_IMPL(gapo, CPU, m) {
  m.impl("advantage", GAPO_BOX(&gapo::cpu::advantage_cpu));
  m.impl("group_stats", GAPO_BOX(&gapo::cpu::group_stats_cpu));
  m.impl("group_stats_with_shape", GAPO_BOX(&gapo::cpu::group_stats_with_shape_cpu));
  m.impl("advantage_by_ids", GAPO_BOX(&gapo::cpu::advantage_by_ids_cpu));
  m.impl("group_rows_by_ids", GAPO_BOX(&gapo::cpu::group_rows_by_ids_cpu));
}
