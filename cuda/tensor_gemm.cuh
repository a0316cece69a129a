// FP32 GEMM on the tensor cores (sm_80 and later), row-major as GemmArgs. Each operand element x is split
// into big = x rounded to TF32 and small = (x - big) rounded to TF32, and a·b is taken as
// small·big + big·small + big·big: the tensor cores multiply TF32 exactly and add in FP32, and the dropped
// small·small term is below FP32's rounding, so the result keeps FP32's accuracy (bench/gemm_shapes.cu
// measures it against FP64 next to cuBLAS's SIMT FP32) at tensor-core speed. The TF32 mode keeps big·big
// only. Every output's sum runs in an order fixed by the shape; a deep, narrow product (K much larger
// than the output) is split over K into partial tiles that a second kernel adds in split order: the bits
// never depend on scheduling.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "dsstne/ops.h"

namespace dsstne::gpu {

enum class TensorPrecision { Fp32, Tf32 };  // three products (FP32 accuracy) or one (TF32)

// The launch of one GEMM: output tiles and the split over K; workspace_floats of scratch when split.
struct TensorGemmPlan {
  unsigned tiles_m = 0, tiles_n = 0, splits = 1;
  int k_chunk = 0;
  size_t workspace_floats = 0;
};
TensorGemmPlan tensor_gemm_plan(const GemmArgs& g, int multiprocessors);

// Queues C = alpha op(A) op(B) + beta C on the stream (beta 0: C is not read). workspace holds
// plan.workspace_floats floats.
void tensor_gemm(const GemmArgs& g, const TensorGemmPlan& plan, TensorPrecision precision, float* workspace,
                 cudaStream_t stream);

}  // namespace dsstne::gpu
