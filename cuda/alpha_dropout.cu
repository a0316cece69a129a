// Alpha-dropout twin on the GPU: the [dropout] draws (keyed by the element's flat index, so the mask equals
// the CPU target's) with SELU's affine correction of the kept units.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/rng.h"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void alpha_dropout_kernel(AlphaDropoutArgs a, uint64_t n) {
  for (uint64_t i = gpu::global_thread(); i < n; i += gpu::grid_threads())
    a.unit[i] = rng::uniform(a.key, i) < a.p ? a.dropped : a.a * a.unit[i] + a.b;
}

}  // namespace

void CudaBackend::alpha_dropout(const AlphaDropoutArgs& a) {
  const uint64_t n = static_cast<uint64_t>(a.rows) * a.stride;
  if (n == 0) return;
  bind();
  alpha_dropout_kernel<<<gpu::grid_for(n), gpu::kThreads, 0, stream()>>>(a, n);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
