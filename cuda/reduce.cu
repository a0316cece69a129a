// Reduction twin on the GPU: column sums over a fixed split of the rows.
#include <algorithm>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

// A block covers 32 columns; its warp g sums rows g, g + Groups, ... (each warp reads 32 consecutive
// floats of a row: coalesced), then one thread per column adds the groups' sums in group order. Narrow
// matrices (a hidden layer's few hundred columns: a handful of blocks) take 32 warps a block, so each
// thread's chain of loads is short. The split depends only on the shape, so the bits do not vary.
template <unsigned Groups>
__global__ void __launch_bounds__(32 * Groups) column_sum_kernel(ColumnSumArgs a) {
  __shared__ float partial[Groups][32];
  const unsigned lane = threadIdx.x & 31u, group = threadIdx.x >> 5;
  for (uint64_t j0 = static_cast<uint64_t>(blockIdx.x) * 32; j0 < a.stride; j0 += static_cast<uint64_t>(gridDim.x) * 32) {
    const uint64_t j = j0 + lane;
    float sum = 0.0f;
    if (j < a.stride) {
      // Unrolled: the loads of eight rows are in flight together (the sum still adds them in row order).
#pragma unroll 8
      for (uint32_t r = group; r < a.rows; r += Groups) sum += a.matrix[static_cast<uint64_t>(r) * a.stride + j];
    }
    partial[group][lane] = sum;
    __syncthreads();
    if (group == 0 && j < a.stride) {
      float total = 0.0f;
      for (unsigned g = 0; g < Groups; ++g) total += partial[g][lane];
      a.out[j] = a.scale * total;
    }
    __syncthreads();
  }
}

}  // namespace

void CudaBackend::column_sum(const ColumnSumArgs& a) {
  if (a.stride == 0) return;
  bind();
  const unsigned blocks = gpu::grid_for(a.stride, 32);
  if (blocks < gpu::kFewColumnBlocks)
    column_sum_kernel<32><<<blocks, 32 * 32, 0, stream()>>>(a);
  else
    column_sum_kernel<8><<<blocks, 32 * 8, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
