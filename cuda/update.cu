// Optimiser twin on the GPU: element-wise, with the shared update formula.
#include <algorithm>
#include <cstdint>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "stepper.cuh"

namespace dsstne {
namespace {

// Which blocks of the grid step which item: item k takes blocks [first_block[k], first_block[k + 1]).
// An item goes by quads where its buffers are 16-byte aligned (and, with row stamps, its rows a whole
// number of quads).
struct UpdatePlan {
  uint32_t first_block[UpdateListArgs::kMax + 1];
  bool quads[UpdateListArgs::kMax];
};

__device__ __forceinline__ unsigned item_of_block(const UpdatePlan& plan) {
  unsigned k = 0;
  while (blockIdx.x >= plan.first_block[k + 1]) ++k;
  return k;
}

// Slot t of an item in order on the stream (a covering grid, a thread a slot, so that blocks retire and
// the next ones' loads start at once): quad t (or parameter t), or past the item's quads its last one to
// three parameters. Stepping all of a stamped item's rows, a row's weights and state are loaded beside
// its stamp wherever the step moves them whatever the stamp (regularised, or a mode whose zero step moves
// the weight): only the gradient's load waits for the stamp. Stepping the unlisted rows alone, all loads
// wait for it.
__device__ __forceinline__ void step_slot(Stepper& s, const UpdateArgs& a, uint64_t t, bool quads) {
  const uint64_t whole = quads ? a.n / 4 : a.n;
  if (t == whole) {  // an item with row stamps has whole rows of quads, so never here
    for (uint64_t i = 4 * whole; i < a.n; ++i) s.one(i, true, true);
    return;
  }
  const bool live = !a.row_stamp || a.row_stamp[t / (quads ? a.row_width / 4 : a.row_width)] == a.stamp;
  const auto step = [&](bool weight) { quads ? s.quad(t, live, weight) : s.one(t, live, weight); };
  const bool keeps_weight = math::zero_step_keeps_weight(a.params);
  if (!keeps_weight && !a.unlisted_only)
    step(true);  // not waiting for the stamp
  else if (!(live && a.unlisted_only) && (live || !keeps_weight || !math::zero_step_keeps_state(a.params)))
    step(live || !keeps_weight);
}

__host__ __device__ uint64_t slots(const UpdateArgs& a, bool quads) {
  return quads ? a.n / 4 + (a.n % 4 != 0 ? 1 : 0) : a.n;
}

// A large item of an update list in order, in a launch of its own: its arguments by value are the
// instructions' constant operands (32 registers a thread against the list kernel's 44). Whole quads only.
__global__ void covering_item_kernel(UpdateArgs a) {
  gpu::await_previous();
  Stepper s(a);
  if (const uint64_t t = gpu::global_thread(); t < a.n / 4) step_slot(s, a, t, true);
  if (a.regularization) gpu::add_fixed(a.regularization, s.regularization);
}

// A lazily stepped item (LazyRows) in a launch of its own, a thread a slot (quad t, or parameter t): the
// row's steps owed and this one, or nothing yet. Its own kernel, so that the replay's loop costs the other
// items' kernels no registers.
// Held to 40 registers, 6 blocks a multiprocessor: with 55 the benchmark ran 0.5923 - 0.5936 s an epoch,
// with 40 0.5827 - 0.5868 (H100, one call).
template <bool kQuads>
__global__ void __launch_bounds__(gpu::kThreads, 6) lazy_item_kernel(UpdateArgs a) {
  gpu::await_previous();
  Stepper s(a);
  const uint64_t t = gpu::global_thread();
  uint32_t steps = 0;
  uint32_t stamp = 0;
  if (t < slots(a, kQuads)) {
    const uint64_t row = t / (kQuads ? a.row_width / 4 : a.row_width);
    stamp = a.row_stamp[row];
    steps = lazy_steps(a.lazy, stamp, a.lazy.next_stamp ? a.lazy.next_stamp[row] : 0, a.stamp);
  }
  // A block whose rows all wait (a minibatch lists 47 % of the benchmark's rows) leaves before the error's
  // block sum (H200, bench/lazy_rows.cu: 104 -> 94 us a step).
  if (!__syncthreads_or(steps > 0)) return;
  if (steps > 0) {
    const bool live = lazy_gradient_step(a.lazy, stamp);
    kQuads ? s.quad<true>(t, live, true, steps, a.lazy.this_step) : s.one<true>(t, live, true, steps, a.lazy.this_step);
  }
  if (a.regularization) gpu::add_fixed(a.regularization, s.regularization);
}

// The rest of an update list in order: item k's slots over its blocks. After a large item's launch
// (kAfterItem) the wait for it comes last, so that these blocks run beside its last wave: they touch none
// of its buffers, and what they read was written before any of its blocks got past their own wait (which
// is when this launch may be scheduled). The next kernel is scheduled once both are done.
template <bool kAfterItem>
__global__ void covering_update_kernel(UpdateListArgs list, UpdatePlan plan) {
  if constexpr (!kAfterItem) gpu::await_previous();
  const unsigned k = item_of_block(plan);
  const UpdateArgs& a = list.items[k];
  Stepper s(a);
  const uint64_t t = static_cast<uint64_t>(blockIdx.x - plan.first_block[k]) * blockDim.x + threadIdx.x;
  if (t < slots(a, plan.quads[k])) step_slot(s, a, t, plan.quads[k]);
  if (a.regularization) gpu::add_fixed(a.regularization, s.regularization);  // uniform over the block
  if constexpr (kAfterItem) gpu::await_previous();
}

// An update list beside other kernels: a persistent grid, each block looping over its share of its item.
// (Only dense matrices are stepped beside: Network::defers_step never defers a sparse input's.)
__global__ void beside_update_kernel(UpdateListArgs list, UpdatePlan plan) {
  gpu::await_previous();
  const unsigned k = item_of_block(plan);
  const UpdateArgs& a = list.items[k];
  const uint64_t first = static_cast<uint64_t>(blockIdx.x - plan.first_block[k]) * blockDim.x + threadIdx.x;
  const uint64_t threads = static_cast<uint64_t>(plan.first_block[k + 1] - plan.first_block[k]) * blockDim.x;
  Stepper s(a);
  const uint64_t quads = plan.quads[k] ? a.n / 4 : 0;
  for (uint64_t i = first; i < quads; i += threads) s.quad(i, true, true);
  for (uint64_t i = 4 * quads + first; i < a.n; i += threads) s.one(i, true, true);
  if (a.regularization) gpu::add_fixed(a.regularization, s.regularization);  // uniform over the block
}

// kAtOnce quads a thread at once (their loads in flight together: the pass is bound by memory latency
// otherwise), then the unaligned or remaining parameters one at a time.
constexpr unsigned kAtOnce = 4;

__global__ void regularization_kernel(RegularizationArgs a, uint64_t quads) {
  gpu::await_previous();
  const auto term = [&a](float w) { return fixed::from_float(math::regularization(w, a.lambda, a.lambda1)); };
  const uint64_t t = gpu::global_thread(), threads = gpu::grid_threads();
  const float4* w4 = reinterpret_cast<const float4*>(a.weights);
  long long total = 0;
  for (uint64_t i = t; i < quads; i += kAtOnce * threads) {
    float4 w[kAtOnce];
#pragma unroll
    for (unsigned u = 0; u < kAtOnce; ++u)
      w[u] = i + u * threads < quads ? w4[i + u * threads] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (unsigned u = 0; u < kAtOnce; ++u) total += term(w[u].x) + term(w[u].y) + term(w[u].z) + term(w[u].w);
  }
  for (uint64_t i = 4 * quads + t; i < a.n; i += threads) total += term(a.weights[i]);
  gpu::add_fixed(a.out, total);
}

// Parameters from which an item of a list in order takes a launch of its own (32 registers against the
// list kernel's 44). A launch in the chain costs a few microseconds, so small items (biases) stay in the
// list; from 512K parameters on (the benchmark's hidden matrices too) the benchmark ran the same.
constexpr uint64_t kOwnLaunch = uint64_t{1} << 21;

constexpr uint64_t kMaxGrid = 0x7FFFFFFF;  // CUDA's limit on a grid's x extent

// Blocks of gpu::kThreads that give each of `slots` a thread (the covering kernels do not loop: a loop
// took the item kernel from 32 registers to 56).
unsigned covering_blocks(uint64_t slots) {
  const uint64_t blocks = (slots + gpu::kThreads - 1) / gpu::kThreads;
  DSSTNE_REQUIRE(blocks <= kMaxGrid, "update: ", slots, " slots exceed a CUDA grid");
  return static_cast<unsigned>(blocks);
}

bool aligned16(const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void CudaBackend::update(const UpdateListArgs& list) {
  bind();
  UpdatePlan plan{};
  uint64_t item_count[UpdateListArgs::kMax] = {}, blocks = 0;
  for (unsigned k = 0; k < list.count; ++k) {
    const UpdateArgs& a = list.items[k];
    plan.quads[k] = aligned16(a.weights) && aligned16(a.gradient) && aligned16(a.velocity) &&
                    aligned16(a.velocity2) && (!a.row_stamp || a.row_width % 4 == 0);
    item_count[k] = slots(a, plan.quads[k]);
  }
  if (!list.beside) {  // large items first, each a launch of its own; the rest in one
    const auto own_launch = [&](unsigned k) {
      const UpdateArgs& a = list.items[k];
      return !a.lazy.enabled && plan.quads[k] && a.n % 4 == 0 && a.n >= kOwnLaunch;
    };
    bool after_item = false;
    for (unsigned k = 0; k < list.count; ++k) {
      const UpdateArgs& a = list.items[k];
      if (!a.lazy.enabled) continue;
      DSSTNE_REQUIRE(a.row_stamp, "update: a lazily stepped item has no row stamps");
      gpu::launch(dependent_, plan.quads[k] ? lazy_item_kernel<true> : lazy_item_kernel<false>,
                  covering_blocks(item_count[k]), gpu::kThreads, 0, stream(), a);
      after_item = true;
    }
    for (unsigned k = 0; k < list.count; ++k) {
      if (!own_launch(k)) continue;
      gpu::launch(dependent_, covering_item_kernel, covering_blocks(list.items[k].n / 4), gpu::kThreads, 0, stream(),
                  list.items[k]);
      after_item = true;
    }
    UpdateListArgs rest;
    for (unsigned k = 0; k < list.count; ++k) {
      const UpdateArgs& a = list.items[k];
      if (a.lazy.enabled || own_launch(k)) continue;
      plan.quads[rest.count] = plan.quads[k];
      plan.first_block[rest.count] = static_cast<uint32_t>(blocks);
      blocks += covering_blocks(item_count[k]);
      DSSTNE_REQUIRE(blocks <= kMaxGrid, "update: the list's ", blocks, " blocks exceed a CUDA grid");
      rest.items[rest.count++] = a;
    }
    for (unsigned k = rest.count; k <= UpdateListArgs::kMax; ++k) plan.first_block[k] = static_cast<uint32_t>(blocks);
    if (blocks > 0)
      gpu::launch(dependent_, after_item ? covering_update_kernel<true> : covering_update_kernel<false>,
                  static_cast<unsigned>(blocks), gpu::kThreads, 0, stream(), rest, plan);
    return;
  }
  // Steps beside other kernels: blocks that each fill a multiprocessor (as many threads as the kernel
  // allows, up to 1,024) on three quarters of them, the rest left free. With blocks of 256 threads the step
  // spread over every multiprocessor, and the next forward's hidden-layer GEMMs, beside the output matrix's
  // deferred step, waited for whole ones to drain: benchmark 0.6153 -> 0.6070 s an epoch on two thirds
  // (H100, one call; on 66 or 110 multiprocessors 0.6162, 0.6086, on all 132 0.6144). With the step's
  // lazily stepped rows and faster GEMMs since, 99 beat 88: 0.5545 - 0.5554 against 0.5559 - 0.5564 (110:
  // 0.5567 - 0.5574; one call). The same bits throughout.
  if (beside_threads_ == 0) {
    cudaFuncAttributes attributes{};
    DSSTNE_CUDA_CHECK(cudaFuncGetAttributes(&attributes, beside_update_kernel));
    beside_threads_ = std::max(32u, std::min(1024u, static_cast<unsigned>(attributes.maxThreadsPerBlock)) / 32 * 32);
  }
  // The grid shared by the items in proportion to their slots; the kernel loops over its share.
  uint64_t total_items = 0;
  for (unsigned k = 0; k < list.count; ++k) {
    DSSTNE_REQUIRE(!list.items[k].row_stamp, "update: a list beside other kernels reads every gradient row");
    total_items += item_count[k];
  }
  const auto beside_blocks = static_cast<uint64_t>(props_.multiProcessorCount - props_.multiProcessorCount / 4);
  for (unsigned k = 0; k < list.count; ++k) {
    plan.first_block[k] = static_cast<uint32_t>(blocks);
    if (item_count[k]) blocks += std::max<uint64_t>(1, beside_blocks * item_count[k] / total_items);
  }
  for (unsigned k = list.count; k <= UpdateListArgs::kMax; ++k) plan.first_block[k] = static_cast<uint32_t>(blocks);
  if (blocks == 0) return;
  gpu::launch(dependent_, beside_update_kernel, static_cast<unsigned>(blocks), beside_threads_, 0, stream(), list,
              plan);
}

void CudaBackend::regularization_sum(const RegularizationArgs& a) {
  if (a.n == 0) return;
  bind();
  // Few blocks looping, as the update's sum: one integer atomic per block.
  const uint64_t quads = aligned16(a.weights) ? a.n / 4 : 0;
  const unsigned blocks = std::min(gpu::grid_for((quads + kAtOnce - 1) / kAtOnce + a.n % 4),
                                   4u * props_.multiProcessorCount);
  gpu::launch(dependent_, regularization_kernel, blocks, gpu::kThreads, 0, stream(), a, quads);
}

}  // namespace dsstne
