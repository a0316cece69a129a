// Batch-normalisation twins on the GPU (inventory 1.12). A block covers 32 units (columns); its warp g sums
// rows g, g + kGroups, ... of them (each warp reads 32 consecutive floats of a row: coalesced), then the
// groups' partial sums are added in group order. The split is fixed, so the bits are too; no atomics. The
// CPU twin sums in plain row order: the two targets agree to rounding.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/batch_norm.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

constexpr unsigned kGroups = 8;

__global__ void __launch_bounds__(32 * kGroups) batch_norm_forward_kernel(BatchNormForwardArgs a) {
  __shared__ gpu::ColumnPartials<kGroups> partial;
  const unsigned lane = threadIdx.x & 31u, group = threadIdx.x >> 5;
  const float rows = static_cast<float>(a.rows);
  // j0 is the same for the whole block, so every thread reaches the barriers in column_total.
  for (uint64_t j0 = static_cast<uint64_t>(blockIdx.x) * 32; j0 < a.stride; j0 += static_cast<uint64_t>(gridDim.x) * 32) {
    const uint64_t j = j0 + lane;
    const bool live = j < a.stride;
    float mean = 0.0f, inv_std = 0.0f;
    if (a.training) {
      float sum = 0.0f;
      if (live)
        for (uint32_t r = group; r < a.rows; r += kGroups) sum += a.unit[static_cast<uint64_t>(r) * a.stride + j];
      mean = gpu::column_total<kGroups>(sum, partial) / rows;
      float squares = 0.0f;  // second pass: deviations from the mean, no E[x^2] - E[x]^2 cancellation
      if (live)
        for (uint32_t r = group; r < a.rows; r += kGroups) {
          const float d = a.unit[static_cast<uint64_t>(r) * a.stride + j] - mean;
          squares += d * d;
        }
      const float variance = gpu::column_total<kGroups>(squares, partial) / rows;  // biased
      inv_std = math::bn_inv_std(variance, a.epsilon);
      if (live && group == 0) {
        a.mean[j] = mean;
        a.inv_std[j] = inv_std;
        if (a.running_mean) {
          a.running_mean[j] = math::bn_running(a.running_mean[j], mean, a.factor);
          a.running_variance[j] =
              math::bn_running(a.running_variance[j], math::bn_unbiased(variance, a.rows), a.factor);
        }
      }
    } else if (live) {
      mean = a.running_mean[j];
      inv_std = math::bn_inv_std(a.running_variance[j], a.epsilon);
    }
    if (live) {
      const float scale = a.scale[j], bias = a.bias[j];
      for (uint32_t r = group; r < a.rows; r += kGroups) {
        const uint64_t at = static_cast<uint64_t>(r) * a.stride + j;
        const float xhat = math::bn_normalize(a.unit[at], mean, inv_std);
        if (a.training) a.xhat[at] = xhat;
        a.unit[at] = math::bn_output(xhat, scale, bias);
      }
    }
  }
}

__global__ void __launch_bounds__(32 * kGroups) batch_norm_backward_kernel(BatchNormBackwardArgs a) {
  __shared__ gpu::ColumnPartials<kGroups> partial;
  const unsigned lane = threadIdx.x & 31u, group = threadIdx.x >> 5;
  const float rows = static_cast<float>(a.rows);
  for (uint64_t j0 = static_cast<uint64_t>(blockIdx.x) * 32; j0 < a.stride; j0 += static_cast<uint64_t>(gridDim.x) * 32) {
    const uint64_t j = j0 + lane;
    const bool live = j < a.stride;
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    if (live)
      for (uint32_t r = group; r < a.rows; r += kGroups) {
        const uint64_t at = static_cast<uint64_t>(r) * a.stride + j;
        sum_dy += a.delta[at];
        sum_dy_xhat += a.delta[at] * a.xhat[at];
      }
    sum_dy = gpu::column_total<kGroups>(sum_dy, partial);
    sum_dy_xhat = gpu::column_total<kGroups>(sum_dy_xhat, partial);
    if (!live) continue;  // after the barriers: the rest has none
    if (group == 0) {
      a.scale_gradient[j] = a.gradient_scale * sum_dy_xhat;
      a.bias_gradient[j] = a.gradient_scale * sum_dy;
    }
    const float mean_dy = sum_dy / rows, mean_dy_xhat = sum_dy_xhat / rows;
    const float scale = a.scale[j], inv_std = a.inv_std[j];
    for (uint32_t r = group; r < a.rows; r += kGroups) {
      const uint64_t at = static_cast<uint64_t>(r) * a.stride + j;
      a.delta[at] = math::bn_input_gradient(a.delta[at], a.xhat[at], scale, inv_std, mean_dy, mean_dy_xhat);
    }
  }
}

}  // namespace

void CudaBackend::batch_norm_forward(const BatchNormForwardArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  batch_norm_forward_kernel<<<gpu::grid_for(a.stride, 32), 32 * kGroups, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

void CudaBackend::batch_norm_backward(const BatchNormBackwardArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  batch_norm_backward_kernel<<<gpu::grid_for(a.stride, 32), 32 * kGroups, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
