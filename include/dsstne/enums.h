// DSSTNE's enumerations with the original's integer values (mirrored by dsstne/enums.py).
#pragma once

#include <cstdint>

namespace dsstne {

enum class Activation : int32_t {
  Sigmoid = 0, Tanh = 1, RectifiedLinear = 2, Linear = 3, ParametricRectifiedLinear = 4, SoftPlus = 5,
  SoftSign = 6, SoftMax = 7, RELUMax = 8, LinearMax = 9, ExponentialLinear = 10, LeakyRectifiedLinear = 11,
  ScaledExponentialLinear = 12
};

enum class ErrorFunction : int32_t {
  L1 = 0, L2 = 1, CrossEntropy = 2, ScaledMarginalCrossEntropy = 3, DataScaledMarginalCrossEntropy = 4,
  Hinge = 5, L2Hinge = 6
};

enum class LayerKind : int32_t { Input = 0, Hidden = 1, Output = 2, Target = 3 };
enum class LayerType : int32_t { FullyConnected = 0, Convolutional = 1, Pooling = 2 };
enum class WeightInit : int32_t { Xavier = 0, CaffeXavier = 1, Gaussian = 2, Uniform = 3, UnitBall = 4, Constant = 5, SELU = 6 };
enum class TrainingMode : int32_t { SGD = 0, Momentum = 1, AdaGrad = 2, Nesterov = 3, RMSProp = 4, AdaDelta = 5, Adam = 6 };

// Dataset attribute bits, as in the NetCDF files.
namespace data_attr {
constexpr uint32_t Sparse = 1, Boolean = 2, SparseIgnoreZero = 32, Indexed = 64, Weighted = 128;
}

}  // namespace dsstne
