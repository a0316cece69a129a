// Skip-connection twin on the CPU: element-wise accumulation of one buffer into another.
#include "host_backend.h"

namespace dsstne {

void HostBackend::add_units(const AddArgs& a) {
  const int64_t n = static_cast<int64_t>(a.n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a.dst[i] += a.src[i];
}

}  // namespace dsstne
