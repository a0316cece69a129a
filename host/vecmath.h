// Vectorisable float kernels for the CPU target's hot loops: exp, log and the fixed-point conversion.
//
// glibc's expf/logf/llrintf are calls the compiler cannot vectorise; on the output layer (rows x 27K
// units per minibatch) they cost more than the GEMMs. These replacements use only IEEE basic operations,
// integer bit manipulation and selects, so they vectorise, and each element's result depends on its value
// only: not on how rows are split between threads or where a vector loop's tail falls.
#pragma once

#include <cstdint>
#include <cstring>

#include "dsstne/fixed_point.h"
#include "dsstne/math/loss.h"

// Hot loops are compiled once per instruction set and picked at load time (glibc ifunc), so the portable
// wheel still uses AVX2+FMA / AVX-512 where the CPU has them. The FMA clones contract multiply-adds (as
// glibc's own expf/logf do on such CPUs), so results may differ in the last bit between a CPU with FMA
// and one without; on one machine they are the same for any thread count. Outlined OpenMP regions are not
// cloned: keep the OpenMP loop outside and call a DSSTNE_HOST_KERNEL per row or chunk.
// A build may define DSSTNE_HOST_KERNEL itself (empty: baseline code only, e.g. to test that path).
#if !defined(DSSTNE_HOST_KERNEL) && defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define DSSTNE_HOST_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DSSTNE_HOST_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef DSSTNE_HOST_KERNEL
#define DSSTNE_HOST_KERNEL
#endif

// Helpers called from kernels: always inlined, so that they are compiled for the caller's clone (an
// out-of-line copy would be baseline code, with other rounding than the clone's contracted FMAs).
#define DSSTNE_HOST_INLINE inline __attribute__((always_inline))

namespace dsstne::vec {

DSSTNE_HOST_INLINE float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
DSSTNE_HOST_INLINE uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Round to the nearest integer (ties to even) for |x| < 2^22: adding and removing 1.5 * 2^23.
DSSTNE_HOST_INLINE float round_small(float x) {
  constexpr float kShift = 12582912.0f;
  return (x + kShift) - kShift;
}

// exp(x), Cephes expf: range reduction by ln 2 in two parts, degree-6 polynomial; within 1 ulp of the
// correctly rounded result for normal results. Overflow gives inf, underflow 0, NaN propagates. The
// scale 2^n is applied as two factors so that denormal results and the inf threshold come out right.
DSSTNE_HOST_INLINE float exp(float x) {
  float c = x < 88.8f ? x : 88.8f;  // NaN -> 88.8 here, restored at the end
  c = c > -104.0f ? c : -104.0f;
  const float n = round_small(c * 1.44269504088896341f);
  const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * (r * r) + r) + 1.0f;
  const int32_t k = static_cast<int32_t>(n);  // [-150, 129]
  const int32_t k1 = k / 2, k2 = k - k1;      // each in [-75, 65]: normal scale factors
  const float s1 = from_bits(static_cast<uint32_t>(k1 + 127) << 23);
  const float s2 = from_bits(static_cast<uint32_t>(k2 + 127) << 23);
  const float y = (p * s1) * s2;
  return x == x ? y : x;
}

// log(x) for normal x > 0 (x >= 2^-126; +inf gives +inf), Cephes logf: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), degree-9 polynomial in m - 1; within 1 ulp of glibc's logf. Callers clamp the
// argument into this domain (math::safe_log's 1e-12 floor does), so no other special case is paid for.
DSSTNE_HOST_INLINE float log_normal(float x) {
  // m in [0.5, 1) from the mantissa bits; below sqrt(1/2) (float 0x3F3504F3) it is doubled, exactly, by
  // adding one to its exponent. Integer arithmetic rather than a select: GCC would evaluate the whole
  // polynomial once per arm of a select.
  const uint32_t bits = to_bits(x);
  const uint32_t m = (bits & 0x007FFFFFu) | 0x3F000000u;
  const uint32_t low = m < 0x3F3504F3u ? 1u : 0u;
  const int32_t e = static_cast<int32_t>(bits >> 23) - 126 - static_cast<int32_t>(low);
  const float f = from_bits(m + (low << 23)) - 1.0f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = (p * f) * z;
  y = y + fe * -2.12194440e-4f;
  y = y - 0.5f * z;
  const float r = (f + y) + fe * 0.693359375f;
  return x > 3.40282347e38f ? x : r;
}

// math::safe_log (logf of max(x, 1e-12); NaN -> the floor) with log_normal.
DSSTNE_HOST_INLINE float safe_log(float x) { return log_normal(x > math::kMinError ? x : math::kMinError); }

// fixed::from_float(x) as an integer computation: x * 2^30 is exact as a double, and adding 1.5 * 2^52
// rounds it to an integer (ties to even, as llrintf in the default rounding mode) in the low mantissa
// bits. Exact for |x| < 2^21; fixed_ok() tells whether x is in that range (false for inf and NaN too),
// so a caller can fall back to fixed::from_float for the rare row that is not.
DSSTNE_HOST_INLINE long long fixed(float x) {
  constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52
  const double d = static_cast<double>(x * static_cast<float>(fixed::kScale)) + kShift;
  int64_t i, s;
  std::memcpy(&i, &d, sizeof i);
  std::memcpy(&s, &kShift, sizeof s);
  return static_cast<long long>(i - s);
}
DSSTNE_HOST_INLINE bool fixed_ok(float x) { return (x < 2097152.0f) & (x > -2097152.0f); }

}  // namespace dsstne::vec
