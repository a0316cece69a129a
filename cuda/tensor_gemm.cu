// The tensor-core GEMM of tensor_gemm.cuh. A block computes a 128 x 128 output tile with 8 warps (each a
// 64 x 32 tile of 4 x 4 m16n8k8 products), streaming K in steps of 16 through a 4-stage cp.async
// pipeline. Operands are copied element by element, so any row pitch and either transpose works; the
// shared tiles keep the operand's own layout, padded so every fragment read is free of bank conflicts.
#include <algorithm>
#include <cstdint>

#include "check.cuh"
#include "launch.cuh"
#include "tensor_gemm.cuh"

namespace dsstne::gpu {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 16, kStages = 4;
constexpr int kWarpsM = 2, kWarpsN = 4, kGemmThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWarpM = kBM / kWarpsM, kWarpN = kBN / kWarpsN;  // 64 x 32
constexpr int kTilesM = kWarpM / 16, kTilesN = kWarpN / 8;     // m16n8k8 tiles per warp
constexpr int kMinSplitSteps = 8;  // K steps a split keeps at least

// One operand's stage in shared memory: [rows][kBK] when K is contiguous in global memory, else
// [kBK][rows]. The pads (stride 20 = 4 mod 32, or rows + 8 = 8 mod 32) spread the 8 x 4 lanes of a
// fragment read over 32 banks.
template <bool kContiguousK, int kRows>
struct Tile {
  static constexpr int stride = kContiguousK ? kBK + 4 : kRows + 8;
  static constexpr int floats = kContiguousK ? kRows * stride : kBK * stride;
  __device__ static int at(int row, int k) { return kContiguousK ? row * stride + k : k * stride + row; }
};

// Queues the copies of rows [row0, row0 + kRows) x K [k0, k0 + kBK) of an operand (row r, depth k at
// p[r * ld + k] when K is contiguous, else p[k * ld + r]) into a stage; zeros outside rows x k_end.
// Consecutive threads copy consecutive addresses.
template <bool kContiguousK, int kRows>
__device__ __forceinline__ void load_stage(float* stage, const float* p, int ld, int row0, int rows, int k0,
                                           int k_end) {
  using T = Tile<kContiguousK, kRows>;
#pragma unroll
  for (int i = 0; i < kRows * kBK / kGemmThreads; ++i) {
    const int e = static_cast<int>(threadIdx.x) + i * kGemmThreads;
    const int row = kContiguousK ? e / kBK : e % kRows, k = kContiguousK ? e % kBK : e / kRows;
    const bool valid = row0 + row < rows && k0 + k < k_end;
    const int64_t offset = kContiguousK ? int64_t{row0 + row} * ld + (k0 + k) : int64_t{k0 + k} * ld + (row0 + row);
    const float* src = valid ? p + offset : p;
    const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(stage + T::at(row, k)));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
  }
}

__device__ __forceinline__ void commit_stage() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void wait_stages() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// x = big + small, both TF32 (small only for three products).
template <int kProducts>
__device__ __forceinline__ void split(float x, uint32_t& big, uint32_t& small) {
  big = to_tf32(x);
  if constexpr (kProducts == 3) small = to_tf32(x - __uint_as_float(big));
}

__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Block x: output tile (M tiles fastest, so the blocks sharing a B tile run together); block y: split
// over K. Unsplit, writes alpha acc + beta C; split, writes the raw partial tile to partial[y][m][n].
template <bool kTransA, bool kTransB, int kProducts>
__global__ void __launch_bounds__(kGemmThreads, 2)
    tensor_gemm_kernel(GemmArgs g, unsigned tiles_m, int k_chunk, float* partial) {
  using TA = Tile<!kTransA, kBM>;
  using TB = Tile<kTransB, kBN>;
  constexpr int kStageFloats = TA::floats + TB::floats;
  extern __shared__ float smem[];
  const int m0 = static_cast<int>(blockIdx.x % tiles_m) * kBM, n0 = static_cast<int>(blockIdx.x / tiles_m) * kBN;
  const int k_begin = static_cast<int>(blockIdx.y) * k_chunk, k_end = min(g.k, k_begin + k_chunk);
  const int steps = (k_end - k_begin + kBK - 1) / kBK;
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int group = lane >> 2, quad = lane & 3;  // the mma fragments' row and column within a tile
  const int wm = warp / kWarpsN * kWarpM, wn = warp % kWarpsN * kWarpN;

  const auto load = [&](int step) {
    float* stage = smem + (step % kStages) * kStageFloats;
    const int k0 = k_begin + step * kBK;
    load_stage<!kTransA, kBM>(stage, g.a, g.lda, m0, g.m, k0, k_end);
    load_stage<kTransB, kBN>(stage + TA::floats, g.b, g.ldb, n0, g.n, k0, k_end);
  };
  float acc[kTilesM][kTilesN][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s);
    commit_stage();
  }
  for (int step = 0; step < steps; ++step) {
    wait_stages<kStages - 2>();
    __syncthreads();  // this step's stage is in; every warp is done with the stage refilled next
    if (step + kStages - 1 < steps) load(step + kStages - 1);
    commit_stage();
    const float* a = smem + (step % kStages) * kStageFloats;
    const float* b = a + TA::floats;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 8) {
      uint32_t b_big[kTilesN][2], b_small[kTilesN][2];
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        const int n = wn + j * 8 + group;
        split<kProducts>(b[TB::at(n, kk + quad)], b_big[j][0], b_small[j][0]);
        split<kProducts>(b[TB::at(n, kk + quad + 4)], b_big[j][1], b_small[j][1]);
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        const int r = wm + i * 16 + group;
        uint32_t a_big[4], a_small[4];
        split<kProducts>(a[TA::at(r, kk + quad)], a_big[0], a_small[0]);
        split<kProducts>(a[TA::at(r + 8, kk + quad)], a_big[1], a_small[1]);
        split<kProducts>(a[TA::at(r, kk + quad + 4)], a_big[2], a_small[2]);
        split<kProducts>(a[TA::at(r + 8, kk + quad + 4)], a_big[3], a_small[3]);
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) {
          if constexpr (kProducts == 3) {
            mma(acc[i][j], a_small, b_big[j]);
            mma(acc[i][j], a_big, b_small[j]);
          }
          mma(acc[i][j], a_big, b_big[j]);
        }
      }
    }
  }
  wait_stages<0>();

#pragma unroll
  for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) {
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        const int r = m0 + wm + i * 16 + group + (h >> 1) * 8, c = n0 + wn + j * 8 + quad * 2 + (h & 1);
        if (r >= g.m || c >= g.n) continue;
        if (partial) {
          partial[(static_cast<size_t>(blockIdx.y) * g.m + r) * g.n + c] = acc[i][j][h];
        } else {
          float* out = g.c + static_cast<int64_t>(r) * g.ldc + c;
          *out = g.beta != 0.0f ? g.alpha * acc[i][j][h] + g.beta * *out : g.alpha * acc[i][j][h];
        }
      }
    }
  }
}

// C = alpha (sum of the partial tiles in split order) + beta C.
__global__ void split_sum_kernel(GemmArgs g, unsigned splits, const float* partial) {
  const size_t count = static_cast<size_t>(g.m) * g.n;
  for (size_t i = global_thread(); i < count; i += grid_threads()) {
    float sum = 0.0f;
    for (unsigned s = 0; s < splits; ++s) sum += partial[s * count + i];
    float* out = g.c + static_cast<int64_t>(i / g.n) * g.ldc + static_cast<int64_t>(i % g.n);
    *out = g.beta != 0.0f ? g.alpha * sum + g.beta * *out : g.alpha * sum;
  }
}

template <bool kTransA, bool kTransB, int kProducts>
void launch(const GemmArgs& g, const TensorGemmPlan& plan, float* partial, cudaStream_t stream) {
  constexpr int kBytes =
      kStages * (Tile<!kTransA, kBM>::floats + Tile<kTransB, kBN>::floats) * static_cast<int>(sizeof(float));
  const auto kernel = tensor_gemm_kernel<kTransA, kTransB, kProducts>;
  DSSTNE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
  kernel<<<dim3(plan.tiles_m * plan.tiles_n, plan.splits), kGemmThreads, kBytes, stream>>>(g, plan.tiles_m,
                                                                                          plan.k_chunk, partial);
  DSSTNE_LAUNCH_CHECK();
}

template <int kProducts>
void launch_any(const GemmArgs& g, const TensorGemmPlan& plan, float* partial, cudaStream_t stream) {
  if (g.trans_a && g.trans_b) launch<true, true, kProducts>(g, plan, partial, stream);
  else if (g.trans_a) launch<true, false, kProducts>(g, plan, partial, stream);
  else if (g.trans_b) launch<false, true, kProducts>(g, plan, partial, stream);
  else launch<false, false, kProducts>(g, plan, partial, stream);
}

}  // namespace

TensorGemmPlan tensor_gemm_plan(const GemmArgs& g, int multiprocessors) {
  TensorGemmPlan p;
  p.tiles_m = static_cast<unsigned>((g.m + kBM - 1) / kBM);
  p.tiles_n = static_cast<unsigned>((g.n + kBN - 1) / kBN);
  const uint64_t tiles = uint64_t{p.tiles_m} * p.tiles_n;
  const int steps = (g.k + kBK - 1) / kBK;
  // Fewer tiles than multiprocessors: split K until two blocks a multiprocessor, each split keeping at
  // least kMinSplitSteps steps. The split depends on the shape and the device only.
  uint64_t splits = 1;
  if (tiles < static_cast<uint64_t>(multiprocessors))
    splits = std::clamp<uint64_t>((2 * multiprocessors + tiles - 1) / tiles, 1,
                                  static_cast<uint64_t>(std::max(1, steps / kMinSplitSteps)));
  const int chunk_steps = static_cast<int>((steps + splits - 1) / splits);
  p.k_chunk = std::max(1, chunk_steps) * kBK;
  p.splits = static_cast<unsigned>((g.k + p.k_chunk - 1) / p.k_chunk);
  p.workspace_floats = p.splits > 1 ? size_t{p.splits} * g.m * g.n : 0;
  return p;
}

void tensor_gemm(const GemmArgs& g, const TensorGemmPlan& plan, TensorPrecision precision, float* workspace,
                 cudaStream_t stream) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // no products: C = beta C, through the sum of zero splits
    split_sum_kernel<<<grid_for(size_t(g.m) * g.n), kThreads, 0, stream>>>(g, 0, nullptr);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  float* partial = plan.splits > 1 ? workspace : nullptr;
  if (precision == TensorPrecision::Fp32) launch_any<3>(g, plan, partial, stream);
  else launch_any<1>(g, plan, partial, stream);
  if (partial) {
    split_sum_kernel<<<grid_for(size_t(g.m) * g.n), kThreads, 0, stream>>>(g, plan.splits, partial);
    DSSTNE_LAUNCH_CHECK();
  }
}

}  // namespace dsstne::gpu
