// Hidden-layer delta twins on the CPU: sparseness penalty and activation derivative.
#include "dsstne/fixed_point.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::sparseness_penalty(const SparsenessArgs& a) {
  // Mean activation of each unit over the minibatch, clamped as the original does.
  ColumnSumArgs mean{a.unit, a.rows, a.stride, 1.0f / static_cast<float>(a.rows), a.scratch};
  column_sum(mean);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < a.rows; ++r) {
    float* delta = a.delta + r * a.stride;
    for (uint32_t j = 0; j < a.stride; ++j) delta[j] += math::sparseness_penalty(a.p, a.beta, a.scratch[j]);
  }
  if (a.error) {
    long long total = 0;
    for (uint32_t j = 0; j < a.stride; ++j)
      total += fixed::from_float(math::sparseness_loss(a.p, a.beta, a.scratch[j], static_cast<float>(a.rows)));
    *a.error += total;
  }
}

void HostBackend::hadamard(const HadamardArgs& a) {
  if (a.activation.kind == Activation::Linear) return;
  const int64_t n = static_cast<int64_t>(a.rows) * a.stride;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a.delta[i] *= math::derivative(a.activation, a.unit[i]);
}

}  // namespace dsstne
