// Dropout twin on the CPU: counter-based draws, so the mask equals the GPU target's.
#include "dsstne/rng.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::dropout(const DropoutArgs& a) {
  const int64_t n = static_cast<int64_t>(a.rows) * a.stride;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    a.unit[i] = rng::uniform(a.key, i) < a.p ? a.target : a.unit[i] * a.scale;
}

}  // namespace dsstne
