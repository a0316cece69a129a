// Hopper's bulk tensor copies (the tensor memory accelerator, TMA) and the shared-memory barriers they
// complete on, for the wgmma GEMM (tensor_gemm.cu) and bench/step_beside_gemm.cu: one thread queues a whole
// tile's copy, which lands in shared memory without passing through the registers or L1, and every reader
// waits on the stage's barrier. Device code exists in the sm_90a image only (callers guard it with
// __CUDA_ARCH_FEAT_SM90_ALL), bar shared_address, which every image's shared-memory operands take.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace dsstne::gpu {

// A pointer into shared memory as the 32-bit address of PTX's shared-space operands.
template <class T>
__device__ __forceinline__ unsigned shared_address(const T* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// A barrier that completes a phase once its one arrival and the bytes it expects have come.
__device__ __forceinline__ void barrier_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(shared_address(bar)) : "memory");
}
// The initialised barriers made visible to the copy engine (the async proxy).
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The one arrival of this phase, expecting `bytes` from the copies queued on it.
__device__ __forceinline__ void barrier_expect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
}
// Until the phase of parity `parity` has completed; its copies' data are then visible to this thread.
__device__ __forceinline__ void barrier_wait(uint64_t* bar, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(shared_address(bar)), "r"(parity)
        : "memory");
  } while (!done);
}

// The box of `map` at (x, y) (x the contiguous dimension) into `dst`, completing on `bar`; outside the
// tensor, zeros.
__device__ __forceinline__ void tma_load_2d(float* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(shared_address(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(bar))
      : "memory");
}

#endif
}  // namespace dsstne::gpu
