// Optimiser twin on the CPU: math::update over fixed chunks of parameters, each chunk one vectorised loop
// (the regularisation error of the chunk first, while it is in cache).
#include <algorithm>
#include <cmath>
#include <vector>

#include "dsstne/errors.h"
#include "dsstne/fixed_point.h"
#include "host_backend.h"
#include "vecmath.h"

namespace dsstne {
namespace {

// One loop per number of state buffers, so that the compiler sees plain arrays (and hoists the mode).
// No w: a zero gradient's step of the state alone (the weight stays as it is: math::zero_step_keeps_weight).
DSSTNE_HOST_KERNEL void update_range(const UpdateParams& params, float* w, const float* g, float* v, float* v2,
                                     size_t n) {
  const UpdateParams u = params;
  float unused = 0.0f;
  if (!w) {
    for (size_t i = 0; i < n; ++i) math::update(u, 0.0f, 0.0f, v[i], v2 ? v2[i] : unused);
  } else if (u.mode == TrainingMode::SGD) {
    for (size_t i = 0; i < n; ++i) w[i] = math::sgd(u, w[i], g[i]);
  } else if (!v2) {
    for (size_t i = 0; i < n; ++i) w[i] = math::update(u, w[i], g[i], v[i], unused);
  } else {
    for (size_t i = 0; i < n; ++i) w[i] = math::update(u, w[i], g[i], v[i], v2[i]);
  }
}

// Fixed-point sum of the regularisation terms of n weights (UpdateArgs::regularization). A term outside
// vec::fixed's exact range (a weight far outside any sane range) sends the chunk to fixed::from_float.
DSSTNE_HOST_KERNEL long long regularization_of(const float* weights, size_t n, float lambda, float lambda1) {
  long long total = 0;
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const float e = math::regularization(weights[i], lambda, lambda1);
    total += vec::fixed(e);
    bad |= !vec::fixed_ok(e);
  }
  if (bad) {
    total = 0;
    for (size_t i = 0; i < n; ++i) total += fixed::from_float(math::regularization(weights[i], lambda, lambda1));
  }
  return total;
}

constexpr int64_t kChunk = 65536;  // parameters per task

void update_one(const UpdateArgs& a) {
  const int state = math::state_buffers(a.params.mode);
  DSSTNE_REQUIRE(state == 0 || (a.velocity && (state == 1 || a.velocity2)), "optimiser state buffers missing");
  const int64_t n = static_cast<int64_t>(a.n), chunks = (n + kChunk - 1) / kChunk;
  const float lambda = a.params.lambda * a.regularization_scale, lambda1 = a.params.lambda1 * a.regularization_scale;
  static const std::vector<float> zeros(kChunk);  // the gradient of a row the batch did not write
  // Unregularised, a row the batch did not write keeps its weights (and under some modes its state): the
  // pass skips them, about half a sparse input's matrix.
  const bool zero_keeps_weight = math::zero_step_keeps_weight(a.params);
  const bool zero_keeps_all = math::zero_step_keeps_state(a.params);
  // Parameters [i, end) of one gradient row (or of a gradient without rows), with the row's gradient or none.
  const auto step = [&](int64_t i, int64_t end, bool live) {
    if (!live && zero_keeps_all) return;
    update_range(a.params, live || !zero_keeps_weight ? a.weights + i : nullptr, live ? a.gradient + i : zeros.data(),
                 state > 0 ? a.velocity + i : nullptr, state > 1 ? a.velocity2 + i : nullptr,
                 static_cast<size_t>(end - i));
  };
  // A lazily stepped row (LazyRows): the steps it owes (the first with its gradient row where
  // lazy_gradient_step, the others zero-gradient), then this stamp's own (or nothing yet), each step's
  // regularisation term on the weights before it.
  const float owed_lambda = a.params.lambda * a.lazy.owed_regularization_scale;
  const float owed_lambda1 = a.params.lambda1 * a.lazy.owed_regularization_scale;
  const auto lazy_row = [&](int64_t i, int64_t end, int64_t row, long long& regularization) {
    const uint32_t stamp = a.row_stamp[row];
    const uint32_t steps = lazy_steps(a.lazy, stamp, a.lazy.next_stamp ? a.lazy.next_stamp[row] : 0, a.stamp);
    const bool gradient = lazy_gradient_step(a.lazy, stamp);
    for (uint32_t k = 0; k < steps; ++k) {
      const bool own = a.lazy.this_step && k + 1 == steps;  // this stamp's step: this minibatch's scale
      if (a.regularization)
        regularization += regularization_of(a.weights + i, static_cast<size_t>(end - i), own ? lambda : owed_lambda,
                                            own ? lambda1 : owed_lambda1);
      update_range(a.params, a.weights + i, gradient && k == 0 ? a.gradient + i : zeros.data(),
                   state > 0 ? a.velocity + i : nullptr, state > 1 ? a.velocity2 + i : nullptr,
                   static_cast<size_t>(end - i));
    }
  };
  long long regularization = 0;  // integers: the sum is the same whatever the split between threads
#pragma omp parallel for schedule(dynamic, 2) reduction(+ : regularization) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk, end = std::min(i + kChunk, n);
    if (!a.row_stamp) {
      if (a.regularization) regularization += regularization_of(a.weights + i, end - i, lambda, lambda1);
      step(i, end, true);
      continue;
    }
    // Row by row: the update may step only some of them (unlisted_only), each with its regularisation term.
    for (int64_t j = i; j < end;) {
      const int64_t row = j / a.row_width, row_end = std::min(end, (row + 1) * int64_t{a.row_width});
      const bool listed = a.row_stamp[row] == a.stamp;
      if (a.lazy.enabled) {
        lazy_row(j, row_end, row, regularization);
      } else if (!(listed && a.unlisted_only)) {
        if (a.regularization)
          regularization += regularization_of(a.weights + j, static_cast<size_t>(row_end - j), lambda, lambda1);
        step(j, row_end, listed);
      }
      j = row_end;
    }
  }
  if (a.regularization) *a.regularization += regularization;
}

}  // namespace

long long step_listed_row(const UpdateArgs& a, size_t begin, size_t end, const float* gradient) {
  const int state = math::state_buffers(a.params.mode);
  const long long regularization =
      a.regularization ? regularization_of(a.weights + begin, end - begin, a.params.lambda * a.regularization_scale,
                                           a.params.lambda1 * a.regularization_scale)
                       : 0;
  update_range(a.params, a.weights + begin, gradient, state > 0 ? a.velocity + begin : nullptr,
               state > 1 ? a.velocity2 + begin : nullptr, end - begin);
  return regularization;
}

void HostBackend::update(const UpdateListArgs& list) {
  for (unsigned k = 0; k < list.count; ++k) update_one(list.items[k]);
}

void HostBackend::regularization_sum(const RegularizationArgs& a) {
  const int64_t n = static_cast<int64_t>(a.n), chunks = (n + kChunk - 1) / kChunk;
  long long total = 0;
#pragma omp parallel for schedule(dynamic, 2) reduction(+ : total) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk;
    total += regularization_of(a.weights + i, static_cast<size_t>(std::min(kChunk, n - i)), a.lambda, a.lambda1);
  }
  *a.out += total;
}

}  // namespace dsstne
