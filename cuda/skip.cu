// Skip-connection twin on the GPU: element-wise accumulation of one buffer into another.
#include "check.cuh"
#include "cuda_backend.cuh"
#include "launch.cuh"

namespace dsstne {
namespace {

__global__ void add_kernel(AddArgs a) {
  for (uint64_t i = gpu::global_thread(); i < a.n; i += gpu::grid_threads()) a.dst[i] += a.src[i];
}

}  // namespace

void CudaBackend::add_units(const AddArgs& a) {
  if (a.n == 0) return;
  bind();
  add_kernel<<<gpu::grid_for(a.n), gpu::kThreads, 0, stream()>>>(a);
  DSSTNE_LAUNCH_CHECK();
}

}  // namespace dsstne
