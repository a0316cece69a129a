// The CPU target: plain C++ loops (OpenMP across rows where it pays) and BLAS for GEMM.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "dsstne/backend.h"

namespace dsstne {

class HostBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::string description() const override;
  void* allocate(size_t bytes) override;
  void release(void* p, size_t bytes) noexcept override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* p, size_t bytes) override;
  void synchronize() override {}
  MemoryUsage memory() const override { return {current_.load(), peak_.load()}; }
  size_t sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const override;
  size_t sparse_forward_scratch_bytes(uint32_t, uint32_t, uint64_t) const override { return 0; }  // row by row
  size_t topk_scratch_bytes(uint32_t rows, uint32_t stride) const override;
  size_t output_delta_scratch_bytes(uint32_t rows, uint32_t stride) const override;
  void set_math(MathMode) override {}
  void begin_side() override {}
  void end_side() override {}
  void mark(unsigned) override {}
  void wait_mark(unsigned) override {}

  DSSTNE_OPS(DSSTNE_DECLARE_OP)

 private:
  // A row of `width` linear sums as `activate` makes them with `bias` (computed into `buffer`, a thread's
  // own); without a bias, the row itself. Lets ops read a layer whose activation was deferred.
  const float* activated_row(const float* row, uint32_t width, const float* bias, const ActivationParams& f,
                             std::vector<float>& buffer);

  std::atomic<size_t> current_{0}, peak_{0};
};

// A listed row's step in the sparse gradient (SparseGradientArgs::step; update's formula and regularisation
// term): the matrix's parameters [begin, end) with their gradient row. Returns the row's regularisation
// error (fixed point).
long long step_listed_row(const UpdateArgs& a, size_t begin, size_t end, const float* gradient);

}  // namespace dsstne
