// Hidden-layer delta twin on the CPU: sparseness penalty, activation derivative and the bias gradient,
// one step after another over the [rows][stride] delta.
#include "dsstne/fixed_point.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::hidden_delta(const HiddenDeltaArgs& a) {
  const bool penalty = a.beta > 0.0f, derivative = a.activation.kind != Activation::Linear;
  if (penalty) {  // mean activation of each unit over the minibatch (clamped by the penalty's formula)
    column_sum({a.unit, a.rows, a.stride, 1.0f / static_cast<float>(a.rows), a.means});
    if (a.error) {
      long long total = 0;
      for (uint32_t j = 0; j < a.stride; ++j)
        total += fixed::from_float(math::sparseness_loss(a.p, a.beta, a.means[j], static_cast<float>(a.rows)));
      *a.error += total;
    }
  }
  if (penalty || derivative) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < a.rows; ++r) {
      float* delta = a.delta + r * a.stride;
      const float* unit = a.unit + r * a.stride;
      for (uint32_t j = 0; j < a.stride; ++j) {
        float d = delta[j];
        if (penalty) d += math::sparseness_penalty(a.p, a.beta, a.means[j]);
        delta[j] = derivative ? d * math::derivative(a.activation, unit[j]) : d;
      }
    }
  }
  if (a.bias_gradient) column_sum({a.delta, a.rows, a.stride, a.bias_gradient_scale, a.bias_gradient});
}

}  // namespace dsstne
