// Times the output layer's three GEMMs through cuBLAS, called as the engine calls them, by row pitch and
// math mode. A 27,278-float row is not a multiple of 16 bytes, which can keep cuBLAS off its vectorised and
// tensor-core kernels; padding the pitch (same logical size, larger leading dimension) shows what that costs.
// Build and run on a GPU machine:
//   nvcc -O2 -arch=sm_90 -o /tmp/gemm_shapes bench/gemm_shapes.cu -lcublas && /tmp/gemm_shapes [hidden] [units]
// Prints one JSON line per (mode, pitch, shape): median microseconds and TFLOP/s.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
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
  return 0;
}
