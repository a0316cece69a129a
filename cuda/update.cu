// Optimiser twin on the GPU: element-wise, with the shared update formula.
#include <algorithm>
#include <cstdint>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/fixed_point.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

// One parameter: the regularisation term of the weight before the step, then the step.
__device__ __forceinline__ float step(const UpdateArgs& a, float lambda, float lambda1, float w, float g, float& v,
                                      float& v2, long long& regularization) {
  if (a.regularization) regularization += fixed::from_float(0.5f * lambda * w * w + lambda1 * fabsf(w));
  return math::update(a.params, w, g, v, v2);
}

// `quads` groups of four parameters go as 16-byte loads and stores (the op is bound by memory: more bytes
// in flight per thread), the rest one at a time. Each parameter's arithmetic is the same either way.
__global__ void update_kernel(UpdateArgs a, uint64_t quads) {
  const float lambda = a.params.lambda * a.regularization_scale, lambda1 = a.params.lambda1 * a.regularization_scale;
  long long regularization = 0;
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (uint64_t i = gpu::global_thread(); i < quads; i += gpu::grid_threads()) {
    float4 w = reinterpret_cast<const float4*>(a.weights)[i];
    const float4 g = reinterpret_cast<const float4*>(a.gradient)[i];
    float4 v = a.velocity ? reinterpret_cast<const float4*>(a.velocity)[i] : zero;
    float4 v2 = a.velocity2 ? reinterpret_cast<const float4*>(a.velocity2)[i] : zero;
    w.x = step(a, lambda, lambda1, w.x, g.x, v.x, v2.x, regularization);
    w.y = step(a, lambda, lambda1, w.y, g.y, v.y, v2.y, regularization);
    w.z = step(a, lambda, lambda1, w.z, g.z, v.z, v2.z, regularization);
    w.w = step(a, lambda, lambda1, w.w, g.w, v.w, v2.w, regularization);
    reinterpret_cast<float4*>(a.weights)[i] = w;
    if (a.velocity) reinterpret_cast<float4*>(a.velocity)[i] = v;
    if (a.velocity2) reinterpret_cast<float4*>(a.velocity2)[i] = v2;
    if (a.clear_gradient) reinterpret_cast<float4*>(a.gradient)[i] = zero;
  }
  float unused = 0.0f;
  for (uint64_t i = 4 * quads + gpu::global_thread(); i < a.n; i += gpu::grid_threads()) {
    float& v = a.velocity ? a.velocity[i] : unused;
    float& v2 = a.velocity2 ? a.velocity2[i] : unused;
    a.weights[i] = step(a, lambda, lambda1, a.weights[i], a.gradient[i], v, v2, regularization);
    if (a.clear_gradient) a.gradient[i] = 0.0f;
  }
  if (a.regularization) gpu::add_fixed(a.regularization, regularization);  // uniform: every thread calls
}

bool aligned16(const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void CudaBackend::update(const UpdateArgs& a) {
  if (a.n == 0) return;
  bind();
  const bool vector = aligned16(a.weights) && aligned16(a.gradient) && aligned16(a.velocity) && aligned16(a.velocity2);
  const uint64_t quads = vector ? a.n / 4 : 0, items = quads + (a.n - 4 * quads);
  // With the regularisation sum, few blocks looping: one integer atomic per block.
  const unsigned blocks = a.regularization ? std::min(gpu::grid_for(items), 4u * props_.multiProcessorCount)
                                           : gpu::grid_for(items);
  update_kernel<<<blocks, gpu::kThreads, 0, stream()>>>(a, quads);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
