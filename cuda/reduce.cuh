// Deterministic block reductions: a fixed shuffle tree, so the same inputs give the same bits every run;
// and the fixed-point error total (integer sums, so the one atomic per block is order-independent).
#pragma once

#include <cstdint>

#include "launch.cuh"

namespace dsstne::gpu {

struct Sum {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Butterfly: every lane ends with the same value (op is commutative, so a+b and b+a are the same bits).
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32); every thread gets the result. Every
// thread of the block must call it.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call may still be reading partial[]
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_reduce(lane < warps ? partial[lane] : identity, op);
}

// A block of Groups warps over 32 columns, warp g holding the sum of its rows (g, g + Groups, ...) of
// column lane: every thread gets its column's total, the warps' sums added in warp order. The first warp
// adds them and hands the totals round in the last row (every warp adding them was most of the
// instructions of a narrow layer's hidden delta, a kernel of a few blocks bound by issuing them). Every
// thread of the block must call it. Two barriers a call suffice: a call writes the partial rows after the
// previous call's second barrier, which the first warp reaches only after reading them, and the totals
// row after its own first barrier, which every thread reaches only after reading the previous totals.
template <unsigned Groups>
using ColumnPartials = float[Groups + 1][32];
template <unsigned Groups>
__device__ float column_total(float sum, ColumnPartials<Groups>& partial) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  partial[warp][lane] = sum;
  __syncthreads();
  if (warp == 0) {
    float total = 0.0f;
    for (unsigned g = 0; g < Groups; ++g) total += partial[g][lane];
    partial[Groups][lane] = total;
  }
  __syncthreads();
  return partial[Groups][lane];
}

// Adds the block's fixed-point partial sums to *total with one integer atomic.
__device__ __forceinline__ void add_fixed(long long* total, long long partial) {
  const long long sum = block_reduce(partial, Sum{}, 0ll);
  if (threadIdx.x == 0 && sum != 0)
    atomicAdd(reinterpret_cast<unsigned long long*>(total), static_cast<unsigned long long>(sum));
}

}  // namespace dsstne::gpu
