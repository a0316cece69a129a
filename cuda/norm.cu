// WeightNorm / DeltaNorm twins on the GPU. Weight columns: one thread per column sums its rows in row
// order (neighbouring threads read neighbouring floats: coalesced), then scales them. Delta rows: one
// block per row, a fixed reduction tree. No atomics: the bits are fixed.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

__global__ void weight_norm_kernel(WeightNormArgs a) {
  for (uint64_t j = gpu::global_thread(); j < a.stride; j += gpu::grid_threads()) {
    float sumsq = 0.0f;
    for (uint32_t i = 0; i < a.rows; ++i) {
      const float w = a.weights[static_cast<uint64_t>(i) * a.stride + j];
      sumsq += w * w;
    }
    const float s = math::norm_scale(sumsq, a.norm);
    if (s != 1.0f)
      for (uint32_t i = 0; i < a.rows; ++i) a.weights[static_cast<uint64_t>(i) * a.stride + j] *= s;
  }
}

__global__ void delta_norm_kernel(DeltaNormArgs a) {
  for (uint32_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    float* row = a.delta + static_cast<uint64_t>(r) * a.stride;
    float sumsq = 0.0f;
    for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x) sumsq += row[j] * row[j];
    sumsq = gpu::block_reduce(sumsq, gpu::Sum{}, 0.0f);
    const float s = math::norm_scale(sumsq, a.norm);
    if (s != 1.0f)
      for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x) row[j] *= s;
  }
}

}  // namespace

void CudaBackend::normalize_weights(const WeightNormArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  weight_norm_kernel<<<gpu::grid_for(a.stride), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

void CudaBackend::normalize_deltas(const DeltaNormArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  delta_norm_kernel<<<gpu::row_grid(a.rows), gpu::column_threads(a.stride), 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
