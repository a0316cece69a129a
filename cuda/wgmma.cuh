// The Hopper (sm_90a) wgmma instructions the tensor-core GEMM is built from, for the GEMM
// (tensor_gemm.cu) and the bench tool that times its inner step alone (bench/tensor_rate.cu). They exist in
// the sm_90a image only: callers guard their use with __CUDA_ARCH_FEAT_SM90_ALL.
#pragma once

#include <cstdint>

namespace dsstne::gpu {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// The matrix descriptor of a K-major [rows][32 floats] tile with the 128-byte swizzle: 8-row groups
// 1,024 bytes apart (the tile 1,024-byte aligned); an 8-deep slice starts 32 bytes further a slice.
__device__ __forceinline__ uint64_t swizzled_descriptor(unsigned address) {
  return uint64_t{(address & 0x3FFFFu) >> 4} | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Until at most kPending committed groups of products are still running.
template <int kPending = 0>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Shared-memory stores made visible to the asynchronous proxy the wgmma reads through.
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

#define DSSTNE_WGMMA_SUMS \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define DSSTNE_WGMMA_SUM_OPERANDS(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// d (+)= a b for the warpgroup's 64 x 128 tile, m64n128k8 TF32: a this warp's 16 x 8 fragment in
// registers (the GEMM's form), or a descriptor of A in shared memory; b a descriptor.
__device__ __forceinline__ void wgmma_tf32(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " DSSTNE_WGMMA_SUMS
               ", {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
               : DSSTNE_WGMMA_SUM_OPERANDS(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_tf32(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " DSSTNE_WGMMA_SUMS ", %64, %65, p, 1, 1;\n}\n"
               : DSSTNE_WGMMA_SUM_OPERANDS(d)
               : "l"(a), "l"(b), "r"(accumulate));
}

#undef DSSTNE_WGMMA_SUMS
#undef DSSTNE_WGMMA_SUM_OPERANDS

#endif
}  // namespace dsstne::gpu
