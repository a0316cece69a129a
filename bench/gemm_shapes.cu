// Times the output layer's three GEMMs through cuBLAS, called as the engine calls them, by row pitch and
// math mode. A 27,278-float row is not a multiple of 16 bytes, which can keep cuBLAS off its vectorised and
// tensor-core kernels; padding the pitch (same logical size, larger leading dimension) shows what that costs.
// Then, in FP32 at the engine's pitch and in TF32 over padded rows, every cuBLASLt algorithm its heuristic
// offers for each shape (deterministic reductions only), against the default: is any algorithm worth
// pinning? Last, each way of computing the shapes, timed and with its error against an FP64 GEMM: cuBLAS
// FP32 (SIMT), cuBLAS's FP32 emulation on BF16 tensor cores (BF16x9, forced on; it does not engage on
// sm_90), cuBLAS TF32, and the engine's tensor-core GEMM (cuda/tensor_gemm.cu) with three TF32 products
// and with one.
// Build and run on a GPU machine (`ways` runs the last part only):
//   nvcc -O2 -arch=sm_90a -std=c++17 -Iinclude -Icuda -o /tmp/gemm_shapes bench/gemm_shapes.cu cuda/tensor_gemm.cu \
//     -lcublas -lcublasLt && /tmp/gemm_shapes [hidden] [units] [ways]
// Prints one JSON line per (mode, pitch, shape): median microseconds and TFLOP/s; then one per shape
// with the default's and the best cuBLASLt algorithm's microseconds (after one per offered algorithm, with
// its microseconds and configuration); then one per (shape, way) with
// microseconds and the largest error relative to the largest output.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_timing.cuh"
#include "pinned_gemm.cuh"
#include "tensor_gemm.cuh"

namespace {

__global__ void fill(float* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    p[i] = static_cast<float>(static_cast<double>(x) / 4294967296.0 - 0.5);  // full mantissas
  }
}

float* random_matrix(size_t n, unsigned seed) {
  float* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(float)));
  fill<<<1024, 256>>>(p, n, seed);
  CHECK(cudaGetLastError());
  return p;
}

// The six row-major matrices of the output layer at one row pitch: [batch][hidden] H and DH, [hidden][pitch]
// W and GW, [batch][pitch] Z and D.
struct Matrices {
  float *H, *DH, *W, *GW, *Z, *D;
  Matrices(int batch, int hidden, int pitch)
      : H(random_matrix(size_t(batch) * hidden, 1)),
        DH(random_matrix(size_t(batch) * hidden, 2)),
        W(random_matrix(size_t(hidden) * pitch, 3)),
        GW(random_matrix(size_t(hidden) * pitch, 4)),
        Z(random_matrix(size_t(batch) * pitch, 5)),
        D(random_matrix(size_t(batch) * pitch, 6)) {}
  ~Matrices() {
    for (float* p : {H, DH, W, GW, Z, D}) cudaFree(p);
  }
  Matrices(const Matrices&) = delete;
  Matrices& operator=(const Matrices&) = delete;
};

// One column-major GEMM call C = op(A) op(B) (the engine's gemm.cu view of its row-major matrices), and
// the same product as the engine's row-major GemmArgs.
struct Gemm {
  const char* name;
  cublasOperation_t ta, tb;
  int m, n, k;
  const float* A;
  int lda;
  const float* B;
  int ldb;
  float* C;
  int ldc;
  dsstne::GemmArgs row_major;
};

dsstne::GemmArgs row_major(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                           float* c, int ldc) {
  dsstne::GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k, g.a = a, g.lda = lda, g.b = b, g.ldb = ldb, g.c = c;
  g.ldc = ldc;
  return g;
}

// The output layer's three GEMMs, as the engine calls them.
std::vector<Gemm> output_layer_gemms(const Matrices& x, int batch, int hidden, int units, int pitch) {
  return {
      {"forward Z=H.W", CUBLAS_OP_N, CUBLAS_OP_N, units, batch, hidden, x.W, pitch, x.H, hidden, x.Z, pitch,
       row_major(false, false, batch, units, hidden, x.H, hidden, x.W, pitch, x.Z, pitch)},
      {"weight grad GW=Ht.D", CUBLAS_OP_N, CUBLAS_OP_T, units, hidden, batch, x.D, pitch, x.H, hidden, x.GW, pitch,
       row_major(true, false, hidden, units, batch, x.H, hidden, x.D, pitch, x.GW, pitch)},
      {"delta DH=D.Wt", CUBLAS_OP_T, CUBLAS_OP_N, hidden, batch, units, x.W, pitch, x.D, pitch, x.DH, hidden,
       row_major(false, true, batch, hidden, units, x.D, pitch, x.W, pitch, x.DH, hidden)},
  };
}

const float kOne = 1.0f, kZero = 0.0f;

float time_gemm(cublasHandle_t h, const Gemm& g, cublasComputeType_t compute) {
  return median_us([&] {
    CHECK(cublasGemmEx(h, g.ta, g.tb, g.m, g.n, g.k, &kOne, g.A, CUDA_R_32F, g.lda, g.B, CUDA_R_32F, g.ldb, &kZero,
                       g.C, CUDA_R_32F, g.ldc, compute, CUBLAS_GEMM_DEFAULT));
  });
}

// One offered algorithm's configuration, to look for a rule that would pick the fastest without timing.
void print_algorithm(const char* shape, int rank, float us, const cublasLtMatmulAlgo_t& algo) {
  const cublasLtMatmulAlgoConfigAttributes_t attributes[] = {
      CUBLASLT_ALGO_CONFIG_ID,          CUBLASLT_ALGO_CONFIG_TILE_ID,          CUBLASLT_ALGO_CONFIG_STAGES_ID,
      CUBLASLT_ALGO_CONFIG_SPLITK_NUM,  CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,  CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
      CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID};
  const char* names[] = {"id", "tile", "stages", "splitk", "reduction", "swizzle", "custom", "cluster", "inner"};
  std::printf("{\"lt_algorithm\": \"%s\", \"rank\": %d, \"us\": %.1f", shape, rank, us);
  for (size_t k = 0; k < sizeof(attributes) / sizeof(attributes[0]); ++k) {
    const uint64_t value = dsstne::gpu::algorithm_config(algo, attributes[k]);
    if (value != ~uint64_t{0}) std::printf(", \"%s\": %llu", names[k], static_cast<unsigned long long>(value));
  }
  std::printf("}\n");
}

// The fastest of the algorithms cuBLASLt's heuristic offers for g with `compute` (deterministic reductions
// only): {microseconds, heuristic rank, algorithms offered}.
struct Sweep {
  float us;
  int rank, offered;
};
Sweep sweep_algorithms(cublasLtHandle_t lt, const Gemm& g, cublasComputeType_t compute, void* workspace,
                       size_t workspace_bytes) {
  cublasLtMatmulDesc_t op;
  CHECK(cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &g.ta, sizeof(g.ta)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &g.tb, sizeof(g.tb)));
  cublasLtMatrixLayout_t a, b, c;
  const bool na = g.ta == CUBLAS_OP_N, nb = g.tb == CUBLAS_OP_N;
  CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, na ? g.m : g.k, na ? g.k : g.m, g.lda));
  CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, nb ? g.k : g.n, nb ? g.n : g.k, g.ldb));
  CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, g.m, g.n, g.ldc));
  cublasLtMatmulPreference_t pref;
  CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                             sizeof(workspace_bytes)));
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                           CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;  // no in-place (atomic) reductions
  CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                             sizeof(schemes)));
  cublasLtMatmulHeuristicResult_t results[32];
  Sweep best{1e30f, -1, 0};
  CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 32, results, &best.offered));
  for (int i = 0; i < best.offered; ++i) {
    const float us = median_us([&] {
      CHECK(cublasLtMatmul(lt, op, &kOne, g.A, a, g.B, b, &kZero, g.C, c, g.C, c, &results[i].algo, workspace,
                           workspace_bytes, nullptr));
    });
    if (us < best.us) best.us = us, best.rank = i;
    print_algorithm(g.name, i, us, results[i].algo);
  }
  CHECK(cublasLtMatmulPreferenceDestroy(pref));
  for (cublasLtMatrixLayout_t l : {a, b, c}) CHECK(cublasLtMatrixLayoutDestroy(l));
  CHECK(cublasLtMatmulDescDestroy(op));
  return best;
}

__global__ void widen(const float* in, double* out, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = in[i];
}

// max |c - ref| / max |ref| over n elements, on the host.
double relative_error(const float* c, const double* ref, size_t n) {
  std::vector<float> hc(n);
  std::vector<double> hr(n);
  CHECK(cudaMemcpy(hc.data(), c, n * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(hr.data(), ref, n * sizeof(double), cudaMemcpyDeviceToHost));
  double err = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(hc[i] - hr[i]));
    scale = std::max(scale, std::abs(hr[i]));
  }
  return err / scale;
}

// The same GEMM in FP64 from widened copies of g's operands; the result has g's layout.
double* fp64_reference(cublasHandle_t h, const Gemm& g, size_t a_n, size_t b_n, size_t c_n) {
  double *a, *b, *c;
  CHECK(cudaMalloc(&a, a_n * sizeof(double)));
  CHECK(cudaMalloc(&b, b_n * sizeof(double)));
  CHECK(cudaMalloc(&c, c_n * sizeof(double)));
  widen<<<1024, 256>>>(g.A, a, a_n);
  widen<<<1024, 256>>>(g.B, b, b_n);
  const double one = 1, zero = 0;
  CHECK(cublasDgemm(h, g.ta, g.tb, g.m, g.n, g.k, &one, a, g.lda, b, g.ldb, &zero, c, g.ldc));
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const int batch = 256, hidden = argc > 1 ? std::atoi(argv[1]) : 128, units = argc > 2 ? std::atoi(argv[2]) : 27278;
  const bool ways_only = argc > 3 && std::string(argv[3]) == "ways";
  cublasHandle_t h;
  CHECK(cublasCreate(&h));
  const double flops = 2.0 * batch * hidden * units;
  const int pitches[] = {units, (units + 3) / 4 * 4, (units + 127) / 128 * 128};
  const char* modes[] = {"fp32", "tf32", "tf32-fast-compute"};
  for (int mode = 0; mode < (ways_only ? 0 : 3); ++mode) {
    CHECK(cublasSetMathMode(h, mode == 1 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const cublasComputeType_t compute = mode == 2 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    for (int pitch : pitches) {
      const Matrices x(batch, hidden, pitch);
      for (const Gemm& g : output_layer_gemms(x, batch, hidden, units, pitch)) {
        const float us = time_gemm(h, g, compute);
        std::printf("{\"mode\": \"%s\", \"hidden\": %d, \"pitch\": %d, \"shape\": \"%s\", \"us\": %.1f, \"tflops\": %.1f}\n",
                    modes[mode], hidden, pitch, g.name, us, flops / us / 1e6);
      }
    }
  }

  // cuBLASLt sweep: FP32 at the engine's pitch, and TF32 over the padded rows the engine gives TF32 (extents
  // and pitches of whole 16 bytes), each against cuBLAS's default for the same call.
  CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt));
  const size_t workspace_bytes = size_t{32} << 20;
  void* workspace = nullptr;
  CHECK(cudaMalloc(&workspace, workspace_bytes));
  for (int mode = 0; mode < (ways_only ? 0 : 2); ++mode) {
    const int extent = mode == 0 ? units : pitches[1];
    const cublasComputeType_t compute = mode == 0 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    const Matrices x(batch, hidden, extent);
    for (const Gemm& g : output_layer_gemms(x, batch, hidden, extent, extent)) {
      const float default_us = time_gemm(h, g, compute);
      const Sweep best = sweep_algorithms(lt, g, compute, workspace, workspace_bytes);
      std::printf("{\"lt_sweep\": \"%s\", \"mode\": \"%s\", \"hidden\": %d, \"default_us\": %.1f, "
                  "\"best_us\": %.1f, \"best_rank\": %d, \"algorithms\": %d}\n",
                  g.name, modes[mode], hidden, default_us, best.us, best.rank, best.offered);
    }
  }
  CHECK(cudaFree(workspace));
  CHECK(cublasLtDestroy(lt));

  // Each way of computing the shapes: time and error against FP64.
  {
    const Matrices x(batch, hidden, units);
    const size_t sizes[3][3] = {{size_t(hidden) * units, size_t(batch) * hidden, size_t(batch) * units},
                                {size_t(batch) * units, size_t(batch) * hidden, size_t(hidden) * units},
                                {size_t(hidden) * units, size_t(batch) * units, size_t(batch) * hidden}};
    cudaDeviceProp props;
    CHECK(cudaGetDeviceProperties(&props, 0));
    const std::vector<Gemm> gemms = output_layer_gemms(x, batch, hidden, units, units);
    for (size_t i = 0; i < gemms.size(); ++i) {
      const Gemm& g = gemms[i];
      double* ref = fp64_reference(h, g, sizes[i][0], sizes[i][1], sizes[i][2]);
      const auto report = [&](const char* way, float us) {
        std::printf("{\"way\": \"%s\", \"shape\": \"%s\", \"hidden\": %d, \"us\": %.1f, \"tflops\": %.1f, "
                    "\"error\": %.3g}\n",
                    way, g.name, hidden, us, flops / us / 1e6, relative_error(g.C, ref, sizes[i][2]));
      };
      report("cublas fp32", time_gemm(h, g, CUBLAS_COMPUTE_32F));
      CHECK(cublasSetEmulationStrategy(h, CUBLAS_EMULATION_STRATEGY_EAGER));
      report("cublas bf16x9", time_gemm(h, g, CUBLAS_COMPUTE_32F_EMULATED_16BFX9));
      CHECK(cublasSetEmulationStrategy(h, CUBLAS_EMULATION_STRATEGY_DEFAULT));
      report("cublas tf32", time_gemm(h, g, CUBLAS_COMPUTE_32F_FAST_TF32));
      const dsstne::gpu::TensorGemmPlan plan = dsstne::gpu::tensor_gemm_plan(g.row_major, props.multiProcessorCount,
                                                                                dsstne::gpu::wgmma_kernel_available());
      if (!plan.supported) continue;
      float* workspace = nullptr;
      CHECK(cudaMalloc(&workspace, std::max<size_t>(1, plan.workspace_floats) * sizeof(float)));
      for (int products : {3, 1}) {
        const float us = median_us(
            [&] { dsstne::gpu::tensor_gemm(g.row_major, plan, products, workspace, nullptr, /*dependent=*/false); });
        report(products == 3 ? "ours 3xtf32" : "ours tf32", us);
      }
      std::printf("{\"plan\": \"%s\", \"tiles\": %u, \"splits\": %u, \"blocks\": %u, \"tail_n0\": %d, "
                  "\"tail_tiles\": %u, \"tail_splits\": %u, \"tail_blocks\": %u}\n",
                  g.name, plan.grid.tiles_m * plan.grid.tiles_n, plan.grid.splits, plan.grid.blocks, plan.tail_n0,
                  plan.tail.tiles_m * plan.tail.tiles_n, plan.tail.splits, plan.tail.blocks);
      CHECK(cudaFree(workspace));
      CHECK(cudaFree(ref));
    }
  }
  CHECK(cublasDestroy(h));
  return 0;
}
