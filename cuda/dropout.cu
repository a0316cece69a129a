// Dropout twin on the GPU: counter-based draws keyed by the element's flat index, so the mask equals the
// CPU target's whatever the launch shape.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void dropout_kernel(DropoutArgs a, uint64_t n) {
  gpu::await_previous();
  for (uint64_t i = gpu::global_thread(); i < n; i += gpu::grid_threads())
    a.unit[i] = a.mask.apply(a.unit[i], i);
}

}  // namespace

void CudaBackend::dropout(const DropoutArgs& a) {
  const uint64_t n = static_cast<uint64_t>(a.rows) * a.stride;
  if (n == 0) return;
  bind();
  gpu::launch(dependent_, dropout_kernel, gpu::grid_for(n), gpu::kThreads, 0, stream(), a, n);
}

}  // namespace dsstne
