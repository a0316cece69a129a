// Hidden-layer delta twins on the GPU: sparseness penalty (from the column-mean activation) and the
// activation derivative, both with the shared formulas.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/fixed_point.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

__global__ void sparseness_kernel(SparsenessArgs a) {
  for (uint32_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    float* delta = a.delta + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x)
      delta[j] += math::sparseness_penalty(a.p, a.beta, a.scratch[j]);
  }
}

__global__ void sparseness_error_kernel(SparsenessArgs a) {
  long long total = 0;
  for (uint64_t j = gpu::global_thread(); j < a.stride; j += gpu::grid_threads())
    total += fixed::from_float(math::sparseness_loss(a.p, a.beta, a.scratch[j], static_cast<float>(a.rows)));
  gpu::add_fixed(a.error, total);
}

__global__ void hadamard_kernel(HadamardArgs a, uint64_t n) {
  for (uint64_t i = gpu::global_thread(); i < n; i += gpu::grid_threads())
    a.delta[i] *= math::derivative(a.activation, a.unit[i]);
}

}  // namespace

void CudaBackend::sparseness_penalty(const SparsenessArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  // Mean activation of each unit over the minibatch, into scratch (same op as the CPU target uses).
  column_sum(ColumnSumArgs{a.unit, a.rows, a.stride, 1.0f / static_cast<float>(a.rows), a.scratch});
  bind();
  sparseness_kernel<<<gpu::row_grid(a.rows), gpu::column_threads(a.stride), 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
  if (a.error) {
    sparseness_error_kernel<<<gpu::grid_for(a.stride), gpu::kThreads, 0, stream()>>>(a);
    DSSTNE_LAUNCH_CHECK();
  }
}

void CudaBackend::hadamard(const HadamardArgs& a) {
  if (a.activation.kind == Activation::Linear) return;
  const uint64_t n = static_cast<uint64_t>(a.rows) * a.stride;
  if (n == 0) return;
  bind();
  hadamard_kernel<<<gpu::grid_for(n), gpu::kThreads, 0, stream()>>>(a, n);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
