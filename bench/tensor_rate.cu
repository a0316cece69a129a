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
//   nvcc -O3 -arch=sm_90a -std=c++17 -Xptxas -v -o /tmp/tensor_rate bench/tensor_rate.cu && /tmp/tensor_rate
// Prints one JSON line per way: cycles a step (the SM clock, from clock64 in every block, median over
// blocks) and microseconds a step (the launch's median time over the steps).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda_timing.cuh"

namespace {

constexpr int kThreads = 256, kSteps = 4096;
constexpr int kHalfFloats = 128 * 32;  // one [128][32] K-major operand half, as the GEMM's

enum Way { kKernel, kNoBarrier, kNoAdd, kTwoInFlight, kSharedA, kOneProduct, kWays };
const char* const kNames[kWays] = {"kernel", "no barrier", "no add", "two in flight", "A from shared memory",
                                   "one product"};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ uint64_t descriptor(const float* p) {  // K-major, 128-byte swizzle (tensor_gemm.cu)
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(p));
  return uint64_t{(address & 0x3FFFFu) >> 4} | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

#define D64(d)                                                                                                     \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),     \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),      \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),     \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),     \
      "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),     \
      "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),     \
      "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),     \
      "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define R64                                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// d (+)= a b, A from registers (the GEMM's form) or from shared memory.
__device__ __forceinline__ void product(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " R64 ", {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
               : D64(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}
__device__ __forceinline__ void product(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " R64 ", %64, %65, p, 1, 1;\n}\n"
               : D64(d)
               : "l"(a), "l"(b), "r"(accumulate));
}
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
#endif

template <int kWay>
__global__ void __launch_bounds__(kThreads, 1) step_kernel(float* out, long long* cycles) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ float smem_raw[];
  float* const smem = smem_raw + (1024 - __cvta_generic_to_shared(smem_raw) % 1024) % 1024 / sizeof(float);
  for (int i = threadIdx.x; i < 3 * kHalfFloats; i += kThreads) smem[i] = 1.0f + 1e-3f * (i % 97);
  __syncthreads();
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
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
    fence();
    for (int s = 0; s < 4; ++s) {
      if constexpr (kWay == kOneProduct) {
        product(p, a_big[s], big + 2 * s, s > 0);
      } else if constexpr (kWay == kSharedA) {
        product(p, a_desc + 2 * s, big + 2 * s, s > 0);
        product(p, a_desc + 2 * s, small + 2 * s, 1);
        product(p, a_desc + 2 * s, big + 2 * s, 1);
      } else {  // two in flight: 16 registers of A, not 32, so that three sets of sums fit (values are moot)
        // Without the add, every step accumulates onto the last: else the earlier steps' products would
        // be dead, and they are not all run.
        product(p, kWay == kTwoInFlight ? a_big[s] : a_small[s], big + 2 * s, kWay == kNoAdd || s > 0);
        product(p, a_big[s], small + 2 * s, 1);
        product(p, a_big[s], big + 2 * s, 1);
      }
    }
    commit();
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
      wait<1>();  // part[0]'s products are done, part[1]'s may run
      add(part[0]);
      if (step + 2 < kSteps) {
        issue(part[0]);
        wait<1>();
      } else {
        wait<0>();
      }
      add(part[1]);
    }
  } else {
    for (int step = 0; step < kSteps; ++step) {
      if constexpr (kWay != kNoBarrier) __syncthreads();
      issue(part[0]);
      wait<0>();
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
