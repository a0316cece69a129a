// Per-element loss terms and output deltas (inventory §1.9). Delta is dE/dz (the original's sign).
// Sparse targets use the original's two passes: a raw pass over every unit assuming target 0, then a
// pass over the example's listed units that corrects the error and overwrites the delta.
#pragma once

#include <cmath>

#include "dsstne/enums.h"
#include "dsstne/hd.h"
#include "dsstne/math/activation.h"

namespace dsstne {

struct LossParams {
  ErrorFunction function = ErrorFunction::CrossEntropy;
  ActivationParams activation;
  float one_target = 0.9f, zero_target = 0.1f, one_scale = 1.0f, zero_scale = 1.0f;  // SMCE
  float boost_one = 1.0f, boost_zero = 1.0f;                                          // DeltaBoost
};

struct ElementLoss {
  float error;
  float delta;
};

namespace math {

constexpr float kMinError = 1.0e-12f;  // log clamp (MIN_ERROR)

DSSTNE_HD float safe_log(float x) { return logf(x > kMinError ? x : kMinError); }

// Output derivative used by the L1/L2 families; the cross-entropy families fold it into (a - t).
DSSTNE_HD float output_derivative(const ActivationParams& p, float a) {
  return p.kind == Activation::SoftMax ? 1.0f : derivative(p, a);
}

// Dense target t, example weight w.
DSSTNE_HD ElementLoss dense_loss(const LossParams& L, float a, float t, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  switch (L.function) {
    case ErrorFunction::L2:
      return {0.5f * w * (a - t) * (a - t), w * (a - t) * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {-w * t * safe_log(a), w * (a - t)};
      return {w * (-t * safe_log(a) - (1.0f - t) * safe_log(1.0f - a)), w * (a - t)};
    case ErrorFunction::ScaledMarginalCrossEntropy:
      if (softmax) {
        const float e = (t != 0.0f && a < L.one_target) ? -w * t * L.one_scale * safe_log(a) : 0.0f;
        if (t > 0.0f && a < L.one_target) return {e, w * L.one_scale * (a - t)};
        if (t == 0.0f && a > L.zero_target) return {e, w * L.zero_scale * (a - t)};
        return {e, 0.0f};
      }
      if (t == 1.0f && a < L.one_target) return {-w * L.one_scale * safe_log(a), w * L.one_scale * (a - t)};
      if (t == 0.0f && a > L.zero_target)
        return {-w * L.zero_scale * safe_log(1.0f - a), w * L.zero_scale * (a - t)};
      return {0.0f, 0.0f};
    default:
      return {0.0f, 0.0f};
  }
}

// Raw pass: every unit of a sparse-target row, target 0.
DSSTNE_HD ElementLoss sparse_raw(const LossParams& L, float a, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  switch (L.function) {
    case ErrorFunction::L2:
      return {0.5f * w * a * a, w * L.boost_zero * a * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {0.0f, w * a};
      return {-w * safe_log(1.0f - a), w * L.boost_zero * a};
    case ErrorFunction::ScaledMarginalCrossEntropy:
      if (a > L.zero_target)
        return {softmax ? 0.0f : -w * L.zero_scale * safe_log(1.0f - a), w * L.zero_scale * a};
      return {0.0f, 0.0f};
    default:
      return {0.0f, 0.0f};
  }
}

// Listed-unit pass: error is the correction to add to the raw term, delta replaces the raw delta.
// t is the target value (1 for Boolean data; 1/k for SoftMax, k = listed units of the row).
DSSTNE_HD ElementLoss sparse_listed(const LossParams& L, float a, float t, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  switch (L.function) {
    case ErrorFunction::L2:
      return {0.5f * w * ((a - t) * (a - t) - a * a), w * L.boost_one * (a - t) * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {-w * t * safe_log(a), w * (a - t)};
      return {w * (-safe_log(a) + safe_log(1.0f - a)), w * L.boost_one * (a - 1.0f)};
    case ErrorFunction::ScaledMarginalCrossEntropy: {
      if (softmax) {
        const float e = a < L.one_target ? -w * t * L.one_scale * safe_log(a) : 0.0f;
        return {e, a < L.one_target ? w * (a - L.one_scale * t) : 0.0f};
      }
      float e = a > L.zero_target ? w * L.zero_scale * safe_log(1.0f - a) : 0.0f;
      if (a < L.one_target) e -= w * L.one_scale * safe_log(a);
      return {e, a < L.one_target ? w * L.one_scale * (a - 1.0f) : 0.0f};
    }
    default:
      return {0.0f, 0.0f};
  }
}

}  // namespace math
}  // namespace dsstne
