// Memory bandwidth of an optimiser step's launch shapes, on the benchmark's output matrix (27,278 x 1,024
// floats): RMSProp with L2 (math::update, the engine's formula) reads the weights, gradient and state and
// writes the weights and state, 5 x 112 MB a step. Which shape keeps the most bytes in flight: a quad a
// thread over a grid that covers the matrix (the multiprocessor holds as many threads as its registers
// allow), a persistent grid looping (as the update op launches with a regularisation sum: 4 blocks of 256
// a multiprocessor; or whole-multiprocessor blocks, as for a step beside other kernels), two quads a
// thread, or a ring of cp.async stages in shared memory; some also summing the regularisation error as
// the update op does (an atomic a block). A copy (one read, one write) is the reference.
// Build and run on a GPU machine:
//   nvcc -O3 -arch=sm_90a -std=c++17 -Iinclude -Xptxas -v -o /tmp/update_bandwidth bench/update_bandwidth.cu \
//     && /tmp/update_bandwidth
// Prints one JSON line per shape: microseconds a step (median of 50 after 5 warm-up), TB/s, threads a
// multiprocessor can hold.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_timing.cuh"
#include "dsstne/fixed_point.h"
#include "dsstne/math/update.h"

namespace {

using dsstne::UpdateParams;

__device__ __forceinline__ float4 step4(const UpdateParams& u, float4 w, float4 g, float4& v) {
  float unused = 0.0f;
  w.x = dsstne::math::update(u, w.x, g.x, v.x, unused);
  w.y = dsstne::math::update(u, w.y, g.y, v.y, unused);
  w.z = dsstne::math::update(u, w.z, g.z, v.z, unused);
  w.w = dsstne::math::update(u, w.w, g.w, v.w, unused);
  return w;
}

// Quads i, i + threads, ...: one a thread when the grid covers them all. With Sum, also the L2
// regularisation error of the weights before the step, as the update op reports it: fixed point, summed
// over the block and added with one atomic a block.
template <bool Sum>
__global__ void stride_kernel(float4* w, const float4* g, float4* v, uint64_t quads, UpdateParams u,
                              long long* error) {
  const uint64_t threads = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  long long sum = 0;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < quads; i += threads) {
    const float4 old = w[i];
    if constexpr (Sum)
      for (const float x : {old.x, old.y, old.z, old.w})
        sum += dsstne::fixed::from_float(dsstne::math::regularization(x, u.lambda, 0.0f));
    float4 s = v[i];
    w[i] = step4(u, old, g[i], s);
    v[i] = s;
  }
  if constexpr (Sum) {
    __shared__ long long warps[32];
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xFFFFFFFFu, sum, offset);
    if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      long long block = 0;
      for (unsigned k = 0; k < blockDim.x / 32; ++k) block += warps[k];
      atomicAdd(reinterpret_cast<unsigned long long*>(error), static_cast<unsigned long long>(block));
    }
  }
}

// Two quads a thread, both loaded before either is stepped.
__global__ void pair_kernel(float4* __restrict__ w, const float4* __restrict__ g, float4* __restrict__ v,
                            uint64_t quads, UpdateParams u) {
  const uint64_t threads = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < quads; i += 2 * threads) {
    const bool second = i + threads < quads;
    float4 w0 = w[i], g0 = g[i], s0 = v[i], w1{}, g1{}, s1{};
    if (second) w1 = w[i + threads], g1 = g[i + threads], s1 = v[i + threads];
    w[i] = step4(u, w0, g0, s0);
    v[i] = s0;
    if (second) w[i + threads] = step4(u, w1, g1, s1), v[i + threads] = s1;
  }
}

// A ring of Stages (weights, gradient, state) quads a thread in shared memory, filled by cp.async.
template <int Stages>
__global__ void ring_kernel(float4* w, const float4* g, float4* v, uint64_t quads, UpdateParams u) {
  extern __shared__ float4 ring[];  // [Stages][3][blockDim.x]
  const uint64_t threads = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const auto slot = [&](int stage, int array) { return ring + (stage * 3 + array) * blockDim.x + threadIdx.x; };
  const auto fill = [&](uint64_t i, int stage) {
    if (i < quads) {
      const float4* from[3] = {w + i, g + i, v + i};
      for (int a = 0; a < 3; ++a) {
        const auto to = static_cast<uint32_t>(__cvta_generic_to_shared(slot(stage, a)));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(to), "l"(from[a]));
      }
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };
  for (int s = 0; s < Stages - 1; ++s) fill(first + s * threads, s);
  int stage = 0;
  for (uint64_t i = first; i < quads; i += threads, stage = (stage + 1) % Stages) {
    fill(i + (Stages - 1) * threads, (stage + Stages - 1) % Stages);
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Stages - 1));
    float4 s = *slot(stage, 2);
    w[i] = step4(u, *slot(stage, 0), *slot(stage, 1), s);
    v[i] = s;
  }
}

__global__ void copy_kernel(float4* __restrict__ to, const float4* __restrict__ from, uint64_t quads) {
  const uint64_t threads = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < quads; i += threads)
    to[i] = from[i];
}

template <class Launch>
void time(const char* shape, double bytes, int resident_threads, Launch launch) {
  const double us = median_us(launch);
  std::printf("{\"shape\": \"%s\", \"us\": %.1f, \"tb_s\": %.3f, \"threads_a_multiprocessor\": %d}\n", shape, us,
              bytes / (us * 1e-6) / 1e12, resident_threads);
}

template <class Kernel>
int resident(Kernel kernel, int threads, size_t shared = 0) {
  int blocks = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, shared));
  return blocks * threads;
}

}  // namespace

int main() {
  const uint64_t n = 27278ull * 1024, quads = n / 4;
  float4 *w, *g, *v, *spare;
  for (float4** p : {&w, &g, &v, &spare}) {
    CHECK(cudaMalloc(p, n * sizeof(float)));
    CHECK(cudaMemset(*p, 0, n * sizeof(float)));
  }
  long long* error = nullptr;
  CHECK(cudaMalloc(&error, sizeof(long long)));
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  UpdateParams u;
  u.mode = dsstne::TrainingMode::RMSProp;
  u.alpha = 0.001f;
  u.lambda = 1e-4f;
  u.mu = 0.9f;
  const double step_bytes = 5.0 * n * sizeof(float);
  const auto grid = [&](unsigned per_thread) { return static_cast<unsigned>((quads + 256 * per_thread - 1) / (256 * per_thread)); };
  const unsigned beside = static_cast<unsigned>(sms - sms / 3);

  time("copy (1 read, 1 write), covering grid", 2.0 * n * sizeof(float), resident(copy_kernel, 256),
       [&] { copy_kernel<<<grid(1), 256>>>(spare, w, quads); });
  const auto plain = stride_kernel<false>, summing = stride_kernel<true>;
  time("a quad a thread, covering grid", step_bytes, resident(plain, 256),
       [&] { plain<<<grid(1), 256>>>(w, g, v, quads, u, error); });
  time("a quad a thread, covering grid, summing the error", step_bytes, resident(summing, 256),
       [&] { summing<<<grid(1), 256>>>(w, g, v, quads, u, error); });
  time("persistent, 4 blocks of 256 a multiprocessor", step_bytes, 1024,
       [&] { plain<<<4 * sms, 256>>>(w, g, v, quads, u, error); });
  time("persistent, 4 blocks of 256, summing the error", step_bytes, 1024,
       [&] { summing<<<4 * sms, 256>>>(w, g, v, quads, u, error); });
  const int most = resident(plain, 256) / 256;
  time("persistent, as many blocks of 256 as fit", step_bytes, most * 256,
       [&] { plain<<<most * sms, 256>>>(w, g, v, quads, u, error); });
  time("persistent, a block of 1,024 a multiprocessor", step_bytes, 1024,
       [&] { plain<<<sms, 1024>>>(w, g, v, quads, u, error); });
  time("persistent, blocks of 1,024 on two thirds", step_bytes, 1024,
       [&] { plain<<<beside, 1024>>>(w, g, v, quads, u, error); });
  const unsigned three_quarters = static_cast<unsigned>(sms - sms / 4);
  time("persistent, blocks of 1,024 on three quarters (the deferred step)", step_bytes, 1024,
       [&] { plain<<<three_quarters, 1024>>>(w, g, v, quads, u, error); });
  time("the same, summing the error", step_bytes, 1024,
       [&] { summing<<<three_quarters, 1024>>>(w, g, v, quads, u, error); });
  time("two quads a thread, covering grid", step_bytes, resident(pair_kernel, 256),
       [&] { pair_kernel<<<grid(2), 256>>>(w, g, v, quads, u); });
  time("two quads a thread, persistent, 4 blocks of 256", step_bytes, 1024,
       [&] { pair_kernel<<<4 * sms, 256>>>(w, g, v, quads, u); });
  const auto rings = [&](auto kernel, int stages) {
    const size_t shared = static_cast<size_t>(stages) * 3 * 256 * sizeof(float4);
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
    const int threads = resident(kernel, 256, shared);
    char shape[96];
    std::snprintf(shape, sizeof shape, "cp.async ring of %d stages, persistent", stages);
    time(shape, step_bytes, threads, [&] { kernel<<<sms * (threads / 256), 256, shared>>>(w, g, v, quads, u); });
  };
  rings(ring_kernel<2>, 2);
  rings(ring_kernel<3>, 3);
  return 0;
}
