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

__global__ void activate_kernel(ActivateArgs a) {
  for (uint32_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    float* row = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < a.stride; j += gridDim.x * blockDim.x)
      row[j] = math::activate(a.activation, a.bias ? row[j] + a.bias[j] : row[j]);
  }
}

__global__ void softmax_kernel(float* unit, uint32_t rows, uint32_t stride, const float* bias) {
  for (uint32_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* row = unit + static_cast<uint64_t>(r) * stride;
    if (bias) {
      for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) row[j] += bias[j];
      __syncthreads();
    }
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
  if (a.activation.kind == Activation::Linear && !a.bias) return;
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  if (a.activation.kind == Activation::SoftMax) {
    softmax_kernel<<<gpu::row_grid(a.rows), kSoftMaxThreads, 0, stream()>>>(a.unit, a.rows, a.stride, a.bias);
  } else {
    activate_kernel<<<gpu::row_column_grid(a.rows, a.stride), gpu::kThreads, 0, stream()>>>(a);
  }
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
