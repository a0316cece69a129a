// Optimiser update of one parameter (inventory §1.10). g is the descent direction: the negative mean
// gradient, so every mode adds to w. Biases use the same formulas with lambda = lambda1 = 0.
#pragma once

#include <cmath>

#include "dsstne/enums.h"
#include "dsstne/hd.h"

namespace dsstne {

struct UpdateParams {
  TrainingMode mode = TrainingMode::SGD;
  float alpha = 0.0f, lambda = 0.0f, lambda1 = 0.0f, mu = 0.0f, mu1 = 0.0f;
  float step = 1.0f;  // Adam's bias-correction exponent tau for this update
};

namespace math {

DSSTNE_HD float regularized(const UpdateParams& u, float g, float w) {
  const float sign = w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f);
  return g - u.lambda * w - u.lambda1 * sign;
}

// One weight's regularisation error (lambda and lambda1 already scaled as the caller reports it).
DSSTNE_HD float regularization(float w, float lambda, float lambda1) {
  return 0.5f * lambda * w * w + lambda1 * fabsf(w);
}

DSSTNE_HD float sgd(const UpdateParams& u, float w, float g) { return w + u.alpha * regularized(u, g, w); }

// One parameter's step for any mode: w and its optimiser state v, v2 (unused by modes that need less).
DSSTNE_HD float update(const UpdateParams& u, float w, float gradient, float& v, float& v2) {
  constexpr float kFloor = 1.0e-9f;
  const float g = regularized(u, gradient, w);
  switch (u.mode) {
    case TrainingMode::SGD:
      return w + u.alpha * g;
    case TrainingMode::Momentum:
      v = u.mu * v + u.alpha * g;
      return w + v;
    case TrainingMode::AdaGrad:
      v += g * g;
      return w + u.alpha * g / sqrtf(fmaxf(kFloor, v));
    case TrainingMode::Nesterov: {
      const float previous = v;
      v = u.mu * v + u.alpha * g;
      return w + v + u.mu * (v - previous);
    }
    case TrainingMode::RMSProp:
      v = u.mu * v + (1.0f - u.mu) * g * g;
      return w + u.alpha * g / sqrtf(fmaxf(kFloor, v));
    case TrainingMode::AdaDelta: {  // v: running mean of squared steps, v2: of squared gradients
      v2 = u.mu * v2 + (1.0f - u.mu) * g * g;
      const float dw = sqrtf(fmaxf(kFloor, v) / fmaxf(kFloor, v2)) * g;
      v = u.mu * v + (1.0f - u.mu) * dw * dw;
      return w + dw;
    }
    case TrainingMode::Adam: {  // v: first moment, v2: second moment; beta1 = mu, beta2 = mu1
      v = u.mu * v + (1.0f - u.mu) * g;
      v2 = u.mu1 * v2 + (1.0f - u.mu1) * g * g;
      const float m = v / (1.0f - powf(u.mu, u.step));
      const float s = v2 / (1.0f - powf(u.mu1, u.step));
      return w + u.alpha * m / (sqrtf(s) + 1.0e-8f);
    }
  }
  return w;
}

// What a step with a zero gradient leaves as it was, without regularisation: the weight under SGD, AdaGrad
// and RMSProp (w + 0), and under SGD and AdaGrad the state too (v + 0). A sparse input's rows that no
// example of the minibatch lists have such a gradient; these let their pass skip what stays. (The one
// bitwise difference from stepping them: a weight of -0 would become +0, and a non-finite weight, already
// lost, would also turn RMSProp's state to NaN.)
DSSTNE_HD bool zero_step_keeps_weight(const UpdateParams& u) {
  return u.lambda == 0.0f && u.lambda1 == 0.0f &&
         (u.mode == TrainingMode::SGD || u.mode == TrainingMode::AdaGrad || u.mode == TrainingMode::RMSProp);
}

DSSTNE_HD bool zero_step_keeps_state(const UpdateParams& u) {
  return zero_step_keeps_weight(u) && u.mode != TrainingMode::RMSProp;
}

// Optimiser state buffers a mode keeps per parameter.
DSSTNE_HD int state_buffers(TrainingMode mode) {
  return mode == TrainingMode::SGD ? 0 : (mode == TrainingMode::AdaDelta || mode == TrainingMode::Adam ? 2 : 1);
}

}  // namespace math
}  // namespace dsstne
