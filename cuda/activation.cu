// Activation twin on the GPU. Element-wise kinds use the shared formula; SoftMax runs one block per row:
// max, exponentials summed in double through a fixed reduction tree, normalise (clamped at 1, as on the
// CPU target).
#include <algorithm>
#include <cmath>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

constexpr unsigned kSoftMaxThreads = 256;
constexpr unsigned kUnrolled = 8;  // units a thread where the matrix fills the device

// Rows over the grid's y, spans of kThreads * kUnroll columns over its x; a thread loads its kUnroll units
// (and biases) before computing any, so those loads are in flight together. A matrix too small to fill the
// device that way (a hidden layer's 256 x 1,024) takes one unit a thread: three times the warps in flight
// (H100, benchmark: a hidden layer's activation and dropout 6.2 us with eight, half of them past the row's
// end, 4.6 us with one).
template <unsigned kUnroll>
__global__ void __launch_bounds__(gpu::kThreads) activate_kernel(ActivateArgs a) {
  constexpr unsigned kSpan = gpu::kThreads * kUnroll;
  gpu::await_previous();
  for (uint32_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    float* row = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j0 = blockIdx.x * kSpan + threadIdx.x; j0 < a.stride; j0 += gridDim.x * kSpan) {
      float z[kUnroll];
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) {
        const uint32_t j = j0 + u * gpu::kThreads;
        z[u] = j < a.stride ? (a.bias ? row[j] + a.bias[j] : row[j]) : 0.0f;
      }
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) {
        const uint32_t j = j0 + u * gpu::kThreads;
        if (j >= a.stride) continue;
        row[j] = activated_unit(a, z[u], r, j);
      }
    }
  }
}

__global__ void softmax_kernel(float* unit, uint32_t rows, uint32_t stride, const float* bias) {
  for (uint32_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* row = unit + static_cast<uint64_t>(r) * stride;
    if (bias) {
      for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) row[j] += bias[j];
      __syncthreads();
    }
    float mx = -INFINITY;
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = gpu::block_reduce(mx, gpu::Max{}, -INFINITY);
    double sum = 0.0;
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) {
      const float e = expf(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    sum = gpu::block_reduce(sum, gpu::Sum{}, 0.0);
    const float inv = static_cast<float>(1.0 / sum);
    for (uint32_t j = threadIdx.x; j < stride; j += blockDim.x) row[j] = fminf(row[j] * inv, 1.0f);
  }
}

}  // namespace

void CudaBackend::activate(const ActivateArgs& args) {
  ActivateArgs a = args;
  a.activation.fast_math = fast_math();
  DSSTNE_REQUIRE(a.dropout.p <= 0.0f || a.activation.kind != Activation::SoftMax,
                 "the activation op's dropout is for element-wise kinds");
  if (a.activation.kind == Activation::Linear && !a.bias && a.dropout.p <= 0.0f) return;
  if (a.rows == 0 || a.stride == 0) return;
  bind();
  if (a.activation.kind == Activation::SoftMax) {
    softmax_kernel<<<gpu::row_grid(a.rows), kSoftMaxThreads, 0, stream()>>>(a.unit, a.rows, a.stride, a.bias);
    DSSTNE_LAUNCH_CHECK();
  } else {
    // kUnrolled units a thread where the grid still has a thread for each of the device's thread slots.
    const uint64_t slots = uint64_t{static_cast<unsigned>(props_.maxThreadsPerMultiProcessor)} *
                           static_cast<unsigned>(props_.multiProcessorCount);
    const bool unrolled = uint64_t{a.rows} * a.stride >= kUnrolled * slots;
    const unsigned span = gpu::kThreads * (unrolled ? kUnrolled : 1);
    const dim3 grid(static_cast<unsigned>(std::clamp<uint64_t>((uint64_t{a.stride} + span - 1) / span, 1, 65535)),
                    std::min<uint32_t>(a.rows, 65535));
    gpu::launch(dependent_, unrolled ? activate_kernel<kUnrolled> : activate_kernel<1>, grid, gpu::kThreads, 0,
                stream(), a);
  }
}

}  // namespace dsstne
