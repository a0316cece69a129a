// Bias broadcast twin on the CPU.
#include "host_backend.h"

namespace dsstne {

void HostBackend::set_bias(const BiasArgs& a) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < a.rows; ++r) {
    float* row = a.unit + r * a.stride;
    if (a.accumulate) {
      for (uint32_t j = 0; j < a.stride; ++j) row[j] += a.bias[j];
    } else {
      for (uint32_t j = 0; j < a.stride; ++j) row[j] = a.bias[j];
    }
  }
}

}  // namespace dsstne
