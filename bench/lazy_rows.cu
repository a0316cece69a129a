// The lazily stepped rows of a sparse input's matrix (LazyRows in include/dsstne/ops.h), on the benchmark's
// input matrix (27,278 rows of 1,024 floats, RMSProp with L2, the regularisation error summed): which launch
// shape steps the rows the next minibatch lists nearest the memory's rate. The rows and their owed steps are
// drawn as the synthetic ML-20M data gives them between catch-ups every 8 minibatches: 46.8 % of the rows,
// 1 step 67 %, 2 17 %, 3 7.7 %, 4 4.0 %, 5 2.2 %, 6 1.2 %, 7 0.7 % (1.64 on average), spread over the rows.
// Shapes:
// - every row: the update op's kernel (a quad a thread over a grid that covers the matrix, each thread
//   reading its row's stamps; held to 40 registers, 6 blocks a multiprocessor);
// - the same, a block whose row waits leaving before the error's block sum (a block is a row here);
// - a list of the rows, a block a row: the count known on the host (the grid is the list), or read on the
//   device (the grid covers every row, blocks past the count leave at once); with the steps owed, or one;
// - the reference: one step of as many whole rows, contiguous, over a covering grid (the memory's rate for
//   the same bytes).
// Build and run on a GPU machine:
//   nvcc -O3 -arch=sm_90a -std=c++17 -Iinclude -Icuda -Xptxas -v -o /tmp/lazy_rows bench/lazy_rows.cu \
//     && /tmp/lazy_rows
// Prints one JSON line per shape: microseconds a step (median of 50 after 5 warm-up), TB/s of the listed
// rows' bytes (weights, gradient and state read, weights and state written).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_timing.cuh"
#include "dsstne/fixed_point.h"
#include "dsstne/ops.h"
#include "reduce.cuh"

namespace {

using dsstne::LazyRows;
using dsstne::UpdateParams;

constexpr uint32_t kRows = 27278, kWidth = 1024, kQuadsPerRow = kWidth / 4, kThreads = 256;
static_assert(kQuadsPerRow == kThreads, "a block is a row");

struct Matrix {
  float4 *w, *g, *v;
  const uint32_t *row_stamp, *next_stamp;
  uint32_t stamp;
  LazyRows lazy;
  UpdateParams u;
  long long* error;
};

// `steps` steps of one quad, the first with its gradient, each with its regularisation term (the update
// op's Stepper for RMSProp with L2, every step this stamp's scale).
__device__ __forceinline__ long long step_quad(const Matrix& m, uint64_t i, uint32_t steps) {
  float4 w = m.w[i], v = m.v[i];
  const float4 g = m.g[i];
  long long sum = 0;
  float unused = 0.0f;
  for (uint32_t k = 0; k < steps; ++k) {
    const float4 d = k == 0 ? g : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float* wq[4] = {&w.x, &w.y, &w.z, &w.w};
    float* vq[4] = {&v.x, &v.y, &v.z, &v.w};
    const float dq[4] = {d.x, d.y, d.z, d.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      sum += dsstne::fixed::from_float(dsstne::math::regularization(*wq[e], m.u.lambda, 0.0f));
      *wq[e] = dsstne::math::update(m.u, *wq[e], dq[e], *vq[e], unused);
    }
  }
  m.w[i] = w;
  m.v[i] = v;
  return sum;
}

__device__ __forceinline__ uint32_t row_steps(const Matrix& m, uint32_t row) {
  return dsstne::lazy_steps(m.lazy, m.row_stamp[row], m.next_stamp[row], m.stamp);
}

// The update op's shape: every row's quads, each thread reading its row's stamps. Early: a block whose
// row waits leaves before the error's sum.
template <bool Early>
__global__ void __launch_bounds__(kThreads, 6) every_row_kernel(Matrix m) {
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint32_t steps = row_steps(m, static_cast<uint32_t>(t / kQuadsPerRow));
  if (Early && steps == 0) return;
  long long sum = steps > 0 ? step_quad(m, t, steps) : 0;
  dsstne::gpu::add_fixed(m.error, sum);
}

// A block a listed row; blocks past *count (read on the device) leave at once. One: a single step a row.
template <bool One>
__global__ void __launch_bounds__(kThreads, 6) listed_row_kernel(Matrix m, const uint32_t* list,
                                                                 const uint32_t* count) {
  if (blockIdx.x >= *count) return;
  const uint32_t row = list[blockIdx.x];
  const uint32_t steps = One ? 1 : row_steps(m, row);
  dsstne::gpu::add_fixed(m.error, step_quad(m, uint64_t{row} * kQuadsPerRow + threadIdx.x, steps));
}

__global__ void fill_kernel(float4* p, uint64_t quads, float x) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < quads) p[i] = make_float4(x, x, x, x);
}

template <class Launch>
void time(const char* shape, double bytes, Launch launch) {
  const double us = median_us(launch);
  std::printf("{\"shape\": \"%s\", \"us\": %.1f, \"tb_s\": %.3f}\n", shape, us, bytes / (us * 1e-6) / 1e12);
}

}  // namespace

int main() {
  const uint64_t quads = uint64_t{kRows} * kQuadsPerRow;
  float4 *w, *g, *v;
  for (auto [p, x] : {std::pair{&w, 0.01f}, std::pair{&g, 0.001f}, std::pair{&v, 1e-4f}}) {
    CHECK(cudaMalloc(p, quads * sizeof(float4)));
    fill_kernel<<<static_cast<unsigned>((quads + 255) / 256), 256>>>(*p, quads, x);
  }
  // Stamp 1,000, every row caught up through 992: a listed row owing k steps was last listed by 1,001 - k.
  constexpr uint32_t kStamp = 1000, kCurrent = 992;
  const double owed[] = {0.669, 0.173, 0.0766, 0.0396, 0.022, 0.0124, 0.0074};
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::discrete_distribution<int> steps_of(std::begin(owed), std::end(owed));
  std::vector<uint32_t> row_stamp(kRows, kCurrent), next_stamp(kRows, 0), list;
  double steps_total = 0.0;
  for (uint32_t r = 0; r < kRows; ++r) {
    if (uniform(rng) >= 0.468) continue;
    const int k = steps_of(rng) + 1;
    row_stamp[r] = kStamp + 1 - k;
    next_stamp[r] = kStamp + 1;
    list.push_back(r);
    steps_total += k;
  }
  const auto count = static_cast<uint32_t>(list.size());
  uint32_t *stamps, *list_d, *count_d;
  CHECK(cudaMalloc(&stamps, 2 * kRows * sizeof(uint32_t)));
  CHECK(cudaMalloc(&list_d, kRows * sizeof(uint32_t)));
  CHECK(cudaMalloc(&count_d, sizeof(uint32_t)));
  CHECK(cudaMemcpy(stamps, row_stamp.data(), kRows * sizeof(uint32_t), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(stamps + kRows, next_stamp.data(), kRows * sizeof(uint32_t), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(list_d, list.data(), count * sizeof(uint32_t), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(count_d, &count, sizeof(uint32_t), cudaMemcpyHostToDevice));
  long long* error = nullptr;
  CHECK(cudaMalloc(&error, sizeof(long long)));

  Matrix m{w, g, v, stamps, stamps + kRows, kStamp, {}, {}, error};
  m.lazy.next_stamp = stamps + kRows;
  m.lazy.current = kCurrent;
  m.lazy.enabled = true;
  m.u.mode = dsstne::TrainingMode::RMSProp;
  m.u.alpha = 0.001f;
  m.u.lambda = 1e-4f;
  m.u.mu = 0.9f;
  std::printf("{\"listed_rows\": %u, \"of\": %u, \"mean_steps\": %.3f}\n", count, kRows, steps_total / count);

  const double bytes = 5.0 * count * kWidth * sizeof(float);
  time("every row (the update op's shape)", bytes, [&] { every_row_kernel<false><<<kRows, kThreads>>>(m); });
  time("every row, a waiting row's block leaving before the sum", bytes,
       [&] { every_row_kernel<true><<<kRows, kThreads>>>(m); });
  time("a list of the rows, count on the host", bytes,
       [&] { listed_row_kernel<false><<<count, kThreads>>>(m, list_d, count_d); });
  time("a list of the rows, count on the device", bytes,
       [&] { listed_row_kernel<false><<<kRows, kThreads>>>(m, list_d, count_d); });
  time("a list of the rows, count on the host, one step a row", bytes,
       [&] { listed_row_kernel<true><<<count, kThreads>>>(m, list_d, count_d); });
  // The reference: the first `count` rows, listed in order, one step each.
  std::vector<uint32_t> first(count);
  for (uint32_t r = 0; r < count; ++r) first[r] = r;
  uint32_t* first_d;
  CHECK(cudaMalloc(&first_d, count * sizeof(uint32_t)));
  CHECK(cudaMemcpy(first_d, first.data(), count * sizeof(uint32_t), cudaMemcpyHostToDevice));
  time("as many contiguous rows, one step (the reference)", bytes,
       [&] { listed_row_kernel<true><<<count, kThreads>>>(m, first_d, count_d); });
  CHECK(cudaDeviceSynchronize());
  return 0;
}
