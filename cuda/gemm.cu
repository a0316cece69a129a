// GEMM twin on the GPU. FP32 and TF32 (and the shapes the tensor-core kernel does not take): cuBLAS,
// which is column-major. A row-major matrix read column-major is its transpose, so row-major
// C = op(A) op(B) is computed as column-major C^T = op(B)^T op(A)^T: operands swapped, m and n swapped,
// the transpose flags kept. Tf32x3: the engine's own kernel (tensor_gemm.cuh), row-major as it is. (Its
// one-product TF32 variant, timed by bench/gemm_shapes.cu, rounds as cuBLAS's TF32 does but ran the
// sample network slower than cuBLAS TF32 on an H100: 0.129 s an epoch against 0.115 with mma.sync, 0.121
// against 0.115 with wgmma. TF32 stays on cuBLAS.)
#include "check.cuh"
#include "cuda_backend.cuh"
#include "tensor_gemm.cuh"

namespace dsstne {

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  bind();
  if (math_ == MathMode::Tf32x3) {
    // Our kernel's block takes a whole multiprocessor's registers, so nothing else runs beside it there.
    // On the side stream it leaves an eighth of the multiprocessors to the main stream's kernels (H100,
    // tf32x3: benchmark 0.846 -> 0.821 s an epoch, sample 0.1462 -> 0.1459); the split, and so every sum,
    // does not depend on it.
    const int multiprocessors = props_.multiProcessorCount;
    const gpu::TensorGemmPlan plan =
        gpu::tensor_gemm_plan(g, on_side_ ? multiprocessors - multiprocessors / 8 : multiprocessors, wgmma_);
    if (plan.supported) {
      gpu::tensor_gemm(g, plan, 3, gemm_workspace(plan.workspace_floats), stream(), dependent_);
      return;
    }
  }
  DSSTNE_CUBLAS_CHECK(cublasSgemm(blas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &g.alpha, g.b, g.ldb, g.a,
                                  g.lda, &g.beta, g.c, g.ldc));
}

}  // namespace dsstne
