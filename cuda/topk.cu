// Top-K twin on the GPU. Each row's scores become order-preserving integer keys (excluded columns get
// key 0, below every score), read straight from the scores with the row's exclusions as a bitmap in shared
// memory. Recommendations (k <= 32) keep per-warp sorted lists in registers over one read of the row;
// k <= kSelectMax finds the k-th largest key by radix selection and gathers the winners; larger k (or an
// exclusion bitmap too wide for shared memory) sorts whole rows with CUB's segmented radix sort. All order
// descending with ties on the lower column first, as on the CPU target, and pad past the row's candidates.
#include <cub/cub.cuh>

#include <algorithm>
#include <climits>
#include <cmath>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "dsstne/math/sparse_row.h"
#include "launch.cuh"
#include "reduce.cuh"

namespace dsstne {
namespace gpu {

uint32_t topk_pass_rows(uint32_t rows, uint32_t width) {
  const uint64_t per_pass = std::max<uint64_t>(1, INT_MAX / std::max<uint32_t>(width, 1));
  return static_cast<uint32_t>(std::min<uint64_t>(rows, per_pass));
}

TopKLayout topk_layout(uint32_t rows, uint32_t width) {
  const uint64_t items = static_cast<uint64_t>(rows) * width;
  if (items > INT_MAX) DSSTNE_RAISE(NotSupported, "not supported yet: top-k over rows of more than ", INT_MAX, " columns");
  TopKLayout L;
  L.rows = rows;
  L.width = width;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at = align_scratch(at + bytes);
    return here;
  };
  for (int b = 0; b < 2; ++b) {
    L.keys[b] = take(sizeof(uint32_t) * items);
    L.columns[b] = take(sizeof(uint32_t) * items);
  }
  L.offsets = take(sizeof(int) * (static_cast<size_t>(rows) + 1));
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr), columns(nullptr, nullptr);
  size_t temp = 0;
  DSSTNE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, temp, keys, columns, static_cast<int>(items), static_cast<int>(rows),
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr)));
  L.temp_bytes = std::max<size_t>(temp, 1);
  L.temp = take(L.temp_bytes);
  L.bytes = at;
  return L;
}

}  // namespace gpu

namespace {

constexpr uint32_t kExcluded = 0;  // key of an excluded column: below every score
constexpr uint32_t kNaN = 1;       // NaN ranks below every number (the CPU target leaves it unordered)

// Float -> uint32 with the same order: the smallest number (-inf) maps to 0x007FFFFF, above kNaN.
// -0 and +0 share a key, so they tie and fall back to column order as on the CPU target.
__device__ __forceinline__ uint32_t order_key(float x) {
  if (isnan(x)) return kNaN;
  const uint32_t bits = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Score j of a row as ranked and returned: stored, or (with a bias) the activation of the stored linear sum
// plus the bias.
__device__ __forceinline__ float score_of(const TopKArgs& a, const float* row, uint32_t j) {
  return a.bias ? math::activate(a.activation, row[j] + a.bias[j]) : row[j];
}

struct Pass {
  uint32_t first, rows;  // batch rows [first, first + rows)
  uint32_t* keys;
  uint32_t* columns;
  int* offsets;
};

__global__ void topk_keys_kernel(TopKArgs a, Pass p) {
  const uint64_t items = static_cast<uint64_t>(p.rows) * a.width;
  const uint64_t n = max(items, static_cast<uint64_t>(p.rows) + 1);
  for (uint64_t q = gpu::global_thread(); q < n; q += gpu::grid_threads()) {
    if (q < items) {
      const uint64_t r = q / a.width, j = q % a.width;
      p.keys[q] = order_key(score_of(a, a.scores + (p.first + r) * a.stride, static_cast<uint32_t>(j)));
      p.columns[q] = static_cast<uint32_t>(j);
    }
    if (q <= p.rows) p.offsets[q] = static_cast<int>(q * a.width);
  }
}

// One block per row: its excluded columns get the excluded key (several writers of one key agree).
__global__ void topk_exclude_kernel(TopKArgs a, Pass p) {
  for (uint32_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const SparseRow ex = sparse_row(a.exclude, a.batch, p.first + r);
    for (uint64_t i = ex.begin + threadIdx.x; i < ex.end; i += blockDim.x) {
      const uint32_t j = a.exclude.index[i];
      if (j < a.width) p.keys[static_cast<uint64_t>(r) * a.width + j] = kExcluded;
    }
  }
}

// The first k sorted positions of each row; excluded columns sort last and are never emitted.
__global__ void topk_emit_kernel(TopKArgs a, Pass p, const uint32_t* keys, const uint32_t* columns) {
  const uint64_t n = static_cast<uint64_t>(p.rows) * a.k;
  for (uint64_t q = gpu::global_thread(); q < n; q += gpu::grid_threads()) {
    const uint64_t r = q / a.k, i = q % a.k;
    const uint64_t sorted = r * a.width + i;
    const uint64_t out = (p.first + r) * a.k + i;
    if (i < a.width && keys[sorted] != kExcluded) {
      const uint32_t column = columns[sorted];
      a.out_scores[out] = score_of(a, a.scores + (p.first + r) * a.stride, column);
      a.out_index[out] = column;
    } else {
      a.out_scores[out] = -INFINITY;
      a.out_index[out] = 0xFFFFFFFFu;
    }
  }
}

constexpr unsigned kSelectThreads = 256;
constexpr uint32_t kWarpSelectMax = 32;  // k of the warp-list selection: one list entry per lane
constexpr uint32_t kSelectMax = 64;
constexpr uint32_t kPickMax = 2 * kSelectMax;  // candidates the one-pass gather may hold
constexpr uint32_t kSelectBitmapBytes = 32 * 1024;  // exclusion bitmap in shared memory: rows to 262,144 columns

// The keys of one row as the selection reads them: straight from the scores, with the row's excluded
// columns (a bitmap in shared memory) given the excluded key; nothing is written to global memory.
struct RowKeys {
  const TopKArgs& a;
  const float* row;
  const uint32_t* excluded;  // nullptr: nothing excluded
  __device__ __forceinline__ bool excludes(uint32_t j) const {
    return excluded && (excluded[j >> 5] >> (j & 31u)) & 1u;
  }
  // Column j's key, given its score.
  __device__ __forceinline__ uint32_t of(uint32_t j, float score) const {
    return excludes(j) ? kExcluded : order_key(score);
  }
  __device__ __forceinline__ uint32_t operator()(uint32_t j) const { return of(j, score_of(a, row, j)); }
};

// The row's excluded columns as a bitmap in shared memory (every thread of the block calls this).
__device__ __forceinline__ void load_exclusions(const TopKArgs& a, uint32_t batch_row, uint32_t* excluded) {
  const uint32_t words = (a.width + 31) / 32;
  for (uint32_t w = threadIdx.x; w < words; w += blockDim.x) excluded[w] = 0;
  __syncthreads();
  const SparseRow ex = sparse_row(a.exclude, a.batch, batch_row);
  for (uint64_t i = ex.begin + threadIdx.x; i < ex.end; i += blockDim.x) {
    const uint32_t j = a.exclude.index[i];
    if (j < a.width) atomicOr(&excluded[j >> 5], 1u << (j & 31u));
  }
  __syncthreads();
}

// (key, column) a before b: key descending, then column ascending (the CPU target's order).
__device__ __forceinline__ bool before(uint32_t ka, uint32_t ca, uint32_t kb, uint32_t cb) {
  return ka > kb || (ka == kb && ca < cb);
}

constexpr unsigned kWarpSelectWarps = 16;  // a row's share per warp stays short: the scan is a chain of shuffles
constexpr unsigned kWarpPrefetch = 8;  // chunks of 32 columns a warp loads before ranking them
constexpr uint32_t kNoColumn = 0xFFFFFFFFu;  // an empty slot of a list (after every real entry)
constexpr uint32_t kSkippableGroups = 64;  // kSigmoid: prefetch groups of a warp whose largest sums are kept
// Linear sums x < y - kSigmoidMargin have 1/(1 + expf(-x)) <= that of y, as computed: the gap is at
// least 3.5e-6 after rounding the bar, so e^-x exceeds e^-y by over 50 units of 2^-24, more than expf's
// error (2 ulp) on both, and the rest of the formula rounds monotonically. So a column whose linear sum
// is that far below a list's k-th one comes after it (a key no larger, a higher index); and one whose sum
// is that far below a sum t of a Sigmoid smaller than k columns' comes after all k.
constexpr float kSigmoidMargin = 4e-6f;

// k <= kWarpSelectMax, one block per row: each warp keeps the top k of its share of the row as a list sorted by
// `before`, one entry per lane. Its lanes read 32 consecutive columns at a time; a column enters the list
// only if it comes before the list's k-th entry (rare once the list fills), by one shuffle of the entries
// below its place. The warps' lists are then ranked together. No block barrier in the scan; excluded
// columns never enter a list.
// kSigmoid: the activation applied to linear sums is fixed at compile time (the usual output layer), so
// its formula's switch folds away. A first read of the row (linear sums only: a load, an add and a max a
// column) bounds the scan: each lane's largest linear sum among its columns (not excluded) belongs to a
// column of its own, so at least k columns of the row have sums at least the row bar, the k-th largest
// of the 512 lane maxima (merged from the warps' sorted k largest). The scan then skips the prefetch
// groups whose largest sum (kept by the first read) proves every column after those k (see
// kSigmoidMargin), without reading them again, and in the rest, before their Sigmoid, key and exclusion
// are computed, the chunks whose sums prove every column after those k or after the list's k-th: only
// the few columns near the top are read twice or enter a list. (Two blocks a multiprocessor at least:
// registers for the prefetched chunks.)
template <bool kSigmoid>
__global__ void __launch_bounds__(32 * kWarpSelectWarps, 2) topk_warp_select_kernel(TopKArgs a) {
  __shared__ uint32_t all_key[kWarpSelectWarps * kWarpSelectMax], all_column[kWarpSelectWarps * kWarpSelectMax];
  __shared__ uint32_t list_count[kWarpSelectWarps];
  __shared__ float warp_tops[kWarpSelectWarps][kWarpSelectMax];  // kSigmoid: each warp's largest lane maxima
  __shared__ float row_floor;  // kSigmoid: a column whose linear sum is below this is not in the row's top k
  __shared__ float group_maxima[kWarpSelectWarps][kSkippableGroups];  // kSigmoid: of each warp's first groups
  __shared__ uint32_t no_exclusions;              // kSigmoid: the bitmap word of a row without exclusions
  extern __shared__ uint32_t excluded[];  // (width + 31) / 32 words when a.exclude is set
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const uint32_t k = a.k;
  ActivationParams f = a.activation;
  if constexpr (kSigmoid) f.kind = Activation::Sigmoid;
  const uint32_t share = (a.width + 32 * kWarpSelectWarps - 1) / (32 * kWarpSelectWarps) * 32;  // columns per warp
  if (kSigmoid && threadIdx.x == 0) no_exclusions = 0;
  __syncthreads();
  for (uint32_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    if (a.exclude.start) load_exclusions(a, r, excluded);
    const RowKeys key_of{a, a.scores + static_cast<uint64_t>(r) * a.stride, a.exclude.start ? excluded : nullptr};
    const uint32_t first = warp * share, last = min(a.width, first + share);
    const uint32_t groups = last > first ? (last - first + 32 * kWarpPrefetch - 1) / (32 * kWarpPrefetch) : 0;
    // The scores (and biases) of prefetch group g, columns first + 32 (kWarpPrefetch g + u) + lane, all
    // loaded before any is used: one memory latency per kWarpPrefetch chunks. Columns past the share
    // read NaN (a sum of no entry).
    float z[kWarpPrefetch], bias[kWarpPrefetch];
    auto load = [&](uint32_t g) {
      const uint32_t j = first + g * 32 * kWarpPrefetch + lane;
      const float* const zs = key_of.row + j;
      const float* const bs = kSigmoid || a.bias ? a.bias + j : nullptr;
#pragma unroll
      for (unsigned u = 0; u < kWarpPrefetch; ++u) {
        const bool in = j + 32 * u < last;
        z[u] = in ? zs[32 * u] : NAN;
        bias[u] = in && (kSigmoid || a.bias) ? bs[32 * u] : 0.0f;
      }
    };
    // A column enters the list only if it comes before (kth_key, kth_column), the list's k-th entry once
    // it is full; a linear sum below sum_bar proves a column after the row bar or that entry (kSigmoid).
    uint32_t kth_key = 0, kth_column = kNoColumn;
    float sum_bar = -INFINITY;
    if constexpr (kSigmoid) {
      float lane_max = NAN;  // the lane's largest linear sum of an entry (a column not excluded; NaN: none)
      // A chunk's columns share one bitmap word (chunks start at multiples of 32); with nothing excluded,
      // every chunk reads the zero word (no branch in the loop).
      const uint32_t* const words = key_of.excluded ? key_of.excluded : &no_exclusions;
      const uint32_t word_mask = key_of.excluded ? ~0u : 0u, lane_bit = 1u << lane;
      for (uint32_t g = 0; g < groups; ++g) {
        load(g);
        float group_max = NAN;
#pragma unroll
        for (unsigned u = 0; u < kWarpPrefetch; ++u) {
          const uint32_t word = words[((first >> 5) + g * kWarpPrefetch + u) & word_mask];
          const float sum = z[u] + bias[u];
          group_max = word & lane_bit ? group_max : fmaxf(group_max, sum);  // fmaxf passes over NaN
        }
        lane_max = fmaxf(lane_max, group_max);
        group_max = gpu::warp_reduce(group_max, gpu::Max{});
        if (lane == 0 && g < kSkippableGroups) group_maxima[warp][g] = group_max;
      }
      // The warp's k largest lane maxima, in order (ties on the lower lane), go to shared memory.
      uint32_t rank = 0;
      for (unsigned i = 0; i < 32; ++i) {
        const float other = __shfl_sync(gpu::kFullMask, lane_max, i);
        rank += other > lane_max || (other == lane_max && i < lane);
      }
      const bool entry = !isnan(lane_max);
      const uint32_t entries = __popc(__ballot_sync(gpu::kFullMask, entry));
      if (entry && rank < k) warp_tops[warp][rank] = lane_max;
      if (lane == 0) list_count[warp] = min(k, entries);
      __syncthreads();
      if (warp == 0) {
        // The row bar: the k-th largest lane maximum of the row, by merging the warps' lists (lane w
        // holds warp w's next one). Then the floor: columns of sums at least the bar have Sigmoids of at
        // least low (that of a sum below bar - margin); lane i tries t = bar less 2^i margins, and below a
        // t whose Sigmoid is under low by a margin, every sum proves its column after all of those.
        uint32_t taken = 0;
        float bar = NAN;
        for (uint32_t i = 0; i < k; ++i) {
          const float next = lane < kWarpSelectWarps && taken < list_count[lane] ? warp_tops[lane][taken] : NAN;
          bar = gpu::warp_reduce(next, gpu::Max{});  // fmaxf passes over NaN: NaN when nothing is left
          if (isnan(bar)) break;
          taken += lane == static_cast<unsigned>(__ffs(__ballot_sync(gpu::kFullMask, next == bar)) - 1);
        }
        float floor = -INFINITY;
        if (!isnan(bar)) {
          const float low = math::activate(f, nextafterf(bar - kSigmoidMargin, -INFINITY));
          const float t = bar - kSigmoidMargin * static_cast<float>(1u << lane);
          const unsigned below = __ballot_sync(gpu::kFullMask, math::activate(f, t) < low);
          if (below) floor = __shfl_sync(gpu::kFullMask, t, __ffs(below) - 1) - kSigmoidMargin;
        }
        if (lane == 0) row_floor = floor;
      }
      __syncthreads();
      sum_bar = row_floor;
    }
    uint32_t my_key = 0, my_column = kNoColumn;  // this lane's entry of the warp's list
    float my_sum = -INFINITY;                      // its linear sum (kSigmoid)
    for (uint32_t g = 0; g < groups; ++g) {
      if constexpr (kSigmoid) {  // a group without a sum at the floor is not read again (with a floor)
        if (g < kSkippableGroups && sum_bar > -INFINITY && !(group_maxima[warp][g] >= sum_bar)) continue;
      }
      load(g);
#pragma unroll
      for (unsigned u = 0; u < kWarpPrefetch; ++u) {
        const uint32_t j0 = first + (g * kWarpPrefetch + u) * 32, j = j0 + lane;
        const float sum = z[u] + bias[u];
        if constexpr (kSigmoid) {
          if (!__any_sync(gpu::kFullMask, j < last && !(sum < sum_bar))) continue;  // NaN sums go on
        }
        const uint32_t key = j >= last ? kExcluded : key_of.of(j, a.bias ? math::activate(f, sum) : sum);
        unsigned pending = __ballot_sync(gpu::kFullMask, key != kExcluded && before(key, j, kth_key, kth_column));
        while (pending) {  // in column order; each insertion is exact, whatever came before
          const int src = __ffs(pending) - 1;
          pending &= pending - 1;
          const uint32_t ck = __shfl_sync(gpu::kFullMask, key, src), cc = j0 + src;
          const float cs = __shfl_sync(gpu::kFullMask, sum, src);
          const unsigned after = __ballot_sync(gpu::kFullMask, lane < k && before(ck, cc, my_key, my_column));
          const uint32_t up_key = __shfl_up_sync(gpu::kFullMask, my_key, 1);
          const uint32_t up_column = __shfl_up_sync(gpu::kFullMask, my_column, 1);
          const float up_sum = __shfl_up_sync(gpu::kFullMask, my_sum, 1);
          if (after) {  // entries from the candidate's place down move one lane up
            const unsigned place = __ffs(after) - 1;
            if (lane == place) {
              my_key = ck;
              my_column = cc;
              my_sum = cs;
            } else if (lane > place) {
              my_key = up_key;
              my_column = up_column;
              my_sum = up_sum;
            }
            const uint32_t list_key = __shfl_sync(gpu::kFullMask, my_key, k - 1);
            const uint32_t list_column = __shfl_sync(gpu::kFullMask, my_column, k - 1);
            const float list_sum = __shfl_sync(gpu::kFullMask, my_sum, k - 1);
            if (list_column != kNoColumn) {
              kth_key = list_key;
              kth_column = list_column;
              if constexpr (kSigmoid) sum_bar = fmaxf(sum_bar, list_sum - kSigmoidMargin);
            }
          }
        }
      }
    }
    // The real entries of a list are its first lanes (empty slots come after every real entry): the
    // lists are packed in warp order, then each entry is ranked among all (columns are unique, so ranks
    // are too) by one thread, and the first k are output.
    const unsigned filled_lanes = __ballot_sync(gpu::kFullMask, lane < k && my_column != kNoColumn);
    if (lane == 0) list_count[warp] = __popc(filled_lanes);
    __syncthreads();
    uint32_t offset = 0, real = 0;
    for (unsigned w = 0; w < kWarpSelectWarps; ++w) {
      offset += w < warp ? list_count[w] : 0;
      real += list_count[w];
    }
    if (lane < list_count[warp]) {
      all_key[offset + lane] = my_key;
      all_column[offset + lane] = my_column;
    }
    __syncthreads();
    const uint64_t out = static_cast<uint64_t>(r) * a.k;
    for (uint32_t t = threadIdx.x; t < real; t += blockDim.x) {
      const uint32_t tk = all_key[t], tc = all_column[t];
      uint32_t rank = 0;
      for (uint32_t u = 0; u < real; ++u) rank += before(all_key[u], all_column[u], tk, tc);
      if (rank < k) {
        a.out_scores[out + rank] = score_of(a, key_of.row, tc);
        a.out_index[out + rank] = tc;
      }
    }
    for (uint32_t q = min(real, k) + threadIdx.x; q < a.k; q += blockDim.x) {  // fewer candidates than k
      a.out_scores[out + q] = -INFINITY;
      a.out_index[out + q] = kNoColumn;
    }
    __syncthreads();  // the lists and the bitmap are rewritten by the next row
  }
}

// One block per row. Radix selection: four passes of 8-bit digit histograms (integer counts: exact)
// narrow down the k-th largest key; then one ordered pass takes every key above it and, of the keys
// equal to it, the lowest columns (a block scan keeps column order), and the <= k winners are ranked
// by (key descending, column ascending); with few ties at the threshold (the usual case) that pass is
// unordered: every key at or above it is taken and the ranking keeps the first k. Reads the row five
// times instead of sorting it. Scores of one
// row share their leading digits, so the lanes of a warp that fall in one histogram bin add once.
__global__ void __launch_bounds__(kSelectThreads) topk_select_kernel(TopKArgs a, Pass p) {
  using Scan = cub::BlockScan<uint32_t, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ uint32_t hist[256];
  __shared__ uint32_t picked_key[kPickMax], picked_column[kPickMax];
  __shared__ uint32_t s_prefix, s_remaining, s_equal, s_picked, s_equal_seen;
  extern __shared__ uint32_t excluded[];  // (width + 31) / 32 words when a.exclude is set
  const unsigned lane = threadIdx.x & 31u;
  const uint32_t k = min(a.k, a.width);  // positions a row can fill
  for (uint32_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const RowKeys key_of{a, a.scores + static_cast<uint64_t>(p.first + r) * a.stride,
                         a.exclude.start ? excluded : nullptr};
    if (a.exclude.start) load_exclusions(a, p.first + r, excluded);
    uint32_t prefix = 0, mask = 0, remaining = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
      __syncthreads();
      for (uint32_t j0 = 0; j0 < a.width; j0 += blockDim.x) {  // whole warps: the match below needs them
        const uint32_t j = j0 + threadIdx.x;
        uint32_t digit = 256;  // no bin
        if (j < a.width) {
          const uint32_t key = key_of(j);
          if ((key & mask) == prefix) digit = (key >> shift) & 255u;
        }
        const unsigned peers = __match_any_sync(gpu::kFullMask, digit);
        if (digit < 256 && static_cast<unsigned>(__ffs(peers) - 1) == lane) atomicAdd(&hist[digit], __popc(peers));
      }
      __syncthreads();
      if (threadIdx.x == 0) {  // the digit holding the remaining-th largest key, counting from the top
        uint32_t above = 0;
        int digit = 0;
        for (int b = 255; b >= 0; --b) {
          if (above + hist[b] >= remaining) {
            digit = b;
            break;
          }
          above += hist[b];
        }
        s_prefix = prefix | (static_cast<uint32_t>(digit) << shift);
        s_remaining = remaining - above;
        s_equal = hist[digit];  // after the last pass: the keys equal to the threshold
      }
      __syncthreads();
      prefix = s_prefix;
      remaining = s_remaining;
      mask |= 255u << shift;
    }
    // prefix is the k-th largest key; `remaining` of the keys equal to it belong to the top k.
    const uint32_t above = k - remaining, equal_total = s_equal;
    if (threadIdx.x == 0) s_picked = s_equal_seen = 0;
    __syncthreads();
    if (above + equal_total <= kPickMax) {
      // Few ties (the usual case): every key at or above the threshold is taken in one unordered pass; the
      // ranking below keeps the first k by (key descending, column ascending).
      for (uint32_t j = threadIdx.x; j < a.width; j += blockDim.x) {
        const uint32_t key = key_of(j);
        if (key >= prefix) {
          const uint32_t slot = atomicAdd(&s_picked, 1u);
          picked_key[slot] = key;
          picked_column[slot] = j;
        }
      }
    } else {
      // Many ties at the threshold: of the equal keys only the lowest `remaining` columns, in column order.
      for (uint32_t j0 = 0; j0 < a.width; j0 += blockDim.x) {
        const uint32_t j = j0 + threadIdx.x;
        const uint32_t key = j < a.width ? key_of(j) : 0u;
        const bool equal = j < a.width && key == prefix;
        uint32_t before = 0, total = 0;
        Scan(scan).ExclusiveSum(equal ? 1u : 0u, before, total);
        if ((j < a.width && key > prefix) || (equal && s_equal_seen + before < remaining)) {
          const uint32_t slot = atomicAdd(&s_picked, 1u);  // slot order does not matter: ranked below
          picked_key[slot] = key;
          picked_column[slot] = j;
        }
        __syncthreads();
        if (threadIdx.x == 0) s_equal_seen += total;
        __syncthreads();
      }
    }
    __syncthreads();
    const uint32_t n = s_picked, filled = min(n, k);
    const uint64_t out = static_cast<uint64_t>(p.first + r) * a.k;
    for (uint32_t t = threadIdx.x; t < n; t += blockDim.x) {
      const uint32_t key = picked_key[t], column = picked_column[t];
      uint32_t rank = 0;
      for (uint32_t u = 0; u < n; ++u)
        rank += picked_key[u] > key || (picked_key[u] == key && picked_column[u] < column);
      if (rank >= filled) continue;
      if (key != kExcluded) {
        a.out_scores[out + rank] = score_of(a, key_of.row, column);
        a.out_index[out + rank] = column;
      } else {  // fewer candidates than k: excluded columns become padding
        a.out_scores[out + rank] = -INFINITY;
        a.out_index[out + rank] = 0xFFFFFFFFu;
      }
    }
    for (uint32_t t = filled + threadIdx.x; t < a.k; t += blockDim.x) {
      a.out_scores[out + t] = -INFINITY;
      a.out_index[out + t] = 0xFFFFFFFFu;
    }
    __syncthreads();  // the shared winners and bitmap are rewritten by the next row
  }
}

}  // namespace

size_t CudaBackend::topk_scratch_bytes(uint32_t rows, uint32_t stride) const {
  if (rows == 0 || stride == 0) return 0;
  bind();
  return gpu::topk_layout(gpu::topk_pass_rows(rows, stride), stride).bytes;
}

void CudaBackend::topk(const TopKArgs& a) {
  if (a.rows == 0 || a.k == 0) return;
  bind();
  cudaStream_t s = stream();
  if (a.width == 0) {  // no candidates: every slot is padding
    const Pass p{0, a.rows, nullptr, nullptr, nullptr};
    topk_emit_kernel<<<gpu::grid_for(static_cast<uint64_t>(a.rows) * a.k), gpu::kThreads, 0, s>>>(a, p, nullptr, nullptr);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  const uint32_t bitmap_bytes = a.exclude.start ? (a.width + 31) / 32 * 4 : 0;
  if (a.k <= kWarpSelectMax && bitmap_bytes <= kSelectBitmapBytes) {  // warp lists straight from the scores
    if (a.bias && a.activation.kind == Activation::Sigmoid)
      topk_warp_select_kernel<true><<<gpu::row_grid(a.rows), 32 * kWarpSelectWarps, bitmap_bytes, s>>>(a);
    else
      topk_warp_select_kernel<false><<<gpu::row_grid(a.rows), 32 * kWarpSelectWarps, bitmap_bytes, s>>>(a);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  if (a.k <= kSelectMax && bitmap_bytes <= kSelectBitmapBytes) {  // radix selection straight from the scores
    const Pass p{0, a.rows, nullptr, nullptr, nullptr};
    topk_select_kernel<<<gpu::row_grid(a.rows), kSelectThreads, bitmap_bytes, s>>>(a, p);
    DSSTNE_LAUNCH_CHECK();
    return;
  }
  const uint32_t pass_rows = gpu::topk_pass_rows(a.rows, a.width);
  const gpu::TopKLayout L = gpu::topk_layout(pass_rows, a.width);
  char* base = static_cast<char*>(a.scratch);
  auto* keys0 = reinterpret_cast<uint32_t*>(base + L.keys[0]);
  auto* keys1 = reinterpret_cast<uint32_t*>(base + L.keys[1]);
  auto* columns0 = reinterpret_cast<uint32_t*>(base + L.columns[0]);
  auto* columns1 = reinterpret_cast<uint32_t*>(base + L.columns[1]);
  auto* offsets = reinterpret_cast<int*>(base + L.offsets);
  // The segmented sort counts items in int: very wide batches are sorted a group of rows at a time.
  for (uint32_t first = 0; first < a.rows; first += pass_rows) {
    const uint32_t rows = std::min(pass_rows, a.rows - first);
    const Pass p{first, rows, keys0, columns0, offsets};
    const uint64_t items = static_cast<uint64_t>(rows) * a.width;
    topk_keys_kernel<<<gpu::grid_for(std::max<uint64_t>(items, rows + 1ull)), gpu::kThreads, 0, s>>>(a, p);
    DSSTNE_LAUNCH_CHECK();
    if (a.exclude.start) {
      topk_exclude_kernel<<<gpu::row_grid(rows), gpu::kThreads, 0, s>>>(a, p);
      DSSTNE_LAUNCH_CHECK();
    }
    cub::DoubleBuffer<uint32_t> keys(keys0, keys1), columns(columns0, columns1);
    size_t temp_bytes = L.temp_bytes;
    DSSTNE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        base + L.temp, temp_bytes, keys, columns, static_cast<int>(items), static_cast<int>(rows),
        static_cast<const int*>(offsets), static_cast<const int*>(offsets) + 1, 0, 32, s));
    topk_emit_kernel<<<gpu::grid_for(static_cast<uint64_t>(rows) * a.k), gpu::kThreads, 0, s>>>(
        a, p, keys.Current(), columns.Current());
    DSSTNE_LAUNCH_CHECK();
  }
}

}  // namespace dsstne
