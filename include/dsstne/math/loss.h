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

// log(max(x, MIN_ERROR)); with the activation's fast_math on the GPU, the hardware's log2 x ln 2.
DSSTNE_HD float safe_log(const LossParams& L, float x) {
  const float y = x > kMinError ? x : kMinError;
#ifdef __CUDA_ARCH__
  if (L.activation.fast_math) return log2_approx(y) * 0.693147181f;  // ln 2
#endif
  static_cast<void>(L);
  return logf(y);
}

// Output derivative used by the L1/L2 families; the cross-entropy families fold it into (a - t).
DSSTNE_HD float output_derivative(const ActivationParams& p, float a) {
  return p.kind == Activation::SoftMax ? 1.0f : derivative(p, a);
}

DSSTNE_HD float sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }

// L2Hinge's one-sided difference: a target above 0 is a floor, otherwise a ceiling at |t|.
DSSTNE_HD float hinge_difference(float a, float t) {
  const float d = a - fabsf(t);
  return t > 0.0f ? (d < 0.0f ? d : 0.0f) : (d > 0.0f ? d : 0.0f);
}

// Dense target t, example weight w.
DSSTNE_HD ElementLoss dense_loss(const LossParams& L, float a, float t, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  const float fd = output_derivative(L.activation, a);
  switch (L.function) {
    case ErrorFunction::L1:
      return {w * fabsf(a - t), w * sign(a - t) * fd};
    case ErrorFunction::L2Hinge: {
      const float d = hinge_difference(a, t);
      return {0.5f * w * d * d, w * d * fd};
    }
    case ErrorFunction::Hinge: {
      // The original's delta tested a < 0 and dropped f'(a); this is the true gradient of its error.
      const float margin = 1.0f - t * a;
      return {w * (margin > 0.0f ? margin : 0.0f), margin > 0.0f ? -w * t * fd : 0.0f};
    }
    case ErrorFunction::DataScaledMarginalCrossEntropy:  // target t > 0 scales the one-side term
      if (t > 0.0f) return {a < L.one_target ? -L.one_scale * t * safe_log(L, a) : 0.0f,
                            a < L.one_target ? L.one_scale * t * (a - 1.0f) : 0.0f};
      if (a > L.zero_target) return {-L.zero_scale * safe_log(L, 1.0f - a), L.zero_scale * a};
      return {0.0f, 0.0f};
    case ErrorFunction::L2:
      return {0.5f * w * (a - t) * (a - t), w * (a - t) * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {-w * t * safe_log(L, a), w * (a - t)};
      return {w * (-t * safe_log(L, a) - (1.0f - t) * safe_log(L, 1.0f - a)), w * (a - t)};
    case ErrorFunction::ScaledMarginalCrossEntropy:
      if (softmax) {
        const float e = (t != 0.0f && a < L.one_target) ? -w * t * L.one_scale * safe_log(L, a) : 0.0f;
        if (t > 0.0f && a < L.one_target) return {e, w * L.one_scale * (a - t)};
        if (t == 0.0f && a > L.zero_target) return {e, w * L.zero_scale * (a - t)};
        return {e, 0.0f};
      }
      if (t == 1.0f && a < L.one_target) return {-w * L.one_scale * safe_log(L, a), w * L.one_scale * (a - t)};
      if (t == 0.0f && a > L.zero_target)
        return {-w * L.zero_scale * safe_log(L, 1.0f - a), w * L.zero_scale * (a - t)};
      return {0.0f, 0.0f};
    default:
      return {0.0f, 0.0f};
  }
}

// Raw pass: every unit of a sparse-target row, target 0.
DSSTNE_HD ElementLoss sparse_raw(const LossParams& L, float a, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  const float fd = output_derivative(L.activation, a);
  switch (L.function) {
    case ErrorFunction::L1:
      return {w * fabsf(a), w * L.boost_zero * sign(a) * fd};
    case ErrorFunction::L2Hinge: {
      const float d = a > 0.0f ? a : 0.0f;
      return {0.5f * w * d * d, w * L.boost_zero * d * fd};
    }
    case ErrorFunction::Hinge:  // target 0: max(0, 1 - 0) = 1 per unit, no gradient
      return {w, 0.0f};
    case ErrorFunction::DataScaledMarginalCrossEntropy:
      if (a > L.zero_target) return {-L.zero_scale * safe_log(L, 1.0f - a), L.zero_scale * a};
      return {0.0f, 0.0f};
    case ErrorFunction::L2:
      return {0.5f * w * a * a, w * L.boost_zero * a * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {0.0f, w * a};
      return {-w * safe_log(L, 1.0f - a), w * L.boost_zero * a};
    case ErrorFunction::ScaledMarginalCrossEntropy:
      if (a > L.zero_target)
        return {softmax ? 0.0f : -w * L.zero_scale * safe_log(L, 1.0f - a), w * L.zero_scale * a};
      return {0.0f, 0.0f};
    default:
      return {0.0f, 0.0f};
  }
}

// Listed-unit pass: error is the correction to add to the raw term, delta replaces the raw delta.
// t is the target value (1 for Boolean data; 1/k for SoftMax, k = listed units of the row).
DSSTNE_HD ElementLoss sparse_listed(const LossParams& L, float a, float t, float w) {
  const bool softmax = L.activation.kind == Activation::SoftMax;
  const float fd = output_derivative(L.activation, a);
  switch (L.function) {
    case ErrorFunction::L1:
      return {w * (fabsf(a - t) - fabsf(a)), w * L.boost_one * sign(a - t) * fd};
    case ErrorFunction::L2Hinge: {
      const float d = hinge_difference(a, t), raw = a > 0.0f ? a : 0.0f;
      return {0.5f * w * (d * d - raw * raw), w * L.boost_one * d * fd};
    }
    case ErrorFunction::Hinge: {
      const float margin = 1.0f - t * a;
      return {w * ((margin > 0.0f ? margin : 0.0f) - 1.0f), margin > 0.0f ? -w * t * fd : 0.0f};
    }
    case ErrorFunction::DataScaledMarginalCrossEntropy: {  // analog value t; no example weights
      float e = a > L.zero_target ? L.zero_scale * safe_log(L, 1.0f - a) : 0.0f;
      if (a < L.one_target) e -= L.one_scale * t * safe_log(L, a);
      return {e, a < L.one_target ? L.one_scale * t * (a - 1.0f) : 0.0f};
    }
    case ErrorFunction::L2:
      return {0.5f * w * ((a - t) * (a - t) - a * a), w * L.boost_one * (a - t) * output_derivative(L.activation, a)};
    case ErrorFunction::CrossEntropy:
      if (softmax) return {-w * t * safe_log(L, a), w * (a - t)};
      return {w * (-safe_log(L, a) + safe_log(L, 1.0f - a)), w * L.boost_one * (a - 1.0f)};
    case ErrorFunction::ScaledMarginalCrossEntropy: {
      if (softmax) {
        const float e = a < L.one_target ? -w * t * L.one_scale * safe_log(L, a) : 0.0f;
        return {e, a < L.one_target ? w * (a - L.one_scale * t) : 0.0f};
      }
      float e = a > L.zero_target ? w * L.zero_scale * safe_log(L, 1.0f - a) : 0.0f;
      if (a < L.one_target) e -= w * L.one_scale * safe_log(L, a);
      return {e, a < L.one_target ? w * L.one_scale * (a - 1.0f) : 0.0f};
    }
    default:
      return {0.0f, 0.0f};
  }
}

}  // namespace math
}  // namespace dsstne
