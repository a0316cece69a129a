// Reduction twins on the GPU: column sums by one thread per column looping rows in order (the CPU
// target's order, so the same bits), and the regularisation error as a fixed-point integer sum.
#include <cmath>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/fixed_point.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

__global__ void column_sum_kernel(ColumnSumArgs a) {
  for (uint64_t j = gpu::global_thread(); j < a.stride; j += gpu::grid_threads()) {
    float sum = 0.0f;
    for (uint32_t r = 0; r < a.rows; ++r) sum += a.matrix[static_cast<uint64_t>(r) * a.stride + j];
    a.out[j] = a.scale * sum;
  }
}

__global__ void regularization_kernel(RegularizationArgs a) {
  long long total = 0;
  for (uint64_t i = gpu::global_thread(); i < a.n; i += gpu::grid_threads()) {
    const float w = a.weights[i];
    total += fixed::from_float(0.5f * a.lambda * w * w + a.lambda1 * fabsf(w));
  }
  gpu::add_fixed(a.error, total);
}

}  // namespace

void CudaBackend::column_sum(const ColumnSumArgs& a) {
  if (a.stride == 0) return;
  bind();
  column_sum_kernel<<<gpu::grid_for(a.stride), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

void CudaBackend::regularization(const RegularizationArgs& a) {
  if (a.n == 0 || !a.error) return;
  bind();
  regularization_kernel<<<gpu::grid_for(a.n), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
