// Alpha-dropout twin on the CPU: the [dropout] draws with SELU's affine correction of the kept units.
#include "dsstne/rng.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::alpha_dropout(const AlphaDropoutArgs& a) {
  const int64_t n = static_cast<int64_t>(a.rows) * a.stride;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    a.unit[i] = rng::uniform(a.key, i) < a.p ? a.dropped : a.a * a.unit[i] + a.b;
}

}  // namespace dsstne
