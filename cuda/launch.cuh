// Launch shapes shared by the kernels. Kernels loop grid-stride (or block-stride over rows), so a capped
// grid covers any size; indices into [rows][stride] matrices are 64-bit.
#pragma once

#include <algorithm>
#include <cstdint>

namespace dsstne::gpu {

constexpr unsigned kThreads = 256;            // default block size (a multiple of the warp size)
constexpr uint64_t kMaxBlocks = 1ull << 16;   // grid cap: the loops stride over the rest
constexpr unsigned kFullMask = 0xFFFFFFFFu;
// Column reductions over fewer blocks than this take 32 row groups a block instead of 8, so that each
// thread has few rows. A constant (an H100's multiprocessor count), not the card's: the sums' order must
// depend only on the shapes.
constexpr unsigned kFewColumnBlocks = 132;

// Blocks for a grid-stride loop over `items` elements (at least 1; callers skip empty work).
inline unsigned grid_for(uint64_t items, unsigned threads = kThreads) {
  return static_cast<unsigned>(std::clamp<uint64_t>((items + threads - 1) / threads, 1, kMaxBlocks));
}

// Blocks for one-block-per-row kernels.
inline unsigned row_grid(uint64_t rows) { return static_cast<unsigned>(std::clamp<uint64_t>(rows, 1, kMaxBlocks)); }

// Blocks for one-warp-per-row kernels.
inline unsigned warp_row_grid(uint64_t rows, unsigned threads = kThreads) {
  const uint64_t warps = threads / 32;
  return static_cast<unsigned>(std::clamp<uint64_t>((rows + warps - 1) / warps, 1, kMaxBlocks));
}

// A 2-D grid for [rows][stride] element-wise kernels: y over rows, x over column chunks, so a batch of a
// few hundred wide rows still fills the device (one block per row left most multiprocessors idle).
inline dim3 row_column_grid(uint64_t rows, uint64_t stride, unsigned threads = kThreads) {
  const uint64_t chunks = std::clamp<uint64_t>((stride + threads - 1) / threads, 1, 64);
  return dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(std::clamp<uint64_t>(rows, 1, 65535)));
}

// Threads of a block looping over `stride` columns: enough warps to cover narrow rows, at most kThreads.
inline unsigned column_threads(uint32_t stride) {
  const uint64_t warps = (static_cast<uint64_t>(stride) + 31) / 32;
  return static_cast<unsigned>(std::clamp<uint64_t>(warps * 32, 32, kThreads));
}

__device__ __forceinline__ uint64_t global_thread() {
  return static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ uint64_t grid_threads() { return static_cast<uint64_t>(gridDim.x) * blockDim.x; }

}  // namespace dsstne::gpu
