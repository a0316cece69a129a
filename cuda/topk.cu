// Top-K twin on the GPU. Each row's scores become order-preserving integer keys (excluded columns get
// key 0, below every score), CUB's segmented radix sort orders (key, column) pairs of every row
// descending and stably (ties keep the lower column first, as on the CPU target), and the first k
// positions are written out, padded past the row's candidates.
#include <cub/cub.cuh>

#include <algorithm>
#include <climits>
#include <cmath>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"

namespace dsstne {
namespace gpu {

uint32_t topk_pass_rows(uint32_t rows, uint32_t width) {
  const uint64_t per_pass = std::max<uint64_t>(1, INT_MAX / std::max<uint32_t>(width, 1));
  return static_cast<uint32_t>(std::min<uint64_t>(rows, per_pass));
}

TopKLayout topk_layout(uint32_t rows, uint32_t width) {
  const uint64_t items = static_cast<uint64_t>(rows) * width;
  if (items > INT_MAX) DSSTNE_RAISE(NotSupported, "not supported yet: top-k over rows of more than ", INT_MAX, " columns");
  TopKLayout L;
  L.rows = rows;
  L.width = width;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at = align_scratch(at + bytes);
    return here;
  };
  for (int b = 0; b < 2; ++b) {
    L.keys[b] = take(sizeof(uint32_t) * items);
    L.columns[b] = take(sizeof(uint32_t) * items);
  }
  L.offsets = take(sizeof(int) * (static_cast<size_t>(rows) + 1));
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr), columns(nullptr, nullptr);
  size_t temp = 0;
  DSSTNE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, temp, keys, columns, static_cast<int>(items), static_cast<int>(rows),
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr)));
  L.temp_bytes = std::max<size_t>(temp, 1);
  L.temp = take(L.temp_bytes);
  L.bytes = at;
  return L;
}

}  // namespace gpu

namespace {

constexpr uint32_t kExcluded = 0;  // key of an excluded column: below every score
constexpr uint32_t kNaN = 1;       // NaN ranks below every number (the CPU target leaves it unordered)

// Float -> uint32 with the same order: the smallest number (-inf) maps to 0x007FFFFF, above kNaN.
// -0 and +0 share a key, so they tie and fall back to column order as on the CPU target.
__device__ __forceinline__ uint32_t order_key(float x) {
  if (isnan(x)) return kNaN;
  const uint32_t bits = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

struct Pass {
  uint32_t first, rows;  // batch rows [first, first + rows)
  uint32_t* keys;
  uint32_t* columns;
  int* offsets;
};

__global__ void topk_keys_kernel(TopKArgs a, Pass p) {
  const uint64_t items = static_cast<uint64_t>(p.rows) * a.width;
  const uint64_t n = max(items, static_cast<uint64_t>(p.rows) + 1);
  for (uint64_t q = gpu::global_thread(); q < n; q += gpu::grid_threads()) {
    if (q < items) {
      const uint64_t r = q / a.width, j = q % a.width;
      p.keys[q] = order_key(a.scores[(p.first + r) * a.stride + j]);
      p.columns[q] = static_cast<uint32_t>(j);
    }
    if (q <= p.rows) p.offsets[q] = static_cast<int>(q * a.width);
  }
}

// One block per row: its excluded columns get the excluded key (several writers of one key agree).
__global__ void topk_exclude_kernel(TopKArgs a, Pass p) {
  for (uint32_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const SparseRow ex = sparse_row(a.exclude, a.batch, p.first + r);
    for (uint64_t i = ex.begin + threadIdx.x; i < ex.end; i += blockDim.x) {
      const uint32_t j = a.exclude.index[i];
      if (j < a.width) p.keys[static_cast<uint64_t>(r) * a.width + j] = kExcluded;
    }
  }
}

// The first k sorted positions of each row; excluded columns sort last and are never emitted.
__global__ void topk_emit_kernel(TopKArgs a, Pass p, const uint32_t* keys, const uint32_t* columns) {
  const uint64_t n = static_cast<uint64_t>(p.rows) * a.k;
  for (uint64_t q = gpu::global_thread(); q < n; q += gpu::grid_threads()) {
    const uint64_t r = q / a.k, i = q % a.k;
    const uint64_t sorted = r * a.width + i;
    const uint64_t out = (p.first + r) * a.k + i;
    if (i < a.width && keys[sorted] != kExcluded) {
      const uint32_t column = columns[sorted];
      a.out_scores[out] = a.scores[(p.first + r) * a.stride + column];
      a.out_index[out] = column;
    } else {
      a.out_scores[out] = -INFINITY;
      a.out_index[out] = 0xFFFFFFFFu;
    }
  }
}

}  // namespace

size_t CudaBackend::topk_scratch_bytes(uint32_t rows, uint32_t stride) const {
  if (rows == 0 || stride == 0) return 0;
  bind();
  return gpu::topk_layout(gpu::topk_pass_rows(rows, stride), stride).bytes;
}

void CudaBackend::topk(const TopKArgs& a) {
  if (a.rows == 0 || a.k == 0) return;
  bind();
  cudaStream_t s = stream();
  if (a.width == 0) {  // no candidates: every slot is padding
    const Pass p{0, a.rows, nullptr, nullptr, nullptr};
    topk_emit_kernel<<<gpu::grid_for(static_cast<uint64_t>(a.rows) * a.k), gpu::kThreads, 0, s>>>(a, p, nullptr, nullptr);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  const uint32_t pass_rows = gpu::topk_pass_rows(a.rows, a.width);
  const gpu::TopKLayout L = gpu::topk_layout(pass_rows, a.width);
  char* base = static_cast<char*>(a.scratch);
  auto* keys0 = reinterpret_cast<uint32_t*>(base + L.keys[0]);
  auto* keys1 = reinterpret_cast<uint32_t*>(base + L.keys[1]);
  auto* columns0 = reinterpret_cast<uint32_t*>(base + L.columns[0]);
  auto* columns1 = reinterpret_cast<uint32_t*>(base + L.columns[1]);
  auto* offsets = reinterpret_cast<int*>(base + L.offsets);
  // The segmented sort counts items in int: very wide batches are sorted a group of rows at a time.
  for (uint32_t first = 0; first < a.rows; first += pass_rows) {
    const uint32_t rows = std::min(pass_rows, a.rows - first);
    const Pass p{first, rows, keys0, columns0, offsets};
    const uint64_t items = static_cast<uint64_t>(rows) * a.width;
    topk_keys_kernel<<<gpu::grid_for(std::max<uint64_t>(items, rows + 1ull)), gpu::kThreads, 0, s>>>(a, p);
    DSSTNE_LAUNCH_CHECK();
    if (a.exclude.start) {
      topk_exclude_kernel<<<gpu::row_grid(rows), gpu::kThreads, 0, s>>>(a, p);
      DSSTNE_LAUNCH_CHECK();
    }
    cub::DoubleBuffer<uint32_t> keys(keys0, keys1), columns(columns0, columns1);
    size_t temp_bytes = L.temp_bytes;
    DSSTNE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        base + L.temp, temp_bytes, keys, columns, static_cast<int>(items), static_cast<int>(rows),
        static_cast<const int*>(offsets), static_cast<const int*>(offsets) + 1, 0, 32, s));
    topk_emit_kernel<<<gpu::grid_for(static_cast<uint64_t>(rows) * a.k), gpu::kThreads, 0, s>>>(
        a, p, keys.Current(), columns.Current());
    DSSTNE_LAUNCH_CHECK();
  }
}

}  // namespace dsstne
