// Reduction twins on the CPU: column sums in row order and the fixed-point regularisation error.
#include <cmath>

#include "dsstne/fixed_point.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::column_sum(const ColumnSumArgs& a) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < a.stride; ++j) {
    float sum = 0.0f;
    for (uint32_t r = 0; r < a.rows; ++r) sum += a.matrix[static_cast<uint64_t>(r) * a.stride + j];
    a.out[j] = a.scale * sum;
  }
}

void HostBackend::regularization(const RegularizationArgs& a) {
  long long total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t i = 0; i < static_cast<int64_t>(a.n); ++i) {
    const float w = a.weights[i];
    total += fixed::from_float(0.5f * a.lambda * w * w + a.lambda1 * std::fabs(w));
  }
  *a.error += total;
}

}  // namespace dsstne
