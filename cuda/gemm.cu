// GEMM twin on the GPU: cuBLAS, which is column-major. A row-major matrix read column-major is its
// transpose, so row-major C = op(A) op(B) is computed as column-major C^T = op(B)^T op(A)^T: operands
// swapped, m and n swapped, the transpose flags kept.
#include "check.cuh"
#include "cuda_backend.cuh"

namespace dsstne {

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  bind();
  DSSTNE_CUBLAS_CHECK(cublasSgemm(blas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &g.alpha, g.b, g.ldb, g.a,
                                  g.lda, &g.beta, g.c, g.ldc));
}

}  // namespace dsstne
