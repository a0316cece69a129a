// Activation twin on the CPU; SoftMax normalises each row (max-shifted, summed in column order).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "dsstne/errors.h"
#include "host_backend.h"
#include "vecmath.h"

namespace dsstne {
namespace {

// Element-wise activation of n contiguous units: math::activate, except that Sigmoid's exp is the
// vectorisable vec::exp (same expression 1 / (1 + exp(-z))).
DSSTNE_HOST_KERNEL void activate_range(const ActivationParams& p, float* x, size_t n) {
  if (p.kind == Activation::Sigmoid) {
    for (size_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + vec::exp(-x[i]));
  } else {
    const ActivationParams q = p;
    for (size_t i = 0; i < n; ++i) x[i] = math::activate(q, x[i]);
  }
}

void softmax_row(float* row, uint32_t n) {
  float mx = -INFINITY;
  for (uint32_t j = 0; j < n; ++j) mx = std::fmax(mx, row[j]);
  double sum = 0.0;
  for (uint32_t j = 0; j < n; ++j) {
    row[j] = expf(row[j] - mx);
    sum += row[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (uint32_t j = 0; j < n; ++j) row[j] = std::fmin(row[j] * inv, 1.0f);
}

constexpr int64_t kChunk = 16384;  // units per task: element-wise results do not depend on it

}  // namespace

void HostBackend::activate(const ActivateArgs& a) {
  DSSTNE_REQUIRE(a.dropout.p <= 0.0f || a.activation.kind != Activation::SoftMax,
                 "the activation op's dropout is for element-wise kinds");
  if (a.bias) set_bias(BiasArgs{a.unit, a.bias, a.rows, a.stride, true});
  if (a.activation.kind == Activation::Linear && a.dropout.p <= 0.0f) return;
  if (a.activation.kind == Activation::SoftMax) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < a.rows; ++r) softmax_row(a.unit + r * a.stride, a.stride);
    return;
  }
  const int64_t n = static_cast<int64_t>(a.rows) * a.stride, chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 8) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t first = c * kChunk, count = std::min(kChunk, n - first);
    float* x = a.unit + first;
    if (a.activation.kind != Activation::Linear) activate_range(a.activation, x, static_cast<size_t>(count));
    if (a.dropout.p > 0.0f)  // while the chunk is in cache
      for (int64_t i = 0; i < count; ++i) x[i] = a.dropout.apply(x[i], static_cast<uint64_t>(first + i));
  }
}

const float* HostBackend::activated_row(const float* row, uint32_t width, const float* bias,
                                        const ActivationParams& f, std::vector<float>& buffer) {
  if (!bias) return row;
  buffer.resize(width);
  std::memcpy(buffer.data(), row, sizeof(float) * width);
  activate(ActivateArgs{buffer.data(), 1, width, f, bias, {}});
  return buffer.data();
}

}  // namespace dsstne
