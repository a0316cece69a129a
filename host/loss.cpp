// Output delta and loss twin on the CPU: dense targets in one pass; sparse targets as a raw pass (target 0)
// then a pass over each row's listed units. Errors are summed in fixed point, as on the GPU.
#include "dsstne/fixed_point.h"
#include "dsstne/math/sparse_row.h"
#include "host_backend.h"

namespace dsstne {

void HostBackend::output_delta(const OutputDeltaArgs& a) {
  long long total = 0;
  const Targets& t = a.targets;
  const bool softmax = a.loss.activation.kind == Activation::SoftMax;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* unit = a.unit + r * a.stride;
    float* delta = a.delta + r * a.stride;
    const uint32_t example = example_of(a.batch, r);
    if (!t.sparse) {
      const float w = weight_of(t.dense.weight, example);
      const float* target = t.dense.data + static_cast<uint64_t>(row_of(t.dense.indexed, example)) * t.dense.stride;
      for (uint32_t j = 0; j < a.stride; ++j) {
        const ElementLoss e = math::dense_loss(a.loss, unit[j], target[j], w);
        delta[j] = e.delta;
        total += fixed::from_float(e.error);
      }
      continue;
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
  }
  if (a.error) *a.error += total;
}

}  // namespace dsstne
