// Sparse input layer twins on the CPU: gather-sum forward, deterministic transposed weight gradient.
#include <algorithm>
#include <cstring>
#include <vector>

#include "dsstne/math/sparse_row.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::sparse_forward(const SparseForwardArgs& a) {
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < a.batch.rows; ++r) {
    float* out = a.unit + r * a.stride;
    if (!a.accumulate) std::memset(out, 0, sizeof(float) * a.stride);
    const SparseRow s = sparse_row(a.data, a.batch, r);
    for (uint64_t i = s.begin; i < s.end; ++i) {
      const float v = datapoint_value(a.data, a.denoise, s, i);
      if (v == 0.0f) continue;
      const float* w = a.weights + static_cast<uint64_t>(a.data.index[i]) * a.stride;
      for (uint32_t j = 0; j < a.stride; ++j) out[j] += v * w[j];
    }
  }
}

// Scratch: per input unit a count and a start (uint32 each), then (row, value) pairs bucketed by input.
size_t HostBackend::sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const {
  return sizeof(uint32_t) * (2 * static_cast<size_t>(input_units) + 1) +
         (sizeof(uint32_t) + sizeof(float)) * max_datapoints;
}

void HostBackend::sparse_gradient(const SparseGradientArgs& a) {
  // Counting sort of the batch's datapoints by input unit, keeping batch-row order inside each bucket:
  // the sum for each gradient row then runs in a fixed order whatever the thread count.
  uint32_t* count = static_cast<uint32_t*>(a.scratch);
  uint32_t* start = count + a.input_units;
  std::fill(count, count + a.input_units, 0u);
  uint64_t total = 0;
  for (uint32_t r = 0; r < a.batch.rows; ++r) {
    const SparseRow s = sparse_row(a.data, a.batch, r);
    for (uint64_t i = s.begin; i < s.end; ++i) ++count[a.data.index[i]];
    total += s.end - s.begin;
  }
  uint32_t* rows = start + a.input_units + 1;
  float* values = reinterpret_cast<float*>(rows + total);
  uint32_t running = 0;
  for (uint32_t u = 0; u < a.input_units; ++u) {
    start[u] = running;
    running += count[u];
  }
  start[a.input_units] = running;
  std::fill(count, count + a.input_units, 0u);
  std::vector<uint32_t> present;
  for (uint32_t r = 0; r < a.batch.rows; ++r) {
    const SparseRow s = sparse_row(a.data, a.batch, r);
    for (uint64_t i = s.begin; i < s.end; ++i) {
      const uint32_t u = a.data.index[i];
      if (count[u] == 0) present.push_back(u);
      const uint32_t slot = start[u] + count[u]++;
      rows[slot] = r;
      values[slot] = datapoint_value(a.data, a.denoise, s, i);
    }
  }
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t p = 0; p < static_cast<int64_t>(present.size()); ++p) {
    const uint32_t u = present[p];
    float* g = a.gradient + static_cast<uint64_t>(u) * a.stride;
    std::memset(g, 0, sizeof(float) * a.stride);
    for (uint32_t slot = start[u]; slot < start[u + 1]; ++slot) {
      const float v = values[slot];
      if (v == 0.0f) continue;
      const float* d = a.delta + static_cast<uint64_t>(rows[slot]) * a.stride;
      for (uint32_t j = 0; j < a.stride; ++j) g[j] += v * d[j];
    }
    for (uint32_t j = 0; j < a.stride; ++j) g[j] *= a.scale;
  }
}

void HostBackend::clear_rows(const ClearRowsArgs& a) {
  for (uint32_t r = 0; r < a.batch.rows; ++r) {
    const SparseRow s = sparse_row(a.data, a.batch, r);
    for (uint64_t i = s.begin; i < s.end; ++i)
      std::memset(a.matrix + static_cast<uint64_t>(a.data.index[i]) * a.stride, 0, sizeof(float) * a.stride);
  }
}

}  // namespace dsstne
