// Activation twin on the GPU. Element-wise kinds use the shared formula; SoftMax runs one block per row:
// max, exponentials summed in double through a fixed reduction tree, normalise (clamped at 1, as on the
// CPU target).
#include <cmath>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

constexpr unsigned kSoftMaxThreads = 256;

__global__ void activate_kernel(float* unit, uint64_t n, ActivationParams p) {
  for (uint64_t i = gpu::global_thread(); i < n; i += gpu::grid_threads()) unit[i] = math::activate(p, unit[i]);
}

__global__ void softmax_kernel(float* unit, uint32_t rows, uint32_t stride) {
  for (uint32_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* row = unit + static_cast<uint64_t>(r) * stride;
    float mx = -INFINITY;
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = gpu::block_reduce(mx, gpu::Max{}, -INFINITY);
    double sum = 0.0;
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) {
      const float e = expf(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    sum = gpu::block_reduce(sum, gpu::Sum{}, 0.0);
    const float inv = static_cast<float>(1.0 / sum);
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) row[j] = fminf(row[j] * inv, 1.0f);
  }
}

}  // namespace

void CudaBackend::activate(const ActivateArgs& a) {
  if (a.activation.kind == Activation::Linear) return;
  const uint64_t n = static_cast<uint64_t>(a.rows) * a.stride;
  if (n == 0) return;
  bind();
  if (a.activation.kind == Activation::SoftMax) {
    softmax_kernel<<<gpu::row_grid(a.rows), kSoftMaxThreads, 0, stream()>>>(a.unit, a.rows, a.stride);
  } else {
    activate_kernel<<<gpu::grid_for(n), gpu::kThreads, 0, stream()>>>(a.unit, n, a.activation);
  }
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
