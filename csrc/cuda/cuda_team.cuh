// The GPU implementations of the Team interface of group_kernel.cuh.
//   WarpTeam<T>:  T <= 32 lanes of one warp (32 / T groups per warp). Everything is shuffles
//                 under the team's own lane mask, so teams of a warp never wait for each other.
//   BlockTeam<T>: the whole block (T > 32 threads). Strides inside a warp are shuffles; the
//                 others go through shared memory between two __syncthreads.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "group_kernel.cuh"

namespace gapo::team {

// A shuffle of any trivially copyable 4-byte-multiple value (float, double, int64_t,
// WindowCandidate), one 32-bit word at a time.
template <class V>
__device__ __forceinline__ V shfl_xor(unsigned mask, const V& v, int lane_mask) {
  static_assert(sizeof(V) % 4 == 0, "shuffled values are whole 32-bit words");
  constexpr int kWords = sizeof(V) / 4;
  unsigned words[kWords];
  memcpy(words, &v, sizeof(V));
#pragma unroll
  for (int w = 0; w < kWords; ++w) words[w] = __shfl_xor_sync(mask, words[w], lane_mask);
  V out;
  memcpy(&out, words, sizeof(V));
  return out;
}

template <int Threads, class Key>
struct WarpTeam {
  static_assert(Threads >= 2 && Threads <= 32, "a warp team is 2..32 lanes");
  static constexpr int kThreads = Threads;
  Key* buffer_;
  unsigned mask_;
  int rank_;

  __device__ __forceinline__ explicit WarpTeam(Key* buffer) : buffer_(buffer) {
    const int lane = static_cast<int>(threadIdx.x & 31u);
    rank_ = lane & (Threads - 1);
    mask_ = Threads == 32 ? 0xffffffffu : (((1u << Threads) - 1u) << (lane & ~(Threads - 1)));
  }
  __device__ __forceinline__ int rank() const { return rank_; }
  __device__ __forceinline__ void sync() { __syncwarp(mask_); }
  __device__ __forceinline__ Key* buffer() { return buffer_; }

  template <int Mask, int I>
  __device__ __forceinline__ void exchange(const Key (&in)[I], Key (&out)[I]) {
    static_assert(Mask < Threads, "partner outside the team");
#pragma unroll
    for (int i = 0; i < I; ++i) out[i] = shfl_xor(mask_, in[i], Mask);
  }

  template <class V, class Op>
  __device__ __forceinline__ V allreduce(V v, Op op) {
#if __CUDA_ARCH__ >= 800
    // An integer sum (the count of finite rewards) in one redux instruction: same result.
    if constexpr (std::is_same_v<V, int> && std::is_same_v<Op, SumOp>) {
      return __reduce_add_sync(mask_, v);
    } else
#endif
    {
#pragma unroll
      for (int m = 1; m < Threads; m <<= 1) v = op(v, shfl_xor(mask_, v, m));
      return v;
    }
  }
};

// Bytes of shared memory BlockTeam::allreduce needs: one value per warp, the largest value
// reduced being a WindowCandidate.
template <int Threads>
constexpr int block_team_scratch_bytes() {
  return (Threads / 32) * static_cast<int>(sizeof(WindowCandidate));
}

template <int Threads, class Key>
struct BlockTeam {
  static_assert(Threads > 32 && Threads <= 1024 && Threads % 32 == 0, "a block team is whole warps");
  static constexpr int kThreads = Threads;
  static constexpr int kWarps = Threads / 32;
  Key* buffer_;            // kCapacity keys (fused path); also the exchange area of the sort
  unsigned char* scratch_; // block_team_scratch_bytes<Threads>()

  __device__ __forceinline__ BlockTeam(Key* buffer, unsigned char* scratch) : buffer_(buffer), scratch_(scratch) {}
  __device__ __forceinline__ int rank() const { return static_cast<int>(threadIdx.x); }
  __device__ __forceinline__ void sync() { __syncthreads(); }
  __device__ __forceinline__ Key* buffer() { return buffer_; }

  template <int Mask, int I>
  __device__ __forceinline__ void exchange(const Key (&in)[I], Key (&out)[I]) {
    static_assert(Mask < Threads, "partner outside the team");
    if constexpr (Mask < 32) {
#pragma unroll
      for (int i = 0; i < I; ++i) out[i] = shfl_xor(0xffffffffu, in[i], Mask);
    } else {
      // Striped layout [i][thread]: a warp writes and reads 32 consecutive words per i.
      const int t = rank();
      __syncthreads();  // the previous exchange's readers are done
#pragma unroll
      for (int i = 0; i < I; ++i) buffer_[i * Threads + t] = in[i];
      __syncthreads();
#pragma unroll
      for (int i = 0; i < I; ++i) out[i] = buffer_[i * Threads + (t ^ Mask)];
    }
  }

  template <class V, class Op>
  __device__ __forceinline__ V allreduce(V v, Op op) {
    static_assert(sizeof(V) <= sizeof(WindowCandidate), "scratch holds one WindowCandidate per warp");
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) v = op(v, shfl_xor(0xffffffffu, v, m));
    V* slots = reinterpret_cast<V*>(scratch_);
    __syncthreads();  // the previous allreduce's readers are done with the slots
    if ((threadIdx.x & 31u) == 0) slots[threadIdx.x / 32] = v;
    __syncthreads();
    V total = slots[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) total = op(total, slots[w]);  // same order on every thread
    return total;
  }
};

}  // namespace gapo::team
