// Reduction twin on the GPU: column sums over a fixed split of the rows.
#include <algorithm>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

// A block covers 32 columns; its warp g sums rows g, g + Groups, ... (each warp reads 32 consecutive
// floats of a row: coalesced), then the groups' sums are added in group order (gpu::column_total). Narrow
// matrices (a hidden layer's few hundred columns: a handful of blocks) take 32 warps a block, so each
// thread's chain of loads is short. The split depends only on the shape, so the bits do not vary.
template <unsigned Groups>
__global__ void __launch_bounds__(32 * Groups) column_sum_kernel(ColumnSumArgs a) {
  gpu::await_previous();
  __shared__ gpu::ColumnPartials<Groups> partial;
  const unsigned lane = threadIdx.x & 31u, group = threadIdx.x >> 5;
  for (uint64_t j0 = static_cast<uint64_t>(blockIdx.x) * 32; j0 < a.stride; j0 += static_cast<uint64_t>(gridDim.x) * 32) {
    const uint64_t j = j0 + lane;
    float sum = 0.0f;
    if (j < a.stride) {
      // Unrolled: the loads of eight rows are in flight together (the sum still adds them in row order).
#pragma unroll 8
      for (uint32_t r = group; r < a.rows; r += Groups) sum += a.matrix[static_cast<uint64_t>(r) * a.row_pitch() + j];
    }
    const float total = gpu::column_total<Groups>(sum, partial);
    if (group == 0 && j < a.stride) a.out[j] = a.scale * total;
  }
}

}  // namespace

void CudaBackend::column_sum(const ColumnSumArgs& a) {
  if (a.stride == 0) return;
  bind();
  const unsigned blocks = gpu::grid_for(a.stride, 32);
  if (blocks < gpu::kFewColumnBlocks)
    gpu::launch(dependent_, column_sum_kernel<32>, blocks, 32 * 32, 0, stream(), a);
  else
    gpu::launch(dependent_, column_sum_kernel<8>, blocks, 32 * 8, 0, stream(), a);
}

}  // namespace dsstne
