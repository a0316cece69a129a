// Counter-based random numbers: a value is a pure function of (key, counter), so both targets draw the
// same numbers for the same unit in any order and no generator state lives on the device.
#pragma once

#include <cstdint>

#include "dsstne/hd.h"

namespace dsstne::rng {

// SplitMix64 finaliser: a bijective avalanche mix of 64 bits.
DSSTNE_HD uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Key for one purpose (dropout of layer 3, denoising in epoch 7, ...) derived from the seed.
DSSTNE_HD uint64_t key(uint64_t seed, uint64_t purpose, uint64_t a = 0, uint64_t b = 0) {
  return mix(mix(mix(seed ^ (purpose * 0xD1B54A32D192ED03ull)) ^ a) ^ (b * 0x8CB92BA72F3D8DD7ull));
}

DSSTNE_HD uint64_t bits(uint64_t k, uint64_t counter) { return mix(k ^ mix(counter)); }

// Uniform in (0, 1], 24 bits, as DSSTNE's cuRAND uniforms.
DSSTNE_HD float uniform(uint64_t k, uint64_t counter) {
  return static_cast<float>((bits(k, counter) >> 40) + 1) * (1.0f / 16777216.0f);
}

// Purposes: distinct streams so no two uses of one seed correlate.
enum Purpose : uint64_t { kWeights = 1, kShuffle = 2, kDenoise = 3, kDropout = 4 };

}  // namespace dsstne::rng
