// Sparse input layer twins on the GPU: gather-sum forward, deterministic transposed weight gradient,
// clearing of the batch's gradient rows.
//
// sparse_gradient without float atomics: the batch's datapoints are enumerated in batch-row order
// (ordinal p), the (input unit, p) pairs are sorted with CUB's stable radix sort, and each run of one unit
// is summed by one block in ordinal order: the CPU target's order. Nothing is allocated and nothing
// waits for the device: the datapoint count and the number of runs live on the device, so every step is
// sized by the scratch capacity and the unused tail is padded with a key past every unit.
#include <cub/cub.cuh>

#include <algorithm>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace gpu {

GradientLayout gradient_layout(size_t capacity, uint32_t input_units) {
  GradientLayout L;
  L.capacity = capacity;
  L.key_bits = 32 - __builtin_clz(std::max<uint32_t>(input_units, 1));  // keys 0..input_units (pad)
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at = align_scratch(at + bytes);
    return here;
  };
  L.block_total = take(sizeof(uint64_t) * kEnumBlocks);
  L.block_base = take(sizeof(uint64_t) * kEnumBlocks);
  L.counters = take(sizeof(uint32_t) * 2);
  for (int b = 0; b < 2; ++b) {
    L.keys[b] = take(sizeof(uint32_t) * capacity);
    L.ordinals[b] = take(sizeof(uint32_t) * capacity);
  }
  L.row = take(sizeof(uint32_t) * capacity);
  L.value = take(sizeof(float) * capacity);
  L.run_start = take(sizeof(uint32_t) * (capacity + 1));
  // CUB's own size queries (null temp storage: nothing runs); the sort and the scan share the space.
  const auto items = static_cast<uint32_t>(capacity);
  size_t sort_bytes = 0, scan_bytes = 0;
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr), ordinals(nullptr, nullptr);
  DSSTNE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, ordinals, items, 0, L.key_bits));
  DSSTNE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<const uint32_t*>(nullptr),
                                                   static_cast<uint32_t*>(nullptr), items));
  L.temp_bytes = std::max<size_t>({sort_bytes, scan_bytes, 1});
  L.temp = take(L.temp_bytes);
  L.bytes = at;
  return L;
}

}  // namespace gpu

namespace {

constexpr unsigned kEnumThreads = 256;
constexpr unsigned kScanThreads = 1024;  // >= gpu::kEnumBlocks: one thread per enumerating block
static_assert(kScanThreads >= gpu::kEnumBlocks, "one scan thread per enumerating block");

// Where one sparse_gradient call finds its pieces inside the scratch buffer.
struct GradientScratch {
  uint64_t* block_total;
  uint64_t* block_base;
  uint32_t* used;      // datapoints enumerated, clamped to the capacity
  uint32_t* num_runs;  // distinct input units in the batch
  uint32_t* keys[2];
  uint32_t* ordinals[2];
  uint32_t* row;       // batch row of ordinal p
  float* value;        // input value of ordinal p (weight, Boolean, denoising applied)
  uint32_t* run_start; // [num_runs + 1]: sorted position where each run begins, then the end of the last
  void* temp;
};

GradientScratch carve(void* scratch, const gpu::GradientLayout& L) {
  char* base = static_cast<char*>(scratch);
  GradientScratch s;
  s.block_total = reinterpret_cast<uint64_t*>(base + L.block_total);
  s.block_base = reinterpret_cast<uint64_t*>(base + L.block_base);
  s.used = reinterpret_cast<uint32_t*>(base + L.counters);
  s.num_runs = s.used + 1;
  for (int b = 0; b < 2; ++b) {
    s.keys[b] = reinterpret_cast<uint32_t*>(base + L.keys[b]);
    s.ordinals[b] = reinterpret_cast<uint32_t*>(base + L.ordinals[b]);
  }
  s.row = reinterpret_cast<uint32_t*>(base + L.row);
  s.value = reinterpret_cast<float*>(base + L.value);
  s.run_start = reinterpret_cast<uint32_t*>(base + L.run_start);
  s.temp = base + L.temp;
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

// Segments of a row (0 for an empty row, whose block 0 still writes its sum).
__device__ __forceinline__ uint64_t row_segments(const SparseRow& s, uint32_t segment) {
  return (s.end - s.begin + segment - 1) / segment;
}

// Block (x, y, z): segment x of batch row y, column tiles z, z + gridDim.z, ... Warp w takes the
// segment's chunks w, w + kForwardWarps, ... (a fixed assignment, so the sum order never changes); a warp
// loads a chunk's 32 indices and values at once (one per lane), then walks them, broadcasting each, with
// lanes over the columns; the block adds the warps' partial sums in warp order. A row of one segment is written directly, the segments of a longer
// row go to the scratch for sparse_forward_combine_kernel.
// (A minimum of one block per multiprocessor lets ptxas keep the 8-deep unrolled loads in registers.)
__global__ void __launch_bounds__(32 * kForwardWarps, 1) sparse_forward_kernel(SparseForwardArgs a, gpu::ForwardSplit f) {
  __shared__ float partial[kForwardWarps][kTile];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
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
#pragma unroll 8
        for (unsigned k = 0; k < n; ++k) {
          const float v = __shfl_sync(gpu::kFullMask, mine.value, k);
          const uint32_t unit = __shfl_sync(gpu::kFullMask, mine.index, k);
          // A zero input adds nothing (its own row is not read: row 0 stands in). No branch around the
          // loads, so the unrolled iterations' loads are all in flight at once.
          const bool live = v != 0.0f;
          const float* w = a.weights + static_cast<uint64_t>(live ? unit : 0u) * a.stride + j0;
#pragma unroll
          for (unsigned q = 0; q < kColumnsPerLane; ++q) {
            const uint32_t j = lane + 32 * q;
            if (j0 + j < a.stride) {
              const float x = w[j];
              acc[q] = live ? acc[q] + v * x : acc[q];
            }
          }
        }
      }
#pragma unroll
      for (unsigned q = 0; q < kColumnsPerLane; ++q) partial[warp][lane + 32 * q] = acc[q];
      __syncthreads();
      for (uint32_t t = threadIdx.x; t < kTile && j0 + t < a.stride; t += blockDim.x) {
        float sum = direct && a.accumulate ? out[j0 + t] : 0.0f;
        for (unsigned w = 0; w < kForwardWarps; ++w) sum += partial[w][t];
        out[j0 + t] = sum;
      }
      __syncthreads();  // partial[] is rewritten by the next tile
    }
  }
}

// Rows of several segments: their partial sums added in segment order.
__global__ void sparse_forward_combine_kernel(SparseForwardArgs a, gpu::ForwardSplit f) {
  for (uint32_t r = blockIdx.x; r < a.batch.rows; r += gridDim.x) {
    const uint64_t segments = row_segments(sparse_row(a.data, a.batch, r), f.segment);
    if (segments <= 1) continue;
    const float* part = static_cast<const float*>(a.scratch) + static_cast<uint64_t>(r) * f.segments * a.stride;
    float* out = a.unit + static_cast<uint64_t>(r) * a.stride;
    for (uint32_t j = threadIdx.x; j < a.stride; j += blockDim.x) {
      float sum = a.accumulate ? out[j] : 0.0f;
      for (uint64_t g = 0; g < segments; ++g) sum += part[g * a.stride + j];
      out[j] = sum;
    }
  }
}

// ---- sparse_gradient ------------------------------------------------------------------------------

// Step 1: datapoints of each enumerating block's contiguous range of batch rows.
__global__ void count_kernel(SparseData data, BatchRows batch, uint32_t rows_per_block, uint64_t* block_total) {
  const uint32_t first = blockIdx.x * rows_per_block;
  const auto last = static_cast<uint32_t>(min(static_cast<uint64_t>(batch.rows), uint64_t{first} + rows_per_block));
  uint64_t count = 0;
  for (uint32_t r = first + threadIdx.x; r < last; r += blockDim.x) {
    const SparseRow s = sparse_row(data, batch, r);
    count += s.end - s.begin;
  }
  count = gpu::block_reduce(count, gpu::Sum{}, uint64_t{0});
  if (threadIdx.x == 0) block_total[blockIdx.x] = count;
}

// Step 2 (one block): each enumerating block's first ordinal, and the datapoints to sort.
__global__ void __launch_bounds__(kScanThreads) block_scan_kernel(const uint64_t* block_total, uint32_t blocks, uint64_t capacity,
                                  uint64_t* block_base, uint32_t* used) {
  using Scan = cub::BlockScan<uint64_t, kScanThreads>;
  __shared__ typename Scan::TempStorage scan;
  const uint64_t mine = threadIdx.x < blocks ? block_total[threadIdx.x] : 0;
  uint64_t base = 0, total = 0;
  Scan(scan).ExclusiveSum(mine, base, total);
  if (threadIdx.x < blocks) block_base[threadIdx.x] = base;
  // A batch beyond the capacity (a wrong max_datapoints) is cut short rather than overrunning scratch.
  if (threadIdx.x == 0) *used = static_cast<uint32_t>(min(total, capacity));
}

// Step 3: every datapoint of the batch gets ordinal p in batch-row order, then stored order. A block walks
// its rows 256 at a time: a block scan of their counts gives each row's first ordinal, then the block's
// threads spread over the chunk's datapoints (a binary search finds each one's row). The tail past the
// datapoints is padded with key input_units, which sorts after every unit.
__global__ void enumerate_kernel(SparseData data, Denoise denoise, BatchRows batch, uint32_t rows_per_block,
                                 uint32_t input_units, GradientScratch g, uint32_t capacity) {
  using Scan = cub::BlockScan<uint64_t, kEnumThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ SparseRow chunk_rows[kEnumThreads];
  __shared__ uint64_t chunk_first[kEnumThreads];
  const uint32_t first = blockIdx.x * rows_per_block;
  const auto last = static_cast<uint32_t>(min(static_cast<uint64_t>(batch.rows), uint64_t{first} + rows_per_block));
  uint64_t carry = g.block_base[blockIdx.x];
  for (uint32_t r0 = first; r0 < last; r0 += kEnumThreads) {
    const uint32_t r = r0 + threadIdx.x;
    uint64_t count = 0;
    if (r < last) {
      chunk_rows[threadIdx.x] = sparse_row(data, batch, r);
      count = chunk_rows[threadIdx.x].end - chunk_rows[threadIdx.x].begin;
    }
    uint64_t offset = 0, chunk_total = 0;
    Scan(scan).ExclusiveSum(count, offset, chunk_total);
    chunk_first[threadIdx.x] = offset;
    __syncthreads();
    const uint32_t n_rows = min(kEnumThreads, last - r0);
    for (uint64_t q = threadIdx.x; q < chunk_total; q += kEnumThreads) {
      // Last chunk row whose first offset <= q: rows with no datapoints share the next row's offset and
      // are skipped by taking the last such row.
      uint32_t lo = 0, hi = n_rows;
      while (hi - lo > 1) {
        const uint32_t mid = (lo + hi) / 2;
        if (chunk_first[mid] <= q) lo = mid; else hi = mid;
      }
      const uint64_t p = carry + q;
      if (p >= capacity) break;
      const SparseRow& s = chunk_rows[lo];
      const uint64_t i = s.begin + (q - chunk_first[lo]);
      const uint32_t unit = data.index[i];
      g.keys[0][p] = unit < input_units ? unit : input_units;  // an out-of-range unit is dropped as padding
      g.ordinals[0][p] = static_cast<uint32_t>(p);
      g.row[p] = r0 + lo;
      g.value[p] = datapoint_value(data, denoise, s, i);
    }
    carry += chunk_total;
    __syncthreads();  // the chunk's shared rows are read before the next chunk overwrites them
  }
  const uint32_t used = *g.used;
  for (uint64_t p = used + gpu::global_thread(); p < capacity; p += gpu::grid_threads()) {
    g.keys[0][p] = input_units;
    g.ordinals[0][p] = static_cast<uint32_t>(p);
  }
}

// Step 5: flag the first sorted position of each unit's run (padding excluded).
__global__ void flag_runs_kernel(const uint32_t* keys, uint32_t capacity, uint32_t pad, uint32_t* flags) {
  for (uint64_t s = gpu::global_thread(); s < capacity; s += gpu::grid_threads()) {
    const uint32_t k = keys[s];
    flags[s] = (k != pad && (s == 0 || keys[s - 1] != k)) ? 1u : 0u;
  }
}

// Step 7: run r begins at run_start[r]; run_start[num_runs] is the end of the last run (the first pad).
__global__ void run_starts_kernel(const uint32_t* keys, const uint32_t* flags, const uint32_t* position,
                                  uint32_t capacity, uint32_t pad, uint32_t* run_start, uint32_t* num_runs) {
  for (uint64_t s = gpu::global_thread(); s < capacity; s += gpu::grid_threads()) {
    const uint32_t k = keys[s];
    if (flags[s] || (k == pad && (s == 0 || keys[s - 1] != pad))) run_start[position[s]] = static_cast<uint32_t>(s);
    if (s == capacity - 1) {
      const uint32_t runs = position[s] + flags[s];
      *num_runs = runs;
      if (k != pad) run_start[runs] = capacity;  // no padding: the last run ends at the capacity
    }
  }
}

// Step 8: one block per run (looping over the runs, whose number only the device knows), threads over
// the columns: gradient[u][j] = scale * sum, in ordinal order, of value * delta[row][j]; sum first, scale
// last, zero values skipped, as the CPU target.
__global__ void run_gradient_kernel(GradientScratch g, const uint32_t* keys, const uint32_t* ordinals,
                                    const float* delta, float* gradient, uint32_t stride, float scale) {
  __shared__ uint32_t row[gpu::kThreads];
  __shared__ float value[gpu::kThreads];
  const uint32_t runs = *g.num_runs;
  for (uint32_t run = blockIdx.x; run < runs; run += gridDim.x) {
    const uint32_t begin = g.run_start[run], end = g.run_start[run + 1];
    float* out = gradient + static_cast<uint64_t>(keys[begin]) * stride;
    for (uint32_t j0 = 0; j0 < stride; j0 += blockDim.x) {
      const uint32_t j = j0 + threadIdx.x;
      const bool mine = j < stride;
      float sum = 0.0f;
      for (uint32_t c = begin; c < end; c += blockDim.x) {
        const uint32_t n = min(blockDim.x, end - c);
        __syncthreads();  // the previous chunk has been consumed
        if (threadIdx.x < n) {
          const uint32_t p = ordinals[c + threadIdx.x];
          row[threadIdx.x] = g.row[p];
          value[threadIdx.x] = g.value[p];
        }
        __syncthreads();
        if (mine) {
          // Branch-free (zero values add nothing), so the unrolled iterations' loads overlap.
#pragma unroll 8
          for (uint32_t q = 0; q < n; ++q) {
            const float v = value[q];
            const float d = delta[static_cast<uint64_t>(row[q]) * stride + j];
            sum = v != 0.0f ? sum + v * d : sum;
          }
        }
      }
      if (mine) out[j] = sum * scale;
    }
  }
}

}  // namespace

void CudaBackend::sparse_forward(const SparseForwardArgs& a) {
  if (a.batch.rows == 0 || a.stride == 0) return;
  bind();
  const gpu::ForwardSplit f = gpu::forward_split(a.longest);
  DSSTNE_REQUIRE(f.segments == 1 || a.scratch, "sparse_forward: no scratch for rows of ", a.longest, " datapoints");
  const dim3 grid(f.segments, std::min<uint32_t>(a.batch.rows, 65535),
                  std::clamp<uint32_t>((a.stride + kTile - 1) / kTile, 1, 64));
  sparse_forward_kernel<<<grid, 32 * kForwardWarps, 0, stream()>>>(a, f);
  DSSTNE_LAUNCH_CHECK();
  if (f.segments > 1) {
    sparse_forward_combine_kernel<<<gpu::row_grid(a.batch.rows), gpu::column_threads(a.stride), 0, stream()>>>(a, f);
    DSSTNE_LAUNCH_CHECK();
  }
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
  bind();
  return gpu::gradient_layout(std::max<size_t>(max_datapoints, 1), input_units).bytes;
}

void CudaBackend::sparse_gradient(const SparseGradientArgs& a) {
  const uint32_t rows = a.batch.rows;
  if (rows == 0 || a.stride == 0 || a.input_units == 0) return;
  bind();
  const gpu::GradientLayout L = gpu::gradient_layout(std::max<uint64_t>(a.max_datapoints, 1), a.input_units);
  if (a.datapoints == 0) return;
  if (a.datapoints > L.capacity)
    DSSTNE_RAISE(Error, "sparse_gradient: ", a.datapoints, " datapoints in a batch sized for ", L.capacity);
  GradientScratch g = carve(a.scratch, L);
  // Only this batch's datapoints are enumerated, sorted and scanned; the layout is the largest batch's.
  const auto cap = static_cast<uint32_t>(a.datapoints);
  const uint32_t pad = a.input_units;
  cudaStream_t s = stream();

  // Enumerate: per-block totals, their scan, then ordinals in batch-row order.
  const auto rows_per_block = static_cast<uint32_t>((uint64_t{rows} + gpu::kEnumBlocks - 1) / gpu::kEnumBlocks);
  const auto blocks = static_cast<uint32_t>((uint64_t{rows} + rows_per_block - 1) / rows_per_block);
  count_kernel<<<blocks, kEnumThreads, 0, s>>>(a.data, a.batch, rows_per_block, g.block_total);
  DSSTNE_LAUNCH_CHECK();
  block_scan_kernel<<<1, kScanThreads, 0, s>>>(g.block_total, blocks, cap, g.block_base, g.used);
  DSSTNE_LAUNCH_CHECK();
  enumerate_kernel<<<blocks, kEnumThreads, 0, s>>>(a.data, a.denoise, a.batch, rows_per_block, a.input_units, g, cap);
  DSSTNE_LAUNCH_CHECK();

  // Stable sort by unit: within a unit the ordinals stay ascending, i.e. in batch-row order.
  cub::DoubleBuffer<uint32_t> keys(g.keys[0], g.keys[1]), ordinals(g.ordinals[0], g.ordinals[1]);
  size_t temp_bytes = L.temp_bytes;
  DSSTNE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(g.temp, temp_bytes, keys, ordinals, cap, 0, L.key_bits, s));

  // Runs of equal unit: flags, their exclusive scan (run index of each head), the run starts. The free
  // halves of the double buffers hold the flags and the scan.
  uint32_t* flags = keys.Alternate();
  uint32_t* position = ordinals.Alternate();
  flag_runs_kernel<<<gpu::grid_for(cap), gpu::kThreads, 0, s>>>(keys.Current(), cap, pad, flags);
  DSSTNE_LAUNCH_CHECK();
  temp_bytes = L.temp_bytes;
  DSSTNE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(g.temp, temp_bytes, static_cast<const uint32_t*>(flags),
                                                   position, cap, s));
  run_starts_kernel<<<gpu::grid_for(cap), gpu::kThreads, 0, s>>>(keys.Current(), flags, position, cap, pad,
                                                                  g.run_start, g.num_runs);
  DSSTNE_LAUNCH_CHECK();

  // One block per run, as many blocks as keep the device busy (runs <= min(capacity, units)).
  const uint64_t most_runs = std::min<uint64_t>(cap, a.input_units);
  const auto run_blocks = static_cast<unsigned>(
      std::clamp<uint64_t>(most_runs, 1, static_cast<uint64_t>(props_.multiProcessorCount) * 8));
  run_gradient_kernel<<<run_blocks, gpu::column_threads(a.stride), 0, s>>>(
      g, keys.Current(), ordinals.Current(), a.delta, a.gradient, a.stride, a.scale);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
