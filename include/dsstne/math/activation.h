// Activation functions and their derivatives, one expression for both targets (inventory §1.6).
#pragma once

#include <cmath>

#include "dsstne/enums.h"
#include "dsstne/hd.h"

namespace dsstne {

struct ActivationParams {
  Activation kind = Activation::Sigmoid;
  float slope = 1.0f;    // LeakyRectifiedLinear
  float alpha = 1.0f;    // ExponentialLinear, ScaledExponentialLinear
  float lambda = 1.050701f;  // ScaledExponentialLinear
  // Tanh hidden-layer derivative s(1 - (a/s)^2), s = 1/(1 - pDropout): the original's dropout-scale rule
  // (the derivative of the inverted-dropout-scaled unit). 1 = the plain 1 - a^2.
  float tanh_scale = 1.0f;
  // The GPU's hardware approximations (ex2, rcp and lg2 .approx) for the exponentials, the Sigmoid's
  // reciprocal and the losses' logarithms, as the original's -use_fast_math build computed them. The GPU
  // target sets it in its activation and loss ops in TF32 mode (CudaBackend::fast_math); the CPU target
  // ignores it.
  bool fast_math = false;
};

namespace math {

#ifdef __CUDA_ARCH__
// The hardware's 2^x and log2 x with subnormals flushed, as the original's -use_fast_math (which implies
// -ftz) computed them. Where they are used a subnormal changes nothing (1 + 2^x rounds to 1 below 2^-24;
// a logarithm's argument is clamped to 1e-12), so they give __expf's and __logf's bits without the three
// instructions each of those spend on subnormals.
__device__ __forceinline__ float exp2_approx(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float log2_approx(float x) {
  float r;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
#endif

// The Sigmoid's 1 / x (x >= 1). On the GPU: the approximation and one Newton step, the correctly rounded
// sequence the compiler emits for a divisor below 2^126, without its branch to the general division
// (which kept a pass's units from interleaving: the output layer's loss pass issued 100 instructions a
// unit); x >= 2^126 (z < -87.3) gives 0 where the division gives a denormal below 1.2e-38.
DSSTNE_HD float sigmoid_reciprocal(float x) {
#ifdef __CUDA_ARCH__
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  r = fmaf(r, -fmaf(x, r, -1.0f), r);
  return x < 0x1p126f ? r : 0.0f;
#else
  return 1.0f / x;
#endif
}

// e^x: the accurate expf, or on the GPU with fast_math the hardware's 2^(x log2 e).
DSSTNE_HD float exponential(const ActivationParams& p, float x) {
#ifdef __CUDA_ARCH__
  if (p.fast_math) return __expf(x);
#endif
  static_cast<void>(p);
  return expf(x);
}

// 1 / (1 + e^-z); with fast_math on the GPU both the exponential and the reciprocal approximated.
DSSTNE_HD float sigmoid(const ActivationParams& p, float z) {
#ifdef __CUDA_ARCH__
  if (p.fast_math) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.0f + exp2_approx(z * -1.44269504f)));  // e^-z
    return r;
  }
#endif
  return sigmoid_reciprocal(1.0f + expf(-z));
}

// a = f(z) for every element-wise activation (SoftMax is row-wise and lives in the activation op).
DSSTNE_HD float activate(const ActivationParams& p, float z) {
  switch (p.kind) {
    case Activation::Sigmoid: return sigmoid(p, z);
    case Activation::Tanh: return tanhf(z);
    case Activation::RectifiedLinear: return z > 0.0f ? z : 0.0f;
    case Activation::LeakyRectifiedLinear: return z > 0.0f ? z : p.slope * z;
    case Activation::ExponentialLinear: return z > 0.0f ? z : p.alpha * (exponential(p, z) - 1.0f);
    case Activation::ScaledExponentialLinear:
      return z > 0.0f ? p.lambda * z : p.lambda * p.alpha * (exponential(p, z) - 1.0f);
    // The original accepted these two but ran them as Linear; here they have their true maths.
    case Activation::SoftPlus: return z > 20.0f ? z : log1pf(expf(z));
    case Activation::SoftSign: return z / (1.0f + fabsf(z));
    default: return z;
  }
}

// f'(z) written in terms of the activation a, as the original's hidden-layer delta kernels do.
DSSTNE_HD float derivative(const ActivationParams& p, float a) {
  switch (p.kind) {
    case Activation::Sigmoid: return a * (1.0f - a);
    case Activation::Tanh: {
      const float x = a / p.tanh_scale;  // exact when the scale is 1: the plain derivative's bits
      return p.tanh_scale * (1.0f - x * x);
    }
    case Activation::RectifiedLinear: return a > 0.0f ? 1.0f : 0.0f;
    case Activation::LeakyRectifiedLinear: return a > 0.0f ? 1.0f : p.slope;
    case Activation::ExponentialLinear: return a > 0.0f ? 1.0f : a + p.alpha;
    case Activation::ScaledExponentialLinear: return a > 0.0f ? p.lambda : a + p.lambda * p.alpha;
    case Activation::SoftPlus: return 1.0f - expf(-a);  // sigmoid(z), from a = log(1 + e^z)
    case Activation::SoftSign: {                         // 1 / (1 + |z|)^2 = (1 - |a|)^2
      const float c = 1.0f - fabsf(a);
      return c * c;
    }
    default: return 1.0f;
  }
}

// KL sparseness penalty added to a unit's delta from its mean activation rho over the minibatch.
DSSTNE_HD float clamp_activation(float rho) {
  constexpr float kMin = 1.0e-6f, kMax = 0.999999f;  // MIN_ACTIVATION, MAX_ACTIVATION
  return rho < kMin ? kMin : (rho > kMax ? kMax : rho);
}

DSSTNE_HD float sparseness_penalty(float p, float beta, float rho) {
  rho = clamp_activation(rho);
  return beta * (-p / rho + (1.0f - p) / (1.0f - rho));
}

// The loss whose gradient the penalty is: beta * rows * KL(p || rho) for one unit (the original adds the
// gradient but never reports this term; gradient checks need it).
DSSTNE_HD float sparseness_loss(float p, float beta, float rho, float rows) {
  rho = clamp_activation(rho);
  const float kl = (p > 0.0f ? p * logf(p / rho) : 0.0f) + (p < 1.0f ? (1.0f - p) * logf((1.0f - p) / (1.0f - rho)) : 0.0f);
  return beta * rows * kl;
}

}  // namespace math
}  // namespace dsstne
