// The optimiser's step of one parameter on the GPU, shared by the update op's kernels and the sparse
// gradient's (a listed row stepped as its gradient is summed, SparseGradientArgs::step).
#pragma once

#include <cstdint>

#include "dsstne/fixed_point.h"
#include "dsstne/ops.h"

namespace dsstne {

// One parameter: the regularisation term of the weight before the step, then the step.
__device__ __forceinline__ float step_parameter(const UpdateArgs& a, float lambda, float lambda1, float w, float g,
                                                float& v, float& v2, long long& regularization) {
  if (a.regularization) regularization += fixed::from_float(math::regularization(w, lambda, lambda1));
  return math::update(a.params, w, g, v, v2);
}

// The step of one item's parameters: four at a time from quad i (16-byte loads and stores: the op is bound
// by memory, more bytes in flight per thread), or parameter i alone. `live` false: a zero gradient, not
// read. `weight` false: the weight stays as it is (math::zero_step_keeps_weight), neither read nor written.
// A lazily stepped row (LazyRows, kLazy) takes `steps` steps, each with its own regularisation term: the
// first with the gradient row where `live` (lazy_gradient_step), the others zero-gradient; the last is
// this stamp's own where `this_step`. One call of the formula in the loop, so that in the lazy kernel a
// replayed step compiles to the arithmetic of a step taken in time.
struct Stepper {
  const UpdateArgs& a;
  float lambda, lambda1;
  float owed_lambda, owed_lambda1;  // the terms of a row's owed steps (LazyRows)
  long long regularization = 0;

  __device__ Stepper(const UpdateArgs& args)
      : a(args),
        lambda(args.params.lambda * args.regularization_scale),
        lambda1(args.params.lambda1 * args.regularization_scale),
        owed_lambda(args.params.lambda * args.lazy.owed_regularization_scale),
        owed_lambda1(args.params.lambda1 * args.lazy.owed_regularization_scale) {}

  // The steps of quad i: this stamp's alone, or (kLazy) the row's `steps`.
  template <bool kLazy = false>
  __device__ __forceinline__ void quad(uint64_t i, bool live, bool weight, uint32_t steps = 1, bool this_step = true) {
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 w = weight ? reinterpret_cast<const float4*>(a.weights)[i] : zero;
    const float4 g = live ? reinterpret_cast<const float4*>(a.gradient)[i] : zero;
    float4 v = a.velocity ? reinterpret_cast<const float4*>(a.velocity)[i] : zero;
    float4 v2 = a.velocity2 ? reinterpret_cast<const float4*>(a.velocity2)[i] : zero;
    if constexpr (!kLazy) steps = 1;
    for (uint32_t k = 0; k < steps; ++k) {
      const bool own = !kLazy || (this_step && k + 1 == steps);
      const float4 d = k == 0 ? g : zero;
      const float l = own ? lambda : owed_lambda, l1 = own ? lambda1 : owed_lambda1;
      w.x = step_parameter(a, l, l1, w.x, d.x, v.x, v2.x, regularization);
      w.y = step_parameter(a, l, l1, w.y, d.y, v.y, v2.y, regularization);
      w.z = step_parameter(a, l, l1, w.z, d.z, v.z, v2.z, regularization);
      w.w = step_parameter(a, l, l1, w.w, d.w, v.w, v2.w, regularization);
    }
    if (weight) reinterpret_cast<float4*>(a.weights)[i] = w;
    if (a.velocity) reinterpret_cast<float4*>(a.velocity)[i] = v;
    if (a.velocity2) reinterpret_cast<float4*>(a.velocity2)[i] = v2;
  }

  // Parameter i alone, as quad().
  template <bool kLazy = false>
  __device__ __forceinline__ void one(uint64_t i, bool live, bool weight, uint32_t steps = 1, bool this_step = true) {
    float unused = 0.0f;
    float& v = a.velocity ? a.velocity[i] : unused;
    float& v2 = a.velocity2 ? a.velocity2[i] : unused;
    float w = weight ? a.weights[i] : 0.0f;
    const float g = live ? a.gradient[i] : 0.0f;
    if constexpr (!kLazy) steps = 1;
    for (uint32_t k = 0; k < steps; ++k) {
      const bool own = !kLazy || (this_step && k + 1 == steps);
      w = step_parameter(a, own ? lambda : owed_lambda, own ? lambda1 : owed_lambda1, w, k == 0 ? g : 0.0f, v, v2,
                         regularization);
    }
    if (weight) a.weights[i] = w;
  }

  // Parameter i, its weight w (loaded already) and gradient g held in registers (the gradient never
  // stored): this stamp's step alone.
  __device__ __forceinline__ void given(uint64_t i, float w, float g) {
    float unused = 0.0f;
    float& v = a.velocity ? a.velocity[i] : unused;
    float& v2 = a.velocity2 ? a.velocity2[i] : unused;
    a.weights[i] = step_parameter(a, lambda, lambda1, w, g, v, v2, regularization);
  }
};

}  // namespace dsstne
