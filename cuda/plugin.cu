// The plugin's C entry points, looked up by src/context.cpp with dlsym. Nothing throws across this
// boundary: failures come back as a status and a message.
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <memory>

#include "cuda_backend.cuh"

#define DSSTNE_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
void write_message(char* message, size_t length, const char* text) {
  if (message && length) std::snprintf(message, length, "%s", text);
}
}  // namespace

DSSTNE_CUDA_EXPORT int dsstne_cuda_create(int device, dsstne::Backend** out, char* message, size_t length) {
  if (!out) {
    write_message(message, length, "dsstne_cuda_create: null output pointer");
    return 2;
  }
  *out = nullptr;
  try {
    *out = std::make_unique<dsstne::CudaBackend>(device).release();  // ownership passes to the caller
    return 0;
  } catch (const std::exception& e) {
    write_message(message, length, e.what());
  } catch (...) {
    write_message(message, length, "unknown error starting the CUDA target");
  }
  return 1;
}

DSSTNE_CUDA_EXPORT void dsstne_cuda_destroy(dsstne::Backend* backend) {
  std::unique_ptr<dsstne::Backend> owner(backend);  // the virtual destructor releases stream and handle
}

DSSTNE_CUDA_EXPORT int dsstne_cuda_device_count(char* message, size_t length) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);  // fails cleanly without a driver or GPU
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    write_message(message, length, cudaGetErrorString(status));
    return 0;
  }
  if (count == 0) write_message(message, length, "no CUDA device found");
  return count;
}
