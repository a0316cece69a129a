// Can an optimiser step bound by memory run beside a tensor-core GEMM? Two arrangements.
// - apart (the default): the step on k multiprocessors of its own, the GEMM on the rest. The step's blocks
//   each hold one multiprocessor and stream their share through a ring of shared-memory stages filled and
//   drained by bulk (TMA) copies, so that one block keeps tens of kilobytes in flight where the update op's
//   threads keep a quad each. Measured: that step alone on k multiprocessors (RMSProp with L2,
//   math::update, the engine's formula; with the gradient, as the benchmark's output matrix, 5 x 112 MB;
//   and with a zero gradient, as a sparse input's unlisted rows, 4 x 61 MB; for comparison, a quad a thread
//   from global memory as the update op takes it, and an approximate reciprocal square root in place of the
//   rounded square root and division); the output layer's three GEMMs (hidden 1,024, three TF32 products)
//   alone on all the multiprocessors and on the rest; and both at once, the step launched first.
// - together: the GEMM on every multiprocessor, and beside each of its blocks one small step block of 4
//   warps in the registers the GEMM leaves. That needs the GEMM held below its 255 registers a thread: a
//   copy of cuda/tensor_gemm.cu whose wgmma kernel's __launch_bounds__(kGemmThreads, 1) reads
//   __maxnreg__(224) (8,192 registers left a multiprocessor, 4 warps of 64) or __maxnreg__(232) (6,144, 4
//   warps of 48); -maxrregcount does not bind a kernel with launch bounds. Measured: the GEMMs alone, the
//   unlisted rows' step alone on one small block a multiprocessor (quads from global memory, 2 or 4 a
//   thread in flight), and both at once in either launch order.
// Build and run on a GPU machine:
//   nvcc -O3 -arch=sm_90a -std=c++17 -Iinclude -Icuda -Xptxas -v -o /tmp/step_beside_gemm \
//     bench/step_beside_gemm.cu cuda/tensor_gemm.cu && /tmp/step_beside_gemm [apart|together]
// (for `together`, the held copy in place of cuda/tensor_gemm.cu and -DGEMM_REGISTERS=224, which only
// labels the output).
// Prints one JSON line per measurement (median microseconds of 50 after 5 warm-up runs).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cuda_timing.cuh"
#include "dsstne/math/update.h"
#include "tensor_gemm.cuh"
#include "tma.cuh"

namespace {

using dsstne::UpdateParams;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the barriers and bulk copies exist in the sm_90a image only
using dsstne::gpu::shared_address;
using dsstne::gpu::barrier_expect;
using dsstne::gpu::barrier_init;
using dsstne::gpu::barrier_init_fence;
using dsstne::gpu::barrier_wait;

__device__ __forceinline__ void bulk_load(void* to, const void* from, uint32_t bytes, uint64_t* barrier) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   shared_address(to)),
               "l"(from), "r"(bytes), "r"(shared_address(barrier))
               : "memory");
}

__device__ __forceinline__ void bulk_store(void* to, const void* from, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(to), "r"(shared_address(from)),
               "r"(bytes)
               : "memory");
}
#endif

// A ring of kStages stages, each kChunk floats of the weights, the state and (kGradient) the gradient.
// Block b takes chunks b, b + grid, ...; a stage is refilled once the bulk store of its stepped weights
// and state has read it (one iteration later, so the store and the next loads overlap).
// RMSProp's step as math::update takes it, or (kFast) with the approximate reciprocal square root in place
// of the correctly rounded square root and division: how much of a block's time is that arithmetic.
template <bool kFast>
__device__ __forceinline__ float rmsprop(const UpdateParams& u, float w, float d, float& s) {
  float unused = 0.0f;
  if constexpr (!kFast) return dsstne::math::update(u, w, d, s, unused);
  const float g = dsstne::math::regularized(u, d, w);
  s = u.mu * s + (1.0f - u.mu) * g * g;
  return w + u.alpha * g * rsqrtf(fmaxf(1.0e-9f, s));
}

template <int kThreads, int kStages, int kChunk, bool kGradient, bool kFast = false>
__global__ void __launch_bounds__(kThreads, 1)
    bulk_step_kernel(float* w, const float* g, float* v, uint64_t chunks, UpdateParams u) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kArrays = kGradient ? 3 : 2;
  constexpr uint32_t kBytes = kChunk * sizeof(float);
  extern __shared__ float4 ring[];  // [kStages][kArrays][kChunk / 4]: weights, state, gradient
  __shared__ uint64_t full[kStages];
  const auto slot = [&](int stage, int array) { return ring + (stage * kArrays + array) * (kChunk / 4); };
  const auto chunk_of = [&](uint64_t i) { return blockIdx.x + i * gridDim.x; };
  const auto fill = [&](int stage, uint64_t c) {
    barrier_expect(&full[stage], kArrays * kBytes);
    bulk_load(slot(stage, 0), w + c * kChunk, kBytes, &full[stage]);
    bulk_load(slot(stage, 1), v + c * kChunk, kBytes, &full[stage]);
    if constexpr (kGradient) bulk_load(slot(stage, 2), g + c * kChunk, kBytes, &full[stage]);
  };
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) barrier_init(&full[s]);
    barrier_init_fence();
    for (int s = 0; s < kStages; ++s)
      if (chunk_of(s) < chunks) fill(s, chunk_of(s));
  }
  __syncthreads();
  for (uint64_t i = 0; chunk_of(i) < chunks; ++i) {
    const int stage = static_cast<int>(i % kStages);
    barrier_wait(&full[stage], static_cast<uint32_t>(i / kStages) & 1u);
    float4* ws = slot(stage, 0);
    float4* vs = slot(stage, 1);
    const float4* gs = slot(stage, 2);
    for (int q = threadIdx.x; q < kChunk / 4; q += kThreads) {
      float4 x = ws[q], s = vs[q];
      const float4 d = kGradient ? gs[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      x.x = rmsprop<kFast>(u, x.x, d.x, s.x);
      x.y = rmsprop<kFast>(u, x.y, d.y, s.y);
      x.z = rmsprop<kFast>(u, x.z, d.z, s.z);
      x.w = rmsprop<kFast>(u, x.w, d.w, s.w);
      ws[q] = x;
      vs[q] = s;
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    if (threadIdx.x == 0) {
      const uint64_t c = chunk_of(i);
      bulk_store(w + c * kChunk, ws, kBytes);
      bulk_store(v + c * kChunk, vs, kBytes);
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
      asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");  // the previous stage's store has read it
      if (i >= 1 && chunk_of(i - 1 + kStages) < chunks)
        fill(static_cast<int>((i - 1) % kStages), chunk_of(i - 1 + kStages));
    }
  }
  if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}

// The update op's shape beside other kernels: a persistent grid, a quad a thread from global memory.
__global__ void __launch_bounds__(1024, 1)
    plain_step_kernel(float* w, const float* g, float* v, uint64_t chunks, UpdateParams u) {
  const uint64_t quads = chunks * 512, threads = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < quads; i += threads) {
    float4 x = reinterpret_cast<float4*>(w)[i], s = reinterpret_cast<float4*>(v)[i];
    const float4 d = reinterpret_cast<const float4*>(g)[i];
    x.x = rmsprop<false>(u, x.x, d.x, s.x);
    x.y = rmsprop<false>(u, x.y, d.y, s.y);
    x.z = rmsprop<false>(u, x.z, d.z, s.z);
    x.w = rmsprop<false>(u, x.w, d.w, s.w);
    reinterpret_cast<float4*>(w)[i] = x;
    reinterpret_cast<float4*>(v)[i] = s;
  }
}

struct Step {
  const char* name;
  void (*kernel)(float*, const float*, float*, uint64_t, UpdateParams);
  int threads, chunk;
  size_t shared;
  bool gradient;
};

template <int kThreads, int kStages, int kChunk, bool kGradient, bool kFast = false>
Step make_step(const char* name) {
  const auto kernel = bulk_step_kernel<kThreads, kStages, kChunk, kGradient, kFast>;
  const size_t shared = size_t{kStages} * (kGradient ? 3 : 2) * kChunk * sizeof(float);
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  return {name, kernel, kThreads, kChunk, shared, kGradient};
}

// The unlisted rows' step (a zero gradient: RMSProp's L2 term alone) in one small block of 4 warps a
// multiprocessor, beside a GEMM block in the registers it leaves: a persistent grid, kQuads quads of the
// weights and of the state a thread loaded before any is stepped. Streaming loads and stores, so that the
// step's bytes, read once, leave the GEMM's operands their place in L2. kMinBlocks bounds the registers:
// 8 blocks of 128 threads a multiprocessor leave 64 a thread, 10 leave 48.
constexpr int kNearThreads = 128;
template <int kQuads, int kMinBlocks>
__global__ void __launch_bounds__(kNearThreads, kMinBlocks)
    near_step_kernel(float* w, float* v, uint64_t quads, UpdateParams u) {
  auto* w4 = reinterpret_cast<float4*>(w);
  auto* v4 = reinterpret_cast<float4*>(v);
  const uint64_t threads = uint64_t{gridDim.x} * kNearThreads;
  for (uint64_t i0 = uint64_t{blockIdx.x} * kNearThreads + threadIdx.x; i0 < quads; i0 += kQuads * threads) {
    float4 x[kQuads], s[kQuads];
#pragma unroll
    for (int q = 0; q < kQuads; ++q)
      if (i0 + q * threads < quads) x[q] = __ldcs(w4 + i0 + q * threads), s[q] = __ldcs(v4 + i0 + q * threads);
#pragma unroll
    for (int q = 0; q < kQuads; ++q) {
      if (i0 + q * threads >= quads) break;
      x[q].x = rmsprop<false>(u, x[q].x, 0.0f, s[q].x);
      x[q].y = rmsprop<false>(u, x[q].y, 0.0f, s[q].y);
      x[q].z = rmsprop<false>(u, x[q].z, 0.0f, s[q].z);
      x[q].w = rmsprop<false>(u, x[q].w, 0.0f, s[q].w);
      __stcs(w4 + i0 + q * threads, x[q]);
      __stcs(v4 + i0 + q * threads, s[q]);
    }
  }
}

// What both arrangements measure on: the step's arrays (the output matrix's size), the output layer's
// activations and deltas, and its three GEMMs.
struct Bench {
  static constexpr int kBatch = 256, kHidden = 1024, kUnits = 27278;
  static constexpr uint64_t kWeights = uint64_t{kUnits} * kHidden;
  static constexpr uint64_t kUnlisted = uint64_t{15000} * kHidden;  // about the benchmark's unlisted rows a minibatch
  int sms = 0;
  bool wgmma = false;
  float *w = nullptr, *g = nullptr, *v = nullptr;
  UpdateParams u;
  struct Shape {
    const char* name;
    dsstne::GemmArgs g;
  };
  std::vector<Shape> shapes;
  cudaStream_t first = nullptr, second = nullptr;

  Bench() {
    cudaDeviceProp props;
    CHECK(cudaGetDeviceProperties(&props, 0));
    sms = props.multiProcessorCount;
    wgmma = dsstne::gpu::wgmma_kernel_available();
    w = zeros(kWeights), g = zeros(kWeights), v = zeros(kWeights);
    u.mode = dsstne::TrainingMode::RMSProp;
    u.alpha = 0.001f;
    u.lambda = 1e-4f;
    u.mu = 0.9f;
    float* H = zeros(size_t{kBatch} * kHidden);
    float* DH = zeros(size_t{kBatch} * kHidden);
    float* Z = zeros(size_t{kBatch} * kUnits);
    float* D = zeros(size_t{kBatch} * kUnits);
    float* gw = zeros(kWeights);  // a gradient matrix of its own, so that the step's buffers are not the GEMM's
    float* wo = zeros(kWeights);  // the output matrix the GEMMs read
    shapes = {
        {"forward", args(false, false, kBatch, kUnits, kHidden, H, kHidden, wo, kUnits, Z, kUnits)},
        {"weight gradient", args(true, false, kHidden, kUnits, kBatch, H, kHidden, D, kUnits, gw, kUnits)},
        {"delta", args(false, true, kBatch, kHidden, kUnits, D, kUnits, wo, kUnits, DH, kHidden)},
    };
    CHECK(cudaStreamCreateWithFlags(&first, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&second, cudaStreamNonBlocking));
  }
  static float* zeros(size_t count) {
    float* p = nullptr;
    CHECK(cudaMalloc(&p, count * sizeof(float)));
    CHECK(cudaMemset(p, 0, count * sizeof(float)));
    return p;
  }
  static dsstne::GemmArgs args(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                               float* c, int ldc) {
    dsstne::GemmArgs x;
    x.trans_a = ta, x.trans_b = tb, x.m = m, x.n = n, x.k = k, x.a = a, x.lda = lda, x.b = b, x.ldb = ldb;
    x.c = c, x.ldc = ldc;
    return x;
  }
  // Median µs from a common start to the end of each of two launches queued at once on two streams,
  // `a` on the first (queued first), `b` on the second.
  template <class A, class B>
  std::pair<float, float> at_once(const A& a, const B& b) {
    cudaEvent_t start, a_done, b_done;
    for (cudaEvent_t* e : {&start, &a_done, &b_done}) CHECK(cudaEventCreate(e));
    std::vector<float> a_us, b_us;
    for (int r = 0; r < 30; ++r) {
      CHECK(cudaEventRecord(start, nullptr));
      CHECK(cudaStreamWaitEvent(first, start));
      CHECK(cudaStreamWaitEvent(second, start));
      a(first);
      b(second);
      CHECK(cudaEventRecord(a_done, first));
      CHECK(cudaEventRecord(b_done, second));
      CHECK(cudaEventSynchronize(a_done));
      CHECK(cudaEventSynchronize(b_done));
      float x = 0, y = 0;
      CHECK(cudaEventElapsedTime(&x, start, a_done));
      CHECK(cudaEventElapsedTime(&y, start, b_done));
      if (r >= 5) a_us.push_back(1000 * x), b_us.push_back(1000 * y);
    }
    for (cudaEvent_t e : {start, a_done, b_done}) CHECK(cudaEventDestroy(e));
    std::sort(a_us.begin(), a_us.end());
    std::sort(b_us.begin(), b_us.end());
    return {a_us[a_us.size() / 2], b_us[b_us.size() / 2]};
  }
};

// One GEMM with its plan for `blocks_for` multiprocessors and a workspace of its own.
struct PlannedGemm {
  dsstne::GemmArgs g;
  dsstne::gpu::TensorGemmPlan plan;
  float* workspace = nullptr;
  PlannedGemm(const dsstne::GemmArgs& g_, int blocks_for, bool wgmma)
      : g(g_), plan(dsstne::gpu::tensor_gemm_plan(g_, blocks_for, wgmma)) {
    if (plan.supported) CHECK(cudaMalloc(&workspace, std::max<size_t>(1, plan.workspace_floats) * sizeof(float)));
  }
  ~PlannedGemm() { cudaFree(workspace); }
  PlannedGemm(const PlannedGemm&) = delete;
  PlannedGemm& operator=(const PlannedGemm&) = delete;
  void operator()(cudaStream_t stream) const {
    dsstne::gpu::tensor_gemm(g, plan, 3, workspace, stream, /*dependent=*/false);
  }
};


void apart(Bench& b) {
  const std::vector<Step> steps = {
      make_step<256, 8, 2048, true>("256 threads, 8 stages of 3 x 8 KB"),
      make_step<512, 6, 2048, true>("512 threads, 6 stages of 3 x 8 KB"),
      make_step<1024, 4, 4096, true>("1,024 threads, 4 stages of 3 x 16 KB"),
      make_step<1024, 4, 4096, true, true>("1,024 threads, 4 stages of 3 x 16 KB, approximate rsqrt"),
      make_step<512, 6, 2048, true, true>("512 threads, 6 stages of 3 x 8 KB, approximate rsqrt"),
      {"plain: a quad a thread from global memory, 1,024 threads", plain_step_kernel, 1024, 2048, 0, true},
      make_step<1024, 6, 4096, false>("1,024 threads, 6 stages of 2 x 16 KB, zero gradient"),
  };
  // Whole chunks only (the output matrix's last half chunk of 16 KB is left out of those).
  const auto chunks = [&](const Step& s) { return (s.gradient ? Bench::kWeights : Bench::kUnlisted) / s.chunk; };
  const auto launch_step = [&](const Step& s, int blocks, cudaStream_t stream) {
    s.kernel<<<blocks, s.threads, s.shared, stream>>>(b.w, b.g, b.v, chunks(s), b.u);
  };
  const auto step_bytes = [&](const Step& s) {
    return double(s.gradient ? 5 : 4) * double(chunks(s) * s.chunk) * sizeof(float);
  };
  const int counts[] = {8, 16, 33, 66, 132};
  for (const Step& s : steps)
    for (int k : counts) {
      const float us = median_us([&] { launch_step(s, k, nullptr); });
      std::printf("{\"step\": \"%s\", \"multiprocessors\": %d, \"us\": %.1f, \"tb_s\": %.3f}\n", s.name, k, us,
                  step_bytes(s) / (us * 1e-6) / 1e12);
    }

  // The output layer's GEMMs, alone and beside a step.
  for (const Bench::Shape& shape : b.shapes)
    for (int k : {0, 8, 16, 33}) {
      const PlannedGemm gemm(shape.g, b.sms - k, b.wgmma);
      if (!gemm.plan.supported) continue;
      const float alone = median_us([&] { gemm(nullptr); });
      std::printf("{\"gemm\": \"%s\", \"blocks_for\": %d, \"alone_us\": %.1f}\n", shape.name, b.sms - k, alone);
      if (k == 0) continue;
      for (const Step& s : {steps[2], steps[6]}) {
        const auto [step_us, gemm_us] = b.at_once([&](cudaStream_t st) { launch_step(s, k, st); }, gemm);
        std::printf("{\"gemm\": \"%s\", \"beside\": \"%s\", \"multiprocessors\": %d, \"gemm_us\": %.1f, "
                    "\"step_us\": %.1f}\n",
                    shape.name, s.name, k, gemm_us, step_us);
      }
    }
}

#ifndef GEMM_REGISTERS
#define GEMM_REGISTERS 255
#endif

void together(Bench& b) {
  struct Near {
    const char* name;
    void (*kernel)(float*, float*, uint64_t, UpdateParams);
  };
  const Near nears[] = {
      {"2 quads a thread, 64 registers", near_step_kernel<2, 8>},
      {"4 quads a thread, 64 registers", near_step_kernel<4, 8>},
      {"2 quads a thread, 48 registers", near_step_kernel<2, 10>},
  };
  const uint64_t quads = Bench::kUnlisted / 4;
  const double bytes = 4.0 * double(Bench::kUnlisted) * sizeof(float);
  // One small block a multiprocessor.
  const auto launcher = [&](const Near& s) {
    return [&b, &s, quads](cudaStream_t st) { s.kernel<<<b.sms, kNearThreads, 0, st>>>(b.w, b.v, quads, b.u); };
  };
  for (const Near& s : nears) {
    cudaFuncAttributes a;
    CHECK(cudaFuncGetAttributes(&a, s.kernel));
    const auto step = launcher(s);
    const float us = median_us([&] { step(nullptr); });
    std::printf("{\"near_step\": \"%s\", \"registers\": %d, \"blocks\": %d, \"us\": %.1f, \"tb_s\": %.3f}\n", s.name,
                a.numRegs, b.sms, us, bytes / (us * 1e-6) / 1e12);
  }
  for (const Bench::Shape& shape : b.shapes) {
    const PlannedGemm gemm(shape.g, b.sms, b.wgmma);
    if (!gemm.plan.supported) continue;
    const float alone = median_us([&] { gemm(nullptr); });
    std::printf("{\"gemm\": \"%s\", \"gemm_registers\": %d, \"alone_us\": %.1f}\n", shape.name, GEMM_REGISTERS, alone);
    for (const Near& s : nears) {
      const auto step = launcher(s);
      const auto [gemm_first, step_second] = b.at_once(gemm, step);
      const auto [step_first, gemm_second] = b.at_once(step, gemm);
      std::printf("{\"gemm\": \"%s\", \"gemm_registers\": %d, \"beside\": \"%s\", "
                  "\"gemm_queued_first\": {\"gemm_us\": %.1f, \"step_us\": %.1f}, "
                  "\"step_queued_first\": {\"gemm_us\": %.1f, \"step_us\": %.1f}}\n",
                  shape.name, GEMM_REGISTERS, s.name, gemm_first, step_second, gemm_second, step_first);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "apart";
  if (mode != "apart" && mode != "together") {
    std::fprintf(stderr, "usage: %s [apart|together]\n", argv[0]);
    return 2;
  }
  Bench b;
  if (mode == "apart") apart(b);
  else together(b);
  CHECK(cudaGetLastError());
  return 0;
}
