// Sparse input layer twins on the GPU: gather-sum forward, deterministic transposed weight gradient.
//
// sparse_gradient without float atomics: a counting sort by input unit. Integer atomics count each unit's
// non-zero datapoints and list the present units, give each unit a bucket and drop its datapoints in (in
// any order, keyed by (batch row, position in the row)); then each bucket is ranked by key, which puts it
// in batch-row order, and value x delta rows are summed in that order (a warp a bucket of up to 32, the
// CPU target's order; a block a larger one, its warps summing fixed slices added in slice order; wide rows
// a pass of columns at a time over several warps or blocks). Where a datapoint lands is not
// deterministic, the sums are. Nothing is allocated and nothing waits for the
// device: the bucket counts live on the device and the kernels loop up to them.
#include <algorithm>
#include <type_traits>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"
#include "reduce.cuh"
#include "stepper.cuh"

namespace dsstne {
namespace gpu {

GradientLayout gradient_layout(size_t capacity, uint32_t input_units) {
  GradientLayout L;
  L.capacity = capacity;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at = align_scratch(at + bytes);
    return here;
  };
  const size_t most_present = std::min<size_t>(capacity, input_units);
  L.counters = take(sizeof(uint32_t) * (kGradientCounters + size_t{input_units}));
  L.start = take(sizeof(uint32_t) * input_units);
  L.present = take(sizeof(uint32_t) * most_present);
  L.begin = take(sizeof(uint32_t) * most_present);
  L.size = take(sizeof(uint32_t) * most_present);
  L.large = take(sizeof(uint32_t) * most_present);
  L.key = take(sizeof(uint64_t) * capacity);
  L.value = take(sizeof(float) * capacity);
  L.sorted_row = take(sizeof(uint32_t) * capacity);
  L.sorted_value = take(sizeof(float) * capacity);
  L.bytes = at;
  return L;
}

}  // namespace gpu

namespace {

// Where one sparse_gradient call finds its pieces inside the scratch buffer.
struct GradientScratch {
  uint32_t* present_count;  // present units of the batch
  uint32_t* cursor;         // bucket space handed out so far
  uint32_t* large_count;    // buckets of more than kWarpBucket datapoints
  uint32_t* count;          // [units] non-zero datapoints per unit; back to 0 once the buckets are filled
  uint32_t* start;          // [units] first bucket slot of a present unit
  uint32_t* present;        // [present units] unit, in no particular order
  uint32_t* begin;          // [present units] first slot of its bucket
  uint32_t* size;           // [present units] slots of its bucket
  uint32_t* large;          // [large buckets] their present-unit indices
  uint64_t* key;            // [capacity] bucketed datapoints: batch row << 32 | position in the row
  float* value;             // [capacity] their input values (weight, Boolean, denoising applied)
  uint32_t* sorted_row;     // [capacity] the large buckets' datapoints in key order (at their slots)
  float* sorted_value;
};

GradientScratch carve(void* scratch, const gpu::GradientLayout& L) {
  char* base = static_cast<char*>(scratch);
  GradientScratch s;
  s.present_count = reinterpret_cast<uint32_t*>(base + L.counters);
  s.cursor = s.present_count + 1;
  s.large_count = s.present_count + 2;
  s.count = s.present_count + gpu::kGradientCounters;
  s.start = reinterpret_cast<uint32_t*>(base + L.start);
  s.present = reinterpret_cast<uint32_t*>(base + L.present);
  s.begin = reinterpret_cast<uint32_t*>(base + L.begin);
  s.size = reinterpret_cast<uint32_t*>(base + L.size);
  s.large = reinterpret_cast<uint32_t*>(base + L.large);
  s.key = reinterpret_cast<uint64_t*>(base + L.key);
  s.value = reinterpret_cast<float*>(base + L.value);
  s.sorted_row = reinterpret_cast<uint32_t*>(base + L.sorted_row);
  s.sorted_value = reinterpret_cast<float*>(base + L.sorted_value);
  return s;
}

// ---- sparse_forward -------------------------------------------------------------------------------

constexpr unsigned kForwardWarps = 8;
constexpr uint32_t kMinSegment = 256;  // datapoints per block (one chunk per warp): short rows take one block
constexpr uint32_t kMaxSegments = 32;  // blocks per row at most: longer segments beyond that
constexpr unsigned kColumnsPerLane = 4;
constexpr unsigned kTile = 32 * kColumnsPerLane;  // columns per pass

}  // namespace

namespace gpu {

ForwardSplit forward_split(uint64_t longest) {
  const uint64_t quantum = 32ull * kForwardWarps;
  const uint64_t wanted = (longest + kMaxSegments - 1) / kMaxSegments;
  ForwardSplit f;
  f.segment = static_cast<uint32_t>(std::max<uint64_t>(kMinSegment, (wanted + quantum - 1) / quantum * quantum));
  f.segments = static_cast<uint32_t>(std::max<uint64_t>(1, (longest + f.segment - 1) / f.segment));
  return f;
}

}  // namespace gpu

namespace {

// The chunk of 32 datapoints starting at c (ending at `end`): lane k holds datapoint c + k's unit index and
// input value (value 0 past the end).
struct Chunk {
  uint32_t index;
  float value;
};
__device__ __forceinline__ Chunk load_chunk(const SparseData& d, const Denoise& n, const SparseRow& s, uint64_t c,
                                            uint64_t end, unsigned lane) {
  const uint64_t i = c + lane;
  if (i >= end) return {0u, 0.0f};
  return {d.index[i], datapoint_value(d, n, s, i)};
}

// Unit j of row r as written from its final sum: the sum (Unfinished), or the unit the layer's activation
// op leaves (Finishing).
struct Unfinished {
  __device__ float operator()(float sum, uint32_t, uint32_t) const { return sum; }
};
struct Finishing {
  ActivateArgs op;
  __device__ float operator()(float sum, uint32_t r, uint32_t j) const {
    return activated_unit(op, op.bias ? sum + op.bias[j] : sum, r, j);
  }
};

// Segments of a row (0 for an empty row, whose block 0 still writes its sum).
__device__ __forceinline__ uint64_t row_segments(const SparseRow& s, uint32_t segment) {
  return (s.end - s.begin + segment - 1) / segment;
}

// Block (x, y, z): segment x of batch row y, column tiles z, z + gridDim.z, ... Warp w takes the
// segment's chunks w, w + kForwardWarps, ... (a fixed assignment, so the sum order never changes); a warp
// loads a chunk's 32 indices and values at once (one per lane), then walks them, broadcasting each, with
// lanes over the columns; the block adds the warps' partial sums in warp order. A row of one segment is
// written directly (finished, with the layer's activation op in `finish`), the segments of a longer row go
// to the scratch for sparse_forward_combine_kernel, which finishes the row.
// kQuads (rows of whole 16-byte quads): lane l takes columns 4 l .. 4 l + 3 of a pass, one 16-byte load a
// datapoint instead of four, with 16 datapoints' loads in flight at once instead of 8 (benchmark 0.6016 ->
// 0.5962 s an epoch, H100; 8 at once 0.5984; on another card 32 at once 0.5970 against 16's 0.5961). Else
// lane l takes columns l, l + 32, l + 64, l + 96. Either way each column's sum takes the same terms in the
// same order. The rows written directly are finished by `finish` (a kernel of its own where Finishing, the
// plain gather's parameters and code as they were without it).
// (Five blocks a multiprocessor, 48 registers; the quads' kernel spills 8 bytes. Before the quads, five
// blocks made the benchmark's epoch 0.6 % shorter than four and 0.2 % than six; with them, six took 0.6 %
// longer, and four with 32 loads at once 0.7 %. H100.)
template <bool kQuads, class Finish>
__global__ void __launch_bounds__(32 * kForwardWarps, 5)
    sparse_forward_kernel(SparseSumArgs a, gpu::ForwardSplit f, Finish finish) {
  gpu::await_previous();
  __shared__ float partial[kForwardWarps][kTile];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const auto column = [lane](unsigned q) { return kQuads ? kColumnsPerLane * lane + q : lane + 32 * q; };
  for (uint32_t r = blockIdx.y; r < a.batch.rows; r += gridDim.y) {
    const SparseRow s = sparse_row(a.data, a.batch, r);
    const uint64_t segments = row_segments(s, f.segment);
    if (blockIdx.x > 0 && blockIdx.x >= segments) continue;  // the whole block: no barrier is skipped by part
    const uint64_t begin = s.begin + static_cast<uint64_t>(blockIdx.x) * f.segment;
    const uint64_t end = min(s.end, begin + f.segment);
    const bool direct = segments <= 1;
    float* out = direct ? a.unit + static_cast<uint64_t>(r) * a.stride
                        : static_cast<float*>(a.scratch) + (static_cast<uint64_t>(r) * f.segments + blockIdx.x) * a.stride;
    for (uint32_t j0 = blockIdx.z * kTile; j0 < a.stride; j0 += gridDim.z * kTile) {
      float acc[kColumnsPerLane] = {};
      for (uint64_t c = begin + 32ull * warp; c < end; c += 32ull * kForwardWarps) {
        const Chunk mine = load_chunk(a.data, a.denoise, s, c, end, lane);
        const unsigned n = static_cast<unsigned>(min(uint64_t{32}, end - c));
#pragma unroll(kQuads ? 16 : 8)
        for (unsigned k = 0; k < n; ++k) {
          const float v = __shfl_sync(gpu::kFullMask, mine.value, k);
          const uint32_t unit = __shfl_sync(gpu::kFullMask, mine.index, k);
          // A zero input adds nothing (its own row is not read: row 0 stands in). No branch around the
          // loads, so the unrolled iterations' loads are all in flight at once.
          const bool live = v != 0.0f;
          const float* w = a.weights + static_cast<uint64_t>(live ? unit : 0u) * a.stride + j0;
          if constexpr (kQuads) {
            if (j0 + column(0) < a.stride) {
              const float4 x = *reinterpret_cast<const float4*>(w + column(0));
              acc[0] = live ? acc[0] + v * x.x : acc[0];
              acc[1] = live ? acc[1] + v * x.y : acc[1];
              acc[2] = live ? acc[2] + v * x.z : acc[2];
              acc[3] = live ? acc[3] + v * x.w : acc[3];
            }
          } else {
#pragma unroll
            for (unsigned q = 0; q < kColumnsPerLane; ++q) {
              if (j0 + column(q) < a.stride) {
                const float x = w[column(q)];
                acc[q] = live ? acc[q] + v * x : acc[q];
              }
            }
          }
        }
      }
#pragma unroll
      for (unsigned q = 0; q < kColumnsPerLane; ++q) partial[warp][column(q)] = acc[q];
      __syncthreads();
      for (uint32_t t = threadIdx.x; t < kTile && j0 + t < a.stride; t += blockDim.x) {
        float sum = direct && a.accumulate ? out[j0 + t] : 0.0f;
        for (unsigned w = 0; w < kForwardWarps; ++w) sum += partial[w][t];
        out[j0 + t] = direct ? finish(sum, r, j0 + t) : sum;
      }
      __syncthreads();  // partial[] is rewritten by the next tile
    }
  }
}

// Rows of several segments: their partial sums added in segment order, then finished. Rows over the
// grid's y, column chunks over its x: only the long rows have work, so a block a row left most
// multiprocessors idle.
__global__ void sparse_forward_combine_kernel(SparseForwardArgs a, gpu::ForwardSplit f) {
  gpu::await_previous();
  for (uint32_t r = blockIdx.y; r < a.batch.rows; r += gridDim.y) {
    const uint64_t segments = row_segments(sparse_row(a.data, a.batch, r), f.segment);
    if (segments <= 1) continue;
    const float* part = static_cast<const float*>(a.scratch) + static_cast<uint64_t>(r) * f.segments * a.stride;
    float* out = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < a.stride; j += gridDim.x * blockDim.x) {
      float sum = a.accumulate ? out[j] : 0.0f;
      for (uint64_t g = 0; g < segments; ++g) sum += part[g * a.stride + j];
      out[j] = a.finish.unit ? Finishing{a.finish}(sum, r, j) : sum;
    }
  }
}

// ---- sparse_gradient ------------------------------------------------------------------------------

constexpr unsigned kRowThreads = 128;  // datapoints of one row per block
constexpr uint32_t kWarpBucket = 32;  // largest bucket one warp sums alone

// Calls f(live, unit, row, position in the row, value) for every datapoint of the batch, live for an
// in-range unit with a non-zero value (a zero adds nothing: its unit may stay absent). Block (x, y) takes
// datapoints x * kRowThreads, + gridDim.x * kRowThreads, ... of rows y, y + gridDim.y, ...: a long row is
// spread over blocks, so no thread waits on a chain of atomics. A warp's lanes always call f together
// (dead lanes with live false), so f may use warp collectives.
template <class F>
__device__ __forceinline__ void for_each_datapoint(const SparseData& d, const Denoise& n, const BatchRows& b,
                                                   uint32_t units, F f) {
  const unsigned lane = threadIdx.x & 31u;
  for (uint32_t r = blockIdx.y; r < b.rows; r += gridDim.y) {
    const SparseRow s = sparse_row(d, b, r);
    for (uint64_t i0 = s.begin + uint64_t{blockIdx.x} * blockDim.x + (threadIdx.x & ~31u); i0 < s.end;
         i0 += uint64_t{gridDim.x} * blockDim.x) {
      const uint64_t i = i0 + lane;
      const uint32_t u = i < s.end ? d.index[i] : units;
      const float v = u < units ? datapoint_value(d, n, s, i) : 0.0f;  // an out-of-range unit is dropped
      f(v != 0.0f, u, r, i - s.begin, v);
    }
  }
}

// Step 1: datapoints per unit; the first to count a unit lists it as present (one atomic on the list's
// length per warp) and stamps its gradient row.
__global__ void __launch_bounds__(kRowThreads) count_kernel(SparseData d, Denoise n, BatchRows b, uint32_t units,
                                                            GradientScratch g, uint32_t* row_stamp, uint32_t stamp) {
  gpu::await_previous();
  const unsigned lane = threadIdx.x & 31u;
  for_each_datapoint(d, n, b, units, [&g, lane, row_stamp, stamp](bool live, uint32_t u, uint32_t, uint64_t, float) {
    const bool first = live && atomicAdd(&g.count[u], 1u) == 0;
    if (first && row_stamp) row_stamp[u] = stamp;
    const unsigned firsts = __ballot_sync(gpu::kFullMask, first);
    if (firsts == 0) return;
    const unsigned leader = __ffs(firsts) - 1;
    uint32_t at = 0;
    if (lane == leader) at = atomicAdd(g.present_count, static_cast<uint32_t>(__popc(firsts)));
    at = __shfl_sync(gpu::kFullMask, at, leader);
    if (first) g.present[at + __popc(firsts & ((1u << lane) - 1u))] = u;
  });
}

// for_each_datapoint's grid for a batch: a block of kRowThreads datapoints for each of its longest row's
// chunks (at most 64), by rows.
dim3 datapoint_grid(uint64_t longest, uint32_t rows) {
  return dim3(static_cast<unsigned>(std::clamp<uint64_t>((longest + kRowThreads - 1) / kRowThreads, 1, 64)),
              std::min<uint32_t>(rows, 65535));
}

// mark_rows: the rows count_kernel stamps (a live datapoint's unit); every writer of a unit writes the same.
__global__ void __launch_bounds__(kRowThreads) mark_rows_kernel(MarkRowsArgs a) {
  gpu::await_previous();
  for_each_datapoint(a.data, a.denoise, a.batch, a.input_units, [&a](bool live, uint32_t u, uint32_t, uint64_t, float) {
    if (live) a.stamp_of[u] = a.stamp;
  });
}

// Step 2: a bucket for each present unit, a warp's buckets side by side (one atomic on the cursor per
// warp). The cursor never passes the capacity: the buckets hold exactly the batch's non-zero datapoints,
// whose count the host checked against it.
__global__ void allocate_kernel(GradientScratch g) {
  gpu::await_previous();
  const uint32_t present = *g.present_count;
  const unsigned lane = threadIdx.x & 31u;
  for (uint64_t p0 = gpu::global_thread() & ~uint64_t{31}; p0 < present; p0 += gpu::grid_threads()) {
    const uint64_t p = p0 + lane;
    const bool live = p < present;
    const uint32_t u = live ? g.present[p] : 0u;
    const uint32_t n = live ? g.count[u] : 0u;
    uint32_t end = n;  // inclusive scan over the warp
    for (unsigned o = 1; o < 32; o <<= 1) {
      const uint32_t below = __shfl_up_sync(gpu::kFullMask, end, o);
      if (lane >= o) end += below;
    }
    uint32_t at = 0;
    if (lane == 31) at = atomicAdd(g.cursor, end);
    at = __shfl_sync(gpu::kFullMask, at, 31) + end - n;
    if (live) {
      g.start[u] = at;
      g.begin[p] = at;
      g.size[p] = n;
      if (n > kWarpBucket) g.large[atomicAdd(g.large_count, 1u)] = static_cast<uint32_t>(p);  // few
    }
  }
}

// Step 3: every datapoint into its unit's bucket, counting the unit back down to zero.
__global__ void __launch_bounds__(kRowThreads) place_kernel(SparseData d, Denoise n, BatchRows b, uint32_t units,
                                                            GradientScratch g) {
  gpu::await_previous();
  for_each_datapoint(d, n, b, units, [&g](bool live, uint32_t u, uint32_t r, uint64_t position, float v) {
    if (!live) return;
    const uint32_t slot = g.start[u] + atomicSub(&g.count[u], 1u) - 1u;
    g.key[slot] = (static_cast<uint64_t>(r) << 32) | position;
    g.value[slot] = v;
  });
}

// Step 4: each present unit's gradient row, gradient[u][j] = scale * sum of value * delta[row][j] over
// its bucket in batch-row order (sum first, scale last, as the CPU target). A datapoint's rank in its
// bucket is the number of smaller keys. Most buckets are small: a warp each (ranked with shuffles); the
// few of more than 32 datapoints (popular units) are ranked and summed by a block each, its warps summing
// consecutive slices of the bucket, added in slice order. Either way the order depends only on the data.
// Rows wider than one pass of columns are split over warps (small buckets) or blocks (large ones, ranked
// first by a kernel of their own) a pass each, so the popular units' long sums run side by side and no
// warp is left with several whole rows (a pass never changes the order of a column's sum).
// Columns per lane and pass (j0 + lane + 32 q): 4 for rows of up to 128 columns, 8 for wider ones (more
// loads in flight, half the passes).
constexpr unsigned kNarrowColumns = 4, kWideColumns = 8;
constexpr unsigned kSliceWarps = 8;   // warps of a large bucket's block

// acc[q] += value[e] * delta[row[e]][j0 + lane + 32 q] for e in [lo, hi), in order.
template <unsigned Columns>
__device__ __forceinline__ void sum_slice(const uint32_t* row, const float* value, uint32_t lo, uint32_t hi,
                                          const float* delta, uint32_t stride, uint32_t j0, unsigned lane,
                                          float (&acc)[Columns]) {
#pragma unroll 4
  for (uint32_t e = lo; e < hi; ++e) {
    const float v = value[e];
    const float* d = delta + static_cast<uint64_t>(row[e]) * stride + j0 + lane;
#pragma unroll
    for (unsigned q = 0; q < Columns; ++q)
      if (j0 + lane + 32 * q < stride) acc[q] += v * d[32 * q];
  }
}

// Passes of 32 x Columns columns over a row of `stride`.
template <unsigned Columns>
__host__ __device__ __forceinline__ uint32_t column_passes(uint32_t stride) {
  return (stride + 32 * Columns - 1) / (32 * Columns);
}

// Where a unit's gradient row goes: written to the gradient, or (kStep, SparseGradientArgs::step) into the
// step of its parameters. A thread puts up to `Columns` columns of the row, `spacing` apart from `first`;
// stepping, their weights are loaded as the row begins, so that the loads run beside its sum (loaded after
// it, the sample's small and large buckets took 23 + 16 us a step; so, 16 + 15; H200 traces).
template <bool kStep, unsigned Columns>
struct RowOut {
  float* gradient;
  const UpdateArgs& step;  // kStep: the listed rows' update (the kernel's parameter)
  Stepper stepper;
  uint64_t row = 0;  // the unit's first parameter
  float w[Columns];  // kStep: the thread's columns' weights

  __device__ RowOut(float* out, const UpdateArgs& s) : gradient(out), step(s), stepper(step) {}
  __device__ __forceinline__ void begin(uint32_t unit, uint32_t stride, uint32_t first, uint32_t spacing) {
    row = static_cast<uint64_t>(unit) * stride;
    if constexpr (kStep) {
#pragma unroll
      for (unsigned c = 0; c < Columns; ++c) {
        const uint32_t j = first + c * spacing;
        w[c] = j < stride ? step.weights[row + j] : 0.0f;
      }
    }
  }
  // The thread's column c (column j of the row): its gradient g, rounded (__fmul_rn: never contracted
  // into the step's arithmetic, so that the step has the bits of one reading the gradient back).
  __device__ __forceinline__ void put(unsigned c, uint32_t j, float g) {
    if constexpr (kStep)
      stepper.given(row + j, w[c], g);
    else
      gradient[row + j] = g;
  }
  // Every thread of the block calls this once, at its end.
  __device__ __forceinline__ void end() {
    if constexpr (kStep)
      if (step.regularization) gpu::add_fixed(step.regularization, stepper.regularization);
  }
};

// A warp per (small bucket, pass). Six blocks a multiprocessor (40 registers, 4 bytes spilled; 45 and five
// blocks otherwise): the benchmark's epoch 0.6 % shorter, H100. Stepping, four (64 registers, none spilled;
// five, 48 registers and 32 bytes spilled, ran the sample the same, H200).
template <unsigned Columns, bool kStep>
__global__ void __launch_bounds__(gpu::kThreads, kStep ? 4 : 6)
    small_bucket_kernel(GradientScratch g, const float* delta, float* gradient, uint32_t stride, float scale,
                        UpdateArgs step) {
  gpu::await_previous();
  RowOut<kStep, Columns> out(gradient, step);
  __shared__ uint32_t rows[gpu::kThreads / 32][kWarpBucket];
  __shared__ float values[gpu::kThreads / 32][kWarpBucket];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const uint32_t passes = column_passes<Columns>(stride);
  const uint64_t items = uint64_t{*g.present_count} * passes;
  for (uint64_t q = gpu::global_thread() >> 5; q < items; q += gpu::grid_threads() >> 5) {
    const auto p = static_cast<uint32_t>(q / passes);
    const uint32_t n = g.size[p];
    if (n > kWarpBucket) continue;  // the large-bucket kernels'
    const uint32_t base = g.begin[p];
    const uint64_t key = lane < n ? g.key[base + lane] : ~0ull;
    uint32_t rank = 0;
    for (uint32_t c = 0; c < n; ++c) rank += __shfl_sync(gpu::kFullMask, key, c) < key ? 1u : 0u;
    __syncwarp();  // the previous item's rows are read
    if (lane < n) {
      rows[warp][rank] = static_cast<uint32_t>(key >> 32);
      values[warp][rank] = g.value[base + lane];
    }
    __syncwarp();
    const uint32_t j0 = static_cast<uint32_t>(q % passes) * 32 * Columns;
    out.begin(g.present[p], stride, j0 + lane, 32);
    float acc[Columns] = {};
    sum_slice(rows[warp], values[warp], 0, n, delta, stride, j0, lane, acc);
#pragma unroll
    for (unsigned c = 0; c < Columns; ++c)
      if (j0 + lane + 32 * c < stride) out.put(c, j0 + lane + 32 * c, __fmul_rn(acc[c], scale));
  }
  out.end();
}

// Large bucket p's datapoints in batch-row order at their slots of sorted_row / sorted_value: each ranked
// against the bucket's keys a block at a time (every thread of the block calls this).
__device__ void rank_large_bucket(const GradientScratch& g, uint32_t p, uint64_t* keys) {
  constexpr unsigned kBlock = 32 * kSliceWarps;
  const unsigned t = threadIdx.x;
  const uint32_t n = g.size[p], base = g.begin[p];
  for (uint32_t e0 = 0; e0 < n; e0 += kBlock) {
    const uint32_t e = e0 + t;
    const uint64_t mine = e < n ? g.key[base + e] : ~0ull;
    uint32_t rank = 0;
    for (uint32_t c0 = 0; c0 < n; c0 += kBlock) {
      __syncthreads();  // the previous keys are compared
      if (c0 + t < n) keys[t] = g.key[base + c0 + t];
      __syncthreads();
      const uint32_t cn = min(kBlock, n - c0);
      for (uint32_t c = 0; c < cn; ++c) rank += keys[c] < mine ? 1u : 0u;
    }
    if (e < n) {
      g.sorted_row[base + rank] = static_cast<uint32_t>(mine >> 32);
      g.sorted_value[base + rank] = g.value[base + e];
    }
  }
}

// Rows of several passes: a block per large bucket ranks it first, for the blocks of its passes.
__global__ void __launch_bounds__(32 * kSliceWarps) large_bucket_rank_kernel(GradientScratch g) {
  gpu::await_previous();
  __shared__ uint64_t keys[32 * kSliceWarps];
  const uint32_t large = *g.large_count;
  for (uint32_t i = blockIdx.x; i < large; i += gridDim.x) rank_large_bucket(g, g.large[i], keys);
}

// A block per (large bucket, pass): warp w sums the w-th slice of the ordered bucket, then the slices are
// added in order. Rows of one pass (one block a bucket) rank the bucket here, unless `ranked`.
template <unsigned Columns, bool kStep>
__global__ void __launch_bounds__(32 * kSliceWarps) large_bucket_sum_kernel(GradientScratch g, const float* delta,
                                                                            float* gradient, uint32_t stride,
                                                                            float scale, bool ranked, UpdateArgs step) {
  gpu::await_previous();
  constexpr unsigned kBlock = 32 * kSliceWarps, kPass = 32 * Columns;
  __shared__ float partial[kSliceWarps][kPass];
  __shared__ uint64_t keys[kBlock];
  const unsigned t = threadIdx.x, lane = t & 31u, warp = t >> 5;
  static_assert(kPass <= kBlock, "a thread puts one column of a pass");
  RowOut<kStep, 1> out(gradient, step);
  const uint32_t passes = column_passes<Columns>(stride);
  const uint64_t items = uint64_t{*g.large_count} * passes;
  for (uint64_t q = blockIdx.x; q < items; q += gridDim.x) {
    const uint32_t p = g.large[q / passes], n = g.size[p], base = g.begin[p];
    if (!ranked) {
      rank_large_bucket(g, p, keys);
      __syncthreads();  // the ordered bucket is visible to the whole block
    }
    const uint32_t lo = static_cast<uint32_t>(uint64_t{n} * warp / kSliceWarps);
    const uint32_t hi = static_cast<uint32_t>(uint64_t{n} * (warp + 1) / kSliceWarps);
    const uint32_t j0 = static_cast<uint32_t>(q % passes) * kPass;
    out.begin(g.present[p], stride, t < kPass ? j0 + t : stride, 0);
    float acc[Columns] = {};
    sum_slice(g.sorted_row + base, g.sorted_value + base, lo, hi, delta, stride, j0, lane, acc);
#pragma unroll
    for (unsigned c = 0; c < Columns; ++c) partial[warp][lane + 32 * c] = acc[c];
    __syncthreads();
    if (t < kPass && j0 + t < stride) {
      float sum = 0.0f;
      for (unsigned w = 0; w < kSliceWarps; ++w) sum += partial[w][t];
      out.put(0, j0 + t, __fmul_rn(sum, scale));
    }
    __syncthreads();  // partial[] is rewritten by the next item
  }
  out.end();
}

}  // namespace

void CudaBackend::sparse_forward(const SparseForwardArgs& args) {
  if (args.batch.rows == 0 || args.stride == 0) return;
  DSSTNE_REQUIRE(!args.finish.unit || (!args.accumulate && args.finish.activation.kind != Activation::SoftMax),
                 "sparse_forward: only a whole sum finishes, by an element-wise activation");
  SparseForwardArgs a = args;
  a.finish.activation.fast_math = fast_math();  // as the activation op (activation.cu)
  bind();
  const gpu::ForwardSplit f = gpu::forward_split(a.longest);
  DSSTNE_REQUIRE(f.segments == 1 || a.scratch, "sparse_forward: no scratch for rows of ", a.longest, " datapoints");
  const dim3 grid(f.segments, std::min<uint32_t>(a.batch.rows, 65535),
                  std::clamp<uint32_t>((a.stride + kTile - 1) / kTile, 1, 64));
  const bool quads = a.stride % kColumnsPerLane == 0 && reinterpret_cast<uintptr_t>(a.weights) % 16 == 0;
  const auto gather = [&](auto finish) {
    using F = decltype(finish);
    gpu::launch(dependent_, quads ? sparse_forward_kernel<true, F> : sparse_forward_kernel<false, F>, grid,
                32 * kForwardWarps, 0, stream(), static_cast<const SparseSumArgs&>(a), f, finish);
  };
  if (a.finish.unit)
    gather(Finishing{a.finish});
  else
    gather(Unfinished{});
  if (f.segments > 1)
    gpu::launch(dependent_, sparse_forward_combine_kernel, gpu::row_column_grid(a.batch.rows, a.stride, 128), 128, 0,
                stream(), a, f);
}

size_t CudaBackend::sparse_forward_scratch_bytes(uint32_t rows, uint32_t stride, uint64_t longest) const {
  // Any batch whose longest row is at most `longest` takes at most this many segments a row (the count is
  // not monotone in the row length: a longer row may get longer, hence fewer, segments).
  const uint64_t segments = std::min<uint64_t>(kMaxSegments, (longest + kMinSegment - 1) / kMinSegment);
  return segments > 1 ? sizeof(float) * rows * segments * stride : 0;
}

size_t CudaBackend::sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const {
  if (max_datapoints >= gpu::kMaxGradientCapacity)
    DSSTNE_RAISE(NotSupported, "not supported yet: more than ", gpu::kMaxGradientCapacity - 1,
                 " datapoints in one minibatch (", max_datapoints, ")");
  return gpu::gradient_layout(std::max<size_t>(max_datapoints, 1), input_units).bytes;
}

void CudaBackend::sparse_gradient_plan(const SparseGradientArgs& a) {
  const uint32_t rows = a.batch.rows;
  if (rows == 0 || a.stride == 0 || a.input_units == 0 || a.datapoints == 0) return;
  bind();
  const gpu::GradientLayout L = gpu::gradient_layout(std::max<uint64_t>(a.max_datapoints, 1), a.input_units);
  if (a.datapoints > L.capacity)
    DSSTNE_RAISE(Error, "sparse_gradient: ", a.datapoints, " datapoints in a batch sized for ", L.capacity);
  const GradientScratch g = carve(a.scratch, L);
  cudaStream_t s = stream();
  DSSTNE_CUDA_CHECK(
      cudaMemsetAsync(g.present_count, 0, sizeof(uint32_t) * (gpu::kGradientCounters + size_t{a.input_units}), s));
  const dim3 grid = datapoint_grid(a.longest, rows);
  gpu::launch(dependent_, count_kernel, grid, kRowThreads, 0, s, a.data, a.denoise, a.batch, a.input_units, g,
              a.row_stamp, a.stamp);
  const uint64_t most_present = std::min<uint64_t>(a.datapoints, a.input_units);
  gpu::launch(dependent_, allocate_kernel, gpu::grid_for(most_present), gpu::kThreads, 0, s, g);
  gpu::launch(dependent_, place_kernel, grid, kRowThreads, 0, s, a.data, a.denoise, a.batch, a.input_units, g);
}

void CudaBackend::mark_rows(const MarkRowsArgs& a) {
  if (a.batch.rows == 0 || a.input_units == 0) return;
  bind();
  gpu::launch(dependent_, mark_rows_kernel, datapoint_grid(a.longest, a.batch.rows), kRowThreads, 0, stream(), a);
}

void CudaBackend::sparse_gradient(const SparseGradientArgs& a) {
  if (a.batch.rows == 0 || a.stride == 0 || a.input_units == 0 || a.datapoints == 0) return;
  if (!a.planned) sparse_gradient_plan(a);
  bind();
  const gpu::GradientLayout L = gpu::gradient_layout(std::max<uint64_t>(a.max_datapoints, 1), a.input_units);
  const GradientScratch g = carve(a.scratch, L);
  cudaStream_t s = stream();
  const uint64_t most_present = std::min<uint64_t>(a.datapoints, a.input_units);
  // Each loops over its items; as many blocks as keep the device busy.
  const uint64_t busy = static_cast<uint64_t>(props_.multiProcessorCount) * 8;
  const UpdateArgs step = a.step ? *a.step : UpdateArgs{};
  const auto sums = [&](auto columns, auto stepping) {
    constexpr unsigned kColumns = decltype(columns)::value;
    constexpr bool kStep = decltype(stepping)::value;
    const uint32_t passes = column_passes<kColumns>(a.stride);
    const auto blocks = [busy](uint64_t n) { return static_cast<unsigned>(std::clamp<uint64_t>(n, 1, busy)); };
    if (passes > 1)
      gpu::launch(dependent_, large_bucket_rank_kernel, blocks(most_present), 32 * kSliceWarps, 0, s, g);
    const uint64_t items = most_present * passes;
    gpu::launch(dependent_, small_bucket_kernel<kColumns, kStep>, blocks((items + 7) / 8), gpu::kThreads, 0, s, g,
                a.delta, a.gradient, a.stride, a.scale, step);
    gpu::launch(dependent_, large_bucket_sum_kernel<kColumns, kStep>, blocks(items), 32 * kSliceWarps, 0, s, g,
                a.delta, a.gradient, a.stride, a.scale, passes > 1, step);
  };
  const auto with_columns = [&](auto stepping) {
    if (a.stride > 32 * kNarrowColumns)
      sums(std::integral_constant<unsigned, kWideColumns>{}, stepping);
    else
      sums(std::integral_constant<unsigned, kNarrowColumns>{}, stepping);
  };
  if (a.step)
    with_columns(std::true_type{});
  else
    with_columns(std::false_type{});
}

}  // namespace dsstne
