// A target: where memory lives and how each op runs. HostBackend (host/) and CudaBackend (cuda/) are the
// two implementations; the engine above them never knows which one it drives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dsstne/ops.h"

// One line per op: X(method name, argument struct). Both backends declare their overrides from this list,
// so an op missing from a target fails to compile there.
#define DSSTNE_OPS(X)                            \
  X(gemm, GemmArgs)                              \
  X(set_bias, BiasArgs)                          \
  X(load_dense, LoadDenseArgs)                   \
  X(load_sparse, LoadSparseArgs)                 \
  X(sparse_forward, SparseForwardArgs)           \
  X(sparse_gradient_plan, SparseGradientArgs)    \
  X(sparse_gradient, SparseGradientArgs)         \
  X(mark_rows, MarkRowsArgs)                     \
  X(activate, ActivateArgs)                      \
  X(dropout, DropoutArgs)                        \
  X(output_delta, OutputDeltaArgs)               \
  X(output_bias_gradient, OutputDeltaArgs)       \
  X(hidden_delta, HiddenDeltaArgs)               \
  X(column_sum, ColumnSumArgs)                   \
  X(update, UpdateListArgs)                      \
  X(regularization_sum, RegularizationArgs)      \
  X(topk, TopKArgs)                              \
  X(add_units, AddArgs)                          \
  X(normalize_weights, WeightNormArgs)           \
  X(normalize_deltas, DeltaNormArgs)             \
  X(alpha_dropout, AlphaDropoutArgs)             \
  X(batch_norm_forward, BatchNormForwardArgs)    \
  X(batch_norm_backward, BatchNormBackwardArgs)

#define DSSTNE_DECLARE_OP(name, Args) void name(const Args& args) override;

namespace dsstne {

struct MemoryUsage {
  size_t current = 0;
  size_t peak = 0;
};

// How the GPU target's GEMMs multiply. Fp32: cuBLAS's FP32 kernels, the reference. Tf32: TF32 products
// (operands rounded to 10 mantissa bits): cuBLAS's tensor-core kernels, but a product cuBLAS cannot load by
// 16 bytes, if deep or of many rounds on the side stream, takes the engine's kernel with one product a pair
// (cuda/gemm.cu); the activation and loss ops then take the hardware's approximate exponential, reciprocal
// and logarithm (ActivationParams::fast_math), whose relative errors (1e-7 - 1e-5) are far below the
// products' (≈ 1e-3). Tf32x3: the engine's own tensor-core GEMM (cuda/tensor_gemm.cu) on each operand split
// into a TF32 big and small part, three products (big.big + big.small + small.big), their sums rounded into
// FP32 every 32 depths: errors of Fp32's size (measured 0.3 - 1.5 times cuBLAS FP32's), faster than Fp32 on
// Hopper; cuBLAS FP32 where its shape or alignment does not fit the kernel.
enum class MathMode : int32_t { Fp32 = 0, Tf32 = 1, Tf32x3 = 2 };

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu" or "cuda:<ordinal>", and a human description ("NVIDIA H100 80GB HBM3", "CPU, 2 threads").
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;

  // Target memory. allocate() zero-fills and throws dsstne::Error (naming the size) when out of memory.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p, size_t bytes) noexcept = 0;
  virtual void to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void synchronize() = 0;
  virtual MemoryUsage memory() const = 0;

  // Scratch sizes of the ops that need workspace.
  virtual size_t sparse_gradient_scratch_bytes(size_t max_datapoints, uint32_t input_units) const = 0;
  // Scratch of sparse_forward over `rows` rows of `stride` units whose longest row has `longest` datapoints.
  virtual size_t sparse_forward_scratch_bytes(uint32_t rows, uint32_t stride, uint64_t longest) const = 0;
  virtual size_t topk_scratch_bytes(uint32_t rows, uint32_t stride) const = 0;
  // Scratch of output_delta with a bias gradient over `rows` rows of `stride` units.
  virtual size_t output_delta_scratch_bytes(uint32_t rows, uint32_t stride) const = 0;

  // How GEMMs multiply (MathMode); the CPU target always computes in FP32.
  virtual void set_math(MathMode mode) = 0;

  // Overlap of independent work (training's weight gradients and steps beside the deltas' propagation;
  // recommendations rank one batch while the next one's forward runs).
  // Between begin_side() and end_side(), ops queue on a side stream that first waits for everything
  // queued on the main one so far. mark(slot) records the current stream's work so far in one of kMarks
  // slots, and wait_mark(slot) makes the current stream wait for the work last marked there. The CPU
  // target runs every op in call order, so there all four do nothing.
  static constexpr unsigned kMarks = 4;
  virtual void begin_side() = 0;
  virtual void end_side() = 0;
  virtual void mark(unsigned slot) = 0;
  virtual void wait_mark(unsigned slot) = 0;

#define DSSTNE_VIRTUAL_OP(name, Args) virtual void name(const Args& args) = 0;
  DSSTNE_OPS(DSSTNE_VIRTUAL_OP)
#undef DSSTNE_VIRTUAL_OP
};

}  // namespace dsstne
