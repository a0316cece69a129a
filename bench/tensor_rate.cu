// How fast the tensor cores take the wgmma GEMM's inner step with nothing else to do: no copies, no
// splits, operands already in shared memory and registers. A step is what cuda/tensor_gemm.cu does per
// 32 depths of a 128 x 128 tile: two warpgroups, each issuing 12 m64n128k8 TF32 products (three a slice:
// small.big, big.small, big.big) into its step sums, waiting for them, and adding the step sums into the
// tile's with one rounded add. Ways of running that step, one block of two warpgroups a multiprocessor:
// - kernel: as the GEMM does it (A from registers, a wait and the add every step, both warpgroups meeting
//   at a barrier every step);
// - no barrier: the same without the barrier, so the warpgroups drift apart;
// - no add: without the 64 adds (each step's products accumulate onto the last's);
// - two in flight: two sets of step sums, the next step's products issued before the wait for this one's
//   (ptxas serialises those products, its warning C7515: the adds write registers of a set in flight);
// - A from shared memory: the same as `kernel` with A read by the tensor cores from shared memory;
// - one product: 4 products a step (the TF32 mode's kernel).
// The floor is the tensor cores' rate: 24 products of 65,536 multiply-adds at 1,024 a cycle = 1,536 cycles
// a step (three products). Build and run on a GPU machine:
//   nvcc -O3 -arch=sm_90a -std=c++17 -Icuda -Xptxas -v -o /tmp/tensor_rate bench/tensor_rate.cu && /tmp/tensor_rate
// Prints one JSON line per way: cycles a step (the SM clock, from clock64 in every block, median over
// blocks) and microseconds a step (the launch's median time over the steps).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda_timing.cuh"
#include "wgmma.cuh"

namespace {

using namespace dsstne::gpu;  // the GEMM's wgmma instructions (cuda/wgmma.cuh)

constexpr int kThreads = 256, kSteps = 4096;
constexpr int kHalfFloats = 128 * 32;  // one [128][32] K-major operand half, as the GEMM's

enum Way { kKernel, kNoBarrier, kNoAdd, kTwoInFlight, kSharedA, kOneProduct, kWays };
const char* const kNames[kWays] = {"kernel", "no barrier", "no add", "two in flight", "A from shared memory",
                                   "one product"};

template <int kWay>
__global__ void __launch_bounds__(kThreads, 1) step_kernel(float* out, long long* cycles) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ float smem_raw[];
  float* const smem = smem_raw + (1024 - __cvta_generic_to_shared(smem_raw) % 1024) % 1024 / sizeof(float);
  for (int i = threadIdx.x; i < 3 * kHalfFloats; i += kThreads) smem[i] = 1.0f + 1e-3f * (i % 97);
  __syncthreads();
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  const auto descriptor = [](const float* p) {
    return swizzled_descriptor(static_cast<unsigned>(__cvta_generic_to_shared(p)));
  };
  const uint64_t big = descriptor(smem), small = descriptor(smem + kHalfFloats);
  const uint64_t a_desc = descriptor(smem + 2 * kHalfFloats + threadIdx.x / 128 * 64 * 32);  // the warpgroup's rows
  uint32_t a_big[4][4], a_small[4][4];
  for (int s = 0; s < 4; ++s)
    for (int h = 0; h < 4; ++h) {
      a_big[s][h] = __float_as_uint(1.0f + 1e-3f * (threadIdx.x % 31 + h)) & 0xFFFFE000u;
      a_small[s][h] = __float_as_uint(1e-4f * (threadIdx.x % 29 + s));
    }
  float acc[64] = {}, part[2][64] = {};
  const auto issue = [&](float (&p)[64]) {
    wgmma_fence();
    for (int s = 0; s < 4; ++s) {
      if constexpr (kWay == kOneProduct) {
        wgmma_tf32(p, a_big[s], big + 2 * s, s > 0);
      } else if constexpr (kWay == kSharedA) {
        wgmma_tf32(p, a_desc + 2 * s, big + 2 * s, s > 0);
        wgmma_tf32(p, a_desc + 2 * s, small + 2 * s, 1);
        wgmma_tf32(p, a_desc + 2 * s, big + 2 * s, 1);
      } else {  // two in flight: 16 registers of A, not 32, so that three sets of sums fit (values are moot)
        // Without the add, every step accumulates onto the last: else the earlier steps' products would
        // be dead, and they are not all run.
        wgmma_tf32(p, kWay == kTwoInFlight ? a_big[s] : a_small[s], big + 2 * s, kWay == kNoAdd || s > 0);
        wgmma_tf32(p, a_big[s], small + 2 * s, 1);
        wgmma_tf32(p, a_big[s], big + 2 * s, 1);
      }
    }
    wgmma_commit();
  };
  const auto add = [&](float (&p)[64]) {
    for (int i = 0; i < 64; ++i) {
      asm volatile("" : "+f"(p[i])::"memory");
      acc[i] += p[i];
    }
  };
  const long long start = clock64();
  if constexpr (kWay == kTwoInFlight) {
    issue(part[0]);
    for (int step = 0; step < kSteps; step += 2) {
      issue(part[1]);
      wgmma_wait<1>();  // part[0]'s products are done, part[1]'s may run
      add(part[0]);
      if (step + 2 < kSteps) {
        issue(part[0]);
        wgmma_wait<1>();
      } else {
        wgmma_wait<0>();
      }
      add(part[1]);
    }
  } else {
    for (int step = 0; step < kSteps; ++step) {
      if constexpr (kWay != kNoBarrier) __syncthreads();
      issue(part[0]);
      wgmma_wait<0>();
      if constexpr (kWay != kNoAdd) add(part[0]);
    }
  }
  const long long stop = clock64();
  float sum = 0.0f;
  for (int i = 0; i < 64; ++i) sum += acc[i] + part[0][i] + part[1][i];
  out[blockIdx.x * kThreads + threadIdx.x] = sum;
  if (threadIdx.x == 0) cycles[blockIdx.x] = stop - start;
#endif
}

template <int kWay>
void run(int blocks, float* out, long long* cycles) {
  constexpr int kBytes = 1024 + 3 * kHalfFloats * static_cast<int>(sizeof(float));
  CHECK(cudaFuncSetAttribute(step_kernel<kWay>, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
  const float us = median_us([&] { step_kernel<kWay><<<blocks, kThreads, kBytes>>>(out, cycles); }, 2, 10);
  std::vector<long long> c(blocks);
  CHECK(cudaMemcpy(c.data(), cycles, blocks * sizeof(long long), cudaMemcpyDeviceToHost));
  std::sort(c.begin(), c.end());
  std::printf("{\"way\": \"%s\", \"cycles_per_step\": %.0f, \"us_per_step\": %.4f, \"floor_cycles\": %d}\n",
              kNames[kWay], static_cast<double>(c[blocks / 2]) / kSteps, us / kSteps,
              kWay == kOneProduct ? 512 : 1536);
}

}  // namespace

int main() {
  int blocks = 0;
  CHECK(cudaDeviceGetAttribute(&blocks, cudaDevAttrMultiProcessorCount, 0));
  float* out = nullptr;
  long long* cycles = nullptr;
  CHECK(cudaMalloc(&out, sizeof(float) * blocks * kThreads));
  CHECK(cudaMalloc(&cycles, sizeof(long long) * blocks));
  run<kKernel>(blocks, out, cycles);
  run<kNoBarrier>(blocks, out, cycles);
  run<kNoAdd>(blocks, out, cycles);
  run<kTwoInFlight>(blocks, out, cycles);
  run<kSharedA>(blocks, out, cycles);
  run<kOneProduct>(blocks, out, cycles);
  CHECK(cudaFree(out));
  CHECK(cudaFree(cycles));
  return 0;
}
