// Small views passed by value to ops: raw pointers into target memory plus sizes. They own nothing.
#pragma once

#include <cstdint>

#include "dsstne/hd.h"

namespace dsstne {

// The rows of one minibatch: row r is example order[position + r].
struct BatchRows {
  const uint32_t* order = nullptr;
  uint32_t position = 0;
  uint32_t rows = 0;
};

// Examples stored as compressed sparse rows. value == nullptr means Boolean data (every value 1).
struct SparseData {
  const uint64_t* start = nullptr;  // [unique examples]
  const uint64_t* end = nullptr;    // [unique examples]
  const uint32_t* index = nullptr;  // [datapoints]
  const float* value = nullptr;     // [datapoints] or nullptr
  const float* weight = nullptr;    // [examples] per-example weight (Weighted) or nullptr
  const uint32_t* indexed = nullptr;  // [examples] example -> unique row (Indexed) or nullptr
};

// Examples stored densely, row-major [unique example][stride].
struct DenseData {
  const float* data = nullptr;
  uint32_t stride = 0;
  const float* weight = nullptr;
  const uint32_t* indexed = nullptr;
};

// Denoising of sparse inputs: a stored datapoint survives when its uniform draw is >= p; survivors x q.
struct Denoise {
  float p = 0.0f;
  float q = 1.0f;
  uint64_t key = 0;  // rng key of this epoch; the counter is the datapoint's position in the dataset
};

DSSTNE_HD uint32_t example_of(const BatchRows& b, uint32_t r) { return b.order[b.position + r]; }
DSSTNE_HD uint32_t row_of(const uint32_t* indexed, uint32_t example) {
  return indexed ? indexed[example] : example;
}
DSSTNE_HD float weight_of(const float* weight, uint32_t example) { return weight ? weight[example] : 1.0f; }

}  // namespace dsstne
