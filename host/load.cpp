// Input loading twins on the CPU: dense rows, and sparse rows expanded to dense.
#include <cstring>

#include "dsstne/math/sparse_row.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::load_dense(const LoadDenseArgs& a) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < a.batch.rows; ++r) {
    const uint32_t row = row_of(a.data.indexed, example_of(a.batch, r));
    std::memcpy(a.unit + r * a.stride, a.data.data + static_cast<uint64_t>(row) * a.data.stride,
                sizeof(float) * a.stride);
  }
}

void HostBackend::load_sparse(const LoadSparseArgs& a) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < a.batch.rows; ++r) {
    float* out = a.unit + r * a.stride;
    std::memset(out, 0, sizeof(float) * a.stride);
    const SparseRow s = sparse_row(a.data, a.batch, r);
    for (uint64_t i = s.begin; i < s.end; ++i) {
      const float v = datapoint_value(a.data, a.denoise, s, i);
      if (v != 0.0f) out[a.data.index[i]] += v;
    }
  }
}

}  // namespace dsstne
