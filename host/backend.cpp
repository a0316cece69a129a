// HostBackend memory: 64-byte aligned, zero-filled host allocations with accounting.
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "dsstne/errors.h"
#include "host_backend.h"

namespace dsstne {

std::string HostBackend::description() const {
  return "CPU, " + std::to_string(omp_get_max_threads()) + " threads";
}

void* HostBackend::allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) DSSTNE_RAISE(Error, "out of host memory allocating ", bytes, " bytes");
  std::memset(p, 0, rounded);
  const size_t now = current_ += bytes;
  size_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void HostBackend::release(void* p, size_t bytes) noexcept {
  std::free(p);
  current_ -= bytes;
}

void HostBackend::to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void HostBackend::to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void HostBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }
void HostBackend::zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }

}  // namespace dsstne
