// Sparse input layer twins on the CPU: gather-sum forward, deterministic transposed weight gradient.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dsstne/errors.h"
#include "dsstne/math/sparse_row.h"
#include "host_backend.h"
#include "stream.h"
#include "vecmath.h"

namespace dsstne {
namespace {

constexpr uint64_t kPrefetchAhead = 12;  // datapoints: weight rows are random reads, mostly from memory

inline void prefetch_row(const float* row, uint32_t stride) {
  for (uint32_t j = 0; j < stride; j += 16) __builtin_prefetch(row + j);
}

// out (+)= sum over the row's datapoints of value * W[index]: one row of sparse_forward.
DSSTNE_HOST_KERNEL void gather_row(const SparseForwardArgs& a, int64_t r) {
  const uint32_t stride = a.stride;
  float* out = a.unit + r * stride;
  if (!a.accumulate) std::memset(out, 0, sizeof(float) * stride);
  const SparseRow s = sparse_row(a.data, a.batch, static_cast<uint32_t>(r));
  for (uint64_t i = s.begin; i < s.end; ++i) {
    if (i + kPrefetchAhead < s.end)
      prefetch_row(a.weights + static_cast<uint64_t>(a.data.index[i + kPrefetchAhead]) * stride, stride);
    const float v = datapoint_value(a.data, a.denoise, s, i);
    if (v == 0.0f) continue;
    const float* w = a.weights + static_cast<uint64_t>(a.data.index[i]) * stride;
    for (uint32_t j = 0; j < stride; ++j) out[j] += v * w[j];
  }
}

// Gradient row of one input unit into acc (stride floats): scale * sum over its (batch row, value) pairs,
// in batch-row order, of value * delta[row].
DSSTNE_HOST_KERNEL void gradient_row(const float* delta, uint32_t stride, float scale, const uint32_t* rows,
                                     const float* values, uint32_t count, float* acc) {
  for (uint32_t j = 0; j < stride; ++j) acc[j] = 0.0f;
  for (uint32_t slot = 0; slot < count; ++slot) {
    const float v = values[slot];
    if (v == 0.0f) continue;
    const float* d = delta + static_cast<uint64_t>(rows[slot]) * stride;
    for (uint32_t j = 0; j < stride; ++j) acc[j] += v * d[j];
  }
  for (uint32_t j = 0; j < stride; ++j) acc[j] *= scale;
}

// Scratch of sparse_gradient, carved from one allocation.
struct GradientScratch {
  uint32_t* count;    // [input units] datapoints per input unit (zeroed by each plan)
  uint32_t* start;    // [input units] first slot of each present input unit
  uint32_t* present;  // [datapoints] present input units, in increasing order
  uint32_t* rows;     // [datapoints] batch row of each slot
  float* values;      // [datapoints] input value of each slot
  uint32_t* units;    // [1] present input units

  GradientScratch(void* scratch, uint32_t input_units, uint64_t max_datapoints) {
    count = static_cast<uint32_t*>(scratch);
    start = count + input_units;
    present = start + input_units;
    rows = present + max_datapoints;
    values = reinterpret_cast<float*>(rows + max_datapoints);
    units = reinterpret_cast<uint32_t*>(values + max_datapoints);
  }
};

}  // namespace

void HostBackend::sparse_forward(const SparseForwardArgs& a) {
  DSSTNE_REQUIRE(!a.finish.unit || (!a.accumulate && a.finish.activation.kind != Activation::SoftMax),
                 "sparse_forward: only a whole sum finishes, by an element-wise activation");
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < a.batch.rows; ++r) gather_row(a, r);
  if (a.finish.unit) activate(a.finish);
}

void HostBackend::mark_rows(const MarkRowsArgs& a) {
  // sparse_gradient_plan stamps every in-range unit the batch lists, whatever its value: the same rows.
  for (uint32_t r = 0; r < a.batch.rows; ++r) {
    const SparseRow row = sparse_row(a.data, a.batch, r);
    for (uint64_t i = row.begin; i < row.end; ++i)
      if (const uint32_t u = a.data.index[i]; u < a.input_units) a.stamp_of[u] = a.stamp;
  }
}

size_t HostBackend::sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const {
  return sizeof(uint32_t) * (2 * static_cast<size_t>(input_units) + 3 * max_datapoints + 1);
}

void HostBackend::sparse_gradient_plan(const SparseGradientArgs& a) {
  // Counting sort of the batch's datapoints by input unit, keeping batch-row order inside each bucket:
  // the sum for each gradient row then runs in a fixed order whatever the thread count. Each thread
  // counts and fills the buckets of its own range of units (scanning every datapoint, in batch order),
  // so a bucket is filled by one thread in batch-row order. Present units are listed in increasing order.
  GradientScratch s(a.scratch, a.input_units, a.max_datapoints);
  uint32_t present = 0;
#pragma omp parallel
  {
    const uint32_t threads = static_cast<uint32_t>(omp_get_num_threads());
    const uint32_t t = static_cast<uint32_t>(omp_get_thread_num());
    const uint32_t lo = static_cast<uint32_t>(uint64_t{a.input_units} * t / threads);
    const uint32_t hi = static_cast<uint32_t>(uint64_t{a.input_units} * (t + 1) / threads);
    std::fill(s.count + lo, s.count + hi, 0u);
    for (uint32_t r = 0; r < a.batch.rows; ++r) {
      const SparseRow row = sparse_row(a.data, a.batch, r);
      for (uint64_t i = row.begin; i < row.end; ++i) {
        const uint32_t u = a.data.index[i];
        if (u >= lo && u < hi) ++s.count[u];
      }
    }
#pragma omp barrier
#pragma omp single
    {
      uint32_t running = 0;
      for (uint32_t u = 0; u < a.input_units; ++u) {
        if (s.count[u] == 0) continue;
        s.present[present++] = u;
        if (a.row_stamp) a.row_stamp[u] = a.stamp;
        s.start[u] = running;
        running += s.count[u];
        s.count[u] = 0;  // refilled below as the fill position of the bucket
      }
    }  // implied barrier
    for (uint32_t r = 0; r < a.batch.rows; ++r) {
      const SparseRow row = sparse_row(a.data, a.batch, r);
      for (uint64_t i = row.begin; i < row.end; ++i) {
        const uint32_t u = a.data.index[i];
        if (u < lo || u >= hi) continue;
        const uint32_t slot = s.start[u] + s.count[u]++;
        s.rows[slot] = r;
        s.values[slot] = datapoint_value(a.data, a.denoise, row, i);
      }
    }
  }
  *s.units = present;
}

void HostBackend::sparse_gradient(const SparseGradientArgs& a) {
  // The gradient rows of the present units, written (or stepped) in address order; a streamed row bypasses
  // the cache (see stream.h).
  if (!a.planned) sparse_gradient_plan(a);
  GradientScratch s(a.scratch, a.input_units, a.max_datapoints);
  const bool streamed = uint64_t{a.input_units} * a.stride * sizeof(float) >= stream::kMinBytes;
  const int64_t present = *s.units;
  long long regularization = 0;  // the stepped rows' (integers: the same whatever the split between threads)
#pragma omp parallel reduction(+ : regularization)
  {
    std::vector<float> acc(a.stride);
#pragma omp for schedule(dynamic, 64) nowait
    for (int64_t p = 0; p < present; ++p) {
      const uint32_t u = s.present[p];
      const uint64_t row = static_cast<uint64_t>(u) * a.stride;
      gradient_row(a.delta, a.stride, a.scale, s.rows + s.start[u], s.values + s.start[u], s.count[u], acc.data());
      if (a.step)
        regularization += step_listed_row(*a.step, row, row + a.stride, acc.data());
      else if (streamed)
        stream::copy(a.gradient + row, acc.data(), a.stride);
      else
        std::memcpy(a.gradient + row, acc.data(), sizeof(float) * a.stride);
    }
    if (streamed) stream::fence();
  }
  if (a.step && a.step->regularization) *a.step->regularization += regularization;
}

}  // namespace dsstne
