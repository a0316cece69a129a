// GEMM twin on the CPU: CBLAS (the scipy-openblas32 wheel exports it with a prefix), run on our OpenMP
// threads. OpenBLAS's own worker threads spin after each call and so starve the OpenMP loops of the ops
// that follow (on 2 cores its idle loop took 28% of all CPU time in a training profile): when the BLAS
// lets us, it is made single-threaded (for the whole process) and each OpenMP thread multiplies its own
// blocks, one thread pool for everything. The blocks depend on the shape only, never on the thread
// count, so the bits are those of any thread count (OpenBLAS's own threading gave different bits with 1
// and 2 threads).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "host_backend.h"

#define DSSTNE_CAT2(a, b) a##b
#define DSSTNE_CAT(a, b) DSSTNE_CAT2(a, b)
#define DSSTNE_CBLAS(name) DSSTNE_CAT(DSSTNE_BLAS_PREFIX, name)

extern "C" {
enum DsstneCblasOrder { DsstneRowMajor = 101 };
enum DsstneCblasTrans { DsstneNoTrans = 111, DsstneTrans = 112 };
void DSSTNE_CBLAS(cblas_sgemm)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                               const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
// OpenBLAS only; weak, so another CBLAS links too (and keeps its own threading).
void DSSTNE_CBLAS(openblas_set_num_threads)(int threads) __attribute__((weak));
}

namespace dsstne {
namespace {

// Whether the BLAS runs single-threaded inside our threads: set once, on the first GEMM.
bool blas_in_our_threads() {
  static const bool ok = [] {
    if (!DSSTNE_CBLAS(openblas_set_num_threads)) return false;
    DSSTNE_CBLAS(openblas_set_num_threads)(1);
    return true;
  }();
  return ok;
}

// Block [row0, row0 + rows) x [col0, col0 + cols) of op(A) op(B) over k in [k0, k0 + depth), into c (the
// block's first element at c[row0 * ldc + col0]) with the given beta.
void sgemm(const GemmArgs& g, int row0, int rows, int col0, int cols, int k0, int depth, float beta, float* c,
           int ldc) {
  const int64_t ka = k0, kb = k0;
  const float* a = g.a + (g.trans_a ? ka * g.lda + row0 : static_cast<int64_t>(row0) * g.lda + ka);
  const float* b = g.b + (g.trans_b ? static_cast<int64_t>(col0) * g.ldb + kb : kb * g.ldb + col0);
  DSSTNE_CBLAS(cblas_sgemm)(DsstneRowMajor, g.trans_a ? DsstneTrans : DsstneNoTrans,
                            g.trans_b ? DsstneTrans : DsstneNoTrans, rows, cols, depth, g.alpha, a, g.lda, b, g.ldb,
                            beta, c + static_cast<int64_t>(row0) * ldc + col0, ldc);
}

// Below this many multiply-adds one call is cheaper than a parallel region (and OpenBLAS switches to
// its small-matrix kernels, whose results would depend on the block shape).
constexpr int64_t kMinSplitWork = int64_t{1} << 24;
constexpr int kColumnBlock = 4096;  // target width of a column block (measured: 8 blocks of 27K best)
constexpr int kMinColumns = 128;    // narrowest column block
constexpr int kRowBlock = 128;      // target height of a row block
constexpr int kMinRows = 64;        // lowest row block
constexpr int kDepthBlocks = 4;     // k blocks of a small C with long dot products
constexpr int64_t kMaxPartials = int64_t{1} << 22;  // floats of partial products a k split may use

}  // namespace

void HostBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const int64_t work = static_cast<int64_t>(g.m) * g.n * g.k, cells = static_cast<int64_t>(g.m) * g.n;
  if (!blas_in_our_threads() || work < kMinSplitWork) {
    sgemm(g, 0, g.m, 0, g.n, 0, g.k, g.beta, g.c, g.ldc);
    return;
  }
  if (g.k >= 8 * std::max(g.m, g.n) && cells * (kDepthBlocks - 1) <= kMaxPartials) {
    // Small C, long dot products (the hidden layer's delta, k = output units): split k. Block 0 goes
    // into C with the caller's beta, the others into partial products added to C in block order. Each
    // thread reads only its share of A and B, where splitting C's rows would read B once per row block.
    const int step = ((g.k + kDepthBlocks - 1) / kDepthBlocks + 15) / 16 * 16;
    const int blocks = (g.k + step - 1) / step;
    thread_local std::vector<float> scratch;  // the calling thread's: no state shared between callers
    scratch.resize(static_cast<size_t>(cells) * (blocks - 1));
    float* partials = scratch.data();
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
      for (int b = 0; b < blocks; ++b) {
        const int k0 = b * step, depth = std::min(step, g.k - k0);
        if (b == 0)
          sgemm(g, 0, g.m, 0, g.n, k0, depth, g.beta, g.c, g.ldc);
        else
          sgemm(g, 0, g.m, 0, g.n, k0, depth, 0.0f, partials + (b - 1) * cells, g.n);
      }
#pragma omp for schedule(static)
      for (int i = 0; i < g.m; ++i) {
        float* c = g.c + static_cast<int64_t>(i) * g.ldc;
        for (int b = 1; b < blocks; ++b) {
          const float* p = partials + (b - 1) * cells + static_cast<int64_t>(i) * g.n;
          for (int j = 0; j < g.n; ++j) c[j] += p[j];
        }
      }
    }
    return;
  }
  // Otherwise blocks of C: column blocks when C is wide enough (the output layer: each block reads its
  // share of B and all of A), else row blocks. Equal blocks with 16-aligned edges. An element of C is
  // the same dot product wherever the block edges fall.
  int col_blocks = (g.n + kColumnBlock - 1) / kColumnBlock;
  col_blocks = std::min((col_blocks + 3) / 4 * 4, g.n / kMinColumns);  // a multiple of 4 balances 2 or 4 threads
  int row_blocks = 1;
  if (col_blocks < 2) {
    col_blocks = 1;
    row_blocks = std::max(1, std::min((g.m + kRowBlock - 1) / kRowBlock, g.m / kMinRows));
  }
  const int col_step = ((g.n + col_blocks - 1) / col_blocks + 15) / 16 * 16;
  const int row_step = ((g.m + row_blocks - 1) / row_blocks + 15) / 16 * 16;
  col_blocks = (g.n + col_step - 1) / col_step;
  row_blocks = (g.m + row_step - 1) / row_step;
  const int blocks = row_blocks * col_blocks;
  if (blocks == 1) {
    sgemm(g, 0, g.m, 0, g.n, 0, g.k, g.beta, g.c, g.ldc);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < blocks; ++i) {
    const int r0 = (i / col_blocks) * row_step, c0 = (i % col_blocks) * col_step;
    sgemm(g, r0, std::min(row_step, g.m - r0), c0, std::min(col_step, g.n - c0), 0, g.k, g.beta, g.c, g.ldc);
  }
}

}  // namespace dsstne
