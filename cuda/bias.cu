// Bias broadcast twin on the GPU: one block per row, threads over columns.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void bias_kernel(BiasArgs a) {
  for (uint32_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    float* row = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x) row[j] = a.accumulate ? row[j] + a.bias[j] : a.bias[j];
  }
}

}  // namespace

void CudaBackend::set_bias(const BiasArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  bias_kernel<<<gpu::row_grid(a.rows), gpu::column_threads(a.stride), 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
