// Optimiser twin on the CPU.
#include "dsstne/errors.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::update(const UpdateArgs& a) {
  if (a.params.mode != TrainingMode::SGD) DSSTNE_RAISE(NotSupported, "not supported yet: optimiser other than SGD");
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(a.n); ++i) a.weights[i] = math::sgd(a.params, a.weights[i], a.gradient[i]);
}

}  // namespace dsstne
