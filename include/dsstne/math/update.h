// Optimiser update of one parameter (inventory §1.10). g is the descent direction: the negative mean
// gradient, so every mode adds to w. Biases use the same formulas with lambda = lambda1 = 0.
#pragma once

#include "dsstne/enums.h"
#include "dsstne/hd.h"

namespace dsstne {

struct UpdateParams {
  TrainingMode mode = TrainingMode::SGD;
  float alpha = 0.0f, lambda = 0.0f, lambda1 = 0.0f, mu = 0.0f, mu1 = 0.0f;
};

namespace math {

DSSTNE_HD float regularized(const UpdateParams& u, float g, float w) {
  const float sign = w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f);
  return g - u.lambda * w - u.lambda1 * sign;
}

DSSTNE_HD float sgd(const UpdateParams& u, float w, float g) { return w + u.alpha * regularized(u, g, w); }

}  // namespace math
}  // namespace dsstne
