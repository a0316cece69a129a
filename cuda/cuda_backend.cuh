// The GPU target: every op is a kernel (or cuBLAS/CUB call) queued asynchronously on one non-blocking
// stream of one device (or, between begin_side() and end_side(), on a second one); results are ready
// after synchronize() (to_host synchronises itself).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "dsstne/backend.h"
#include "pinned_gemm.cuh"
#include "scratch.cuh"

namespace dsstne {

namespace gpu {
struct StreamDeleter {
  void operator()(CUstream_st* s) const noexcept;
};
struct BlasDeleter {
  void operator()(cublasContext* h) const noexcept;
};
struct EventDeleter {
  void operator()(CUevent_st* e) const noexcept;
};
}  // namespace gpu

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;
  std::string description() const override;
  void* allocate(size_t bytes) override;
  void release(void* p, size_t bytes) noexcept override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* p, size_t bytes) override;
  void synchronize() override;
  MemoryUsage memory() const override { return {current_.load(), peak_.load()}; }
  size_t sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const override;
  size_t sparse_forward_scratch_bytes(uint32_t rows, uint32_t stride, uint64_t longest) const override;
  size_t topk_scratch_bytes(uint32_t rows, uint32_t stride) const override;
  size_t output_delta_scratch_bytes(uint32_t rows, uint32_t stride) const override;
  void set_math(MathMode mode) override;
  void begin_side() override;
  void end_side() override;
  void mark(unsigned slot) override;
  void wait_mark(unsigned slot) override;

  DSSTNE_OPS(DSSTNE_DECLARE_OP)

 private:
  // Makes this backend's device current on the calling thread (its stream and handle belong to it).
  void bind() const;
  // The stream ops queue on now.
  cudaStream_t stream() const { return (on_side_ ? side_ : stream_).get(); }
  // Both streams' work is done.
  void wait_all() const;

  using Event = std::unique_ptr<CUevent_st, gpu::EventDeleter>;
  int device_ = 0;
  cudaDeviceProp props_{};
  std::unique_ptr<CUstream_st, gpu::StreamDeleter> stream_, side_;  // declared before blas_: destroyed after it
  std::array<Event, kMarks> marks_;
  Event fork_;  // the main stream's work at begin_side()
  bool on_side_ = false;
  // One cuBLAS handle a stream, each with its own workspace: GEMMs on the two streams may run at once.
  std::unique_ptr<cublasContext, gpu::BlasDeleter> blas_, side_blas_;
  cublasHandle_t blas() const { return (on_side_ ? side_blas_ : blas_).get(); }
  std::unique_ptr<gpu::PinnedGemms> pinned_;  // made once the device is current (its cuBLASLt handle's)
  std::atomic<size_t> current_{0}, peak_{0};
  MathMode math_ = MathMode::Fp32;
  // The activation and loss ops take the hardware's approximate functions (ActivationParams::fast_math):
  // in TF32 mode, whose products' rounding (10 mantissa bits) far exceeds their errors.
  bool fast_math() const { return math_ == MathMode::Tf32; }
  bool wgmma_ = false;  // the tensor-core GEMM runs its Hopper kernel on this device
  unsigned beside_threads_ = 0;  // an update block's threads beside other kernels (update.cu), at first use
  bool dependent_ = false;  // the training step's kernels launch dependently (launch.cuh): compute capability 9.0 on
  // The tensor-core GEMM's split-K partial tiles, one buffer a stream (GEMMs on both may run at once),
  // grown to the largest asked for and kept: after the first minibatch no GEMM allocates.
  struct Workspace {
    void* p = nullptr;
    size_t bytes = 0;
  };
  std::array<Workspace, 2> gemm_workspace_;
  float* gemm_workspace(size_t floats);
};

}  // namespace dsstne
