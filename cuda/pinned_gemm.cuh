// cuBLASLt algorithms pinned for the TF32 products where one of cuBLASLt's heuristic candidates runs well
// ahead of cublasSgemm's own choice (bench/gemm_shapes.cu prints every candidate's time and configuration).
// A pin names its candidate by configuration, never by a time taken at run time, so a run's bits never
// depend on the clock. A product with no pin, or whose pinned configuration the heuristic does not offer on
// this device and cuBLAS, stays with cublasSgemm. DSSTNE_PINNED_GEMMS=off turns the pins off (for
// comparison: the bits of cublasSgemm's choices).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "dsstne/ops.h"

namespace dsstne::gpu {

// One attribute of a cuBLASLt algorithm's configuration (each an integer of at most 8 bytes, little-endian,
// its size asked first, then read with exactly that size); ~0 where cuBLASLt does not report it.
inline uint64_t algorithm_config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attribute) {
  uint64_t value = 0;
  size_t size = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, nullptr, 0, &size) != CUBLAS_STATUS_SUCCESS ||
      size == 0 || size > sizeof(value) ||
      cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value, size, &size) != CUBLAS_STATUS_SUCCESS)
    return ~uint64_t{0};
  return value;
}

struct LtDeleter {
  void operator()(cublasLtContext* h) const noexcept;
};
struct LtOpDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const noexcept;
};
struct LtLayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const noexcept;
};

// One pinned product's descriptors and algorithm, made at its first call.
struct PinnedPlan {
  std::unique_ptr<cublasLtMatmulDescOpaque_t, LtOpDeleter> op;
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LtLayoutDeleter> a, b, c;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
};

class PinnedGemms {
 public:
  PinnedGemms();
  // g's pinned plan under TF32, or nullptr (no pin, pins off, or the configuration not offered). A
  // product's answer is found once and kept.
  const PinnedPlan* find(const GemmArgs& g);
  // g by its plan, row-major as GemmArgs (cuBLASLt's column-major C^T = op(B)^T op(A)^T), on `stream`, with
  // plan.workspace_bytes of `workspace`.
  void run(const PinnedPlan& plan, const GemmArgs& g, void* workspace, cudaStream_t stream) const;

 private:
  struct Shape {
    int m, n, k, lda, ldb, ldc;
    bool trans_a, trans_b;
    bool operator==(const Shape& o) const;
  };
  std::unique_ptr<PinnedPlan> plan(const GemmArgs& g);

  bool enabled_ = true;
  std::unique_ptr<cublasLtContext, LtDeleter> lt_;  // made with the first pinned product's plan
  std::vector<std::pair<Shape, std::unique_ptr<PinnedPlan>>> plans_;  // nullptr: cublasSgemm's
};

}  // namespace dsstne::gpu
