// A GEMM on the tensor cores for the engine's row-major GemmArgs, built for its skinny shapes (a batch of a
// few hundred rows against layers of up to millions of units): persistent blocks stream (tile, K step)
// pairs through one pipeline of copies (cp.async, and on Hopper bulk tensor copies for the operands whose
// rows allow them), so a tile's loads overlap the previous tile's products and stores even when K is only
// 128. Long-K products with few output tiles are split over K into partial tiles
// summed in split order afterwards; so are the column tiles past a product's last whole wave of blocks,
// as a second product (TensorGemmPlan::tail_n0). Products are TF32 (one product per pair), or FP32-class
// from the 3xTF32 split (each operand x = big + small, both TF32; big.big + big.small + small.big);
// either way the tensor cores sum only 32 depths, which a rounded FP32 add then takes into the output's
// sum. Hopper cards (compute capability 9.0, the sm_90a image) run a wgmma kernel, others an mma.sync
// one; both take the products in the same order, so they give the same bits (DSSTNE_TENSOR_GEMM=mma
// forces the mma.sync kernel, for comparison). Every sum's order depends on the shape only: reproducible
// run to run and across cards.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "dsstne/ops.h"

namespace dsstne::gpu {

// One launch's units: output tiles, each split over K into `splits` chunks, walked by `blocks` blocks.
struct TileGrid {
  unsigned tiles_m = 0, tiles_n = 0, splits = 1, blocks = 0;
  int k_chunk = 0;  // K per split, a multiple of the K step
};

struct TensorGemmPlan {
  bool supported = false;  // shapes and alignment the kernel takes (else the caller uses cuBLAS)
  bool wgmma = false;      // the Hopper kernel (sm_90a image loaded), else the mma.sync one
  bool tma_a = false;      // wgmma: A copied by bulk tensor copies (K-contiguous, 16-byte rows)
  bool tma_b = false;      // wgmma: B copied by bulk tensor copies (transposed as A, else in pairs of rows)
  TileGrid grid;           // C, or its columns before tail_n0
  // Above 0: C's columns from tail_n0 on are a second product split over K (`tail`), so that the tiles
  // past the last whole round of blocks spread over all of them instead of leaving most idle.
  int tail_n0 = 0;
  TileGrid tail;
  size_t workspace_floats = 0;  // partial tiles of a split product (either)
};

// Whether the current device runs the wgmma kernel: the image loaded for it has one, and
// DSSTNE_TENSOR_GEMM=mma does not force the mma.sync kernel.
bool wgmma_kernel_available();

// The plan for g: tiling, split and workspace. `multiprocessors` sizes the grid only; `wgmma` is
// wgmma_kernel_available() for the device it runs on.
TensorGemmPlan tensor_gemm_plan(const GemmArgs& g, int multiprocessors, bool wgmma);

// C = alpha op(A) op(B) + beta C (C not read when beta is 0) with `products` TF32 products a pair (1 or 3).
// `workspace` holds plan.workspace_floats floats. `dependent`: launch() as a dependent launch (launch.cuh).
void tensor_gemm(const GemmArgs& g, const TensorGemmPlan& plan, int products, float* workspace, cudaStream_t stream,
                 bool dependent);

}  // namespace dsstne::gpu
