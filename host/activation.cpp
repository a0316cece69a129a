// Activation twin on the CPU; SoftMax normalises each row (max-shifted, summed in column order).
#include <cmath>

#include "host_backend.h"

namespace dsstne {

void HostBackend::activate(const ActivateArgs& a) {
  if (a.activation.kind == Activation::Linear) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < a.rows; ++r) {
    float* row = a.unit + r * a.stride;
    if (a.activation.kind == Activation::SoftMax) {
      float mx = -INFINITY;
      for (uint32_t j = 0; j < a.stride; ++j) mx = std::fmax(mx, row[j]);
      double sum = 0.0;
      for (uint32_t j = 0; j < a.stride; ++j) {
        row[j] = expf(row[j] - mx);
        sum += row[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (uint32_t j = 0; j < a.stride; ++j) row[j] = std::fmin(row[j] * inv, 1.0f);
    } else {
      for (uint32_t j = 0; j < a.stride; ++j) row[j] = math::activate(a.activation, row[j]);
    }
  }
}

}  // namespace dsstne
