// Output delta and loss twin on the GPU, with the shared per-element formulas. Dense targets: one pass.
// Sparse targets: one pass too, each row's raw deltas (target 0) corrected for its listed units in shared
// memory before the row is written (sparse_loss_kernel). Errors are summed as fixed-point integers. With
// a bias, the layer holds linear sums: the pass takes f(z + b) as it reads a unit and writes nothing
// back, so it reads the output once and writes only the delta. Asked for the bias gradient, the sparse
// pass also leaves per-row-group column sums (a small column sum totals them); the dense one is followed
// by the reduce op's column sum.
#include <algorithm>
#include <cstdint>
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
// or with a bias the activation of the stored linear sum plus the bias.
// The common output layer's kinds (Sigmoid with CrossEntropy or SMCE, exact or with the fast maths) can be
// fixed at compile time: the switches of the per-element formulas then fold away (most of the pass's
// instructions otherwise).
struct AnyKind {};
template <class Kinds>
__device__ __forceinline__ LossParams pinned(LossParams L) {
  if constexpr (!std::is_same_v<Kinds, AnyKind>) {
    L.activation.kind = Kinds::activation;
    L.function = Kinds::function;
    L.activation.fast_math = Kinds::fast_math;
  }
  return L;
}
template <Activation A, ErrorFunction E, bool kFastMath>
struct Kinds {
  static constexpr Activation activation = A;
  static constexpr ErrorFunction function = E;
  static constexpr bool fast_math = kFastMath;
};
// With the fast maths (TF32 mode, whose errors are approximate anyway), the sparse pass adds a thread's raw
// error terms of a row as floats, in a fixed order, and takes the sum into fixed point once: the 64-bit
// conversion ran on the multiprocessors' slow unit once a unit, one of its four instructions there.
template <class K>
constexpr bool kRowErrors = false;
template <Activation A, ErrorFunction E>
constexpr bool kRowErrors<Kinds<A, E, true>> = true;

// Calls f(Kinds<...>{}) for the kinds fixed at compile time, else f(AnyKind{}).
template <class F>
void with_kinds(const LossParams& L, F f) {
  const auto sigmoid_with = [&](auto function) {
    constexpr ErrorFunction E = decltype(function)::value;
    if (L.activation.fast_math)
      f(Kinds<Activation::Sigmoid, E, true>{});
    else
      f(Kinds<Activation::Sigmoid, E, false>{});
  };
  const bool sigmoid = L.activation.kind == Activation::Sigmoid;
  if (sigmoid && L.function == ErrorFunction::ScaledMarginalCrossEntropy)
    sigmoid_with(std::integral_constant<ErrorFunction, ErrorFunction::ScaledMarginalCrossEntropy>{});
  else if (sigmoid && L.function == ErrorFunction::CrossEntropy)
    sigmoid_with(std::integral_constant<ErrorFunction, ErrorFunction::CrossEntropy>{});
  else
    f(AnyKind{});
}

constexpr unsigned kUnroll = 8;
constexpr unsigned kSpan = gpu::kThreads * kUnroll;
constexpr unsigned kRowBlocks = 64;
constexpr uint32_t kNoUnit = 0xFFFFFFFFu;  // no listed unit: j - j0 wraps past every span

template <class RowFn>
__device__ __forceinline__ long long for_each_output(const OutputDeltaArgs& a, const ActivationParams& f,
                                                     RowFn row_fn) {
  long long total = 0;
  for (uint32_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    const float* unit = a.unit + static_cast<uint64_t>(r) * a.unit_pitch();
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

// The blocks of one wave the grid is sized for: the H100's and H200's 132 multiprocessors at four blocks
// each (the sparse pass's 58 registers a thread). A constant, not the card's count: the row groups are the
// bias gradient's partial sums, so the bits do not depend on the card.
constexpr uint64_t kWaveBlocks = 132 * 4;

// The grid of a pass over rows x stride: spans of kSpan columns over x, up to kRowBlocks row groups over
// y, as many as take the fewest rounds of rows in waves of kWaveBlocks, the fewest groups among equals.
// The sample's and benchmark's 14 spans in 64 groups were 1.7 waves of 4 rows a block (8 rounds, the
// second wave leaving a third of the device idle); in 37 groups they are one wave of 7 (sample TF32
// 0.0845 -> 0.0839 s an epoch, FP32 0.1367 -> 0.1348; H200).
dim3 output_grid(uint32_t rows, uint32_t stride) {
  const auto spans = static_cast<unsigned>(std::clamp<uint64_t>((uint64_t{stride} + kSpan - 1) / kSpan, 1, 65535));
  const unsigned most = std::clamp<unsigned>(rows, 1, kRowBlocks);
  unsigned groups = most;
  uint64_t fewest = ~uint64_t{0};
  for (unsigned y = 1; y <= most; ++y) {
    const uint64_t waves = (uint64_t{spans} * y + kWaveBlocks - 1) / kWaveBlocks;
    const uint64_t rounds = waves * ((rows + y - 1) / y);
    if (rounds < fewest) fewest = rounds, groups = y;
  }
  return dim3(spans, groups);
}

__global__ void __launch_bounds__(gpu::kThreads) dense_loss_kernel(OutputDeltaArgs a) {
  gpu::await_previous();
  const DenseData& t = a.targets.dense;
  const long long total = for_each_output(a, a.loss.activation, [&a, &t](uint32_t r) {
    const uint32_t example = example_of(a.batch, r);
    const float w = weight_of(t.weight, example);
    const float* target = t.data + static_cast<uint64_t>(row_of(t.indexed, example)) * t.stride;
    float* delta = a.delta + static_cast<uint64_t>(r) * a.delta_pitch();
    return [&a, w, target, delta](uint32_t j, float y) {
      const ElementLoss e = math::dense_loss(a.loss, y, target[j], w);
      delta[j] = e.delta;
      return fixed::from_float(e.error);
    };
  });
  if (a.error) gpu::add_fixed(a.error, total);
}

// The element function of a listed unit of row s, target value from datapoint i.
template <class K>
__device__ __forceinline__ ElementLoss listed_loss(const OutputDeltaArgs& a, const LossParams& L, const SparseRow& s,
                                                   uint64_t i, float y) {
  const SparseData& d = a.targets.sparse_data;
  const float target = L.activation.kind == Activation::SoftMax
                           ? (s.end > s.begin ? 1.0f / static_cast<float>(s.end - s.begin) : 0.0f)
                           : (d.value ? d.value[i] : 1.0f);
  return a.targets.ignore_zero ? math::dense_loss(L, y, target, s.weight) : math::sparse_listed(L, y, target, s.weight);
}

// Sparse targets in one pass. A block takes a span of kSpan columns of its rows, one row at a time: each
// thread computes the raw delta (target 0) of its kUnroll units into shared memory, with the units as the
// loss sees them; the row's listed units in the span then replace their deltas there (and add their
// error corrections); the row is then written out once. The listed datapoints' first kThreads indices
// are loaded beside the units. A column listed twice keeps its last listing's delta, as the CPU target's
// sequential writes do: with `repeats`, one warp takes the listings 32 at a time in stored order, of the
// lanes naming one column only the last writing. With `partials`, the block also sums its rows' deltas
// per column in row order into partials[blockIdx.y][column] (a column sum over the row groups then
// totals them): no second read of the delta for the bias gradient.
// A thread's kUnroll columns of a span: t, t + kThreads, ...; or with kPairs (an even stride, 8-byte
// aligned rows) the pairs 2 t, 2 t + 1, then 2 t + 2 kThreads, ...: half the loads and stores, each 8 bytes
// (sample 0.1145 -> 0.1134 s an epoch, benchmark 0.5941 -> 0.5931; H100). The error total is integer and
// each column's sum keeps its row order, so the bits do not depend on it.
template <bool kPairs>
__device__ __forceinline__ uint32_t span_column(unsigned t, unsigned u) {
  return kPairs ? 2 * t + (u & 1u) + (u >> 1) * 2 * gpu::kThreads : t + u * gpu::kThreads;
}
// x[u] = from[span_column(t, u)], 0 past the span (an even span with kPairs: a pair is wholly in or out).
template <bool kPairs>
__device__ __forceinline__ void load_span(float (&x)[kUnroll], const float* from, uint32_t span, unsigned t) {
#pragma unroll
  for (unsigned u = 0; u < kUnroll; u += kPairs ? 2 : 1) {
    const uint32_t c = span_column<kPairs>(t, u);
    if constexpr (kPairs) {
      const float2 v = c < span ? *reinterpret_cast<const float2*>(from + c) : make_float2(0.0f, 0.0f);
      x[u] = v.x;
      x[u + 1] = v.y;
    } else {
      x[u] = c < span ? from[c] : 0.0f;
    }
  }
}

// The datapoint ranges and weights of a block's rows blockIdx.y + m gridDim.y, read kHeldRows rows ahead
// into shared memory by the first warp: a row's first listed indices then load at once, not after the
// chain of dependent loads (the batch's order, the row, its start and end) that reaches them.
constexpr unsigned kHeldRows = 32;
class HeldRows {
 public:
  __device__ HeldRows(SparseRow* rows, const OutputDeltaArgs& a) : rows_(rows) { fetch(a, 0); }
  // m is the same across the block, so are the fetch's condition and barrier. A later span's rows start
  // again at m = 0: below first_, m - first_ wraps past kHeldRows and they are fetched again.
  __device__ SparseRow row(const OutputDeltaArgs& a, uint32_t m) {
    if (m - first_ >= kHeldRows) fetch(a, m);
    return rows_[m - first_];
  }

 private:
  __device__ void fetch(const OutputDeltaArgs& a, uint32_t m) {
    first_ = m;
    const uint64_t r = blockIdx.y + (uint64_t{m} + threadIdx.x) * gridDim.y;
    if (threadIdx.x < kHeldRows && r < a.rows)
      rows_[threadIdx.x] = sparse_row(a.targets.sparse_data, a.batch, static_cast<uint32_t>(r));
    __syncthreads();
  }
  SparseRow* rows_;
  uint32_t first_ = 0;
};

// to[span_column(t, u)] = x[u] for the whole span's slots (a shared row): with kPairs 8-byte stores, which
// keep a warp's stores to consecutive words (4-byte ones at every other word hit each bank twice).
template <bool kPairs>
__device__ __forceinline__ void store_span(float* to, const float (&x)[kUnroll], unsigned t) {
#pragma unroll
  for (unsigned u = 0; u < kUnroll; u += kPairs ? 2 : 1) {
    const uint32_t c = span_column<kPairs>(t, u);
    if constexpr (kPairs)
      *reinterpret_cast<float2*>(to + c) = make_float2(x[u], x[u + 1]);
    else
      to[c] = x[u];
  }
}

template <class K, bool kBias, bool kPairs>
__global__ void __launch_bounds__(gpu::kThreads) sparse_loss_kernel(OutputDeltaArgs a, float* partials) {
  gpu::await_previous();
  __shared__ float row_unit[kSpan], row_delta[kSpan];
  const LossParams L = pinned<K>(a.loss);
  const SparseData& d = a.targets.sparse_data;
  const unsigned t = threadIdx.x, lane = t & 31u;
  __shared__ SparseRow held_rows[kHeldRows];
  HeldRows held(held_rows, a);
  long long total = 0;
  for (uint32_t j0 = blockIdx.x * kSpan; j0 < a.stride; j0 += gridDim.x * kSpan) {
    const uint32_t span = min(kSpan, a.stride - j0);
    float column_sum[kUnroll] = {}, z[kUnroll], b[kUnroll];
    if constexpr (kBias) load_span<kPairs>(b, a.bias + j0, span, t);
    // A row's units, its datapoint range and its first listed indices; the next row's are loaded while
    // this one's listed units and writes go on.
    SparseRow s{};
    uint32_t first_listed = kNoUnit;
    const auto load_row = [&](uint32_t m) {
      const uint32_t r = blockIdx.y + m * gridDim.y;
      if (r >= a.rows) return;
      s = held.row(a, m);
      first_listed = s.begin + t < s.end && !a.targets.repeats ? d.index[s.begin + t] : kNoUnit;
      load_span<kPairs>(z, a.unit + static_cast<uint64_t>(r) * a.unit_pitch() + j0, span, t);
    };
    load_row(0);
    for (uint32_t m = 0, r = blockIdx.y; r < a.rows; ++m, r += gridDim.y) {
      // Straight-line over the whole span: columns past its end fill unused shared slots and add no error.
      // Whether the raw terms count and whether the span is whole are the block's, tested once a row: per
      // unit, their tests were a sixth of the pass's instructions.
      float y[kUnroll], raw[kUnroll] = {};
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) y[u] = kBias ? math::activate(L.activation, z[u] + b[u]) : z[u];
      const auto raw_terms = [&](auto whole) {
        [[maybe_unused]] float row_error = 0.0f;
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
          const ElementLoss e = math::sparse_raw(L, y[u], s.weight);
          raw[u] = e.delta;
          const bool counts = decltype(whole)::value || span_column<kPairs>(t, u) < span;
          if constexpr (kRowErrors<K>)
            row_error += counts ? e.error : 0.0f;
          else
            total += counts ? fixed::from_float(e.error) : 0;
        }
        if constexpr (kRowErrors<K>) total += fixed::from_float(row_error);
      };
      if (!a.targets.ignore_zero) {
        if (span == kSpan)
          raw_terms(std::true_type{});
        else
          raw_terms(std::false_type{});
      }
      store_span<kPairs>(row_unit, y, t);
      store_span<kPairs>(row_delta, raw, t);
      const SparseRow row = s;
      const uint32_t listed = first_listed;
      load_row(m + 1);
      __syncthreads();
      if (!a.targets.repeats) {  // no two listings of a column: their writes cannot collide
        uint32_t j = listed;
        for (uint64_t i = row.begin + t; i < row.end; i += gpu::kThreads) {
          if (i != row.begin + t) j = d.index[i];
          if (j - j0 < span) {
            const ElementLoss e = listed_loss<K>(a, L, row, i, row_unit[j - j0]);
            row_delta[j - j0] = e.delta;
            total += fixed::from_float(e.error);
          }
        }
      } else if (t < 32) {
        for (uint64_t c = row.begin; c < row.end; c += 32) {
          const uint64_t i = c + lane;
          const uint32_t j = i < row.end ? d.index[i] : kNoUnit;
          const bool mine = j - j0 < span;
          ElementLoss e{0.0f, 0.0f};
          if (mine) {
            e = listed_loss<K>(a, L, row, i, row_unit[j - j0]);
            total += fixed::from_float(e.error);
          }
          const unsigned group =
              __match_any_sync(gpu::kFullMask, mine ? j : kNoUnit) & __ballot_sync(gpu::kFullMask, mine);
          if (mine && static_cast<unsigned>(31 - __clz(group)) == lane) row_delta[j - j0] = e.delta;
          __syncwarp();  // this chunk's writes come before the next chunk's
        }
      }
      __syncthreads();
      float* delta = a.delta + static_cast<uint64_t>(r) * a.delta_pitch() + j0;
#pragma unroll
      for (unsigned u = 0; u < kUnroll; u += kPairs ? 2 : 1) {
        const uint32_t c = span_column<kPairs>(t, u);
        if (c >= span) break;
        if constexpr (kPairs) {
          const float2 v = *reinterpret_cast<const float2*>(row_delta + c);
          *reinterpret_cast<float2*>(delta + c) = v;
          column_sum[u] += v.x;
          column_sum[u + 1] += v.y;
        } else {
          const float v = row_delta[c];
          delta[c] = v;
          column_sum[u] += v;
        }
      }
      // The next row's shared writes by this thread are to its own columns, which no other thread reads;
      // its listed writes come after the next barrier, which every thread reaches past these reads.
    }
    if (partials) {
#pragma unroll
      for (unsigned u = 0; u < kUnroll; ++u) {
        const uint32_t c = span_column<kPairs>(t, u);
        if (c < span) partials[static_cast<uint64_t>(blockIdx.y) * a.stride + j0 + c] = column_sum[u];
      }
    }
    __syncthreads();  // the next span's rows rewrite the shared rows
  }
  if (a.error) gpu::add_fixed(a.error, total);
}

}  // namespace

size_t CudaBackend::output_delta_scratch_bytes(uint32_t rows, uint32_t stride) const {
  // output_grid's most row groups for any minibatch of up to `rows` (its choice need not grow with them)
  return static_cast<size_t>(std::clamp<unsigned>(rows, 1, kRowBlocks)) * stride * sizeof(float);
}

void CudaBackend::output_delta(const OutputDeltaArgs& args) {
  if (args.rows == 0 || args.stride == 0) return;
  OutputDeltaArgs a = args;
  a.loss.activation.fast_math = fast_math();
  DSSTNE_REQUIRE(!a.bias || a.loss.activation.kind != Activation::SoftMax,
                 "output_delta: the bias is applied only before an element-wise activation");
  bind();
  if (!a.targets.sparse) {
    gpu::launch(dependent_, dense_loss_kernel, output_grid(a.rows, a.stride), gpu::kThreads, 0, stream(), a);
    if (a.bias_gradient && !a.bias_gradient_apart) output_bias_gradient(a);
    return;
  }
  const dim3 grid = output_grid(a.rows, a.stride);
  float* partials = a.bias_gradient ? static_cast<float*>(a.scratch) : nullptr;
  const auto aligned8 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; };
  const bool pairs =
      a.stride % 2 == 0 && a.delta_pitch() % 2 == 0 && a.unit_pitch() % 2 == 0 && aligned8(a.unit) &&
      aligned8(a.delta) && aligned8(a.bias);
  with_kinds(a.loss, [&](auto kinds) {
    using K = decltype(kinds);
    const auto kernel = pairs ? (a.bias ? sparse_loss_kernel<K, true, true> : sparse_loss_kernel<K, false, true>)
                              : (a.bias ? sparse_loss_kernel<K, true, false> : sparse_loss_kernel<K, false, false>);
    gpu::launch(dependent_, kernel, grid, gpu::kThreads, 0, stream(), a, partials);
  });
  if (partials && !a.bias_gradient_apart) output_bias_gradient(a);
}

void CudaBackend::output_bias_gradient(const OutputDeltaArgs& a) {
  if (a.rows == 0 || a.stride == 0 || !a.bias_gradient) return;
  if (!a.targets.sparse)  // the dense pass leaves the deltas alone
    column_sum({a.delta, a.rows, a.stride, a.bias_gradient_scale, a.bias_gradient, a.delta_pitch()});
  else  // the sparse pass leaves its row groups' column sums in the scratch
    column_sum({static_cast<const float*>(a.scratch), output_grid(a.rows, a.stride).y, a.stride,
                a.bias_gradient_scale, a.bias_gradient});
}

}  // namespace dsstne
