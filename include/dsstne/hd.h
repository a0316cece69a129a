// DSSTNE_HD marks per-element formulas shared by the CPU and CUDA targets: one expression, two compilers.
#pragma once

#ifdef __CUDACC__
#define DSSTNE_HD __host__ __device__ __forceinline__
#else
#define DSSTNE_HD inline
#endif
