// Bias broadcast twin on the CPU.
#include <cstring>

#include "host_backend.h"
#include "stream.h"
#include "vecmath.h"

namespace dsstne {
namespace {

DSSTNE_HOST_KERNEL void add_row(float* row, const float* bias, uint32_t n) {
  for (uint32_t j = 0; j < n; ++j) row[j] += bias[j];
}

}  // namespace

void HostBackend::set_bias(const BiasArgs& a) {
  const uint64_t n = static_cast<uint64_t>(a.rows) * a.stride;
  const bool streamed = !a.accumulate && n * sizeof(float) >= stream::kMinBytes;
#pragma omp parallel if (n > 65536)
  {
#pragma omp for schedule(dynamic, 8) nowait
    for (int64_t r = 0; r < a.rows; ++r) {
      float* row = a.unit + r * a.stride;
      if (a.accumulate)
        add_row(row, a.bias, a.stride);
      else if (streamed)
        stream::copy(row, a.bias, a.stride);
      else
        std::memcpy(row, a.bias, sizeof(float) * a.stride);
    }
    if (streamed) stream::fence();  // each thread orders its own streaming stores before the barrier
  }
}

}  // namespace dsstne
