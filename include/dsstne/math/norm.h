// Max-norm and delta-norm scaling, one expression for both targets (inventory 1.13).
#pragma once

#include <cmath>

#include "dsstne/hd.h"

namespace dsstne::math {

// The factor that brings a vector of squared L2 norm `sumsq` down to `norm` (1 when it is within it).
// sqrtf then a division (not rsqrtf) so both targets round the same way.
DSSTNE_HD float norm_scale(float sumsq, float norm) { return sumsq > norm * norm ? norm / sqrtf(sumsq) : 1.0f; }

}  // namespace dsstne::math
