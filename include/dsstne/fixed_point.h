// Order-independent sums: values are rounded to 64-bit fixed point (scale 2^30, as DSSTNE) and added as
// integers, so the total is the same bits whatever order threads add them in.
#pragma once

#include <cmath>
#include <cstdint>

#include "dsstne/hd.h"

namespace dsstne::fixed {

constexpr double kScale = 1073741824.0;  // 2^30

DSSTNE_HD long long from_float(float x) { return llrintf(x * static_cast<float>(kScale)); }
inline double to_double(long long v) { return static_cast<double>(v) / kScale; }

}  // namespace dsstne::fixed
