// What bench's CUDA tools share: a checked call and the median time of a launch.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

// A CUDA, cuBLAS or cuBLASLt call: a non-zero status ends the tool, naming the call and the status.
#define CHECK(call)                                                                                    \
  do {                                                                                                 \
    const int status_ = static_cast<int>(call);                                                        \
    if (status_ != 0) {                                                                                \
      std::fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #call, status_);            \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

// Median microseconds of `runs` timed calls of f (each between two events), after `warmup` untimed ones.
template <class F>
float median_us(F f, int warmup = 5, int runs = 50) {
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<float> us;
  for (int i = 0; i < runs; ++i) {
    CHECK(cudaEventRecord(start));
    f();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(1000.0f * ms);
  }
  CHECK(cudaGetLastError());
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}
