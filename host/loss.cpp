// Output delta and loss twin on the CPU: dense targets in one pass; sparse targets as a raw pass (target 0)
// then a pass over each row's listed units. Errors are summed in fixed point, as on the GPU. With a bias,
// each row's activation f(z + b) is computed into a per-thread row (by the activation op, as top-k does)
// and the layer keeps its linear sums: one read of the output instead of an activation pass's read and
// write before the loss's read. Asked for the incoming bias's gradient, it then sums the deltas' columns
// (the reduce op).
//
// The common case of DSSTNE's recommenders, a Sigmoid output with sparse targets under CrossEntropy or
// ScaledMarginalCrossEntropy, has a vectorised raw pass: the expressions of math::sparse_raw and
// math::sparse_listed, term for term, with vec::safe_log for math::safe_log and vec::fixed for llrintf
// (a logf per unit was most of the op's time). Every other case uses the math:: functions directly.
#include <cmath>
#include <vector>

#include "dsstne/errors.h"
#include "dsstne/fixed_point.h"
#include "dsstne/math/sparse_row.h"
#include "host_backend.h"
#include "vecmath.h"

namespace dsstne {
namespace {

using vec::safe_log;

// Per-row constants of the Sigmoid fast path.
struct SigmoidLoss {
  bool margin;          // SMCE: only units above zero_target count in the raw pass
  float zero_target;
  float raw_error;      // raw pass: error = raw_error * log(1 - a), delta = raw_delta * a
  float raw_delta;

  DSSTNE_HOST_INLINE SigmoidLoss(const LossParams& L, float w)
      : margin(L.function == ErrorFunction::ScaledMarginalCrossEntropy),
        zero_target(L.zero_target),
        raw_error(margin ? -w * L.zero_scale : -w),
        raw_delta(margin ? w * L.zero_scale : w * L.boost_zero) {}

  // math::sparse_raw.
  DSSTNE_HOST_INLINE ElementLoss raw(float a) const {
    const bool on = !margin || a > zero_target;
    return {on ? raw_error * safe_log(1.0f - a) : 0.0f, on ? raw_delta * a : 0.0f};
  }
};

// math::sparse_listed for a Sigmoid output (the target value does not enter).
DSSTNE_HOST_INLINE ElementLoss sigmoid_listed(const LossParams& L, float a, float w) {
  if (L.function == ErrorFunction::CrossEntropy)
    return {w * (-safe_log(a) + safe_log(1.0f - a)), w * L.boost_one * (a - 1.0f)};
  float e = a > L.zero_target ? w * L.zero_scale * safe_log(1.0f - a) : 0.0f;
  if (a < L.one_target) e -= w * L.one_scale * safe_log(a);
  return {e, a < L.one_target ? w * L.one_scale * (a - 1.0f) : 0.0f};
}

// One row: the raw pass over every unit (vectorised), then the listed units, in one kernel so that both
// passes take the same log of the same unit (their terms for a listed unit cancel). Returns the row's
// error in fixed point. A raw error term is raw_error * log(y), y in [1e-12, FLT_MAX] unless a unit is
// -inf, so |term| <= |raw_error| * 88.73: one test per row tells whether vec::fixed is exact for all of
// them; otherwise (absurd weights or units) the raw sum is redone with fixed::from_float.
DSSTNE_HOST_KERNEL long long sigmoid_row_kernel(const LossParams& params, float w, const float* unit, float* delta,
                                                uint32_t n, const uint32_t* listed, uint64_t count) {
  const SigmoidLoss L(params, w);
  long long total = 0;
  int bad = !(std::fabs(L.raw_error) * 88.75f < 2097152.0f);
  for (uint32_t j = 0; j < n; ++j) {
    const float a = unit[j];
    const ElementLoss e = L.raw(a);
    delta[j] = e.delta;
    total += vec::fixed(e.error);
    bad |= a < -3.40282347e38f;
  }
  if (bad) {
    total = 0;
    for (uint32_t j = 0; j < n; ++j) total += fixed::from_float(L.raw(unit[j]).error);
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t j = listed[i];
    const ElementLoss e = sigmoid_listed(params, unit[j], w);
    delta[j] = e.delta;
    total += fixed::from_float(e.error);
  }
  return total;
}

// unit: row r's activations.
long long sigmoid_row(const OutputDeltaArgs& a, int64_t r, const float* unit) {
  const SparseData& d = a.targets.sparse_data;
  const SparseRow s = sparse_row(d, a.batch, r);
  return sigmoid_row_kernel(a.loss, s.weight, unit, a.delta + r * a.delta_pitch(), a.stride, d.index + s.begin,
                            s.end - s.begin);
}

long long generic_row(const OutputDeltaArgs& a, int64_t r, const float* unit) {
  const Targets& t = a.targets;
  const bool softmax = a.loss.activation.kind == Activation::SoftMax;
  float* delta = a.delta + r * a.delta_pitch();
  const uint32_t example = example_of(a.batch, r);
  long long total = 0;
  if (!t.sparse) {
    const float w = weight_of(t.dense.weight, example);
    const float* target = t.dense.data + static_cast<uint64_t>(row_of(t.dense.indexed, example)) * t.dense.stride;
    for (uint32_t j = 0; j < a.stride; ++j) {
      const ElementLoss e = math::dense_loss(a.loss, unit[j], target[j], w);
      delta[j] = e.delta;
      total += fixed::from_float(e.error);
    }
    return total;
  }
  const SparseRow s = sparse_row(t.sparse_data, a.batch, r);
  const float w = s.weight;
  for (uint32_t j = 0; j < a.stride; ++j) {
    if (t.ignore_zero) {
      delta[j] = 0.0f;
    } else {
      const ElementLoss e = math::sparse_raw(a.loss, unit[j], w);
      delta[j] = e.delta;
      total += fixed::from_float(e.error);
    }
  }
  const float inv_k = s.end > s.begin ? 1.0f / static_cast<float>(s.end - s.begin) : 0.0f;
  for (uint64_t i = s.begin; i < s.end; ++i) {
    const uint32_t j = t.sparse_data.index[i];
    const float target = softmax ? inv_k : (t.sparse_data.value ? t.sparse_data.value[i] : 1.0f);
    const ElementLoss e = t.ignore_zero ? math::dense_loss(a.loss, unit[j], target, w)
                                        : math::sparse_listed(a.loss, unit[j], target, w);
    delta[j] = e.delta;
    total += fixed::from_float(e.error);
  }
  return total;
}

}  // namespace

size_t HostBackend::output_delta_scratch_bytes(uint32_t, uint32_t) const { return 0; }

void HostBackend::output_delta(const OutputDeltaArgs& a) {
  DSSTNE_REQUIRE(!a.bias || a.loss.activation.kind != Activation::SoftMax,
                 "output_delta: the bias is applied only before an element-wise activation");
  const Targets& t = a.targets;
  const bool fast = t.sparse && !t.ignore_zero && a.loss.activation.kind == Activation::Sigmoid &&
                    (a.loss.function == ErrorFunction::CrossEntropy ||
                     a.loss.function == ErrorFunction::ScaledMarginalCrossEntropy);
  long long total = 0;  // integers: the sum is the same whatever the split between threads
#pragma omp parallel reduction(+ : total)
  {
    std::vector<float> activated;
#pragma omp for schedule(dynamic, 4)
    for (int64_t r = 0; r < a.rows; ++r) {
      const float* unit = activated_row(a.unit + r * a.unit_pitch(), a.stride, a.bias, a.loss.activation, activated);
      total += fast ? sigmoid_row(a, r, unit) : generic_row(a, r, unit);
    }
  }
  if (a.error) *a.error += total;
  if (a.bias_gradient && !a.bias_gradient_apart) output_bias_gradient(a);
}

void HostBackend::output_bias_gradient(const OutputDeltaArgs& a) {
  if (!a.bias_gradient) return;
  column_sum({a.delta, a.rows, a.stride, a.bias_gradient_scale, a.bias_gradient, a.delta_pitch()});
}

}  // namespace dsstne
