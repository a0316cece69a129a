// Batch-normalisation twins on the CPU (inventory 1.12). Each unit's statistics are summed in row order;
// OpenMP splits the columns into fixed chunks, so the thread count never changes a sum's order or its bits.
#include <algorithm>
#include <cstdint>

#include "dsstne/math/batch_norm.h"
#include "host_backend.h"

namespace dsstne {
namespace {

// Columns per task: each task walks the rows once per pass, reading contiguous runs of this many floats.
constexpr uint32_t kColumns = 64;

struct Chunk {
  uint32_t j0, width;
};

Chunk chunk(int64_t c, uint32_t stride) {
  const uint32_t j0 = static_cast<uint32_t>(c) * kColumns;
  return {j0, std::min(kColumns, stride - j0)};
}

}  // namespace

void HostBackend::batch_norm_forward(const BatchNormForwardArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  const int64_t chunks = (static_cast<int64_t>(a.stride) + kColumns - 1) / kColumns;
  const float rows = static_cast<float>(a.rows);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const auto [j0, width] = chunk(c, a.stride);
    float mean[kColumns], inv_std[kColumns];
    if (a.training) {
      // Two passes (mean, then the squared deviations from it): no cancellation of E[x^2] - E[x]^2.
      float sum[kColumns] = {};
      for (uint32_t r = 0; r < a.rows; ++r) {
        const float* x = a.unit + static_cast<size_t>(r) * a.stride + j0;
        for (uint32_t k = 0; k < width; ++k) sum[k] += x[k];
      }
      for (uint32_t k = 0; k < width; ++k) mean[k] = sum[k] / rows;
      float squares[kColumns] = {};
      for (uint32_t r = 0; r < a.rows; ++r) {
        const float* x = a.unit + static_cast<size_t>(r) * a.stride + j0;
        for (uint32_t k = 0; k < width; ++k) {
          const float d = x[k] - mean[k];
          squares[k] += d * d;
        }
      }
      for (uint32_t k = 0; k < width; ++k) {
        const uint32_t j = j0 + k;
        const float variance = squares[k] / rows;  // biased: what the normalisation uses
        inv_std[k] = math::bn_inv_std(variance, a.epsilon);
        a.mean[j] = mean[k];
        a.inv_std[j] = inv_std[k];
        if (a.running_mean) {
          a.running_mean[j] = math::bn_running(a.running_mean[j], mean[k], a.factor);
          a.running_variance[j] =
              math::bn_running(a.running_variance[j], math::bn_unbiased(variance, a.rows), a.factor);
        }
      }
    } else {
      for (uint32_t k = 0; k < width; ++k) {
        mean[k] = a.running_mean[j0 + k];
        inv_std[k] = math::bn_inv_std(a.running_variance[j0 + k], a.epsilon);
      }
    }
    for (uint32_t r = 0; r < a.rows; ++r) {
      const size_t at = static_cast<size_t>(r) * a.stride + j0;
      float* x = a.unit + at;
      for (uint32_t k = 0; k < width; ++k) {
        const float xhat = math::bn_normalize(x[k], mean[k], inv_std[k]);
        if (a.training) a.xhat[at + k] = xhat;
        x[k] = math::bn_output(xhat, a.scale[j0 + k], a.bias[j0 + k]);
      }
    }
  }
}

void HostBackend::batch_norm_backward(const BatchNormBackwardArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  const int64_t chunks = (static_cast<int64_t>(a.stride) + kColumns - 1) / kColumns;
  const float rows = static_cast<float>(a.rows);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const auto [j0, width] = chunk(c, a.stride);
    float sum_dy[kColumns] = {}, sum_dy_xhat[kColumns] = {};
    for (uint32_t r = 0; r < a.rows; ++r) {
      const size_t at = static_cast<size_t>(r) * a.stride + j0;
      for (uint32_t k = 0; k < width; ++k) {
        sum_dy[k] += a.delta[at + k];
        sum_dy_xhat[k] += a.delta[at + k] * a.xhat[at + k];
      }
    }
    float mean_dy[kColumns], mean_dy_xhat[kColumns];
    for (uint32_t k = 0; k < width; ++k) {
      const uint32_t j = j0 + k;
      a.scale_gradient[j] = a.gradient_scale * sum_dy_xhat[k];
      a.bias_gradient[j] = a.gradient_scale * sum_dy[k];
      mean_dy[k] = sum_dy[k] / rows;
      mean_dy_xhat[k] = sum_dy_xhat[k] / rows;
    }
    for (uint32_t r = 0; r < a.rows; ++r) {
      const size_t at = static_cast<size_t>(r) * a.stride + j0;
      for (uint32_t k = 0; k < width; ++k)
        a.delta[at + k] = math::bn_input_gradient(a.delta[at + k], a.xhat[at + k], a.scale[j0 + k],
                                                  a.inv_std[j0 + k], mean_dy[k], mean_dy_xhat[k]);
    }
  }
}

}  // namespace dsstne
