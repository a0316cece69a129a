// Dropout twin on the CPU: counter-based draws, so the mask equals the GPU target's.
#include "host_backend.h"

namespace dsstne {

void HostBackend::dropout(const DropoutArgs& a) {
  const int64_t n = static_cast<int64_t>(a.rows) * a.stride;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    a.unit[i] = a.mask.apply(a.unit[i], i);
}

}  // namespace dsstne
