// Optimiser twin on the GPU: element-wise, with the shared update formula.
#include <algorithm>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/fixed_point.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

__global__ void update_kernel(UpdateArgs a) {
  const float lambda = a.params.lambda * a.regularization_scale, lambda1 = a.params.lambda1 * a.regularization_scale;
  float unused = 0.0f;
  long long regularization = 0;
  for (uint64_t i = gpu::global_thread(); i < a.n; i += gpu::grid_threads()) {
    float& v = a.velocity ? a.velocity[i] : unused;
    float& v2 = a.velocity2 ? a.velocity2[i] : unused;
    const float w = a.weights[i];
    if (a.regularization) regularization += fixed::from_float(0.5f * lambda * w * w + lambda1 * fabsf(w));
    a.weights[i] = math::update(a.params, w, a.gradient[i], v, v2);
    if (a.clear_gradient) a.gradient[i] = 0.0f;
  }
  if (a.regularization) gpu::add_fixed(a.regularization, regularization);  // uniform: every thread calls
}

}  // namespace

void CudaBackend::update(const UpdateArgs& a) {
  if (a.n == 0) return;
  bind();
  // With the regularisation sum, few blocks looping: one integer atomic per block.
  const unsigned blocks = a.regularization ? std::min(gpu::grid_for(a.n), 4u * props_.multiProcessorCount)
                                           : gpu::grid_for(a.n);
  update_kernel<<<blocks, gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
