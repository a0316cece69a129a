"""DSSTNE's enumerations, with the integer values the original writes into model files.

Values follow the original's engine headers (see the project's reference inventory, sections 1.6-1.10, 2.1);
they are shared with the C++ engine through ``include/dsstne/enums.h``, which must list the same numbers.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Activation(IntEnum):
    """Unit activation functions."""

    Sigmoid = 0
    Tanh = 1
    RectifiedLinear = 2
    Linear = 3
    ParametricRectifiedLinear = 4
    SoftPlus = 5
    SoftSign = 6
    SoftMax = 7
    RELUMax = 8
    LinearMax = 9
    ExponentialLinear = 10
    LeakyRectifiedLinear = 11
    ScaledExponentialLinear = 12


class ErrorFunction(IntEnum):
    """Loss functions of output layers."""

    L1 = 0
    L2 = 1
    CrossEntropy = 2
    ScaledMarginalCrossEntropy = 3
    DataScaledMarginalCrossEntropy = 4
    Hinge = 5
    L2Hinge = 6


class LayerKind(IntEnum):
    """Role of a layer in the network."""

    Input = 0
    Hidden = 1
    Output = 2
    Target = 3


class LayerType(IntEnum):
    """Connectivity of a layer."""

    FullyConnected = 0
    Convolutional = 1
    Pooling = 2


class LayerAttributes(IntFlag):
    """Bit flags stored per layer in model files."""

    NONE = 0
    Sparse = 1
    Denoising = 2
    BatchNormalization = 4


class PoolingFunction(IntEnum):
    """Pooling layer functions."""

    NONE = 0
    Max = 1
    Average = 2
    LRN = 3
    Maxout = 4
    DotProduct = 5
    Cosine = 6
    Stochastic = 7
    LCN = 8
    GlobalTemporal = 9


class WeightInit(IntEnum):
    """Weight initialisation schemes."""

    Xavier = 0
    CaffeXavier = 1
    Gaussian = 2
    Uniform = 3
    UnitBall = 4
    Constant = 5
    SELU = 6


class TrainingMode(IntEnum):
    """Optimisers."""

    SGD = 0
    Momentum = 1
    AdaGrad = 2
    Nesterov = 3
    RMSProp = 4
    AdaDelta = 5
    Adam = 6


class NetworkKind(IntEnum):
    """Network kind stored in model files (no behavioural difference)."""

    FeedForward = 0
    AutoEncoder = 1


class DataSetAttributes(IntFlag):
    """Bit flags of a dataset in NetCDF files."""

    NONE = 0
    Sparse = 1
    Boolean = 2
    Compressed = 4
    Recurrent = 8
    Mutable = 16
    SparseIgnoreZero = 32
    Indexed = 64
    Weighted = 128


class DataType(IntEnum):
    """Element types of dataset values in NetCDF files."""

    UInt = 0
    Int = 1
    LLInt = 2
    ULLInt = 3
    Float = 4
    Double = 5
    RGB8 = 6
    RGB16 = 7
    UChar = 8
    Char = 9
