// Reading one sparse example inside a minibatch, shared by both targets.
#pragma once

#include <cstdint>

#include "dsstne/hd.h"
#include "dsstne/rng.h"
#include "dsstne/views.h"

namespace dsstne {

struct SparseRow {
  uint64_t begin, end;  // datapoint range
  float weight;         // per-example weight (1 unless Weighted)
};

DSSTNE_HD SparseRow sparse_row(const SparseData& d, const BatchRows& b, uint32_t r) {
  const uint32_t example = example_of(b, r);
  const uint32_t row = row_of(d.indexed, example);
  return {d.start[row], d.end[row], weight_of(d.weight, example)};
}

// Input value of datapoint i: weight x value (1 for Boolean data), dropped or scaled by q when denoising.
DSSTNE_HD float datapoint_value(const SparseData& d, const Denoise& n, const SparseRow& s, uint64_t i) {
  float v = s.weight * (d.value ? d.value[i] : 1.0f);
  if (n.p > 0.0f) v = rng::uniform(n.key, i) >= n.p ? v * n.q : 0.0f;
  return v;
}

}  // namespace dsstne
