// Launch shapes shared by the kernels. Kernels loop grid-stride (or block-stride over rows), so a capped
// grid covers any size; indices into [rows][stride] matrices are 64-bit.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "check.cuh"

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

// Dependent launch (compute capability 9.0 on). A training step is a chain of kernels on one stream, and
// each one's launch used to wait for the one before it to end: 1.8 µs a gap, 12 gaps on a sample step's
// main stream, 10 % of the step (measured on an H100). A kernel launched by launch() with `dependent` is
// scheduled while the one before it runs, waits in await_previous() until that one has finished and its
// writes are visible, and from then lets the next one be scheduled. Every kernel launched that way calls
// await_previous() before it touches memory (or last, where all it reads was written before the one before
// it got past its own wait: the update's rest after a large item); elsewhere (older cards, a plain launch)
// the call does nothing.
__device__ __forceinline__ void await_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// kernel<<<grid, block, shared, stream>>>(args...), as a dependent launch when `dependent` (the device's
// compute capability is 9.0 or more), with the launch's error checked.
template <class... Params, class... Args>
void launch(bool dependent, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
            Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = dependent ? &attribute : nullptr;
  config.numAttrs = dependent ? 1 : 0;
  DSSTNE_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace dsstne::gpu
