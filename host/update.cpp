// Optimiser twin on the CPU: math::update over fixed chunks of parameters, each chunk one vectorised loop.
#include <algorithm>
#include <cstring>

#include "dsstne/errors.h"
#include "host_backend.h"
#include "vecmath.h"

namespace dsstne {
namespace {

// One loop per number of state buffers, so that the compiler sees plain arrays (and hoists the mode).
DSSTNE_HOST_KERNEL void update_range(const UpdateParams& params, float* w, const float* g, float* v, float* v2,
                                     size_t n) {
  const UpdateParams u = params;
  if (u.mode == TrainingMode::SGD) {
    for (size_t i = 0; i < n; ++i) w[i] = math::sgd(u, w[i], g[i]);
  } else if (!v2) {
    float unused = 0.0f;
    for (size_t i = 0; i < n; ++i) w[i] = math::update(u, w[i], g[i], v[i], unused);
  } else {
    for (size_t i = 0; i < n; ++i) w[i] = math::update(u, w[i], g[i], v[i], v2[i]);
  }
}

constexpr int64_t kChunk = 65536;  // parameters per task

}  // namespace

void HostBackend::update(const UpdateArgs& a) {
  const int state = math::state_buffers(a.params.mode);
  DSSTNE_REQUIRE(state == 0 || (a.velocity && (state == 1 || a.velocity2)), "optimiser state buffers missing");
  const int64_t n = static_cast<int64_t>(a.n), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 2) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk;
    const size_t len = static_cast<size_t>(std::min(kChunk, n - i));
    update_range(a.params, a.weights + i, a.gradient + i, state > 0 ? a.velocity + i : nullptr,
                 state > 1 ? a.velocity2 + i : nullptr, len);
    if (a.clear_gradient) std::memset(a.gradient + i, 0, sizeof(float) * len);  // chunk still in cache
  }
}

}  // namespace dsstne
