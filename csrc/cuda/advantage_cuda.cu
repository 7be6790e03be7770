// CUDA kernels for gapo::advantage and gapo::group_stats (../shared/SPEC.md).
//
// Design note
// ===========
// Cost model. The op is memory-bound: 1M float32 rewards read (4 MB) plus 1M advantages
// written (4 MB) plus offsets (4-8 MB for groups of 1-2 rewards, ~1 MB for groups of 8) are
// ~10-12 MB, a few microseconds at an H100's ~3 TB/s. Anything that moves a group through
// device memory a second time (a separate sort pass, a padded copy, a stats round trip), or
// that costs a launch per stage, is already a multiple of that floor. So:
//
// Common path (every group <= 1024 rewards): ONE fused kernel launch. A team of threads owns
// a group: it loads the group's rewards once (coalesced, strided input allowed), sorts them in
// registers with a bitonic network, finds the HDI window by a parallel argmin, reduces the
// mean / window sum / sum of squares, and writes the advantages from the values it still
// holds in registers. Rewards are read once and advantages written once; nothing else touches
// device memory except the team's two offsets. Size classes (picked by the maximum group size):
//     max size   threads/group  keys/thread  where the sort's strides go
//        <= 4          2             2        registers + shuffles  (16 groups per warp)
//        <= 8          2             4        registers + shuffles  (16 groups per warp)
//        <= 16         4             4        registers + shuffles
//        <= 32         8             4        registers + shuffles
//        <= 64        16             4        registers + shuffles
//        <= 128       32             4        registers + shuffles  (a warp per group)
//        <= 256       32             8        registers + shuffles
//        <= 512       64             8        + 1 shared-memory step (a block per group)
//        <= 1024     128             8        + 3 shared-memory steps
// Keys per thread grow with the class so each thread has 8-32 bytes of loads in flight (a
// memory-bound kernel needs ~16 KB in flight per SM on an H100); block size 256 for the warp
// classes. ptxas (sm_90a, float): 44-64 registers, 2-8 KB static shared memory, no stack frame,
// no spills (scripts/check_cuda_compile.sh prints the table). Compute: a bitonic sort of C keys
// is log2(C)(log2(C)+1)/2 compare-exchange steps; for groups of 8 that is ~3 shuffles and
// ~10 selects per reward plus ~5 butterfly steps per group, far under the memory time; at 1024
// it is ~25 shuffles per reward, about the memory time again (the shuffle unit, 32 lanes per
// clock per SM, is then the limit).
// Missing rewards (NaN, +/-inf) and padding become +inf keys, which sort last; n counts the
// finite ones, so a real +inf reward is missing too. Window widths are compared in double and
// ties go to the lowest start (hdi_prefer, group_logic.h), so the window is the sequential
// scan's. The median, baseline, scale and divisor are group_logic.h's functions, applied to the
// sorted keys the team left in shared memory. Sums are taken about a pivot from the group (no
// cancellation in float32) and are fixed-shape trees (xor butterflies, then warp results in
// warp order), so the output is bit-identical run to run: no atomics anywhere in the result.
// The per-group code lives in group_kernel.cuh, written against a small Team interface that
// host_emulation/emulate_kernels.cpp also implements with std::threads: that is how CI tests
// these kernels' logic against the reference without a GPU (tests/test_cuda.py).
//
// No host synchronisation. With max_group_size given, the size class comes from the hint and
// the op is only kernel launches on the current stream, with outputs from torch's caching allocator:
// it can be captured in a CUDA graph. Without the hint, one small kernel reduces the offsets to
// (max group size, first decreasing index, offsets[0], offsets[G]) and the op reads those 32
// bytes back: the one documented device-to-host read. Since it syncs anyway, it also checks the
// offsets and raises the spec's errors. A group larger than the hint gets NaN advantages (never
// an out-of-bounds access); offsets are clamped to [0, N] on the device.
//
// Large groups (max size > 1024): three launches plus CUB's. (1) a prepare kernel writes the
// rewards as contiguous keys (missing -> +inf) and the clamped int32 segment bounds; (2)
// cub::DeviceSegmentedRadixSort sorts every segment (a block per segment, several radix passes
// through global memory); (3) a block of 256 threads per group reduces the sorted segment
// with the same reduce_group as the fused path and writes the advantages. Cost: the prepare
// pass (read + write), ~5 radix passes of (2 reads + 1 write) of the keys, ~5 reads of the
// sorted keys and the read/write of the final pass: ~10x the fused path's bytes (much of it
// L2 hits for segments of a few thousand), plus ~8 launches: fine for sizes no RL trainer uses.
// cub::DeviceSegmentedSort would be the obvious pick, but with more than a few hundred
// segments it partitions them and copies the partition sizes to the host with a stream
// synchronisation (dispatch_segmented_sort.cuh, unless built with CDP), which would break the
// no-sync / graph-capture promise. DeviceSegmentedRadixSort never syncs. Scratch (keys twice,
// bounds, CUB temp) is one byte tensor from torch's caching allocator: no per-group allocation.
// This path needs N < 2^31 (CUB's int num_items).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cub/block/block_reduce.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "../gapo/op_boxing.h"
#include "../gapo/op_checks.h"
#include "cuda_team.cuh"
#include "group_kernel.cuh"

// The stable shim's stream -> cudaStream_t accessor is declared only for torch >= 2.13 targets.
// The build targets the 2.10 ABI so one library serves torch >= 2.10: reference it weakly and
// fall back to the AOTI CUDA shim (libtorch_cuda) on older torches.
#if TORCH_FEATURE_VERSION < TORCH_VERSION_2_13_0
extern "C" __attribute__((weak)) AOTITorchError torch_stream_native_handle(StreamHandle stream,
                                                                            void** ret_native_handle);
#endif

namespace gapo::team {

template <>
struct ScalarIO<__half> {
  template <class Key>
  static __device__ __forceinline__ Key load(const __half* p, int64_t i) {
    return static_cast<Key>(__half2float(p[i]));
  }
  template <class Acc>
  static __device__ __forceinline__ __half from(Acc v) { return __float2half_rn(static_cast<float>(v)); }
};

template <>
struct ScalarIO<__nv_bfloat16> {
  template <class Key>
  static __device__ __forceinline__ Key load(const __nv_bfloat16* p, int64_t i) {
    return static_cast<Key>(__bfloat162float(p[i]));
  }
  template <class Acc>
  static __device__ __forceinline__ __nv_bfloat16 from(Acc v) { return __float2bfloat16_rn(static_cast<float>(v)); }
};

// --- kernels ---------------------------------------------------------------------------------

template <class Shape, class Scalar, class Key>
__global__ void __launch_bounds__(Shape::kBlockThreads) fused_group_kernel(const KernelArgs<Scalar, Key> a) {
  __shared__ __align__(16) Key keys_smem[Shape::kBlockThreads * Shape::kItems];
  const int team_in_block = static_cast<int>(threadIdx.x) / Shape::kThreads;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * Shape::kTeamsPerBlock + team_in_block;
  Key* buffer = keys_smem + team_in_block * Shape::kCapacity;
  if constexpr (Shape::kBlockTeam) {
    __shared__ __align__(16) unsigned char scratch[block_team_scratch_bytes<Shape::kThreads>()];
    BlockTeam<Shape::kThreads, Key> team(buffer, scratch);
    fused_group<Shape>(team, a, g);
  } else {
    WarpTeam<Shape::kThreads, Key> team(buffer);
    fused_group<Shape>(team, a, g);
  }
}

constexpr int kLargeThreads = 256;

template <class Scalar, class Key>
__global__ void __launch_bounds__(kLargeThreads) large_group_kernel(const KernelArgs<Scalar, Key> a) {
  __shared__ __align__(16) unsigned char scratch[block_team_scratch_bytes<kLargeThreads>()];
  BlockTeam<kLargeThreads, Key> team(nullptr, scratch);
  large_group<kLargeThreads>(team, a, static_cast<int64_t>(blockIdx.x));
}

// Large path, step 1: contiguous keys (missing -> +inf) and clamped int32 segment bounds.
template <class Scalar, class Key>
__global__ void __launch_bounds__(256) prepare_segments_kernel(const KernelArgs<Scalar, Key> a, Key* keys,
                                                                 int32_t* segment_begin, int32_t* segment_end) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t j = first; j < a.num_rewards; j += step) keys[j] = segment_key(a, j);
  for (int64_t g = first; g < a.num_groups; g += step) {
    int64_t begin, end;
    group_bounds(a.offsets, a.offsets_int64, g, a.num_rewards, begin, end);
    segment_begin[g] = static_cast<int32_t>(begin);
    segment_end[g] = static_cast<int32_t>(end);
  }
}

struct MaxOp {
  __device__ __forceinline__ unsigned long long operator()(unsigned long long a, unsigned long long b) const {
    return a > b ? a : b;
  }
};

// Without a hint: summary[0] = max group size, summary[1] = G - (first g with a negative size)
// or 0 (both zeroed before the launch and combined with atomicMax: order-independent),
// summary[2] = offsets[0], summary[3] = offsets[G].
__global__ void __launch_bounds__(256) offsets_summary_kernel(const void* offsets, bool int64_offsets,
                                                                int64_t num_groups, unsigned long long* summary) {
  using BlockReduce = cub::BlockReduce<unsigned long long, 256>;
  __shared__ typename BlockReduce::TempStorage temp_max;
  __shared__ typename BlockReduce::TempStorage temp_decrease;
  unsigned long long max_size = 0, decrease = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < num_groups; g += step) {
    const int64_t b = read_offset(offsets, int64_offsets, g);
    const int64_t e = read_offset(offsets, int64_offsets, g + 1);
    if (e > b && static_cast<unsigned long long>(e - b) > max_size) max_size = static_cast<unsigned long long>(e - b);
    if (e < b) {
      const auto mark = static_cast<unsigned long long>(num_groups - g);  // larger = earlier
      if (mark > decrease) decrease = mark;
    }
  }
  max_size = BlockReduce(temp_max).Reduce(max_size, MaxOp{});
  decrease = BlockReduce(temp_decrease).Reduce(decrease, MaxOp{});
  if (threadIdx.x == 0) {
    atomicMax(&summary[0], max_size);
    atomicMax(&summary[1], decrease);
    if (blockIdx.x == 0) {
      summary[2] = static_cast<unsigned long long>(read_offset(offsets, int64_offsets, 0));
      summary[3] = static_cast<unsigned long long>(read_offset(offsets, int64_offsets, num_groups));
    }
  }
}

}  // namespace gapo::team

namespace gapo::cuda_impl {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;
using namespace gapo::team;

#define GAPO_CUDA_CHECK(expr)                                                                        \
  do {                                                                                               \
    const cudaError_t gapo_err_ = (expr);                                                            \
    STD_TORCH_CHECK(gapo_err_ == cudaSuccess, "gapo CUDA error: ", cudaGetErrorString(gapo_err_), " (", \
                    #expr, ")");                                                                     \
  } while (0)

#define GAPO_CHECK_LAUNCH() GAPO_CUDA_CHECK(cudaGetLastError())

// The current stream of the device: the one torch (and a CUDA-graph capture) is using.
cudaStream_t current_stream(int32_t device_index) {
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_13_0
  return static_cast<cudaStream_t>(torch::stable::accelerator::getCurrentStream(device_index).nativeHandle());
#else
  if (&torch_stream_native_handle != nullptr) {  // torch >= 2.13 at run time
    StreamHandle handle = nullptr;
    STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_stream(device_index, &handle));
    void* native = nullptr;
    const AOTITorchError err = torch_stream_native_handle(handle, &native);
    aoti_torch_delete_stream(handle);
    STD_TORCH_CHECK(err == AOTI_TORCH_SUCCESS, "gapo CUDA error: could not read the current CUDA stream");
    return static_cast<cudaStream_t>(native);
  }
  // torch 2.10 .. 2.12: the AOTI shim of libtorch_cuda, already loaded by a CUDA torch.
  using GetStream = AOTITorchError (*)(int32_t, void**);
  static GetStream get_stream = []() -> GetStream {
    void* symbol = dlsym(RTLD_DEFAULT, "aoti_torch_get_current_cuda_stream");
    if (symbol == nullptr) {
      if (void* lib = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD)) {
        symbol = dlsym(lib, "aoti_torch_get_current_cuda_stream");
      }
    }
    return reinterpret_cast<GetStream>(symbol);
  }();
  STD_TORCH_CHECK(get_stream != nullptr, "gapo CUDA error: this torch exposes no current-CUDA-stream accessor");
  void* native = nullptr;
  STD_TORCH_CHECK(get_stream(device_index, &native) == AOTI_TORCH_SUCCESS,
                  "gapo CUDA error: could not read the current CUDA stream");
  return static_cast<cudaStream_t>(native);
#endif
}

template <class T>
T* aligned_slice(unsigned char* base, size_t& used, size_t bytes) {
  used = (used + 255) & ~size_t(255);
  T* p = reinterpret_cast<T*>(base + used);
  used += bytes;
  return p;
}

struct OffsetsSummary {
  int64_t max_size;
  int64_t first_decrease;  // -1: none
  int64_t first;
  int64_t last;
};

// The one device-to-host read of the op, taken only without max_group_size.
OffsetsSummary read_offsets_summary(const Tensor& offsets, int64_t num_groups, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  GAPO_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  STD_TORCH_CHECK(capture == cudaStreamCaptureStatusNone,
                  "gapo: pass max_group_size to use advantage inside a CUDA graph capture (without it the op "
                  "reads the largest group size back to the host)");
  Tensor device_summary = torch::stable::new_empty(offsets, {4}, ScalarType::Long);
  auto* summary = static_cast<unsigned long long*>(device_summary.mutable_data_ptr());
  GAPO_CUDA_CHECK(cudaMemsetAsync(summary, 0, 2 * sizeof(unsigned long long), stream));
  const int64_t blocks = std::min<int64_t>(std::max<int64_t>((num_groups + 255) / 256, 1), 1024);
  offsets_summary_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      offsets.data_ptr(), offsets.scalar_type() == ScalarType::Long, num_groups, summary);
  GAPO_CHECK_LAUNCH();
  unsigned long long host[4] = {0, 0, 0, 0};
  GAPO_CUDA_CHECK(cudaMemcpyAsync(host, summary, sizeof(host), cudaMemcpyDeviceToHost, stream));
  GAPO_CUDA_CHECK(cudaStreamSynchronize(stream));
  OffsetsSummary s;
  s.max_size = static_cast<int64_t>(host[0]);
  s.first_decrease = host[1] == 0 ? -1 : num_groups - static_cast<int64_t>(host[1]);
  s.first = static_cast<int64_t>(host[2]);
  s.last = static_cast<int64_t>(host[3]);
  return s;
}

// The spec's offsets errors (their text lives in op_checks.h).
void check_offsets_summary(const OffsetsSummary& s, int64_t num_rewards) {
  check_offsets_partition(s.first, s.first_decrease, s.last, num_rewards);
}

template <class Shape, class Scalar, class Key>
void launch_shape(const KernelArgs<Scalar, Key>& a, cudaStream_t stream) {
  const int64_t blocks = (a.num_groups + Shape::kTeamsPerBlock - 1) / Shape::kTeamsPerBlock;
  STD_TORCH_CHECK(blocks <= INT_MAX, "gapo: too many groups for one launch (", a.num_groups, ")");
  fused_group_kernel<Shape, Scalar, Key><<<static_cast<unsigned>(blocks), Shape::kBlockThreads, 0, stream>>>(a);
  GAPO_CHECK_LAUNCH();
}

template <class Scalar, class Key>
void launch_fused(int64_t max_size, const KernelArgs<Scalar, Key>& a, cudaStream_t stream) {
  with_size_class(size_class_for(max_size), [&](auto shape) { launch_shape<decltype(shape)>(a, stream); });
}

template <class Scalar, class Key>
void launch_large(KernelArgs<Scalar, Key> a, const Tensor& like, cudaStream_t stream) {
  STD_TORCH_CHECK(a.num_rewards <= INT_MAX && a.num_groups <= INT_MAX,
                  "gapo: groups larger than 1024 rewards need fewer than 2^31 rewards and groups, got ",
                  a.num_rewards, " rewards in ", a.num_groups, " groups");
  const int num_items = static_cast<int>(a.num_rewards);
  const int num_segments = static_cast<int>(a.num_groups);
  size_t cub_bytes = 0;
  // The size query must instantiate the same SortKeys as the sort below (same pointer types).
  GAPO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, cub_bytes, static_cast<Key*>(nullptr),
                                                          static_cast<Key*>(nullptr), num_items, num_segments,
                                                          static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                                          0, static_cast<int>(sizeof(Key) * 8), stream));
  const size_t key_bytes = sizeof(Key) * static_cast<size_t>(a.num_rewards);
  const size_t bound_bytes = sizeof(int32_t) * static_cast<size_t>(a.num_groups);
  const size_t total = 5 * 256 + 2 * key_bytes + 2 * bound_bytes + cub_bytes;
  Tensor scratch = torch::stable::new_empty(like, {static_cast<int64_t>(total)}, ScalarType::Byte);
  auto* base = static_cast<unsigned char*>(scratch.mutable_data_ptr());
  size_t used = 0;
  Key* keys_in = aligned_slice<Key>(base, used, key_bytes);
  Key* keys_out = aligned_slice<Key>(base, used, key_bytes);
  int32_t* segment_begin = aligned_slice<int32_t>(base, used, bound_bytes);
  int32_t* segment_end = aligned_slice<int32_t>(base, used, bound_bytes);
  void* cub_temp = aligned_slice<unsigned char>(base, used, cub_bytes);

  const int64_t work = std::max(a.num_rewards, a.num_groups);
  const int64_t blocks = std::min<int64_t>(std::max<int64_t>((work + 255) / 256, 1), 65536);
  prepare_segments_kernel<Scalar, Key><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(a, keys_in, segment_begin,
                                                                                          segment_end);
  GAPO_CHECK_LAUNCH();
  GAPO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(cub_temp, cub_bytes, keys_in, keys_out, num_items,
                                                          num_segments, segment_begin, segment_end, 0,
                                                          static_cast<int>(sizeof(Key) * 8), stream));
  a.sorted_keys = keys_out;
  a.segment_begin = segment_begin;
  a.segment_end = segment_end;
  large_group_kernel<Scalar, Key><<<static_cast<unsigned>(num_segments), kLargeThreads, 0, stream>>>(a);
  GAPO_CHECK_LAUNCH();
}

template <class Scalar, class Key>
void run(int64_t max_size, const KernelArgs<Scalar, Key>& a, const Tensor& like, cudaStream_t stream) {
  if (a.num_groups == 0) return;
  if (max_size <= kMaxFusedGroupSize) {
    launch_fused(max_size, a, stream);
  } else {
    launch_large(a, like, stream);
  }
}

// Calls f(Scalar{}, Key{}) with the storage type of `dtype` and its key type.
template <class F>
void dispatch_reward_type(ScalarType dtype, F&& f) {
  switch (dtype) {
    case ScalarType::Float:
      return f(float{}, float{});
    case ScalarType::Double:
      return f(double{}, double{});
    case ScalarType::Half:
      return f(__half{}, float{});
    case ScalarType::BFloat16:
      return f(__nv_bfloat16{}, float{});
    default:
      STD_TORCH_CHECK(false, "gapo: rewards must be float16, bfloat16, float32 or float64");
  }
}

// Checks the arguments; returns offsets as a contiguous tensor (the kernels index it densely;
// a strided offsets view costs one small copy, rewards are read through their stride).
Tensor check_cuda_inputs(const Tensor& rewards, const Tensor& offsets) {
  check_rewards_and_offsets(rewards, offsets);
  STD_TORCH_CHECK(rewards.is_cuda(), "gapo: the CUDA kernel needs rewards on a CUDA device");
  return offsets.is_contiguous() ? offsets : torch::stable::contiguous(offsets);
}

template <class Scalar, class Key>
KernelArgs<Scalar, Key> base_args(const Tensor& rewards, const Tensor& offsets, const Params& p) {
  KernelArgs<Scalar, Key> a;
  a.rewards = static_cast<const Scalar*>(rewards.data_ptr());
  a.stride = rewards.numel() > 1 ? rewards.stride(0) : 1;
  a.offsets = offsets.data_ptr();
  a.offsets_int64 = offsets.scalar_type() == ScalarType::Long;
  a.num_groups = offsets.numel() - 1;
  a.num_rewards = rewards.numel();
  a.params = p;
  return a;
}

Tensor advantage_cuda(const Tensor& rewards, const Tensor& offsets_arg, double tau, std::string baseline,
                      std::string scale, double eps, std::optional<int64_t> max_group_size) {
  const Tensor offsets = check_cuda_inputs(rewards, offsets_arg);
  const Params p = make_params(tau, baseline, scale, eps);
  GAPO_CHECK_ARGUMENT(!max_group_size.has_value() || *max_group_size >= 0, "max_group_size must be >= 0, got ",
                      max_group_size.value_or(0));
  torch::stable::accelerator::DeviceGuard guard(rewards.get_device_index());
  const cudaStream_t stream = current_stream(rewards.get_device_index());
  const int64_t num_rewards = rewards.numel();
  const int64_t num_groups = offsets.numel() - 1;

  int64_t max_size;
  if (max_group_size.has_value()) {
    max_size = *max_group_size;  // trusted: no host read, capturable
  } else {
    const OffsetsSummary s = read_offsets_summary(offsets, num_groups, stream);
    check_offsets_summary(s, num_rewards);
    max_size = s.max_size;
  }
  if (num_groups == 0) {  // only reachable with a hint and offsets that cover nothing
    return torch::stable::new_zeros(rewards, {num_rewards});
  }
  Tensor out = torch::stable::new_empty(rewards, {num_rewards});
  if (num_rewards == 0) return out;
  dispatch_reward_type(rewards.scalar_type(), [&](auto scalar, auto key) {
    using Scalar = decltype(scalar);
    using Key = decltype(key);
    KernelArgs<Scalar, Key> a = base_args<Scalar, Key>(rewards, offsets, p);
    a.out = static_cast<Scalar*>(out.mutable_data_ptr());
    run(max_size, a, rewards, stream);
  });
  return out;
}

using StatsTuple = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

StatsTuple group_stats_cuda(const Tensor& rewards, const Tensor& offsets_arg, double tau, std::string baseline,
                            std::string scale) {
  const Tensor offsets = check_cuda_inputs(rewards, offsets_arg);
  const Params p = make_params(tau, baseline, scale, 0.0);
  torch::stable::accelerator::DeviceGuard guard(rewards.get_device_index());
  const cudaStream_t stream = current_stream(rewards.get_device_index());
  const int64_t num_rewards = rewards.numel();
  const int64_t num_groups = offsets.numel() - 1;
  const OffsetsSummary s = read_offsets_summary(offsets, num_groups, stream);
  check_offsets_summary(s, num_rewards);

  const ScalarType stat_dtype = rewards.scalar_type() == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
  std::vector<Tensor> columns;
  for (int i = 0; i < 7; ++i) columns.push_back(torch::stable::new_empty(rewards, {num_groups}, stat_dtype));
  Tensor count = torch::stable::new_empty(rewards, {num_groups}, ScalarType::Long);
  dispatch_reward_type(rewards.scalar_type(), [&](auto scalar, auto key) {
    using Scalar = decltype(scalar);
    using Key = decltype(key);
    KernelArgs<Scalar, Key> a = base_args<Scalar, Key>(rewards, offsets, p);
    a.stats.baseline = static_cast<Key*>(columns[0].mutable_data_ptr());
    a.stats.scale = static_cast<Key*>(columns[1].mutable_data_ptr());
    a.stats.hdi_low = static_cast<Key*>(columns[2].mutable_data_ptr());
    a.stats.hdi_high = static_cast<Key*>(columns[3].mutable_data_ptr());
    a.stats.mean = static_cast<Key*>(columns[4].mutable_data_ptr());
    a.stats.min = static_cast<Key*>(columns[5].mutable_data_ptr());
    a.stats.max = static_cast<Key*>(columns[6].mutable_data_ptr());
    a.stats.count = static_cast<int64_t*>(count.mutable_data_ptr());
    run(s.max_size, a, rewards, stream);
  });
  return {columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6], count};
}

}  // namespace gapo::cuda_impl

STABLE_TORCH_LIBRARY_IMPL(gapo, CUDA, m) {
  m.impl("advantage", GAPO_BOX(&gapo::cuda_impl::advantage_cuda));
  m.impl("group_stats", GAPO_BOX(&gapo::cuda_impl::group_stats_cuda));
}
