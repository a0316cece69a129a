// Output delta and loss twin on the GPU, with the shared per-element formulas. Dense targets: one pass.
// Sparse targets: a raw pass over every unit (target 0), then a pass over each row's listed units that
// corrects the error and overwrites the delta. Errors are summed as fixed-point integers. With a bias,
// the layer holds linear sums: each pass takes f(z + b) as it reads a unit (the same expression, so the
// same bits) and writes nothing back, so the raw pass reads the output once and writes only the delta.
#include <algorithm>
#include <type_traits>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/errors.h"
#include "dsstne/fixed_point.h"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace {

// The element-wise passes: rows over the grid's y, spans of kSpan columns over its x. A thread loads its
// kUnroll units (and biases) before computing any, so those loads are in flight together, and a block
// covers several rows: few blocks, hence few atomics on the error total. row_fn(r) returns the row's
// element function f(j, y) -> fixed-point error, y the unit as the loss sees it: the stored activation,
// or with a bias the activation of the stored linear sum plus the bias (activation_of).
// The common output layer's kinds (Sigmoid with CrossEntropy or SMCE) can be fixed at compile time: the
// switches of the per-element formulas then fold away (most of the pass's instructions otherwise).
struct AnyKind {};
template <class Kinds>
__device__ __forceinline__ LossParams pinned(LossParams L) {
  if constexpr (!std::is_same_v<Kinds, AnyKind>) {
    L.activation.kind = Kinds::activation;
    L.function = Kinds::function;
  }
  return L;
}
template <Activation A, ErrorFunction E>
struct Kinds {
  static constexpr Activation activation = A;
  static constexpr ErrorFunction function = E;
};

// Unit j of a row as the loss sees it: stored, or f(z + b) of the stored linear sum z.
__device__ __forceinline__ float activation_of(const OutputDeltaArgs& a, const ActivationParams& f, const float* unit,
                                               uint32_t j) {
  return a.bias ? math::activate(f, unit[j] + a.bias[j]) : unit[j];
}

// Calls f(Kinds<...>{}) for the kinds fixed at compile time, else f(AnyKind{}).
template <class F>
void with_kinds(const LossParams& L, F f) {
  const bool sigmoid = L.activation.kind == Activation::Sigmoid;
  if (sigmoid && L.function == ErrorFunction::ScaledMarginalCrossEntropy)
    f(Kinds<Activation::Sigmoid, ErrorFunction::ScaledMarginalCrossEntropy>{});
  else if (sigmoid && L.function == ErrorFunction::CrossEntropy)
    f(Kinds<Activation::Sigmoid, ErrorFunction::CrossEntropy>{});
  else
    f(AnyKind{});
}

constexpr unsigned kUnroll = 8;
constexpr unsigned kSpan = gpu::kThreads * kUnroll;
constexpr unsigned kRowBlocks = 64;

template <class RowFn>
__device__ __forceinline__ long long for_each_output(const OutputDeltaArgs& a, const ActivationParams& f,
                                                     RowFn row_fn) {
  long long total = 0;
  for (uint32_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    const float* unit = a.unit + static_cast<uint64_t>(r) * a.stride;
    const auto element = row_fn(r);
    for (uint32_t j0 = blockIdx.x * kSpan + threadIdx.x; j0 < a.stride; j0 += gridDim.x * kSpan) {
      float z[kUnroll], b[kUnroll];
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) {
        const uint32_t j = j0 + u * gpu::kThreads;
        z[u] = j < a.stride ? unit[j] : 0.0f;
        b[u] = a.bias && j < a.stride ? a.bias[j] : 0.0f;
      }
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) {
        const uint32_t j = j0 + u * gpu::kThreads;
        if (j >= a.stride) break;
        total += element(j, a.bias ? math::activate(f, z[u] + b[u]) : z[u]);
      }
    }
  }
  return total;
}

dim3 output_grid(uint32_t rows, uint32_t stride) {
  return dim3(static_cast<unsigned>(std::clamp<uint64_t>((uint64_t{stride} + kSpan - 1) / kSpan, 1, 65535)),
              std::clamp<unsigned>(rows, 1, kRowBlocks));
}

__global__ void __launch_bounds__(gpu::kThreads) dense_loss_kernel(OutputDeltaArgs a) {
  const DenseData& t = a.targets.dense;
  const long long total = for_each_output(a, a.loss.activation, [&a, &t](uint32_t r) {
    const uint32_t example = example_of(a.batch, r);
    const float w = weight_of(t.weight, example);
    const float* target = t.data + static_cast<uint64_t>(row_of(t.indexed, example)) * t.stride;
    float* delta = a.delta + static_cast<uint64_t>(r) * a.stride;
    return [&a, w, target, delta](uint32_t j, float y) {
      const ElementLoss e = math::dense_loss(a.loss, y, target[j], w);
      delta[j] = e.delta;
      return fixed::from_float(e.error);
    };
  });
  if (a.error) gpu::add_fixed(a.error, total);
}

template <class K>
__global__ void __launch_bounds__(gpu::kThreads) sparse_raw_kernel(OutputDeltaArgs a) {
  const LossParams L = pinned<K>(a.loss);
  const long long total = for_each_output(a, L.activation, [&a, &L](uint32_t r) {
    const float w = sparse_row(a.targets.sparse_data, a.batch, r).weight;
    float* delta = a.delta + static_cast<uint64_t>(r) * a.stride;
    return [&a, &L, w, delta](uint32_t j, float y) -> long long {
      if (a.targets.ignore_zero) {
        delta[j] = 0.0f;
        return 0;
      }
      const ElementLoss e = math::sparse_raw(L, y, w);
      delta[j] = e.delta;
      return fixed::from_float(e.error);
    };
  });
  if (a.error) gpu::add_fixed(a.error, total);
}

// One warp per row over its listed units, 32 at a time in stored order. Every listed datapoint adds its
// error; a column listed twice keeps the delta of its last listing, as the CPU target's sequential
// writes do: of the lanes naming one column only the last writes, and chunks run one after another.
template <class K>
__global__ void sparse_listed_kernel(OutputDeltaArgs a) {
  const LossParams L = pinned<K>(a.loss);
  const SparseData& d = a.targets.sparse_data;
  const bool softmax = L.activation.kind == Activation::SoftMax;
  const unsigned lane = threadIdx.x & 31u;
  const uint64_t warps = gpu::grid_threads() >> 5;
  long long total = 0;
  for (uint64_t r = gpu::global_thread() >> 5; r < a.rows; r += warps) {
    const SparseRow s = sparse_row(d, a.batch, static_cast<uint32_t>(r));
    const float inv_k = s.end > s.begin ? 1.0f / static_cast<float>(s.end - s.begin) : 0.0f;
    const float* unit = a.unit + r * a.stride;
    float* delta = a.delta + r * a.stride;
    for (uint64_t c = s.begin; c < s.end; c += 32) {
      const uint64_t i = c + lane;
      const bool live = i < s.end;
      const uint32_t j = live ? d.index[i] : 0u;
      ElementLoss e{0.0f, 0.0f};
      if (live) {
        const float target = softmax ? inv_k : (d.value ? d.value[i] : 1.0f);
        const float y = activation_of(a, L.activation, unit, j);
        e = a.targets.ignore_zero ? math::dense_loss(L, y, target, s.weight) : math::sparse_listed(L, y, target, s.weight);
        total += fixed::from_float(e.error);
      }
      const unsigned group =
          __match_any_sync(gpu::kFullMask, live ? j : 0xFFFFFFFFu) & __ballot_sync(gpu::kFullMask, live);
      if (live && static_cast<unsigned>(31 - __clz(group)) == lane) delta[j] = e.delta;
      __syncwarp();  // this chunk's writes come before the next chunk's
    }
  }
  if (a.error) gpu::add_fixed(a.error, total);
}

// Rows that list no unit twice: one block per row, its threads over the row's listed units in parallel
// (no write can collide, and the error is an integer sum, so the bits do not depend on the split).
template <class K>
__global__ void sparse_listed_unique_kernel(OutputDeltaArgs a) {
  const LossParams L = pinned<K>(a.loss);
  const SparseData& d = a.targets.sparse_data;
  const bool softmax = L.activation.kind == Activation::SoftMax;
  long long total = 0;
  for (uint32_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const SparseRow s = sparse_row(d, a.batch, r);
    const float inv_k = s.end > s.begin ? 1.0f / static_cast<float>(s.end - s.begin) : 0.0f;
    const float* unit = a.unit + static_cast<uint64_t>(r) * a.stride;
    float* delta = a.delta + static_cast<uint64_t>(r) * a.stride;
    for (uint64_t i = s.begin + threadIdx.x; i < s.end; i += blockDim.x) {
      const uint32_t j = d.index[i];
      const float target = softmax ? inv_k : (d.value ? d.value[i] : 1.0f);
      const float y = activation_of(a, L.activation, unit, j);
      const ElementLoss e = a.targets.ignore_zero ? math::dense_loss(L, y, target, s.weight)
                                                  : math::sparse_listed(L, y, target, s.weight);
      delta[j] = e.delta;
      total += fixed::from_float(e.error);
    }
  }
  if (a.error) gpu::add_fixed(a.error, total);
}

}  // namespace

void CudaBackend::output_delta(const OutputDeltaArgs& a) {
  if (a.rows == 0 || a.stride == 0) return;
  DSSTNE_REQUIRE(!a.bias || a.loss.activation.kind != Activation::SoftMax,
                 "output_delta: the bias is applied only before an element-wise activation");
  bind();
  if (!a.targets.sparse) {
    dense_loss_kernel<<<output_grid(a.rows, a.stride), gpu::kThreads, 0, stream()>>>(a);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  with_kinds(a.loss, [&](auto kinds) {
    using K = decltype(kinds);
    sparse_raw_kernel<K><<<output_grid(a.rows, a.stride), gpu::kThreads, 0, stream()>>>(a);
    DSSTNE_LAUNCH_CHECK();
    if (a.targets.repeats) {
      // Two warps a block: rows spread over more multiprocessors.
      sparse_listed_kernel<K><<<gpu::warp_row_grid(a.rows, 64), 64, 0, stream()>>>(a);
    } else {
      sparse_listed_unique_kernel<K><<<gpu::row_grid(a.rows), gpu::kThreads, 0, stream()>>>(a);
    }
    DSSTNE_LAUNCH_CHECK();
  });
}

}  // namespace dsstne
