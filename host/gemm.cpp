// GEMM twin on the CPU: CBLAS (the scipy-openblas32 wheel exports it with a prefix).
#include "host_backend.h"

#define DSSTNE_CAT2(a, b) a##b
#define DSSTNE_CAT(a, b) DSSTNE_CAT2(a, b)
#define DSSTNE_CBLAS(name) DSSTNE_CAT(DSSTNE_BLAS_PREFIX, name)

extern "C" {
enum DsstneCblasOrder { DsstneRowMajor = 101 };
enum DsstneCblasTrans { DsstneNoTrans = 111, DsstneTrans = 112 };
void DSSTNE_CBLAS(cblas_sgemm)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                               const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
}

namespace dsstne {

void HostBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  DSSTNE_CBLAS(cblas_sgemm)(DsstneRowMajor, g.trans_a ? DsstneTrans : DsstneNoTrans,
                            g.trans_b ? DsstneTrans : DsstneNoTrans, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b,
                            g.ldb, g.beta, g.c, g.ldc);
}

}  // namespace dsstne
