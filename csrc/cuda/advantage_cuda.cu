// CUDA kernels for gapo::advantage and gapo::group_stats (docs/spec.md).
//
// Design note
// ===========
// Cost model. The op is memory-bound: 1M float32 rewards read (4 MB) plus 1M advantages
// written (4 MB) plus offsets (4-8 MB for groups of 1-2 rewards, ~1 MB for groups of 8) are
// ~10-12 MB, a few microseconds at an H100's ~3 TB/s. Anything that moves a group through
// device memory a second time (a separate sort pass, a padded copy, a stats round trip), or
// that costs a launch per stage, is already a multiple of that floor.
//
// Fused path (groups of <= 1024 rewards). A team of threads owns a group: it loads the
// group's rewards once (coalesced, strided input allowed), sorts them in registers with a
// bitonic network, finds the HDI window by a parallel argmin, reduces the mean / window sum /
// sum of squares, and writes the advantages from the values it still holds in registers.
// Rewards are read once and advantages written once; nothing else touches device memory except
// the team's two offsets. The size classes (launch_plan.h has the table): capacity 4 .. 1024,
// 2 .. 128 threads per group, 2 .. 8 keys per thread, teams of <= 32 threads as lanes of a warp
// (several groups per warp), larger teams a whole block; sort strides below the keys per thread
// stay in registers, then shuffles, then (block teams) shared memory. Each thread has 8-32 bytes
// of loads in flight (a memory-bound kernel needs ~16 KB in flight per SM on an H100). ptxas
// (nvcc 13, sm_90a): 50-95 registers per thread, 2-8 KB static shared memory for float and
// 16-bit rewards, 4-16 KB for float64, and at most an 8-byte stack frame (float64, 32 threads
// x 8 keys); classify ~26 registers, the large-path reduce 40-48, prepare 13-24.
// scripts/check_cuda_compile.sh prints the table of the current code. Compute:
// a bitonic sort of C keys is log2(C)(log2(C)+1)/2 compare-exchange steps; for groups of 8
// that is ~3 shuffles and ~10 selects per reward plus ~5 butterfly steps per group, far under
// the memory time; at 1024 it is ~25 shuffles per reward, about the memory time again.
// Missing rewards (NaN, +/-inf) and padding become +inf keys, which sort last, and -0.0 becomes
// +0.0 (sort_key), so n counts the finite rewards and every sort orders zeros alike. Window
// widths are compared in double and ties go to the lowest start (hdi_prefer, group_logic.h), so
// the window is the sequential scan's. The median, baseline, scale and divisor are
// group_logic.h's functions, applied to the sorted keys the team left in shared memory. Sums
// are fixed-shape trees (xor butterflies, then warp results in warp order), so the output is
// bit-identical run to run: no atomics anywhere in the result. The per-group code lives in
// group_kernel.cuh, written against a small Team interface that host_emulation/ also
// implements with std::threads: that is how CI tests these kernels without a GPU.
//
// Launch plan (launch_plan.h, a plain host function). Small groups always take the fused
// kernel, only groups above 1024 the large path. Without max_group_size, one small kernel
// reduces the offsets to the histogram of size classes plus what the offsets checks need, and
// the op reads those 112 bytes back: the one documented device-to-host read, after which it
// raises the spec's offsets errors. From the histogram the plan makes one direct launch of the
// largest class present (team i owns group i; empty groups return before any load), or one
// launch per class over lists built on the device by a classify kernel when the padding of one
// class would cost more than the extra launches. With max_group_size nothing is read: a hint
// up to 64 launches its class directly; a larger one lists the groups by their own size, each
// class's launch sized for the most groups that fit its range (min(G, N / smallest size)) and
// teams past the list's length return at once. So a cautious hint (2048 for groups of 16)
// costs a classify pass and a few launches, not 1024-key sorts for every group. Then the op is
// only kernel launches on the current stream with outputs from torch's caching allocator: it
// can be captured in a CUDA graph. A group larger than the hint gets NaN advantages (never an
// out-of-bounds access); bounds are clamped to [0, N] on the device, and rows outside
// [offsets[0], offsets[G]) get 0, so nothing returned is memory that nothing wrote.
//
// Large path (groups > 1024, listed by the classify kernel: their segment bounds go to slots
// whose unused rest is empty). (1) a prepare kernel, a block per slot, writes the segment's
// keys (missing -> +inf, -0.0 -> +0.0) at their own positions; (2)
// cub::DeviceSegmentedRadixSort sorts every slot's segment (a block per segment, several radix
// passes through global memory; empty segments return at once); (3) a block of 256 threads
// per slot reduces the sorted segment with the same reduce_group as the fused path and writes
// the advantages. Cost for the large groups: the prepare pass, ~5 radix passes of (2 reads + 1
// write) of the keys, ~5 reads of the sorted keys and the final read/write: ~10x the fused
// path's bytes, plus ~8 launches. cub::DeviceSegmentedSort would be the obvious pick, but with
// more than a few hundred segments it partitions them and copies the partition sizes to the
// host with a stream synchronisation (dispatch_segmented_sort.cuh, unless built with CDP),
// which would break the no-sync / graph-capture promise. DeviceSegmentedRadixSort never syncs.
// Scratch (lists, counters, segment bounds, keys twice, CUB temp) is one byte tensor from
// torch's caching allocator. This path needs N < 2^31 (CUB's int num_items).
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
#if !defined(TORCH_VERSION_2_13_0) || TORCH_FEATURE_VERSION < TORCH_VERSION_2_13_0
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
  const int64_t team_index = static_cast<int64_t>(blockIdx.x) * Shape::kTeamsPerBlock + team_in_block;
  Key* buffer = keys_smem + team_in_block * Shape::kCapacity;
  if constexpr (Shape::kBlockTeam) {
    __shared__ __align__(16) unsigned char scratch[block_team_scratch_bytes<Shape::kThreads>()];
    BlockTeam<Shape::kThreads, Key> team(buffer, scratch);
    fused_group<Shape>(team, a, team_index);
  } else {
    WarpTeam<Shape::kThreads, Key> team(buffer);
    fused_group<Shape>(team, a, team_index);
  }
}

template <class Scalar, class Key>
__global__ void __launch_bounds__(kLargeThreads) large_group_kernel(const KernelArgs<Scalar, Key> a) {
  __shared__ __align__(16) unsigned char scratch[block_team_scratch_bytes<kLargeThreads>()];
  BlockTeam<kLargeThreads, Key> team(nullptr, scratch);
  large_group<kLargeThreads>(team, a, static_cast<int64_t>(blockIdx.x));
}

// Large path, step 1: one block per segment slot writes its segment's keys.
template <class Scalar, class Key>
__global__ void __launch_bounds__(256) prepare_segments_kernel(const KernelArgs<Scalar, Key> a, Key* keys) {
  prepare_segment(a, keys, static_cast<int64_t>(blockIdx.x), threadIdx.x, blockDim.x);
}

// The classify step: each group's index goes to its path's list. Slots are taken with one
// atomicAdd per path per block on top of shared-memory counts; the order inside a list depends
// on timing, the results do not (every group is computed by one team, the same way wherever it
// sits in its list). Listed plans also write the rows no group covers here.
constexpr int kClassifyThreads = 256;

template <class Scalar, class Key>
__global__ void __launch_bounds__(kClassifyThreads) classify_groups_kernel(const KernelArgs<Scalar, Key> a,
                                                                          const ListArgs l) {
  __shared__ int block_count[kNumPaths];
  __shared__ int block_base[kNumPaths];
  if (l.listed && blockIdx.x == 0) write_uncovered_ends(a, threadIdx.x, blockDim.x);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  // The loop bound is the same for every thread of a block, so the barriers are block-uniform.
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x; first < a.num_groups; first += step) {
    const int64_t g = first + threadIdx.x;
    if (threadIdx.x < kNumPaths) block_count[threadIdx.x] = 0;
    __syncthreads();
    int64_t begin = 0, end = 0;
    int path = -1, local = 0;
    if (g < a.num_groups) {
      path = list_path_of(a, l, g, begin, end);
      if (path >= 0) local = atomicAdd(&block_count[path], 1);
    }
    __syncthreads();
    if (threadIdx.x < kNumPaths && block_count[threadIdx.x] > 0) {
      block_base[threadIdx.x] = atomicAdd(&l.lengths[threadIdx.x], block_count[threadIdx.x]);
    }
    __syncthreads();
    if (path >= 0) record_in_list(a, l, path, static_cast<int64_t>(block_base[path]) + local, g, begin, end);
    __syncthreads();  // block_count is reset next round
  }
}

// Without a hint: what the launch plan needs (the histogram of paths, the empty groups) and what
// the offsets checks need, in one pass. Layout (all zeroed first, combined with atomics:
// order-independent): [0] G - (first g with a negative size) or 0, [1] offsets[0],
// [2] offsets[G], [3] empty groups, [4 + p] groups of path p.
constexpr int kSummaryWords = 4 + kNumPaths;

struct MaxOp {
  __device__ __forceinline__ unsigned long long operator()(unsigned long long a, unsigned long long b) const {
    return a > b ? a : b;
  }
};

__global__ void __launch_bounds__(256) offsets_summary_kernel(const void* offsets, bool int64_offsets,
                                                                int64_t num_groups, int64_t num_rewards,
                                                                unsigned long long* summary) {
  using BlockReduce = cub::BlockReduce<unsigned long long, 256>;
  __shared__ typename BlockReduce::TempStorage temp_decrease;
  __shared__ unsigned int counts[kNumPaths + 1];  // paths, then empty groups
  if (threadIdx.x <= kNumPaths) counts[threadIdx.x] = 0;
  __syncthreads();
  unsigned long long decrease = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < num_groups; g += step) {
    const int64_t b = read_offset(offsets, int64_offsets, g);
    const int64_t e = read_offset(offsets, int64_offsets, g + 1);
    if (e < b) {
      const auto mark = static_cast<unsigned long long>(num_groups - g);  // larger = earlier
      if (mark > decrease) decrease = mark;
    }
    int64_t begin, end;
    group_bounds(offsets, int64_offsets, g, num_rewards, begin, end);
    const int64_t size = end - begin;
    atomicAdd(&counts[size == 0 ? kNumPaths : path_for_size(size)], 1u);
  }
  decrease = BlockReduce(temp_decrease).Reduce(decrease, MaxOp{});
  __syncthreads();
  if (threadIdx.x == 0) {
    atomicMax(&summary[0], decrease);
    if (blockIdx.x == 0) {
      summary[1] = static_cast<unsigned long long>(read_offset(offsets, int64_offsets, 0));
      summary[2] = static_cast<unsigned long long>(read_offset(offsets, int64_offsets, num_groups));
    }
  }
  if (threadIdx.x <= kNumPaths && counts[threadIdx.x] > 0) {
    atomicAdd(&summary[threadIdx.x == kNumPaths ? 3 : 4 + threadIdx.x], static_cast<unsigned long long>(counts[threadIdx.x]));
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
#if defined(TORCH_VERSION_2_13_0) && TORCH_FEATURE_VERSION >= TORCH_VERSION_2_13_0  // older headers lack the macro
  return static_cast<cudaStream_t>(torch::stable::accelerator::getCurrentStream(device_index).nativeHandle());
#else
  if (&torch_stream_native_handle != nullptr) {  // torch >= 2.13 at run time
    StreamHandle handle = nullptr;
    STD_TORCH_CHECK(aoti_torch_get_current_stream(device_index, &handle) == AOTI_TORCH_SUCCESS,
                    "gapo CUDA error: could not read the current CUDA stream");
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
  int64_t first_decrease;  // -1: none
  int64_t first;
  int64_t last;
  SizeKnowledge sizes;
};

// The one device-to-host read of the op, taken only without max_group_size.
OffsetsSummary read_offsets_summary(const Tensor& offsets, int64_t num_groups, int64_t num_rewards,
                                    cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  GAPO_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  STD_TORCH_CHECK(capture == cudaStreamCaptureStatusNone,
                  "gapo: pass max_group_size to use advantage inside a CUDA graph capture (without it the op "
                  "reads the group sizes back to the host)");
  Tensor device_summary = torch::stable::new_empty(offsets, {kSummaryWords}, ScalarType::Long);
  auto* summary = static_cast<unsigned long long*>(device_summary.mutable_data_ptr());
  GAPO_CUDA_CHECK(cudaMemsetAsync(summary, 0, kSummaryWords * sizeof(unsigned long long), stream));
  const int64_t blocks = std::min<int64_t>(std::max<int64_t>((num_groups + 255) / 256, 1), 1024);
  offsets_summary_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      offsets.data_ptr(), offsets.scalar_type() == ScalarType::Long, num_groups, num_rewards, summary);
  GAPO_CHECK_LAUNCH();
  unsigned long long host[kSummaryWords] = {};
  GAPO_CUDA_CHECK(cudaMemcpyAsync(host, summary, sizeof(host), cudaMemcpyDeviceToHost, stream));
  GAPO_CUDA_CHECK(cudaStreamSynchronize(stream));
  OffsetsSummary s;
  s.first_decrease = host[0] == 0 ? -1 : num_groups - static_cast<int64_t>(host[0]);
  s.first = static_cast<int64_t>(host[1]);
  s.last = static_cast<int64_t>(host[2]);
  s.sizes.num_groups = num_groups;
  s.sizes.num_rewards = num_rewards;
  s.sizes.exact = true;
  s.sizes.empty_groups = static_cast<int64_t>(host[3]);
  for (int p = 0; p < kNumPaths; ++p) s.sizes.histogram[p] = static_cast<int64_t>(host[4 + p]);
  return s;
}

// The spec's offsets errors (their text lives in op_checks.h).
void check_offsets_summary(const OffsetsSummary& s, int64_t num_rewards) {
  check_offsets_partition(s.first, s.first_decrease, s.last, num_rewards);
}

unsigned grid_size(int64_t blocks) {
  STD_TORCH_CHECK(blocks >= 1 && blocks <= INT_MAX, "gapo: too many groups for one launch (", blocks, " blocks)");
  return static_cast<unsigned>(blocks);
}

template <class Scalar, class Key>
void launch_class(int size_class, int64_t blocks, const KernelArgs<Scalar, Key>& a, cudaStream_t stream) {
  with_size_class(size_class, [&](auto shape) {
    using Shape = decltype(shape);
    fused_group_kernel<Shape, Scalar, Key><<<grid_size(blocks), Shape::kBlockThreads, 0, stream>>>(a);
    GAPO_CHECK_LAUNCH();
  });
}

// Runs a launch plan (launch_plan.h). Scratch (lists, counters, segment bounds, the large path's
// keys and CUB's temp) is one byte tensor from torch's caching allocator.
template <class Scalar, class Key>
void run_plan(const LaunchPlan& plan, KernelArgs<Scalar, Key> a, const Tensor& like, cudaStream_t stream) {
  a.size_limit = plan.size_limit;
  const bool large = plan.large_segments > 0;
  Tensor scratch;  // keeps the scratch alive until every launch is queued
  ListArgs l;
  Key* keys_in = nullptr;
  Key* keys_out = nullptr;
  void* cub_temp = nullptr;
  size_t cub_bytes = 0;
  if (plan.classify) {
    l = list_layout_of(plan);
    STD_TORCH_CHECK(a.num_groups < INT_MAX, "gapo: this launch plan needs fewer than 2^31 groups, got ", a.num_groups);
    if (large) {
      STD_TORCH_CHECK(a.num_rewards <= INT_MAX,
                      "gapo: groups larger than 1024 rewards need fewer than 2^31 rewards, got ", a.num_rewards);
      // The size query must instantiate the same SortKeys as the sort below (same pointer types).
      GAPO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
          nullptr, cub_bytes, static_cast<Key*>(nullptr), static_cast<Key*>(nullptr), static_cast<int>(a.num_rewards),
          static_cast<int>(plan.large_segments), static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), 0,
          static_cast<int>(sizeof(Key) * 8), stream));
    }
    const size_t list_bytes = sizeof(int32_t) * static_cast<size_t>(plan.list_total);
    const size_t length_bytes = sizeof(int32_t) * kNumPaths;
    const size_t bound_bytes = sizeof(int32_t) * static_cast<size_t>(plan.large_segments);
    const size_t key_bytes = large ? sizeof(Key) * static_cast<size_t>(a.num_rewards) : 0;
    const size_t total = 7 * 256 + list_bytes + length_bytes + 2 * bound_bytes + 2 * key_bytes + cub_bytes;
    scratch = torch::stable::new_empty(like, {static_cast<int64_t>(total)}, ScalarType::Byte);
    auto* base = static_cast<unsigned char*>(scratch.mutable_data_ptr());
    size_t used = 0;
    l.lengths = aligned_slice<int32_t>(base, used, length_bytes);
    l.segment_begin = aligned_slice<int32_t>(base, used, bound_bytes);
    l.segment_end = aligned_slice<int32_t>(base, used, bound_bytes);
    const size_t zeroed = used;  // counters and segment bounds start at 0 (unused slots: empty)
    l.lists = aligned_slice<int32_t>(base, used, list_bytes);
    keys_in = aligned_slice<Key>(base, used, key_bytes);
    keys_out = aligned_slice<Key>(base, used, key_bytes);
    cub_temp = aligned_slice<unsigned char>(base, used, cub_bytes);
    GAPO_CUDA_CHECK(cudaMemsetAsync(base, 0, zeroed, stream));
    const int64_t blocks = std::min<int64_t>((a.num_groups + kClassifyThreads - 1) / kClassifyThreads, 2048);
    classify_groups_kernel<Scalar, Key><<<grid_size(blocks), kClassifyThreads, 0, stream>>>(a, l);
    GAPO_CHECK_LAUNCH();
  }
  if (plan.direct_class >= 0) {
    KernelArgs<Scalar, Key> direct = a;
    direct.large_elsewhere = large;
    launch_class(plan.direct_class, plan.direct_blocks, direct, stream);
  }
  if (plan.listed) {
    for (int c = 0; c < kNumSizeClasses; ++c) {
      if (plan.blocks[c] == 0) continue;
      KernelArgs<Scalar, Key> listed = a;
      listed.list = l.lists + plan.list_offset[c];
      listed.list_length = l.lengths + c;
      listed.list_room = plan.list_room[c];
      launch_class(c, plan.blocks[c], listed, stream);
    }
  }
  if (large) {
    KernelArgs<Scalar, Key> la = a;
    la.list = l.lists + plan.list_offset[kLargePath];
    la.list_length = l.lengths + kLargePath;
    la.list_room = plan.list_room[kLargePath];
    la.segment_begin = l.segment_begin;
    la.segment_end = l.segment_end;
    const unsigned segments = grid_size(plan.large_segments);
    prepare_segments_kernel<Scalar, Key><<<segments, 256, 0, stream>>>(la, keys_in);
    GAPO_CHECK_LAUNCH();
    GAPO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(cub_temp, cub_bytes, keys_in, keys_out,
                                                            static_cast<int>(a.num_rewards), static_cast<int>(segments),
                                                            l.segment_begin, l.segment_end, 0,
                                                            static_cast<int>(sizeof(Key) * 8), stream));
    la.sorted_keys = keys_out;
    large_group_kernel<Scalar, Key><<<segments, kLargeThreads, 0, stream>>>(la);
    GAPO_CHECK_LAUNCH();
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

  SizeKnowledge sizes;
  if (max_group_size.has_value()) {  // trusted: no host read, capturable
    sizes.num_groups = num_groups;
    sizes.num_rewards = num_rewards;
    sizes.hint = *max_group_size;
  } else {
    const OffsetsSummary s = read_offsets_summary(offsets, num_groups, num_rewards, stream);
    check_offsets_summary(s, num_rewards);
    sizes = s.sizes;
  }
  if (num_groups == 0) {  // only reachable with a hint and offsets that cover nothing
    return torch::stable::new_zeros(rewards, {num_rewards});
  }
  Tensor out = torch::stable::new_empty(rewards, {num_rewards});
  if (num_rewards == 0) return out;
  const LaunchPlan plan = plan_launch(sizes);
  dispatch_reward_type(rewards.scalar_type(), [&](auto scalar, auto key) {
    using Scalar = decltype(scalar);
    using Key = decltype(key);
    KernelArgs<Scalar, Key> a = base_args<Scalar, Key>(rewards, offsets, p);
    a.out = static_cast<Scalar*>(out.mutable_data_ptr());
    run_plan(plan, a, rewards, stream);
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
  const OffsetsSummary s = read_offsets_summary(offsets, num_groups, num_rewards, stream);
  check_offsets_summary(s, num_rewards);
  SizeKnowledge sizes = s.sizes;
  sizes.every_group_needs_a_team = true;
  const LaunchPlan plan = plan_launch(sizes);

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
    run_plan(plan, a, rewards, stream);
  });
  return {columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6], count};
}

}  // namespace gapo::cuda_impl

STABLE_TORCH_LIBRARY_IMPL(gapo, CUDA, m) {
  m.impl("advantage", GAPO_BOX(&gapo::cuda_impl::advantage_cuda));
  m.impl("group_stats", GAPO_BOX(&gapo::cuda_impl::group_stats_cuda));
}
