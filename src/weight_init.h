// Weight initialisation schemes of DSSTNE's WeightInit.
#pragma once

#include <cstdint>

#include "dsstne/network.h"

namespace dsstne {

void initialise_weight(Weight& weight, uint64_t seed);

}  // namespace dsstne
