// Streaming (non-temporal) stores for large outputs that an op writes whole: the cache lines go to memory
// without first being read for ownership, which halves the traffic of a write-only pass over a buffer
// far larger than the caches (the output layer's rows x 27K units). Every thread that streamed calls
// fence() before the op's closing barrier, so that the stores are ordered before whatever runs next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace dsstne::stream {

// Buffers at least this large are streamed; smaller ones are likely read again while still cached.
constexpr size_t kMinBytes = size_t{8} << 20;

inline void copy(float* dst, const float* src, size_t n) {
#if defined(__SSE__)
  size_t j = 0;
  for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 15) != 0; ++j) dst[j] = src[j];
  for (; j + 4 <= n; j += 4) _mm_stream_ps(dst + j, _mm_loadu_ps(src + j));
  for (; j < n; ++j) dst[j] = src[j];
#else
  std::memcpy(dst, src, sizeof(float) * n);
#endif
}

inline void zero(float* dst, size_t n) {
#if defined(__SSE__)
  size_t j = 0;
  for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 15) != 0; ++j) dst[j] = 0.0f;
  for (; j + 4 <= n; j += 4) _mm_stream_ps(dst + j, _mm_setzero_ps());
  for (; j < n; ++j) dst[j] = 0.0f;
#else
  std::memset(dst, 0, sizeof(float) * n);
#endif
}

inline void fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

}  // namespace dsstne::stream
