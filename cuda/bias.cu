// Bias broadcast twin on the GPU: a 2-D grid of rows by column chunks.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void bias_kernel(BiasArgs a) {
  for (uint32_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    float* row = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < a.stride; j += gridDim.x * blockDim.x)
      row[j] = a.accumulate ? row[j] + a.bias[j] : a.bias[j];
  }
}

}  // namespace

void CudaBackend::set_bias(const BiasArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  bias_kernel<<<gpu::row_column_grid(a.rows, a.stride), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
