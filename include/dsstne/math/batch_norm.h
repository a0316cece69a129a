// Batch normalisation of fully connected layers (inventory 1.12), per-unit formulas shared by both targets.
// Statistics are per unit over the minibatch rows. Normalisation uses the biased batch variance (as cuDNN
// and PyTorch do); the running variance stores the unbiased one (cuDNN's and PyTorch's convention).
#pragma once

#include <cmath>

#include "dsstne/hd.h"

namespace dsstne::math {

// CUDNN_BN_MIN_EPSILON, the epsilon the original passes to cuDNN.
constexpr float kBatchNormEpsilon = 1.0e-5f;

// 1 / sqrt(var + eps): sqrtf then a division (not rsqrtf) so both targets round the same way.
DSSTNE_HD float bn_inv_std(float variance, float epsilon) { return 1.0f / sqrtf(variance + epsilon); }

DSSTNE_HD float bn_normalize(float x, float mean, float inv_std) { return (x - mean) * inv_std; }

DSSTNE_HD float bn_output(float xhat, float scale, float bias) { return scale * xhat + bias; }

// Running statistic after one minibatch: cuDNN's exponential average, new = (1 - f) old + f batch. The
// original passes f = 1/(bnCalls + 1) with bnCalls reset every minibatch, so f = 1 in practice: the running
// statistics are the last minibatch's (the default here). `batch_variance` is the biased one; the running
// variance keeps the unbiased rows/(rows - 1) version (a single row keeps the biased 0 rather than inf).
DSSTNE_HD float bn_running(float old, float batch, float factor) { return (1.0f - factor) * old + factor * batch; }
DSSTNE_HD float bn_unbiased(float biased_variance, unsigned rows) {
  return rows > 1 ? biased_variance * (static_cast<float>(rows) / static_cast<float>(rows - 1)) : biased_variance;
}

// dE/dz of one element from dE/dy, with y = scale xhat + bias and xhat = (z - mean) inv_std over the batch:
// scale inv_std (dy - mean(dy) - xhat mean(dy xhat)), the means over the batch rows of the unit.
DSSTNE_HD float bn_input_gradient(float dy, float xhat, float scale, float inv_std, float mean_dy, float mean_dy_xhat) {
  return scale * inv_std * (dy - mean_dy - xhat * mean_dy_xhat);
}

}  // namespace dsstne::math
