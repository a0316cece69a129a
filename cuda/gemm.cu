// GEMM twin on the GPU. FP32 (and the shapes the tensor-core kernel does not take): cuBLAS, which is
// column-major. A row-major matrix read column-major is its transpose, so row-major C = op(A) op(B) is
// computed as column-major C^T = op(B)^T op(A)^T: operands swapped, m and n swapped, the transpose flags
// kept. Tf32x3: the engine's own kernel (tensor_gemm.cuh), row-major as it is. TF32: cuBLAS's TF32, but
// the deep products and the side stream's large ones that cuBLAS cannot load by 16 bytes take the
// kernel's one-product variant (below), and the products with a pinned cuBLASLt algorithm take it
// (pinned_gemm.cuh).
#include "check.cuh"
#include "cuda_backend.cuh"
#include "tensor_gemm.cuh"

namespace dsstne {

// A side-stream product of at least this many rounds of blocks on its share takes our kernel under TF32.
constexpr uint64_t kSideRounds = 4;
// A product at least this deep that cuBLAS would run on single floats takes our kernel under TF32.
constexpr int kDeepK = 256;

namespace {

// Whether cuBLAS's TF32 kernels can load every operand by 16 bytes: each extent and pitch whole 16 bytes.
bool vectorised(const GemmArgs& g) { return (g.m | g.n | g.k | g.lda | g.ldb | g.ldc) % 4 == 0; }

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  bind();
  // Under TF32, cuBLAS is faster wherever it loads by 16 bytes, on either stream (H200: the benchmark's
  // output weight gradient on the side stream, 0.3980 - 0.3990 s an epoch on ours -> 0.3740 - 0.3748), so
  // only a product it cannot load so (rows of 27,278 floats) is planned for ours.
  if (math_ == MathMode::Tf32x3 || (math_ == MathMode::Tf32 && !vectorised(g))) {
    // Our kernel's block takes a whole multiprocessor's registers, so nothing else runs beside it there.
    // On the side stream it leaves an eighth of the multiprocessors to the main stream's kernels (H100,
    // tf32x3: benchmark 0.846 -> 0.821 s an epoch, sample 0.1462 -> 0.1459); the split, and so every sum,
    // does not depend on it.
    const int multiprocessors = props_.multiProcessorCount;
    const int share = on_side_ ? multiprocessors - multiprocessors / 8 : multiprocessors;
    const gpu::TensorGemmPlan plan = gpu::tensor_gemm_plan(g, share, wgmma_);
    // Where cuBLAS cannot load by 16 bytes it runs kernels of single floats, slower than ours on a deep
    // product (the benchmark's output forward, K = 1,024: 0.4393 - 0.4405 s -> 0.4306 - 0.4319) but not on
    // a shallow one (the sample's, K = 128: 0.0907 - 0.0912 s -> 0.0920 - 0.0922 on ours), and than ours
    // held to its share for a side-stream product of many rounds (H100: benchmark 0.5557 - 0.5563 s ->
    // 0.5315 - 0.5324; the sample's output weight gradient, 1.8 rounds, 0.1073 - 0.1079 on ours against
    // 0.1027 - 0.1034).
    const auto many_rounds = [&] {
      const auto units = [](const gpu::TileGrid& t) { return uint64_t{t.tiles_m} * t.tiles_n * t.splits; };
      return units(plan.grid) + (plan.tail_n0 ? units(plan.tail) : 0) >= kSideRounds * share;
    };
    const bool ours = math_ == MathMode::Tf32x3 || g.k >= kDeepK || (on_side_ && many_rounds());
    if (plan.supported && ours) {
      gpu::tensor_gemm(g, plan, math_ == MathMode::Tf32x3 ? 3 : 1, gemm_workspace(plan.workspace_floats), stream(),
                       dependent_);
      return;
    }
  }
  if (math_ == MathMode::Tf32) {
    if (const gpu::PinnedPlan* pinned = pinned_->find(g)) {
      pinned_->run(*pinned, g, gemm_workspace((pinned->workspace_bytes + sizeof(float) - 1) / sizeof(float)),
                   stream());
      return;
    }
  }
  DSSTNE_CUBLAS_CHECK(cublasSgemm(blas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &g.alpha, g.b, g.ldb, g.a,
                                  g.lda, &g.beta, g.c, g.ldc));
}

}  // namespace dsstne
