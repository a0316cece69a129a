// WeightNorm / DeltaNorm twins on the CPU: per-column and per-row L2 clamps, each sum in index order.
#include <vector>

#include "host_backend.h"

namespace dsstne {

void HostBackend::normalize_weights(const WeightNormArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  // Column sums in row order, walking the rows (cache friendly) with one accumulator per column: the same
  // order as the GPU's one thread per column.
  std::vector<float> sumsq(a.stride, 0.0f);
  for (uint32_t i = 0; i < a.rows; ++i) {
    const float* row = a.weights + static_cast<size_t>(i) * a.stride;
    for (uint32_t j = 0; j < a.stride; ++j) sumsq[j] += row[j] * row[j];
  }
  for (uint32_t j = 0; j < a.stride; ++j) sumsq[j] = math::norm_scale(sumsq[j], a.norm);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(a.rows); ++i) {
    float* row = a.weights + static_cast<size_t>(i) * a.stride;
    for (uint32_t j = 0; j < a.stride; ++j)
      if (sumsq[j] != 1.0f) row[j] *= sumsq[j];
  }
}

void HostBackend::normalize_deltas(const DeltaNormArgs& a) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < static_cast<int64_t>(a.rows); ++r) {
    float* row = a.delta + static_cast<size_t>(r) * a.stride;
    float sumsq = 0.0f;
    for (uint32_t j = 0; j < a.stride; ++j) sumsq += row[j] * row[j];
    const float s = math::norm_scale(sumsq, a.norm);
    if (s != 1.0f)
      for (uint32_t j = 0; j < a.stride; ++j) row[j] *= s;
  }
}

}  // namespace dsstne
