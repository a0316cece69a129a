// Hidden-layer delta twin on the GPU: sparseness penalty, activation derivative and the bias gradient in
// one kernel, with the shared formulas. A hidden layer is narrow (hundreds or thousands of units) beside
// the batch, so the work is a few short passes over a small matrix: one launch instead of four (means,
// penalty, derivative, column sums), each block owning 32 columns over all rows.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/fixed_point.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

constexpr unsigned kChunk = 8;  // rows a thread loads before using any: their loads are in flight together

// The mean of column j (live) over the rows, which every thread of the block gets.
template <unsigned Groups>
__device__ __forceinline__ float column_mean(const HiddenDeltaArgs& a, uint64_t j, bool live,
                                             gpu::ColumnPartials<Groups>& partial) {
  const unsigned warp = threadIdx.x >> 5;
  float sum = 0.0f;
  for (uint32_t r0 = warp; r0 < a.rows; r0 += kChunk * Groups) {
    float v[kChunk];
#pragma unroll
    for (unsigned u = 0; u < kChunk; ++u) {
      const uint32_t r = r0 + u * Groups;
      v[u] = live && r < a.rows ? a.unit[uint64_t{r} * a.stride + j] : 0.0f;
    }
#pragma unroll
    for (unsigned u = 0; u < kChunk; ++u) sum += v[u];
  }
  return gpu::column_total<Groups>(sum, partial) * (1.0f / static_cast<float>(a.rows));
}

template <unsigned Groups>
__global__ void __launch_bounds__(32 * Groups) hidden_delta_kernel(HiddenDeltaArgs a) {
  __shared__ gpu::ColumnPartials<Groups> partial;
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const bool penalty = a.beta > 0.0f, derivative = a.activation.kind != Activation::Linear;
  // The block's first columns' means, before the wait: the units were written in the forward, more than
  // one kernel back (the layers above and the loss came after), so they were complete before the kernel
  // before this one got past its own wait, and backward writes none. The penalty's pass then runs beside
  // that kernel instead of after it. The means are stored after the wait: their scratch may be in use.
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * 32;
  const float first_mean = penalty ? column_mean<Groups>(a, first + lane, first + lane < a.stride, partial) : 0.0f;
  gpu::await_previous();
  long long error = 0;
  for (uint64_t j0 = first; j0 < a.stride; j0 += static_cast<uint64_t>(gridDim.x) * 32) {
    const uint64_t j = j0 + lane;
    const bool live = j < a.stride;
    const float* unit = a.unit + j;
    float* delta = a.delta + j;
    float add = 0.0f;
    if (penalty) {
      const float mean = j0 == first ? first_mean : column_mean<Groups>(a, j, live, partial);
      add = math::sparseness_penalty(a.p, a.beta, mean);
      if (warp == 0 && live) {
        a.means[j] = mean;
        if (a.error) error += fixed::from_float(math::sparseness_loss(a.p, a.beta, mean, static_cast<float>(a.rows)));
      }
    }
    float sum = 0.0f;
    for (uint32_t r0 = warp; r0 < a.rows; r0 += kChunk * Groups) {
      float d[kChunk], y[kChunk];
#pragma unroll
      for (unsigned u = 0; u < kChunk; ++u) {
        const uint64_t i = uint64_t{r0 + u * Groups} * a.stride;
        const bool row = live && r0 + u * Groups < a.rows;
        d[u] = row ? delta[i] : 0.0f;
        y[u] = row && derivative ? unit[i] : 0.0f;
      }
#pragma unroll
      for (unsigned u = 0; u < kChunk; ++u) {
        if (!live || r0 + u * Groups >= a.rows) break;
        const float penalised = penalty ? d[u] + add : d[u];
        const float v = derivative ? penalised * math::derivative(a.activation, y[u]) : penalised;
        delta[uint64_t{r0 + u * Groups} * a.stride] = v;
        sum += v;
      }
    }
    const float total = gpu::column_total<Groups>(sum, partial);
    if (a.bias_gradient && warp == 0 && live) a.bias_gradient[j] = a.bias_gradient_scale * total;
  }
  if (penalty && a.error) gpu::add_fixed(a.error, error);
}

}  // namespace

void CudaBackend::hidden_delta(const HiddenDeltaArgs& a) {
  const bool penalty = a.beta > 0.0f, derivative = a.activation.kind != Activation::Linear;
  if (a.rows == 0 || a.stride == 0 || !(penalty || derivative || a.bias_gradient)) return;
  bind();
  // Few column blocks (the usual hidden widths): 32 warps each, so each thread has few rows.
  const unsigned blocks = gpu::grid_for(a.stride, 32);
  if (blocks < gpu::kFewColumnBlocks)
    gpu::launch(dependent_, hidden_delta_kernel<32>, blocks, 32 * 32, 0, stream(), a);
  else
    gpu::launch(dependent_, hidden_delta_kernel<8>, blocks, 32 * 8, 0, stream(), a);
}

}  // namespace dsstne
