// Workspace layouts of the ops that need scratch (sparse_gradient, topk): byte offsets into the caller's
// scratch buffer. The sizing functions and the ops compute the same layout, CUB temp storage included.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsstne::gpu {

constexpr size_t kScratchAlign = 256;
inline size_t align_scratch(size_t bytes) { return (bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

// Blocks enumerating a batch's datapoints: fixed, so their partial totals fit a fixed header.
constexpr uint32_t kEnumBlocks = 1024;
// Largest datapoint capacity: ordinals are uint32 and the pad key needs headroom.
constexpr size_t kMaxGradientCapacity = size_t{1} << 31;

// sparse_gradient: per batch datapoint ordinal p a (unit key, ordinal) pair double-buffered for the radix
// sort, its batch row and input value; run starts; CUB temp storage shared by the sort and the scan.
struct GradientLayout {
  size_t capacity = 0;   // datapoints per batch it holds
  int key_bits = 0;      // radix bits of the unit keys (pad key = input_units)
  size_t block_total = 0, block_base = 0;  // uint64 [kEnumBlocks]
  size_t counters = 0;                     // uint32 [2]: datapoints enumerated (<= capacity), runs
  size_t keys[2] = {0, 0}, ordinals[2] = {0, 0};  // uint32 [capacity]
  size_t row = 0, value = 0;               // uint32 / float [capacity], by ordinal
  size_t run_start = 0;                    // uint32 [capacity + 1]
  size_t temp = 0, temp_bytes = 0;
  size_t bytes = 0;
};
GradientLayout gradient_layout(size_t capacity, uint32_t input_units);

// sparse_forward: each row's datapoints in segments of `segment` (whole chunks of 32), one block per
// segment; rows of more than one segment leave partial sums [rows][segments][stride] in the scratch for a
// combining pass. A heavy-tailed row (thousands of items) is thus spread over many multiprocessors.
struct ForwardSplit {
  uint32_t segment = 0;   // datapoints per block
  uint32_t segments = 1;  // blocks per row: enough for the longest row
};
ForwardSplit forward_split(uint64_t longest);

// topk: (ordered score key, column) pairs of `rows` rows of `width` columns double-buffered for the
// segmented sort, the segment offsets, CUB temp storage.
struct TopKLayout {
  uint32_t rows = 0, width = 0;
  size_t keys[2] = {0, 0}, columns[2] = {0, 0};  // uint32 [rows * width]
  size_t offsets = 0;                            // int [rows + 1]
  size_t temp = 0, temp_bytes = 0;
  size_t bytes = 0;
};
// Rows sorted per pass: the segmented sort counts items in int.
uint32_t topk_pass_rows(uint32_t rows, uint32_t width);
TopKLayout topk_layout(uint32_t rows, uint32_t width);

}  // namespace dsstne::gpu
