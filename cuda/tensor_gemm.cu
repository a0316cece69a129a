// The tensor-core GEMMs of tensor_gemm.cuh, two kernels over one plan of units (a split of a 128 x 128
// output tile) and one pipeline of copies: persistent blocks of 8 warps walk their units' K steps of 32
// as one sequence through a ring of cp.async stages, so the next unit's first stages load while this one
// finishes and stores. Operands are copied in 8-byte pairs (any even row pitch, either transpose) into
// stages that keep the operand's own layout, permuted so that every fragment read is free of bank
// conflicts and lands in the registers in the order the tensor cores read them.
// - mma.sync (sm_80 on): each warp a 64 x 32 tile of 4 x 4 m16n8k8 products, every operand split by
//   each warp that reads it.
// - wgmma (the sm_90a image): each warpgroup 64 rows, m64n128k8 products; A split in registers by the
//   warp that owns its rows, B split once a block into K-major halves (a K-contiguous B's stage is its
//   own big half), products asynchronous beside the next step's loads, B split and copies. Operands
//   whose rows allow it arrive by bulk tensor copies instead (TMA: CopyPipeline, tma.cuh).
// A finished tile leaves through shared memory, in row segments of 32 (mma.sync) or 64 (wgmma) columns.
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "check.cuh"
#include "launch.cuh"
#include "tensor_gemm.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace dsstne::gpu {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3;
constexpr int kWarpsM = 2, kWarpsN = 4, kGemmThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWarpM = kBM / kWarpsM, kWarpN = kBN / kWarpsN;  // 64 x 32
constexpr int kTilesM = kWarpM / 16, kTilesN = kWarpN / 8;     // m16n8k8 products per warp and K slice
// One block of 8 warps a multiprocessor: each thread holds two sets of sums (below), so it needs more
// registers than two blocks of 4 warps would leave it.
constexpr int kBlocksPerSm = 1;
// The epilogue's rows in the stage just used: 8 of a warp's 32 columns, padded (40 = 8 mod 32) so that
// each half-warp's pair writes (4 rows x 4 pairs) hit 32 distinct banks.
constexpr int kRowsStride = kWarpN + 8;
constexpr int kLanesPerRow = kWarpN / 2;  // the epilogue stores a column pair a lane: 2 rows a store
// K steps a split keeps at least. A split's unit pays its pipeline's fill and a whole partial tile's
// store (64 KB) besides its steps: with 4 steps the benchmark's hidden GEMMs (16 tiles, K = 1,024: 8
// splits), on the third or eighth of the device the other stream leaves them, took 49 and 73 µs; with 8
// (4 splits) the epoch went from 0.5549 - 0.5559 to 0.5393 - 0.5396 s (H100, one call). On the whole
// device (prediction) fewer units fill fewer blocks, yet the benchmark network's recommendations ran 0.146 s
// (against 0.147 s on the rule of 4, in another call).
constexpr int kMinSplitSteps = 8;
// The split decision uses a fixed multiprocessor count (an H100's), not the card's: the order of every
// sum then depends on the shape alone.
constexpr int kSplitMultiprocessors = 132;
constexpr uint64_t kSplitWave = uint64_t{kBlocksPerSm} * kSplitMultiprocessors;  // a wave: the blocks of one round

// One operand's stage in shared memory, unpadded (the stages leave the multiprocessor L1, which the
// 8-byte cp.async copies allocate in: less of it measurably slows the loads).
// K contiguous in global memory: [rows][kBK], each row's 16-byte chunks (4 depths) permuted by an XOR of
// row & 7, so the 8 rows of an ldmatrix read hit 8 distinct bank quadruples. Else [kBK][rows], each
// depth's rows permuted by an XOR of (k & 3) << 3, so the 4 depths of a fragment read (8 rows apiece)
// hit 4 distinct bank octets.
template <bool kContiguousK, int kRows>
struct Tile {
  static constexpr int floats = kRows * kBK;
  __device__ static int at(int row, int k) {
    if constexpr (kContiguousK) return row * kBK + ((((k >> 2) ^ (row & 7)) << 2) | (k & 3));
    else return k * kRows + (row ^ ((k & 3) << 3));
  }
};

// Four 8 x 4 blocks of floats, one register of each a thread: ldmatrix's 8 x 8 blocks of 16-bit halves
// are 8 x 4 blocks of floats, and lane 4 g + t receives element (g, t), which is where an m16n8k8 TF32
// fragment wants element (row g, depth t). Lane l gives the address of block l / 8's row l % 8.
__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], unsigned address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// A warp's A fragments of one 8-deep slice kk of a stage, for its kTiles tiles of 16 rows from row0:
// registers a0..a3 = (g, kk + t), (g + 8, kk + t), (g, kk + t + 4), (g + 8, kk + t + 4) of each tile, for
// lane 4 g + t, loaded straight into the order the mma reads them (no register moves).
// K contiguous: one ldmatrix a tile (blocks: rows 0-7 and 8-15 of depths kk..kk+3, then of kk+4..kk+7).
// Rows contiguous: the tile's rows are permuted (its stored row 2 g + h is its row g + 8 h), so each
// thread's (a0, a1) and (a2, a3) are adjacent pairs: two 8-byte loads a tile. The epilogue undoes that.
template <bool kContiguousK, int kRows, int kTiles>
struct FragmentsA {
  static constexpr bool kRowsPermuted = !kContiguousK;
  int base = 0;   // this thread's first read at kk = 0, in floats from the stage
  int chunk = 0;  // K contiguous: the XOR pattern of this lane's row and depth block
  int rows[kTiles] = {};  // rows contiguous: each tile's permuted row pair
  __device__ FragmentsA(int row0, int lane) {
    if constexpr (kContiguousK) {
      const int block = lane >> 3, r = lane & 7;
      base = (row0 + (block & 1) * 8 + r) * kBK;
      chunk = ((block >> 1) ^ r) << 2;
    } else {
      const int g = lane >> 2, t = lane & 3;
      base = t * kRows;
#pragma unroll
      for (int i = 0; i < kTiles; ++i) rows[i] = (row0 + i * 16 + 2 * g) ^ (t << 3);
    }
  }
  __device__ __forceinline__ void load(uint32_t (&a)[kTiles][4], const float* stage, int kk) const {
#pragma unroll
    for (int i = 0; i < kTiles; ++i) {
      if constexpr (kContiguousK) {
        ldmatrix4(a[i], shared_address(stage + base + i * 16 * kBK + (kk ^ chunk)));
      } else {
        const float* p = stage + base + kk * kRows + rows[i];
        const uint2 low = *reinterpret_cast<const uint2*>(p), high = *reinterpret_cast<const uint2*>(p + 4 * kRows);
        a[i][0] = low.x, a[i][1] = low.y, a[i][2] = high.x, a[i][3] = high.y;
      }
    }
  }
};

// A warp's B fragments of one slice, for its kTiles tiles of 8 columns from col0: b0, b1 = (kk + t, g),
// (kk + t + 4, g) of each tile for lane 4 g + t. K contiguous: one ldmatrix for two tiles (blocks: tile
// j's columns at depths kk..kk+3 and kk+4..kk+7, then tile j + 1's). Columns contiguous: two 4-byte loads.
template <bool kContiguousK, int kRows, int kTiles>
struct FragmentsB {
  int base = 0, chunk = 0;
  __device__ FragmentsB(int col0, int lane) {
    if constexpr (kContiguousK) {
      const int block = lane >> 3, r = lane & 7;
      base = (col0 + (block >> 1) * 8 + r) * kBK;
      chunk = ((block & 1) ^ r) << 2;
    } else {  // col0 is a multiple of 32, so the XOR of depth t picks the tile's 8-column block
      const int g = lane >> 2, t = lane & 3;
      base = t * kRows + col0 + g;
      chunk = t;
    }
  }
  __device__ __forceinline__ void load(uint32_t (&b)[kTiles][2], const float* stage, int kk) const {
    if constexpr (kContiguousK) {
      static_assert(kTiles % 2 == 0, "tiles are read in pairs");
#pragma unroll
      for (int j = 0; j < kTiles; j += 2) {
        uint32_t r[4];
        ldmatrix4(r, shared_address(stage + base + j * 8 * kBK + (kk ^ chunk)));
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
    } else {
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        const float* p = stage + base + kk * kRows + ((j ^ chunk) << 3);
        b[j][0] = __float_as_uint(p[0]), b[j][1] = __float_as_uint(p[4 * kRows]);
      }
    }
  }
};

// One operand's copies into the stages, as pairs along its contiguous dimension (row r, depth k at
// p[r * ld + k] when K is contiguous, else p[k * ld + r]; that extent even, so a pair is wholly inside or
// outside). Consecutive threads copy consecutive pairs; a thread's pairs are a fixed stride apart in
// global memory and in the stage, so a stage costs a pointer step and a test a pair. Zeros outside.
template <bool kContiguousK, int kRows>
struct Loader {
  using T = Tile<kContiguousK, kRows>;
  static constexpr int kPairs = kRows * kBK / 2 / kGemmThreads;  // a thread's pairs per stage
  // Between a thread's consecutive pairs: rows (K contiguous) or depths (rows contiguous).
  static constexpr int kPass = kContiguousK ? kGemmThreads / (kBK / 2) : kGemmThreads / (kRows / 2);
  // A thread's pairs share their XOR pattern (rows 16 apart, or depths 4 apart): one offset each.
  static_assert(kContiguousK ? kPass % 8 == 0 : kPass % 4 == 0, "a pass keeps the XOR pattern");
  const float* p;
  int64_t ld;
  int row, k;  // this thread's first pair within a stage
  unsigned dst;  // its shared offset in floats
  // Per unit: the first pair's address at the unit's first depth and what bounds it.
  const float* src = nullptr;
  int rows_left = 0, k_left = 0;

  __device__ Loader(const float* p_, int ld_) : p(p_), ld(ld_) {
    const int t = static_cast<int>(threadIdx.x);
    row = kContiguousK ? t / (kBK / 2) : t % (kRows / 2) * 2;
    k = kContiguousK ? t % (kBK / 2) * 2 : t / (kRows / 2);
    dst = static_cast<unsigned>(T::at(row, k));
  }
  __device__ void begin(int row0, int rows, int k_begin, int k_end) {
    src = p + (kContiguousK ? int64_t{row0 + row} * ld + (k_begin + k) : int64_t{k_begin + k} * ld + (row0 + row));
    rows_left = rows - row0 - row;
    k_left = k_end - k_begin - k;
  }
  // Queues the copies of K step `step` of the unit into `stage`.
  __device__ __forceinline__ void copy(float* stage, int step) const {
    const int k_here = k_left - step * kBK;
    const float* from = src + (kContiguousK ? int64_t{step} * kBK : int64_t{step} * kBK * ld);
    const int64_t pass = int64_t{kPass} * ld;  // rows or depths: ld apart either way
    const auto base = static_cast<unsigned>(__cvta_generic_to_shared(stage + dst));
#pragma unroll
    for (int i = 0; i < kPairs; ++i, from += pass) {  // a running address: no 64-bit product a pair
      const bool valid = kContiguousK ? (i * kPass < rows_left && k_here > 0) : (rows_left > 0 && i * kPass < k_here);
      const int offset = kContiguousK ? i * kPass * kBK : i * kPass * kRows;
      const unsigned d = base + static_cast<unsigned>(sizeof(float) * offset);
      asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(d), "l"(valid ? from : p), "r"(valid ? 8 : 0));
    }
  }
};

__device__ __forceinline__ void commit_stage() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void wait_stages() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// The operand halves the tensor cores read. One product: x rounded to TF32 (nearest, half away from
// zero, as cvt.rna; a NaN kept as it is: the rounding carry could turn it into a number). Three: x = big
// + small, big truncated to TF32 (a mask: NaN and infinity stay so), small the exact rest rounded to TF32
// in the same way. Integer arithmetic: sm_90 has no conversion instruction, and its emulated cvt.rna
// cost several instructions an element.
template <int kProducts>
__device__ __forceinline__ void split(uint32_t x, uint32_t& big, uint32_t& small) {
  if constexpr (kProducts == 1) {
    big = isnan(__uint_as_float(x)) ? x : (x + 0x1000u) & 0xFFFFE000u;
  } else {
    big = x & 0xFFFFE000u;
    small = (__float_as_uint(__uint_as_float(x) - __uint_as_float(big)) + 0x1000u) & 0xFFFFE000u;
  }
}

__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// A unit of work: one split of one output tile. Units run M tiles fastest (the tiles sharing a B tile
// run together), then N tiles, then splits.
struct Unit {
  int m0, n0, k_begin, k_end, split;
};
__device__ __forceinline__ Unit unit_at(const GemmArgs& g, const TileGrid& p, unsigned u) {
  const unsigned tiles = p.tiles_m * p.tiles_n, split = u / tiles, tile = u % tiles;
  const int k_begin = static_cast<int>(split) * p.k_chunk;
  return {static_cast<int>(tile % p.tiles_m) * kBM, static_cast<int>(tile / p.tiles_m) * kBN, k_begin,
          min(g.k, k_begin + p.k_chunk), static_cast<int>(split)};
}

// A block's walk over its units (blockIdx.x, then every gridDim.x-th) and each one's K steps.
struct UnitWalk {
  const unsigned units;
  unsigned unit = blockIdx.x;
  Unit u{};
  int step = 0, steps = 0;
  __device__ UnitWalk(const GemmArgs& g, const TileGrid& p) : units(p.tiles_m * p.tiles_n * p.splits) {
    if (active()) enter(g, p);
  }
  __device__ bool active() const { return unit < units; }
  __device__ bool last_step() const { return step + 1 == steps; }
  // Past the current step; true when that was its unit's last (then onto the block's next unit, if any).
  __device__ bool advance(const GemmArgs& g, const TileGrid& p) {
    if (++step < steps) return false;
    step = 0;
    unit += gridDim.x;
    if (active()) enter(g, p);
    return true;
  }

 private:
  __device__ void enter(const GemmArgs& g, const TileGrid& p) {
    u = unit_at(g, p, unit);
    steps = (u.k_end - u.k_begin + kBK - 1) / kBK;
  }
};

// The tensor maps of the operands the wgmma kernel copies by TMA (TensorGemmPlan::tma_a, tma_b): B's is
// its even rows' where B is read in pairs of rows (below), b_odd the odd rows'.
struct BulkMaps {
  CUtensorMap a, b, b_odd;
};
// A rows-contiguous B copied by TMA is read as pairs of rows: a pair's pitch is a multiple of 16 bytes
// when B's is even. A box must start on 16 bytes (H100: "illegal instruction" otherwise), so the odd rows'
// box starts B's pitch mod 4 columns early (`shift`) and is kOddCols wide. B's stage: the even depths' box
// [kBK / 2][kBN], then the odd ones' [kBK / 2][kOddCols].
constexpr int kOddCols = kBN + 4;
constexpr int kEvenBox = kBK / 2 * kBN, kOddBox = kBK / 2 * kOddCols;

// The copies of a block's (unit, step) sequence into a ring of kRing stages, run ahead of the products
// across unit boundaries. Each next() queues one step's copies (or none past the last unit) as one group.
// With kTmaA or kTmaB (the wgmma kernel) one thread queues that operand's whole stage as bulk tensor
// copies completing on the stage's barrier; cp.async copies carry the rest (H100: the copies alone took a
// hidden-1,024 forward's 104 steps a block 95 µs, the GEMM's whole pace). A, and a transposed B: K
// contiguous with 16-byte rows, one box in the stage's own layout. Else B: rows contiguous, read as pairs
// of rows (kPairedB: B's pitch need not be a multiple of 16 bytes, a pair's is when it is even), so the
// even depths' box and the odd ones' land one after the other (kOddCols).
template <bool kTransA, bool kTransB, int kRing, bool kTmaA = false, bool kTmaB = false>
struct CopyPipeline {
  using TA = Tile<!kTransA, kBM>;  // A is M x K: K contiguous unless transposed
  using TB = Tile<kTransB, kBN>;   // B is K x N: N contiguous unless transposed
  static constexpr bool kPairedB = kTmaB && !kTransB;
  static constexpr int kBFloats = kPairedB ? kEvenBox + kOddBox : TB::floats;
  static constexpr int kRingFloats = kRing * (TA::floats + kBFloats);
  // Stage i's parts: [A][B] a stage, but B's bulk-copied parts, not a multiple of 1,024 bytes, follow all of
  // A's (whose swizzle needs that alignment; a ring of 32 KB stages keeps the multiprocessor's 196 KB
  // configuration of shared memory, 33 KB stages did not: benchmark 0.5708 s an epoch against 0.5664).
  template <class F>
  __device__ static F* a_part(F* stages, unsigned i) {
    return stages + i % kRing * (kTmaB ? TA::floats : TA::floats + kBFloats);
  }
  template <class F>
  __device__ static F* b_part(F* stages, unsigned i) {
    return kTmaB ? stages + kRing * TA::floats + i % kRing * kBFloats : a_part(stages, i) + TA::floats;
  }
  const GemmArgs& g;
  const TileGrid& p;
  UnitWalk walk;  // ahead of the products' walk
  Loader<!kTransA, kBM> a;
  Loader<kTransB, kBN> b;
  const BulkMaps* maps;
  uint64_t* bars;  // kTmaA or kTmaB: a barrier a stage
  int stage = 0;
  unsigned issued = 0;  // steps queued so far

  __device__ CopyPipeline(const GemmArgs& g_, const TileGrid& p_, const BulkMaps* maps_ = nullptr,
                          uint64_t* bars_ = nullptr)
      : g(g_), p(p_), walk(g_, p_), a(g_.a, g_.lda), b(g_.b, g_.ldb), maps(maps_), bars(bars_) {
    if (walk.active()) begin();
  }
  __device__ void begin() {
    a.begin(walk.u.m0, g.m, walk.u.k_begin, walk.u.k_end);
    b.begin(walk.u.n0, g.n, walk.u.k_begin, walk.u.k_end);
  }
  __device__ void next(float* stages) {
    if (walk.active()) {
      float* const s = a_part(stages, stage), *const s_b = b_part(stages, stage);
      if constexpr (kTmaA || kTmaB) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
        if (threadIdx.x == 0) {
          const int k = walk.u.k_begin + walk.step * kBK;
          barrier_expect(bars + stage, ((kTmaA ? TA::floats : 0) + (kTmaB ? kBFloats : 0)) * sizeof(float));
          if constexpr (kTmaA) tma_load_2d(s, &maps->a, k, walk.u.m0, bars + stage);
          if constexpr (kPairedB) {
            tma_load_2d(s_b, &maps->b, walk.u.n0, k / 2, bars + stage);
            tma_load_2d(s_b + kEvenBox, &maps->b_odd, g.ldb - g.ldb % 4 + walk.u.n0, k / 2, bars + stage);
          } else if constexpr (kTmaB) {
            tma_load_2d(s_b, &maps->b, k, walk.u.n0, bars + stage);
          }
        }
#endif
      }
      if constexpr (!kTmaA) a.copy(s, walk.step);
      if constexpr (!kTmaB) b.copy(s_b, walk.step);
      ++issued;
      if (walk.advance(g, p) && walk.active()) begin();
    }
    commit_stage();  // an empty group past the end keeps the wait counts uniform
    stage = stage == kRing - 1 ? 0 : stage + 1;
  }
};

// One column pair of a finished tile: C = alpha v + beta C (C not read when beta is 0), or v itself into
// a split's partial tile. The roundings are spelled out (alpha v + (beta C), one fused step), not left to
// the compiler: which product it fused followed the code around the store, so a change elsewhere in a
// kernel could change the bits of every step taken inside a GEMM (beta != 0).
template <bool kSplit>
__device__ __forceinline__ void store_pair(float* at, float2 v, const GemmArgs& g) {
  auto* dst = reinterpret_cast<float2*>(at);
  if constexpr (!kSplit) {
    if (g.beta != 0.0f) {
      const float2 old = *dst;
      v.x = __fmaf_rn(g.alpha, v.x, __fmul_rn(g.beta, old.x));
      v.y = __fmaf_rn(g.alpha, v.y, __fmul_rn(g.beta, old.y));
    } else {
      v.x = __fmul_rn(g.alpha, v.x);
      v.y = __fmul_rn(g.alpha, v.y);
    }
  }
  *dst = v;
}

template <bool kTransA, bool kTransB, int kProducts, bool kSplit>
__global__ void __launch_bounds__(kGemmThreads, kBlocksPerSm)
    tensor_gemm_kernel(GemmArgs g, TileGrid p, float* partial) {
  await_previous();
  using Copies = CopyPipeline<kTransA, kTransB, kStages>;
  extern __shared__ float smem[];
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int group = lane >> 2, quad = lane & 3;  // the mma fragments' row and column within a product
  const int wm = warp / kWarpsN * kWarpM, wn = warp % kWarpsN * kWarpN;
  const FragmentsA<!kTransA, kBM, kTilesM> frag_a(wm, lane);
  const FragmentsB<kTransB, kBN, kTilesN> frag_b(wn, lane);
  const int m = g.m, n = g.n;

  // The copies run kStages - 1 (unit, step) pairs ahead of the products.
  Copies copies(g, p);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) copies.next(smem);

  // The tensor cores add into their accumulator truncating, not rounding to nearest: accumulated over
  // all of K, that bias grows with K (35 times FP32's error at K = 1,600, measured). So the products
  // accumulate only over one 32-deep step, into `part`, and one rounded add a step takes that into `acc`.
  float acc[kTilesM][kTilesN][4] = {};
  UnitWalk walk(g, p);
  int stage = 0;
  while (walk.active()) {
    wait_stages<kStages - 2>();
    __syncthreads();  // this step's stage is in; every warp is done with the stage refilled next
    copies.next(smem);
    float* const a = Copies::a_part(smem, stage);
    const float* b = Copies::b_part(smem, stage);
    stage = stage == kStages - 1 ? 0 : stage + 1;
    float part[kTilesM][kTilesN][4] = {};
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 8) {
      // Raw values in, split in place (the big halves' masks cost nothing: the tensor cores read a TF32
      // operand's top 19 bits only, and the compiler drops them).
      uint32_t a_big[kTilesM][4], a_small[kTilesM][4], b_big[kTilesN][2], b_small[kTilesN][2];
      frag_b.load(b_big, b, kk);
      frag_a.load(a_big, a, kk);
#pragma unroll
      for (int j = 0; j < kTilesN; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) split<kProducts>(b_big[j][h], b_big[j][h], b_small[j][h]);
#pragma unroll
      for (int i = 0; i < kTilesM; ++i)
#pragma unroll
        for (int h = 0; h < 4; ++h) split<kProducts>(a_big[i][h], a_big[i][h], a_small[i][h]);
      // Each product over all the warp's tiles before the next: no mma waits on the one before it.
      if constexpr (kProducts == 3) {  // the small terms first, while the sums are small
#pragma unroll
        for (int i = 0; i < kTilesM; ++i)
#pragma unroll
          for (int j = 0; j < kTilesN; ++j) mma(part[i][j], a_small[i], b_big[j]);
#pragma unroll
        for (int i = 0; i < kTilesM; ++i)
#pragma unroll
          for (int j = 0; j < kTilesN; ++j) mma(part[i][j], a_big[i], b_small[j]);
      }
#pragma unroll
      for (int i = 0; i < kTilesM; ++i)
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) mma(part[i][j], a_big[i], b_big[j]);
    }
#pragma unroll
    for (int i = 0; i < kTilesM; ++i)
#pragma unroll
      for (int j = 0; j < kTilesN; ++j)
#pragma unroll
        for (int h = 0; h < 4; ++h) acc[i][j][h] += part[i][j][h];
    if (!walk.last_step()) {
      walk.advance(g, p);
      continue;
    }

    // The tile is done. Unsplit: C = alpha acc + beta C (C not read when beta is 0). Split: the raw
    // partial tile into partial[split][m][n]. A warp passes its tile through shared memory 8 rows at a
    // time, so each store instruction writes 32 consecutive columns of each of two rows (the fragments'
    // own layout would scatter every store over 8 rows). n is even: a column pair is wholly inside or out.
    __syncthreads();  // every warp is done with this step's stage: it holds the epilogue's rows
    const Unit& u = walk.u;
    float* rows = a + warp * 8 * kRowsStride;
    const int64_t ld = kSplit ? n : g.ldc;
    // Row g + 8 h of a 16-row product is the tile's row g + 8 h, or 2 g + h where A's rows are permuted.
    constexpr int kRowStep = decltype(frag_a)::kRowsPermuted ? 2 : 1, kHalfStep = kRowStep == 2 ? 1 : 8;
    const int r_lane = lane / kLanesPerRow, c_lane = 2 * (lane % kLanesPerRow);
    const int r_first = u.m0 + wm + kRowStep * r_lane, c = u.n0 + wn + c_lane;
    float* out = (kSplit ? partial + (int64_t{u.split} * m + r_first) * n : g.c + int64_t{r_first} * g.ldc) + c;
    const bool column_in = c < n;
#pragma unroll
    for (int i = 0; i < kTilesM; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        __syncwarp();  // the previous rows are read out
#pragma unroll
        for (int j = 0; j < kTilesN; ++j)
          *reinterpret_cast<float2*>(rows + group * kRowsStride + j * 8 + 2 * quad) =
              make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
        __syncwarp();
#pragma unroll
        for (int rr = 0; rr < 8; rr += 32 / kLanesPerRow) {
          const int r = i * 16 + h * kHalfStep + kRowStep * rr;  // this lane's row is kRowStep r_lane further
          if (r_first + r >= m || !column_in) continue;
          store_pair<kSplit>(out + r * ld, *reinterpret_cast<const float2*>(rows + (rr + r_lane) * kRowsStride + c_lane), g);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kTilesM; ++i)
#pragma unroll
      for (int j = 0; j < kTilesN; ++j)
#pragma unroll
        for (int h = 0; h < 4; ++h) acc[i][j][h] = 0.0f;
    walk.advance(g, p);
  }
  wait_stages<0>();
}

// ---- The Hopper kernel: wgmma (sm_90a) ----
// Two warpgroups, each 64 rows of the block's 128 x 128 tile, every product m64n128k8 from one
// instruction: A from registers (each warp its own 16 rows, loaded and split as above, once a block),
// B from shared memory, where a pass of the whole block writes its big and small halves K-major with the
// 128-byte swizzle the instruction reads (any layout of B in: the pass transposes; a K-contiguous B's
// stage already has that layout and, with three products, is read as the big half itself). The products
// run asynchronously while the block loads the next step's A (into a second register set), splits its B
// and queues the copies; one rounded add a step takes them into `acc`.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DSSTNE_WGMMA 1
#else
#define DSSTNE_WGMMA 0
#endif

// Whether the image loaded for this card has the wgmma kernel (the host reads it once).
__device__ int wgmma_image = DSSTNE_WGMMA;

constexpr int kWgStages = 4;  // the split pass reads the step after the one being multiplied
constexpr int kHalfFloats = kBN * kBK;  // one half of B's step: [kBN][kBK], K-major

#if DSSTNE_WGMMA  // the helpers exist in the sm_90a image only
// Whether the products read B's big half straight from its stage: with three products and K contiguous,
// the stage already has the K-major 128-byte swizzle (Tile), and the tensor cores read only a TF32
// operand's top 19 bits, which are the big half.
template <bool kContiguousK, int kProducts>
constexpr bool kBigFromStage = kContiguousK && kProducts == 3;

// The block's pass over one step of B: big and small halves (or the rounded value alone, one product)
// into [kBN][kBK] K-major tiles with the 128-byte swizzle (16-byte chunk c of row n at c ^ (n & 7)); the
// small half alone where the big one is the stage (kBigFromStage).
// Thread t takes row t % kBN and every other chunk: each store of 8 lanes covers 8 rows' distinct
// chunks, each load of a warp 32 consecutive rows.
constexpr int kSplitPasses = kBK / 4 / (kGemmThreads / kBN);  // a thread's chunks of B a step
// kPaired: B's stage as the bulk copies leave it (kOddCols), the odd rows `shift` columns further.
template <bool kContiguousK, int kProducts, bool kPaired, int kFirst = 0, int kEnd = kSplitPasses>
__device__ __forceinline__ void split_b(const float* stage, float* big, float* small, int shift) {
  using T = Tile<kContiguousK, kBN>;
  const int n = static_cast<int>(threadIdx.x) % kBN, c0 = static_cast<int>(threadIdx.x) / kBN;
#pragma unroll
  for (int i = kFirst; i < kEnd; ++i) {
    const int c = c0 + i * (kGemmThreads / kBN), at = n * kBK + ((c ^ (n & 7)) << 2);
    uint4 x;
    if constexpr (kContiguousK) {
      x = *reinterpret_cast<const uint4*>(stage + at);  // the stage has this very layout
    } else if constexpr (kPaired) {  // depths 4 c and 4 c + 2 in the even rows' box, 4 c + 1 and 4 c + 3 in the odd
      const float* even = stage + 2 * c * kBN + n;
      const float* odd = stage + kEvenBox + 2 * c * kOddCols + shift + n;
      x.x = __float_as_uint(even[0]), x.y = __float_as_uint(odd[0]);
      x.z = __float_as_uint(even[kBN]), x.w = __float_as_uint(odd[kOddCols]);
    } else {
      x.x = __float_as_uint(stage[T::at(n, 4 * c)]), x.y = __float_as_uint(stage[T::at(n, 4 * c + 1)]);
      x.z = __float_as_uint(stage[T::at(n, 4 * c + 2)]), x.w = __float_as_uint(stage[T::at(n, 4 * c + 3)]);
    }
    uint4 b, s;
    split<kProducts>(x.x, b.x, s.x);
    split<kProducts>(x.y, b.y, s.y);
    split<kProducts>(x.z, b.z, s.z);
    split<kProducts>(x.w, b.w, s.w);
    if constexpr (!kBigFromStage<kContiguousK, kProducts>) *reinterpret_cast<uint4*>(big + at) = b;
    if constexpr (kProducts == 3) *reinterpret_cast<uint4*>(small + at) = s;
  }
}
#endif

template <bool kTransA, bool kTransB, int kProducts, bool kSplit, bool kTmaA, bool kTmaB>
__global__ void __launch_bounds__(kGemmThreads, 1)
    wgmma_gemm_kernel(GemmArgs g, TileGrid p, float* partial, const __grid_constant__ BulkMaps maps) {
  await_previous();
#if DSSTNE_WGMMA
  constexpr bool kBulk = kTmaA || kTmaB;
  using Copies = CopyPipeline<kTransA, kTransB, kWgStages, kTmaA, kTmaB>;
  extern __shared__ float smem_raw[];
  // B's halves first, 1,024-byte aligned for the swizzle: [2 buffers][big, small][kBN][kBK]; then the stages.
  float* const halves = smem_raw + (1024 - shared_address(smem_raw) % 1024) % 1024 / sizeof(float);
  float* const stages = halves + 2 * 2 * kHalfFloats;
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int wm = warp * 16;  // warpgroup warp / 4 has rows 64 (warp / 4) on; this warp 16 of them
  const FragmentsA<!kTransA, kBM, 1> frag_a(wm, lane);
  const int m = g.m, n = g.n;
  uint64_t* const bars = reinterpret_cast<uint64_t*>(stages + Copies::kRingFloats);
  if constexpr (kBulk) {
    if (threadIdx.x == 0) {
      for (int s = 0; s < kWgStages; ++s) barrier_init(bars + s);
      barrier_init_fence();
    }
    __syncthreads();
  }
  // The bulk copies of step j (over all units) are in once its stage's barrier's (j / kWgStages)-th phase
  // is done. Only steps queued have one: the step after a block's last has none.
  const auto wait_bulk = [&](unsigned j, const Copies& c) {
    if constexpr (kBulk)
      if (j < c.issued) barrier_wait(bars + j % kWgStages, j / kWgStages & 1);
  };

  Copies copies(g, p, &maps, bars);
#pragma unroll
  for (int s = 0; s < kWgStages - 1; ++s) copies.next(stages);
  wait_stages<kWgStages - 2>();
  wait_bulk(0, copies);
  __syncthreads();
  const int shift = g.ldb % 4;  // kPairedB: the odd rows' box starts this many columns early
  split_b<kTransB, kProducts, Copies::kPairedB>(Copies::b_part(stages, 0), halves, halves + kHalfFloats, shift);
  fence_async_shared();

  // A's fragments of a step, in two register sets: the next step's are loaded while this one multiplies
  // and split after its rounded add. (Split before the wait, their registers left the B pass too few to
  // keep its loads in flight: hidden-1024 forward 5 % slower.)
  uint32_t a_big[2][kBK / 8][1][4], a_small[2][kBK / 8][4];
  const auto load_a = [&](auto set, const float* stage) {
#pragma unroll
    for (int s = 0; s < kBK / 8; ++s) frag_a.load(a_big[decltype(set)::value][s], stage, 8 * s);
  };
  const auto split_a = [&](auto set) {
    constexpr int k = decltype(set)::value;
#pragma unroll
    for (int s = 0; s < kBK / 8; ++s)
#pragma unroll
      for (int h = 0; h < 4; ++h) split<kProducts>(a_big[k][s][0][h], a_big[k][s][0][h], a_small[k][s][h]);
  };
  // An empty asm that claims to change a set's registers: the compiler keeps their values, in them, up to it.
  const auto pin_a = [&](auto set) {
    constexpr int k = decltype(set)::value;
#pragma unroll
    for (int s = 0; s < kBK / 8; ++s)
#pragma unroll
      for (int h = 0; h < 4; ++h) asm volatile("" : "+r"(a_big[k][s][0][h]), "+r"(a_small[k][s][h])::"memory");
  };
  load_a(std::integral_constant<int, 0>{}, stages);
  split_a(std::integral_constant<int, 0>{});

  float acc[64] = {}, part[64] = {};
  UnitWalk walk(g, p);
  unsigned global = 0;  // steps multiplied so far, over all units
  // One step with A's register set `set`; false once the block's units are done. Unrolled by two below,
  // so the two sets are named statically.
  const auto one_step = [&](auto set) -> bool {
    constexpr int cur = decltype(set)::value;
    constexpr std::integral_constant<int, 1 - cur> next_set{};
    wait_stages<kWgStages - 3>();
    wait_bulk(global + 1, copies);
    __syncthreads();  // the next step's stage is in; this step's halves are written; every thread is done
    const float* const next_stage = Copies::a_part(stages, global + 1);
    float* const half = halves + (global & 1) * 2 * kHalfFloats;
    float* const next_half = halves + (~global & 1) * 2 * kHalfFloats;
    // This step's stage is refilled by the copies queued in the next step, after this step's wait.
    const float* const stage_b = Copies::b_part(stages, global);
    const float* const big_half = kBigFromStage<kTransB, kProducts> ? stage_b : half;
    const uint64_t big = swizzled_descriptor(shared_address(big_half));
    const uint64_t small = swizzled_descriptor(shared_address(half + kHalfFloats));
    wgmma_fence();
    // One 8-deep slice's products. The slices go between the pieces of the work beside them: the warps
    // then wait less at the step's barrier and on the shared-memory queue (hidden-1024 forward 2 %
    // faster than all twelve products first).
    const auto slice = [&](auto s_) {
      constexpr int s = decltype(s_)::value;  // an 8-deep slice is 32 bytes further: 2 in the descriptor
      if constexpr (kProducts == 3) {  // the small terms first, while the sums are small
        wgmma_tf32(part, a_small[cur][s], big + 2 * s, s > 0);
        wgmma_tf32(part, a_big[cur][s][0], small + 2 * s, 1);
        wgmma_tf32(part, a_big[cur][s][0], big + 2 * s, 1);
      } else {
        wgmma_tf32(part, a_big[cur][s][0], big + 2 * s, s > 0);
      }
    };
    // Beside the products: the next step's A fragments (loaded first: the B pass covers their latency)
    // and B halves, then the copies. Those come after the fence, which compiles to a memory barrier that
    // waits for the thread's copies in flight (before it: hidden-1024 forward 4 % slower).
    const float* const next_b = Copies::b_part(stages, global + 1);
    slice(std::integral_constant<int, 0>{});
    load_a(next_set, next_stage);
    slice(std::integral_constant<int, 1>{});
    split_b<kTransB, kProducts, Copies::kPairedB, 0, kSplitPasses / 2>(next_b, next_half, next_half + kHalfFloats,
                                                                       shift);
    slice(std::integral_constant<int, 2>{});
    split_b<kTransB, kProducts, Copies::kPairedB, kSplitPasses / 2>(next_b, next_half, next_half + kHalfFloats, shift);
    slice(std::integral_constant<int, 3>{});
    wgmma_commit();
    fence_async_shared();
    copies.next(stages);
    wgmma_wait();
    pin_a(set);  // the products read these registers until the wait: nothing may reuse them before it
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      asm volatile("" : "+f"(part[i])::"memory");
      acc[i] += part[i];
    }
    split_a(next_set);
    ++global;
    if (!walk.last_step()) {
      walk.advance(g, p);
      return true;
    }

    // The tile is done. Unsplit: C = alpha acc + beta C (C not read when beta is 0). Split: the raw
    // partial tile into partial[split][m][n]. A warp passes its 16 rows through shared memory (the halves
    // just multiplied) 8 at a time, so each store writes 64 consecutive columns of a row, not 8 rows' 8.
    // Row g's 8-column blocks are permuted by an XOR of g, so the fragments' writes hit distinct banks.
    __syncthreads();  // both warpgroups' products are done with the halves
    const Unit& u = walk.u;
    constexpr bool kPermuted = decltype(frag_a)::kRowsPermuted;
    float* const rows = half + warp * 8 * kBN;
    const int group = lane >> 2, quad = lane & 3;
    const int64_t ld = kSplit ? n : g.ldc;
    float* const out = (kSplit ? partial + int64_t{u.split} * m * n : g.c) + u.n0 + 2 * lane;
    const bool low_in = u.n0 + 2 * lane < n, high_in = u.n0 + kBN / 2 + 2 * lane < n;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      __syncwarp();  // the previous rows are read out
#pragma unroll
      for (int j = 0; j < kBN / 8; ++j)
        *reinterpret_cast<float2*>(rows + group * kBN + 8 * (j ^ group) + 2 * quad) =
            make_float2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
      __syncwarp();
#pragma unroll
      for (int rr = 0; rr < 8; ++rr) {
        const int r = u.m0 + wm + (kPermuted ? 2 * rr + h : rr + 8 * h);
        if (r >= m) break;
#pragma unroll
        for (int side = 0; side < 2; ++side) {
          if (!(side ? high_in : low_in)) continue;
          const int col = side * kBN / 2 + 2 * lane;
          store_pair<kSplit>(out + r * ld + side * kBN / 2,
                             *reinterpret_cast<const float2*>(rows + rr * kBN + (col ^ (rr << 3))), g);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.0f;
    walk.advance(g, p);
    return walk.active();
  };
  if (walk.active())
    while (one_step(std::integral_constant<int, 0>{}) && one_step(std::integral_constant<int, 1>{})) {
    }
  wait_stages<0>();
#endif
}

// C = alpha (sum of the partial tiles in split order) + beta C, a pair of columns a thread. With kLoads > 1
// the partials' loads go kLoads at a time, all in flight before their adds (still in split order): for
// products split many ways (the sample's delta, 66: its epoch 0.1132 - 0.1145 -> 0.1121 - 0.1129 s, H100).
// Few splits keep the plain loop: loads 16 or 32 at a time there took the benchmark from 0.5950 to 0.6024
// or 0.6147 s.
constexpr unsigned kManySplits = 16, kManySplitLoads = 32;
template <unsigned kLoads>
__global__ void split_sum_kernel(GemmArgs g, unsigned splits, const float* partial) {
  await_previous();
  const uint64_t pairs = uint64_t{static_cast<unsigned>(g.m)} * static_cast<unsigned>(g.n) / 2;
  const auto* parts = reinterpret_cast<const float2*>(partial);
  for (uint64_t i = global_thread(); i < pairs; i += grid_threads()) {
    float2 sum = make_float2(0.0f, 0.0f);
    if constexpr (kLoads == 1) {
      for (unsigned s = 0; s < splits; ++s) {
        const float2 x = parts[s * pairs + i];
        sum.x += x.x;
        sum.y += x.y;
      }
    } else {
      for (unsigned s0 = 0; s0 < splits; s0 += kLoads) {
        float2 x[kLoads];
#pragma unroll
        for (unsigned u = 0; u < kLoads; ++u)
          x[u] = s0 + u < splits ? parts[(s0 + u) * pairs + i] : make_float2(0.0f, 0.0f);
#pragma unroll
        for (unsigned u = 0; u < kLoads; ++u) {
          if (s0 + u >= splits) break;
          sum.x += x[u].x;
          sum.y += x[u].y;
        }
      }
    }
    const uint64_t r = 2 * i / static_cast<unsigned>(g.n), c = 2 * i % static_cast<unsigned>(g.n);
    auto* out = reinterpret_cast<float2*>(g.c + r * g.ldc + c);
    float2 v = make_float2(__fmul_rn(g.alpha, sum.x), __fmul_rn(g.alpha, sum.y));
    if (g.beta != 0.0f) {  // beta C and (alpha sum) in one fused step, spelled out as in store_pair
      const float2 old = *out;
      v.x = __fmaf_rn(g.beta, old.x, v.x);
      v.y = __fmaf_rn(g.beta, old.y, v.y);
    }
    *out = v;
  }
}

template <bool kTransA, bool kTransB, int kProducts, bool kTmaA, bool kTmaB>
void launch_wgmma(const GemmArgs& g, const TileGrid& grid, float* partial, cudaStream_t stream, bool dependent,
                  const BulkMaps& maps) {
  // 1,024 bytes of slack to align B's halves; the stages' barriers last.
  constexpr int kRingFloats = CopyPipeline<kTransA, kTransB, kWgStages, kTmaA, kTmaB>::kRingFloats;
  constexpr int kBytes = static_cast<int>(sizeof(float)) * (256 + 2 * 2 * kHalfFloats + kRingFloats) +
                         kWgStages * static_cast<int>(sizeof(uint64_t));
  const auto kernel = partial ? wgmma_gemm_kernel<kTransA, kTransB, kProducts, true, kTmaA, kTmaB>
                              : wgmma_gemm_kernel<kTransA, kTransB, kProducts, false, kTmaA, kTmaB>;
  DSSTNE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
  launch(dependent, kernel, grid.blocks, kGemmThreads, kBytes, stream, g, grid, partial, maps);
}

// maps: the operands' tensor maps where the plan copies them by TMA (plan.tma_a, plan.tma_b).
template <bool kTransA, bool kTransB, int kProducts>
void launch_kernel(const GemmArgs& g, const TileGrid& grid, const TensorGemmPlan& plan, float* partial,
                   cudaStream_t stream, bool dependent, const BulkMaps& maps) {
  if (plan.wgmma) {
    const auto run = [&](auto tma_a, auto tma_b) {
      launch_wgmma<kTransA, kTransB, kProducts, decltype(tma_a)::value, decltype(tma_b)::value>(
          g, grid, partial, stream, dependent, maps);
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if constexpr (!kTransA) {
      if (plan.tma_a && plan.tma_b) return run(Yes{}, Yes{});
      if (plan.tma_a) return run(Yes{}, No{});
    }
    if (plan.tma_b) return run(No{}, Yes{});
    run(No{}, No{});
  } else {
    constexpr int kBytes = CopyPipeline<kTransA, kTransB, kStages>::kRingFloats * static_cast<int>(sizeof(float));
    const auto kernel = partial ? tensor_gemm_kernel<kTransA, kTransB, kProducts, true>
                                : tensor_gemm_kernel<kTransA, kTransB, kProducts, false>;
    DSSTNE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
    launch(dependent, kernel, grid.blocks, kGemmThreads, kBytes, stream, g, grid, partial);
  }
}

bool aligned(const void* p, uintptr_t bytes = 8) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// A 2-D tensor map of floats for the bulk copies (x the contiguous dimension): zeros outside.
CUtensorMap tensor_map(const float* base, uint64_t x, uint64_t y, uint64_t pitch_floats, uint32_t box_x,
                       uint32_t box_y, CUtensorMapSwizzle swizzle) {
  static const auto encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    DSSTNE_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !fn)
      DSSTNE_RAISE(Error, "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  CUtensorMap map{};
  const cuuint64_t dims[2] = {x, y}, strides[1] = {pitch_floats * sizeof(float)};
  const cuuint32_t box[2] = {box_x, box_y}, element_strides[2] = {1, 1};
  const CUresult status = encode(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, const_cast<float*>(base), dims, strides, box,
                                 element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (status != CUDA_SUCCESS) DSSTNE_RAISE(Error, "cuTensorMapEncodeTiled failed (", static_cast<int>(status), ")");
  return map;
}

// A K-contiguous operand ([rows][k], `pitch` floats a row: A, or a transposed B), a box a stage
// (box_rows rows of kBK depths, 128 bytes) with the 128-byte swizzle, which is Tile's K-contiguous layout.
CUtensorMap tensor_map_k(const float* base, int k, int rows, int pitch, uint32_t box_rows) {
  return tensor_map(base, static_cast<uint64_t>(k), static_cast<uint64_t>(rows), static_cast<uint64_t>(pitch), kBK,
                    box_rows, CU_TENSOR_MAP_SWIZZLE_128B);
}

// B ([k][n], pitch ldb) as k / 2 rows of two: a row of the map is B's rows 2 i (its first ldb floats) and
// 2 i + 1 (from ldb on, n of them), with a pitch of 2 ldb. A box is kBK / 2 depths of `box_columns`
// columns (kBN for the even rows, kOddCols for the odd ones), unswizzled. Past column n an even row's box
// reads the next row's first floats, and the odd rows' box starts with the even row's last ones: both land
// only in stage columns no product reads or whose sums are never stored; the odd rows' boxes past n and
// the depths past k read zeros.
CUtensorMap tensor_map_b_pairs(const GemmArgs& g, uint32_t box_columns) {
  return tensor_map(g.b, static_cast<uint64_t>(g.ldb) + g.n, static_cast<uint64_t>(g.k) / 2,
                    2 * static_cast<uint64_t>(g.ldb), box_columns, kBK / 2, CU_TENSOR_MAP_SWIZZLE_NONE);
}

// One product over one grid, and its split sum when it is split.
template <int kProducts>
void run_grid(const GemmArgs& g, const TileGrid& grid, const TensorGemmPlan& plan, float* workspace,
              cudaStream_t stream, bool dependent) {
  float* const partial = grid.splits > 1 ? workspace : nullptr;
  BulkMaps maps{};
  if (plan.tma_a) maps.a = tensor_map_k(g.a, g.k, g.m, g.lda, kBM);
  if (plan.tma_b && g.trans_b) maps.b = tensor_map_k(g.b, g.k, g.n, g.ldb, kBN);
  else if (plan.tma_b) maps.b = tensor_map_b_pairs(g, kBN), maps.b_odd = tensor_map_b_pairs(g, kOddCols);
  if (g.trans_a && g.trans_b) launch_kernel<true, true, kProducts>(g, grid, plan, partial, stream, dependent, maps);
  else if (g.trans_a) launch_kernel<true, false, kProducts>(g, grid, plan, partial, stream, dependent, maps);
  else if (g.trans_b) launch_kernel<false, true, kProducts>(g, grid, plan, partial, stream, dependent, maps);
  else launch_kernel<false, false, kProducts>(g, grid, plan, partial, stream, dependent, maps);
  if (partial)
    launch(dependent, grid.splits > kManySplits ? split_sum_kernel<kManySplitLoads> : split_sum_kernel<1>,
           grid_for(size_t(g.m) * g.n / 2), kThreads, 0, stream, g, grid.splits, partial);
}

// C's columns [0, n) of g, or [n0, g.n): B's and C's columns from n0 on.
GemmArgs columns_before(const GemmArgs& g, int n) {
  GemmArgs h = g;
  h.n = n;
  return h;
}
GemmArgs columns_from(const GemmArgs& g, int n0) {
  GemmArgs t = g;
  t.n = g.n - n0;
  t.b = g.b + (g.trans_b ? int64_t{n0} * g.ldb : int64_t{n0});
  t.c = g.c + n0;
  return t;
}

// The units of g: its tiles, split over K where they are fewer than a wave of blocks.
TileGrid plan_grid(const GemmArgs& g, int multiprocessors) {
  TileGrid p;
  p.tiles_m = static_cast<unsigned>((g.m + kBM - 1) / kBM);
  p.tiles_n = static_cast<unsigned>((g.n + kBN - 1) / kBN);
  const uint64_t tiles = uint64_t{p.tiles_m} * p.tiles_n;
  const int steps = (g.k + kBK - 1) / kBK;
  // Fewer tiles than blocks: split K into as many units as fit one wave of blocks (one more unit would
  // take a second wave for itself), each split keeping at least kMinSplitSteps steps.
  uint64_t splits = 1;
  if (tiles < kSplitWave)
    splits = std::clamp<uint64_t>(kSplitWave / tiles, 1,
                                  static_cast<uint64_t>(std::max(1, steps / kMinSplitSteps)));
  const int chunk_steps = static_cast<int>((steps + splits - 1) / splits);
  p.k_chunk = chunk_steps * kBK;
  p.splits = static_cast<unsigned>((g.k + p.k_chunk - 1) / p.k_chunk);
  // The fewest blocks that take as few rounds of units as a full grid would: the multiprocessors left
  // over run the other stream's kernels (the block count changes no sum: units are whole tiles or splits).
  const uint64_t units = tiles * p.splits;
  const uint64_t slots = static_cast<uint64_t>(kBlocksPerSm) * std::max(1, multiprocessors);
  const uint64_t rounds = (units + slots - 1) / slots;
  p.blocks = static_cast<unsigned>((units + rounds - 1) / rounds);
  return p;
}

size_t workspace_floats(const TileGrid& grid, const GemmArgs& g) {
  return grid.splits > 1 ? size_t{grid.splits} * g.m * g.n : 0;
}

// DSSTNE_TENSOR_GEMM, read once (the plan asks on every GEMM): "mma" forces the mma.sync kernel,
// "cp-async" keeps every operand of the wgmma kernel on cp.async copies (both for comparison).
const std::string& forced_kernel() {
  static const std::string forced = [] {
    const char* value = std::getenv("DSSTNE_TENSOR_GEMM");
    return std::string(value ? value : "");
  }();
  return forced;
}

bool bulk_copies_allowed() { return forced_kernel() != "cp-async"; }

}  // namespace

bool wgmma_kernel_available() {
  int image = 0;
  DSSTNE_CUDA_CHECK(cudaMemcpyFromSymbol(&image, wgmma_image, sizeof(image)));
  return image && forced_kernel() != "mma";
}

TensorGemmPlan tensor_gemm_plan(const GemmArgs& g, int multiprocessors, bool wgmma) {
  TensorGemmPlan p;
  // Pairs along each operand's contiguous dimension and float2 stores of C: even extents and pitches.
  const int a_contiguous = g.trans_a ? g.m : g.k, b_contiguous = g.trans_b ? g.k : g.n;
  p.supported = g.m > 0 && g.n > 0 && g.k > 0 && a_contiguous % 2 == 0 && b_contiguous % 2 == 0 && g.n % 2 == 0 &&
                g.lda % 2 == 0 && g.ldb % 2 == 0 && g.ldc % 2 == 0 && aligned(g.a) && aligned(g.b) && aligned(g.c);
  if (!p.supported) return p;
  p.wgmma = wgmma;
  // The bulk copy's rows: a pitch of whole 16-byte chunks from a 16-byte aligned start.
  p.tma_a = wgmma && !g.trans_a && g.lda % 4 == 0 && aligned(g.a, 16) && bulk_copies_allowed();
  // A transposed B as A. Else B's rows in pairs: an even pitch makes a pair's 16-byte multiple, an even K
  // whole pairs. (A tail's B starts a whole number of 128-column tiles further: aligned as well.)
  p.tma_b = wgmma && (g.trans_b ? g.ldb % 4 == 0 : g.ldb % 2 == 0 && g.k % 2 == 0) && aligned(g.b, 16) &&
            bulk_copies_allowed();
  p.grid = plan_grid(g, multiprocessors);
  // An unsplit product whose tiles are whole rounds of a wave and a few over (the benchmark's output
  // forward: 428 tiles of 32 steps, 3 rounds of 132 and 32, so a fourth round of 32 steps) takes the
  // column tiles past its whole rounds as a second product, which splits over K: 3 rounds and a quarter.
  // Like the split itself, this depends on the shape alone (a wave of kSplitWave blocks).
  const uint64_t whole_rounds = uint64_t{p.grid.tiles_m} * p.grid.tiles_n / kSplitWave;
  const auto head_tiles_n = static_cast<int>(whole_rounds * kSplitWave / p.grid.tiles_m);
  if (p.grid.splits == 1 && head_tiles_n > 0 && head_tiles_n < static_cast<int>(p.grid.tiles_n)) {
    const GemmArgs tail = columns_from(g, head_tiles_n * kBN);
    const TileGrid tail_grid = plan_grid(tail, multiprocessors);
    if (tail_grid.splits > 1) {
      p.tail_n0 = head_tiles_n * kBN;
      p.tail = tail_grid;
      const GemmArgs head = columns_before(g, p.tail_n0);
      p.grid = plan_grid(head, multiprocessors);
      // The two run one after the other on one stream: one workspace serves both.
      p.workspace_floats = std::max(workspace_floats(p.grid, head), workspace_floats(tail_grid, tail));
      return p;
    }
  }
  p.workspace_floats = workspace_floats(p.grid, g);
  return p;
}

void tensor_gemm(const GemmArgs& g, const TensorGemmPlan& plan, int products, float* workspace, cudaStream_t stream,
                 bool dependent) {
  const auto run = products == 3 ? run_grid<3> : run_grid<1>;
  run(plan.tail_n0 ? columns_before(g, plan.tail_n0) : g, plan.grid, plan, workspace, stream, dependent);
  if (plan.tail_n0) run(columns_from(g, plan.tail_n0), plan.tail, plan, workspace, stream, dependent);
}

}  // namespace dsstne::gpu
