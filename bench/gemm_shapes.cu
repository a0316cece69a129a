// Times the output layer's three GEMMs through cuBLAS, called as the engine calls them, by row pitch and
// math mode. A 27,278-float row is not a multiple of 16 bytes, which can keep cuBLAS off its vectorised and
// tensor-core kernels; padding the pitch (same logical size, larger leading dimension) shows what that costs.
// Then, in FP32 at the engine's pitch, every cuBLASLt algorithm its heuristic offers for each shape
// (deterministic reductions only), against the default: is any algorithm worth pinning?
// Build and run on a GPU machine:
//   nvcc -O2 -arch=sm_90 -o /tmp/gemm_shapes bench/gemm_shapes.cu -lcublas -lcublasLt && /tmp/gemm_shapes [hidden] [units]
// Prints one JSON line per (mode, pitch, shape): median microseconds and TFLOP/s; then one per shape
// with the default's and the best cuBLASLt algorithm's microseconds.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                                  \
  do {                                                                            \
    if ((x) != 0) {                                                               \
      std::fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, (int)(x)); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

namespace {

__global__ void fill(float* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    p[i] = static_cast<float>(x & 0xFFFF) / 65536.0f - 0.5f;
  }
}

float* random_matrix(size_t n, unsigned seed) {
  float* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(float)));
  fill<<<1024, 256>>>(p, n, seed);
  CHECK(cudaGetLastError());
  return p;
}

template <class F>
float median_us(F f) {
  for (int i = 0; i < 5; ++i) f();
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < 50; ++i) {
    CHECK(cudaEventRecord(a));
    f();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e3f);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int batch = 256, hidden = argc > 1 ? std::atoi(argv[1]) : 128, units = argc > 2 ? std::atoi(argv[2]) : 27278;
  cublasHandle_t h;
  CHECK(cublasCreate(&h));
  const float one = 1.0f, zero = 0.0f;
  const double flops = 2.0 * batch * hidden * units;
  const int pitches[] = {units, (units + 3) / 4 * 4, (units + 127) / 128 * 128};
  const char* modes[] = {"fp32", "tf32", "tf32-fast-compute"};
  for (int mode = 0; mode < 3; ++mode) {
    CHECK(cublasSetMathMode(h, mode == 1 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const cublasComputeType_t compute = mode == 2 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    for (int pitch : pitches) {
      // Row-major [batch][hidden] H and DH; [hidden][pitch] W and GW; [batch][pitch] Z and D.
      float* H = random_matrix(size_t(batch) * hidden, 1);
      float* DH = random_matrix(size_t(batch) * hidden, 2);
      float* W = random_matrix(size_t(hidden) * pitch, 3);
      float* GW = random_matrix(size_t(hidden) * pitch, 4);
      float* Z = random_matrix(size_t(batch) * pitch, 5);
      float* D = random_matrix(size_t(batch) * pitch, 6);
      auto gemm = [&](cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* A, int lda,
                      const float* B, int ldb, float* C, int ldc) {
        CHECK(cublasGemmEx(h, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &zero, C, CUDA_R_32F,
                           ldc, compute, CUBLAS_GEMM_DEFAULT));
      };
      struct Shape {
        const char* name;
        float us;
      } shapes[3] = {
          // Column-major views of the row-major matrices (the engine's gemm.cu convention).
          {"forward Z=H.W", median_us([&] { gemm(CUBLAS_OP_N, CUBLAS_OP_N, units, batch, hidden, W, pitch, H, hidden,
                                                 Z, pitch); })},
          {"weight grad GW=Ht.D", median_us([&] { gemm(CUBLAS_OP_N, CUBLAS_OP_T, units, hidden, batch, D, pitch, H,
                                                       hidden, GW, pitch); })},
          {"delta DH=D.Wt", median_us([&] { gemm(CUBLAS_OP_T, CUBLAS_OP_N, hidden, batch, units, W, pitch, D, pitch,
                                                 DH, hidden); })},
      };
      for (const Shape& s : shapes)
        std::printf("{\"mode\": \"%s\", \"hidden\": %d, \"pitch\": %d, \"shape\": \"%s\", \"us\": %.1f, \"tflops\": %.1f}\n",
                    modes[mode], hidden, pitch, s.name, s.us, flops / s.us / 1e6);
      for (float* p : {H, DH, W, GW, Z, D}) CHECK(cudaFree(p));
    }
  }
  CHECK(cublasDestroy(h));

  // cuBLASLt sweep, FP32, pitch = units. Column-major (m, n, k, transposes) as above.
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt));
  const size_t workspace_bytes = size_t{32} << 20;
  void* workspace = nullptr;
  CHECK(cudaMalloc(&workspace, workspace_bytes));
  float* H = random_matrix(size_t(batch) * hidden, 1);
  float* DH = random_matrix(size_t(batch) * hidden, 2);
  float* W = random_matrix(size_t(hidden) * units, 3);
  float* GW = random_matrix(size_t(hidden) * units, 4);
  float* Z = random_matrix(size_t(batch) * units, 5);
  float* D = random_matrix(size_t(batch) * units, 6);
  struct LtShape {
    const char* name;
    cublasOperation_t ta, tb;
    int m, n, k;
    const float *A, *B;
    int lda, ldb;
    float* C;
    int ldc;
  } lt_shapes[3] = {
      {"forward Z=H.W", CUBLAS_OP_N, CUBLAS_OP_N, units, batch, hidden, W, H, units, hidden, Z, units},
      {"weight grad GW=Ht.D", CUBLAS_OP_N, CUBLAS_OP_T, units, hidden, batch, D, H, units, hidden, GW, units},
      {"delta DH=D.Wt", CUBLAS_OP_T, CUBLAS_OP_N, hidden, batch, units, W, D, units, units, DH, hidden},
  };
  cublasHandle_t h2;
  CHECK(cublasCreate(&h2));
  for (const LtShape& s : lt_shapes) {
    const float default_us = median_us([&] {
      CHECK(cublasSgemm(h2, s.ta, s.tb, s.m, s.n, s.k, &one, s.A, s.lda, s.B, s.ldb, &zero, s.C, s.ldc));
    });
    cublasLtMatmulDesc_t op;
    CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &s.ta, sizeof(s.ta)));
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &s.tb, sizeof(s.tb)));
    cublasLtMatrixLayout_t a, b, c;
    CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, s.ta == CUBLAS_OP_N ? s.m : s.k,
                                     s.ta == CUBLAS_OP_N ? s.k : s.m, s.lda));
    CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, s.tb == CUBLAS_OP_N ? s.k : s.n,
                                     s.tb == CUBLAS_OP_N ? s.n : s.k, s.ldb));
    CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, s.m, s.n, s.ldc));
    cublasLtMatmulPreference_t pref;
    CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                               sizeof(workspace_bytes)));
    const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                             CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;  // no in-place (atomic) reductions
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                               sizeof(schemes)));
    cublasLtMatmulHeuristicResult_t results[32];
    int found = 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 32, results, &found));
    float best = 1e30f;
    int best_i = -1;
    for (int i = 0; i < found; ++i) {
      const float us = median_us([&] {
        CHECK(cublasLtMatmul(lt, op, &one, s.A, a, s.B, b, &zero, s.C, c, s.C, c, &results[i].algo, workspace,
                             workspace_bytes, nullptr));
      });
      if (us < best) best = us, best_i = i;
    }
    std::printf("{\"lt_sweep\": \"%s\", \"hidden\": %d, \"default_us\": %.1f, \"best_us\": %.1f, "
                "\"best_rank\": %d, \"algorithms\": %d}\n",
                s.name, hidden, default_us, best, best_i, found);
    CHECK(cublasLtMatmulPreferenceDestroy(pref));
    for (cublasLtMatrixLayout_t l : {a, b, c}) CHECK(cublasLtMatrixLayoutDestroy(l));
    CHECK(cublasLtMatmulDescDestroy(op));
  }
  for (float* p : {H, DH, W, GW, Z, D}) CHECK(cudaFree(p));
  CHECK(cudaFree(workspace));
  CHECK(cublasDestroy(h2));
  CHECK(cublasLtDestroy(lt));
  return 0;
}
