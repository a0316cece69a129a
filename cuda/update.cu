// Optimiser twin on the GPU: element-wise, with the shared update formula.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void sgd_kernel(UpdateArgs a) {
  for (uint64_t i = gpu::global_thread(); i < a.n; i += gpu::grid_threads())
    a.weights[i] = math::sgd(a.params, a.weights[i], a.gradient[i]);
}

}  // namespace

void CudaBackend::update(const UpdateArgs& a) {
  if (a.params.mode != TrainingMode::SGD) DSSTNE_RAISE(NotSupported, "not supported yet: optimiser other than SGD");
  if (a.n == 0) return;
  bind();
  sgd_kernel<<<gpu::grid_for(a.n), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
