// Optimiser twin on the GPU: element-wise, with the shared update formula.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void update_kernel(UpdateArgs a) {
  float unused = 0.0f;
  for (uint64_t i = gpu::global_thread(); i < a.n; i += gpu::grid_threads()) {
    float& v = a.velocity ? a.velocity[i] : unused;
    float& v2 = a.velocity2 ? a.velocity2[i] : unused;
    a.weights[i] = math::update(a.params, a.weights[i], a.gradient[i], v, v2);
    if (a.clear_gradient) a.gradient[i] = 0.0f;
  }
}

}  // namespace

void CudaBackend::update(const UpdateArgs& a) {
  if (a.n == 0) return;
  bind();
  update_kernel<<<gpu::grid_for(a.n), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
