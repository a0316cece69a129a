// Input loading twins on the GPU: dense rows copied, sparse rows expanded into zeroed rows.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void load_dense_kernel(LoadDenseArgs a) {
  for (uint32_t r = blockIdx.x; r < a.batch.rows; r += gridDim.x) {
    const uint32_t row = row_of(a.data.indexed, example_of(a.batch, r));
    const float* src = a.data.data + static_cast<uint64_t>(row) * a.data.stride;
    float* dst = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x) dst[j] = src[j];
  }
}

// One warp per batch row over its datapoints, 32 at a time in stored order. A column repeated within a
// row must be summed in stored order as the CPU target's sequential += does: lanes naming the same
// column (__match_any_sync) leave the adding to the first of them, and chunks run one after another.
__global__ void load_sparse_kernel(LoadSparseArgs a) {
  const unsigned lane = threadIdx.x & 31u;
  const uint64_t warps = gpu::grid_threads() >> 5;
  for (uint64_t r = gpu::global_thread() >> 5; r < a.batch.rows; r += warps) {
    float* out = a.unit + r * a.stride;
    const SparseRow s = sparse_row(a.data, a.batch, static_cast<uint32_t>(r));
    for (uint64_t c = s.begin; c < s.end; c += 32) {
      const uint64_t i = c + lane;
      const bool live = i < s.end;
      const uint32_t j = live ? a.data.index[i] : 0u;
      const float v = live ? datapoint_value(a.data, a.denoise, s, i) : 0.0f;
      const unsigned group =
          __match_any_sync(gpu::kFullMask, live ? j : 0xFFFFFFFFu) & __ballot_sync(gpu::kFullMask, live);
      if (__any_sync(gpu::kFullMask, __popc(group) > 1)) {
        const bool leader = live && static_cast<unsigned>(__ffs(group) - 1) == lane;
        float sum = leader ? out[j] : 0.0f;
        for (unsigned b = 0; b < 32; ++b) {
          const float vb = __shfl_sync(gpu::kFullMask, v, b);
          if (leader && ((group >> b) & 1u) && vb != 0.0f) sum += vb;
        }
        if (leader) out[j] = sum;
      } else if (live && v != 0.0f) {
        out[j] += v;
      }
      __syncwarp();  // this chunk's writes are seen by the lanes of the next
    }
  }
}

}  // namespace

void CudaBackend::load_dense(const LoadDenseArgs& a) {
  if (a.batch.rows == 0 || a.stride == 0) return;
  bind();
  load_dense_kernel<<<gpu::row_grid(a.batch.rows), gpu::column_threads(a.stride), 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

void CudaBackend::load_sparse(const LoadSparseArgs& a) {
  if (a.batch.rows == 0 || a.stride == 0) return;
  bind();
  // The batch's rows are contiguous: zero them at once, then scatter the datapoints.
  DSSTNE_CUDA_CHECK(
      cudaMemsetAsync(a.unit, 0, sizeof(float) * static_cast<size_t>(a.batch.rows) * a.stride, stream()));
  load_sparse_kernel<<<gpu::warp_row_grid(a.batch.rows), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
