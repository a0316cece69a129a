// Reduction twin on the CPU: column sums in row order.
#include <algorithm>

#include "host_backend.h"
#include "vecmath.h"

namespace dsstne {
namespace {

// Columns [0, n) of a row-major matrix summed row by row into acc: each column's additions still run
// in row order (the op's contract), while memory is read along rows, a vector of columns at a time.
DSSTNE_HOST_KERNEL void column_block_sum(const float* matrix, uint32_t rows, uint32_t stride, uint32_t n, float scale,
                                         float* out) {
  constexpr uint32_t kBlock = 2048;  // 8 KB of accumulators: they stay in L1
  float acc[kBlock];
  for (uint32_t j0 = 0; j0 < n; j0 += kBlock) {
    const uint32_t w = std::min(kBlock, n - j0);
    for (uint32_t j = 0; j < w; ++j) acc[j] = 0.0f;
    for (uint32_t r = 0; r < rows; ++r) {
      const float* row = matrix + static_cast<uint64_t>(r) * stride + j0;
      for (uint32_t j = 0; j < w; ++j) acc[j] += row[j];
    }
    for (uint32_t j = 0; j < w; ++j) out[j0 + j] = scale * acc[j];
  }
}

constexpr int64_t kColumnChunk = 2048;  // columns per task

}  // namespace

void HostBackend::column_sum(const ColumnSumArgs& a) {
  const int64_t chunks = (a.stride + kColumnChunk - 1) / kColumnChunk;
#pragma omp parallel for schedule(dynamic, 1) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j0 = c * kColumnChunk;
    column_block_sum(a.matrix + j0, a.rows, a.row_pitch(),
                     static_cast<uint32_t>(std::min(kColumnChunk, a.stride - j0)), a.scale, a.out + j0);
  }
}

}  // namespace dsstne
