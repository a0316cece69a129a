// Workspace layouts of the ops that need scratch (sparse_gradient, topk): byte offsets into the caller's
// scratch buffer. The sizing functions and the ops compute the same layout, CUB temp storage included.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsstne::gpu {

constexpr size_t kScratchAlign = 256;
inline size_t align_scratch(size_t bytes) { return (bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

// Largest datapoint capacity: bucket slots are uint32.
constexpr size_t kMaxGradientCapacity = size_t{1} << 31;
// sparse_gradient's counters before the per-unit counts (one clear): present units, bucket cursor, large
// buckets.
constexpr size_t kGradientCounters = 3;

// sparse_gradient: per-unit counts (after the counters: one clear), bucket starts, the present units with
// their buckets and the list of large ones, the bucketed datapoints and the ordered large buckets.
struct GradientLayout {
  size_t capacity = 0;  // datapoints per batch it holds
  size_t counters = 0;                      // uint32 [kGradientCounters + units]
  size_t start = 0;                         // uint32 [units]
  size_t present = 0, begin = 0, size = 0, large = 0;  // uint32 [min(capacity, units)]
  size_t key = 0;                           // uint64 [capacity]
  size_t value = 0, sorted_row = 0, sorted_value = 0;  // uint32 / float [capacity]
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
