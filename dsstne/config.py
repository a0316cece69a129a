"""Strict parser for DSSTNE's JSON network language (the original's ``LoadNeuralNetworkJSON``).

:func:`parse_network` reads a network definition (file path, JSON text or an already-loaded mapping) into
immutable descriptors; :func:`resolve_dimensions` fills ``N: "auto"`` layers from dataset shapes and computes
the derived sizes of hidden convolution and pooling layers.

Rules follow the original's code (see the project's reference inventory, sections 1.1 to 1.8):

* keys (also inside sub-objects) and string enum values are case-insensitive; aliases are accepted;
* unknown keys, and keys that are not valid for the layer's kind or type, are errors;
* a layer's kind defaults from its position (first Input, last Output, others Hidden), its name to
  ``<Kind><index>`` and its source to the previous layer;
* activation parameters a layer does not set are inherited from the network defaults;
* every Sparse Input layer is marked Denoising when the network's ``Denoising.p`` is positive.

Beyond the original, this parser also rejects what the original silently accepted or crashed on: values of
the wrong JSON type, out-of-range values (the ranges of the original's setters), dangling layer references,
cycles, duplicate keys and names, networks without an Input or an Output layer. Every problem raises
:class:`dsstne.errors.ConfigError` whose message names the file, the layer (name and index) and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from dsstne.enums import (
    Activation,
    ErrorFunction,
    LayerAttributes,
    LayerKind,
    LayerType,
    NetworkKind,
    PoolingFunction,
    WeightInit,
)
from dsstne.errors import ConfigError

__all__ = [
    "NN_VERSION",
    "DataShape",
    "LayerDescriptor",
    "NetworkDescriptor",
    "SharedWeightDescriptor",
    "WeightDescriptor",
    "WeightInitDescriptor",
    "parse_network",
    "resolve_dimensions",
]

#: Version the original engine writes into model files (``NN_VERSION``); the default of ``Version``.
NN_VERSION = 0.9
#: Smallest accepted ``Version`` (the original tests ``version < 0.6999``).
_MIN_VERSION = 0.6999
#: Largest accepted integer value (sizes, kernels, strides, LRN n, MaxOut k).
_MAX_INT = 2**31 - 1

# ----------------------------------------------------------------------------------------------------------
# Descriptors
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataShape:
    """Shape of a dataset as used to size ``N: "auto"`` layers.

    ``dimensions`` is the dataset's number of axes (the original counts the axes longer than 1, so a width-1
    dataset may report 0).
    """

    width: int
    height: int = 1
    length: int = 1
    dimensions: int = 1

    def __post_init__(self) -> None:
        """Validate that all sizes are integers in range."""
        for name in ("width", "height", "length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DataShape.{name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(self.dimensions, bool)
            or not isinstance(self.dimensions, int)
            or not 0 <= self.dimensions <= 4
        ):
            raise ConfigError(f"DataShape.dimensions must be an integer in [0, 4], got {self.dimensions!r}")


@dataclass(frozen=True)
class WeightInitDescriptor:
    """A layer's ``WeightInit`` object: scheme, scale and bias initial value."""

    scheme: WeightInit = WeightInit.Xavier
    scale: float = 1.0
    bias: float = 0.0


@dataclass(frozen=True)
class SharedWeightDescriptor:
    """One entry of a layer's ``SharedWeights``.

    The layer's incoming connection from ``input_layer`` reuses the weight matrix of the connection
    ``source_input_layer`` -> ``source_output_layer`` (transposed if ``transposed``); biases are never shared.
    """

    source_input_layer: str
    source_output_layer: str
    input_layer: str
    transposed: bool = False


@dataclass(frozen=True)
class LayerDescriptor:
    """One layer of a network definition, after parsing (defaults are the original's ``NNLayerDescriptor``).

    ``nx``..``nw`` are the unit counts per axis. For a Hidden Convolutional layer ``nx`` holds the JSON ``N``
    (the feature-map count) until :func:`resolve_dimensions` (or :func:`parse_network`, when every source
    size is known) derives them; ``derived`` tells when that happened. ``auto_size`` is True while an
    ``N: "auto"`` layer still waits for its dataset's shape.
    """

    name: str = ""
    kind: LayerKind = LayerKind.Hidden
    type: LayerType = LayerType.FullyConnected
    auto_size: bool = False
    nx: int = 1
    ny: int = 1
    nz: int = 1
    nw: int = 1
    dimensions: int = 1
    sparse: bool = False
    denoising: bool = False
    batch_normalization: bool = False
    p_dropout: float = 0.0
    sources: tuple[str, ...] = ()
    skips: tuple[str, ...] = ()
    kernel: tuple[int, int, int] = (1, 1, 1)
    kernel_dimensions: int = 1
    kernel_stride: tuple[int, int, int] = (1, 1, 1)
    kernel_padding: tuple[int, int, int] = (0, 0, 0)
    pooling_function: PoolingFunction = PoolingFunction.NONE
    activation: Activation = Activation.Sigmoid
    relu_slope: float = math.nan
    elu_alpha: float = math.nan
    selu_lambda: float = math.nan
    weight_norm: float = 0.0
    delta_norm: float = 0.0
    weight_init: WeightInitDescriptor = field(default_factory=WeightInitDescriptor)
    sparseness_penalty_p: float = 0.0
    sparseness_penalty_beta: float = 0.0
    shared_weights: tuple[SharedWeightDescriptor, ...] = ()
    dataset: str = ""
    derived: bool = False

    @property
    def stride(self) -> int:
        """Units per example: ``nx * ny * nz * nw``."""
        return self.nx * self.ny * self.nz * self.nw

    @property
    def attributes(self) -> LayerAttributes:
        """Attribute bit flags as stored in model files (Sparse, Denoising, BatchNormalization)."""
        flags = LayerAttributes.NONE
        if self.sparse:
            flags |= LayerAttributes.Sparse
        if self.denoising:
            flags |= LayerAttributes.Denoising
        if self.batch_normalization:
            flags |= LayerAttributes.BatchNormalization
        return flags

    @property
    def needs_derivation(self) -> bool:
        """Whether this layer's sizes are computed from its sources (Hidden Convolutional/Pooling layers)."""
        return self.kind == LayerKind.Hidden and self.type in (LayerType.Convolutional, LayerType.Pooling)

    @property
    def dimensions_known(self) -> bool:
        """Whether ``nx``..``nw`` and ``dimensions`` are final."""
        return not self.auto_size and (self.derived or not self.needs_derivation)


@dataclass(frozen=True)
class WeightDescriptor:
    """One connection ``input_layer`` -> ``output_layer`` carrying a weight matrix and a bias vector.

    Created for every non-Pooling layer, one per source, in layer order then source order (the order of
    weights in model files). ``norm`` is the output layer's ``WeightNorm``.
    """

    input_layer: str
    output_layer: str
    shared: bool = False
    transposed: bool = False
    source_input_layer: str = ""
    source_output_layer: str = ""
    norm: float = 0.0


@dataclass(frozen=True)
class NetworkDescriptor:
    """A whole network definition (defaults are the original's ``NNNetworkDescriptor``).

    ``path`` is the file the definition came from ("" for JSON text or a mapping), for error messages only.
    """

    version: float = NN_VERSION
    name: str = ""
    kind: NetworkKind = NetworkKind.FeedForward
    error_function: ErrorFunction = ErrorFunction.CrossEntropy
    layers: tuple[LayerDescriptor, ...] = ()
    weights: tuple[WeightDescriptor, ...] = ()
    lrn_k: float = 2.0
    lrn_n: int = 5
    lrn_alpha: float = 0.0001
    lrn_beta: float = 0.75
    maxout_k: int = 2
    sparseness_penalty_p: float = 0.0
    sparseness_penalty_beta: float = 0.0
    denoising_p: float = 0.0
    delta_boost_one: float = 1.0
    delta_boost_zero: float = 1.0
    smce_one_target: float = 0.9
    smce_zero_target: float = 0.1
    smce_one_scale: float = 1.0
    smce_zero_scale: float = 1.0
    shuffle_indices: bool = True
    relu_slope: float = 1.0
    elu_alpha: float = 1.0
    selu_lambda: float = 1.050701
    decay: float = 0.0
    weights_data: str = ""
    path: str = field(default="", compare=False)

    @property
    def sparseness_penalty(self) -> bool:
        """Whether the KL sparseness penalty is active (network ``SparsenessPenalty.beta > 0``)."""
        return self.sparseness_penalty_beta > 0.0

    @property
    def denoising(self) -> bool:
        """Whether denoising of sparse inputs is active (network ``Denoising.p > 0``)."""
        return self.denoising_p > 0.0

    @property
    def input_layers(self) -> tuple[LayerDescriptor, ...]:
        """The Input layers, in declaration order."""
        return tuple(layer for layer in self.layers if layer.kind == LayerKind.Input)

    @property
    def output_layers(self) -> tuple[LayerDescriptor, ...]:
        """The Output layers, in declaration order."""
        return tuple(layer for layer in self.layers if layer.kind == LayerKind.Output)

    @property
    def resolved(self) -> bool:
        """Whether every layer's dimensions are final (no pending ``auto`` size or derivation)."""
        return all(layer.dimensions_known for layer in self.layers)

    def layer(self, name: str) -> LayerDescriptor:
        """Return the layer called ``name`` (case-sensitive); raise :class:`KeyError` if there is none."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} in network {self.name!r}")

    def layer_index(self, name: str) -> int:
        """Return the position of the layer called ``name``; raise :class:`KeyError` if there is none."""
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"no layer named {name!r} in network {self.name!r}")


# ----------------------------------------------------------------------------------------------------------
# Name tables (lower-case JSON spelling -> value)
# ----------------------------------------------------------------------------------------------------------

_NETWORK_KINDS: dict[str, NetworkKind] = {
    "feedforward": NetworkKind.FeedForward,
    "autoencoder": NetworkKind.AutoEncoder,
}
_ERROR_FUNCTIONS: dict[str, ErrorFunction] = {
    "l1": ErrorFunction.L1,
    "l2": ErrorFunction.L2,
    "l2hinge": ErrorFunction.L2Hinge,
    "hinge": ErrorFunction.Hinge,
    "crossentropy": ErrorFunction.CrossEntropy,
    "cross entropy": ErrorFunction.CrossEntropy,
    "scaledmarginalcrossentropy": ErrorFunction.ScaledMarginalCrossEntropy,
    "datascaledmarginalcrossentropy": ErrorFunction.DataScaledMarginalCrossEntropy,
}
_LAYER_KINDS: dict[str, LayerKind] = {
    "input": LayerKind.Input,
    "hidden": LayerKind.Hidden,
    "output": LayerKind.Output,
    "target": LayerKind.Target,
}
_LAYER_TYPES: dict[str, LayerType] = {
    "fullyconnected": LayerType.FullyConnected,
    "convolutional": LayerType.Convolutional,
    "pooling": LayerType.Pooling,
}
_POOLING_FUNCTIONS: dict[str, PoolingFunction] = {
    "max": PoolingFunction.Max,
    "maxout": PoolingFunction.Maxout,
    "dotproduct": PoolingFunction.DotProduct,
    "cosine": PoolingFunction.Cosine,
    "average": PoolingFunction.Average,
    "lrn": PoolingFunction.LRN,
    "localresponsenormalization": PoolingFunction.LRN,
}
_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation.Sigmoid,
    "tanh": Activation.Tanh,
    "linear": Activation.Linear,
    "relu": Activation.RectifiedLinear,
    "rectifiedlinear": Activation.RectifiedLinear,
    "lrelu": Activation.LeakyRectifiedLinear,
    "leakyrectifiedlinear": Activation.LeakyRectifiedLinear,
    "elu": Activation.ExponentialLinear,
    "exponentiallinear": Activation.ExponentialLinear,
    "selu": Activation.ScaledExponentialLinear,
    "scaledexponentiallinear": Activation.ScaledExponentialLinear,
    "softplus": Activation.SoftPlus,
    "softsign": Activation.SoftSign,
    "softmax": Activation.SoftMax,
    "relumax": Activation.RELUMax,
    "linearmax": Activation.LinearMax,
}
_WEIGHT_INITS: dict[str, WeightInit] = {
    "xavier": WeightInit.Xavier,
    "caffexavier": WeightInit.CaffeXavier,
    "gaussian": WeightInit.Gaussian,
    "uniform": WeightInit.Uniform,
    "unitball": WeightInit.UnitBall,
    "constant": WeightInit.Constant,
    "selu": WeightInit.SELU,
}

# How enum spellings are shown in error messages (lower-case spelling -> documented spelling).
_DISPLAY_NAMES: dict[str, str] = {
    name.lower(): name
    for name in (
        "FeedForward AutoEncoder L1 L2 L2Hinge Hinge CrossEntropy ScaledMarginalCrossEntropy "
        "DataScaledMarginalCrossEntropy Input Hidden Output Target FullyConnected Convolutional Pooling Max "
        "Maxout DotProduct Cosine Average LRN LocalResponseNormalization Sigmoid Tanh Linear Relu "
        "RectifiedLinear LRelu LeakyRectifiedLinear Elu ExponentialLinear Selu ScaledExponentialLinear "
        "SoftPlus SoftSign SoftMax ReluMax LinearMax Xavier CaffeXavier Gaussian Uniform UnitBall Constant"
    ).split()
}
_DISPLAY_NAMES["cross entropy"] = "cross entropy"

# Network-level keys: lower-case spelling -> canonical name.
_NETWORK_KEYS: dict[str, str] = {
    "version": "Version",
    "name": "Name",
    "kind": "Kind",
    "weightsdata": "WeightsData",
    "lrn": "LRN",
    "localresponsenormalization": "LRN",
    "maxout": "MaxOut",
    "sparsenesspenalty": "SparsenessPenalty",
    "denoising": "Denoising",
    "deltaboost": "DeltaBoost",
    "scaledmarginalcrossentropy": "ScaledMarginalCrossEntropy",
    "datascaledmarginalcrossentropy": "ScaledMarginalCrossEntropy",
    "shuffleindices": "ShuffleIndices",
    "reluslope": "RELUSlope",
    "slope": "RELUSlope",
    "elualpha": "ELUAlpha",
    "selulambda": "SELULambda",
    "decay": "Decay",
    "errorfunction": "ErrorFunction",
    "layers": "Layers",
}

# Layer-level keys: lower-case spelling -> canonical name.
_LAYER_KEYS: dict[str, str] = {
    "kind": "Kind",
    "type": "Type",
    "name": "Name",
    "sparse": "Sparse",
    "n": "N",
    "pdropout": "pDropout",
    "source": "Source",
    "kernel": "Kernel",
    "kernelstride": "KernelStride",
    "batchnormalization": "BatchNormalization",
    "sparsenesspenalty": "SparsenessPenalty",
    "function": "Function",
    "skip": "Skip",
    "activation": "Activation",
    "reluslope": "RELUSlope",
    "slope": "RELUSlope",
    "elualpha": "ELUAlpha",
    "selulambda": "SELULambda",
    "weightnorm": "WeightNorm",
    "deltanorm": "DeltaNorm",
    "weightinit": "WeightInit",
    "sharedweights": "SharedWeights",
    "dataset": "DataSet",
}

_HIDDEN_OR_OUTPUT = frozenset({LayerKind.Hidden, LayerKind.Output})
_INPUT_OR_OUTPUT = frozenset({LayerKind.Input, LayerKind.Output})
_NON_INPUT = frozenset({LayerKind.Hidden, LayerKind.Output, LayerKind.Target})
_ALL_KINDS = frozenset(LayerKind)

# Canonical layer key -> kinds on which the original accepts it.
_LAYER_KEY_KINDS: dict[str, frozenset[LayerKind]] = {
    "Kind": _ALL_KINDS,
    "Type": _ALL_KINDS,
    "Name": _ALL_KINDS,
    "Sparse": _ALL_KINDS,
    "N": _ALL_KINDS,
    "pDropout": _ALL_KINDS,
    "Source": _NON_INPUT,
    "Kernel": _NON_INPUT,
    "KernelStride": _NON_INPUT,
    "BatchNormalization": frozenset({LayerKind.Hidden}),
    "SparsenessPenalty": frozenset({LayerKind.Hidden}),
    "Function": _HIDDEN_OR_OUTPUT,  # and Type Pooling
    "Skip": _HIDDEN_OR_OUTPUT,
    "Activation": _HIDDEN_OR_OUTPUT,
    "RELUSlope": _HIDDEN_OR_OUTPUT,
    "ELUAlpha": _HIDDEN_OR_OUTPUT,
    "SELULambda": _HIDDEN_OR_OUTPUT,
    "WeightNorm": _HIDDEN_OR_OUTPUT,
    "DeltaNorm": _HIDDEN_OR_OUTPUT,
    "WeightInit": _HIDDEN_OR_OUTPUT,
    "SharedWeights": _HIDDEN_OR_OUTPUT,
    "DataSet": _INPUT_OR_OUTPUT,
}

_LRN_KEYS = {"k": "k", "n": "n", "alpha": "alpha", "beta": "beta"}
_MAXOUT_KEYS = {"k": "k"}
_SPARSENESS_KEYS = {"p": "p", "beta": "beta"}
_DENOISING_KEYS = {"p": "p"}
_DELTA_BOOST_KEYS = {"one": "one", "zero": "zero"}
_SMCE_KEYS = {
    "onetarget": "oneTarget",
    "zerotarget": "zeroTarget",
    "onescale": "oneScale",
    "zeroscale": "zeroScale",
}
_WEIGHT_INIT_KEYS = {"scheme": "Scheme", "scale": "Scale", "bias": "Bias"}
_SHARED_WEIGHT_KEYS = {
    "sourceinputlayer": "SourceInputLayer",
    "sourceoutputlayer": "SourceOutputLayer",
    "inputlayer": "InputLayer",
    "transposed": "Transposed",
}

# ----------------------------------------------------------------------------------------------------------
# Error context and typed value readers
# ----------------------------------------------------------------------------------------------------------


class _JsonObject(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers every (key, value) pair, duplicates included."""

    pairs: list[tuple[str, Any]]


def _object_hook(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    obj.pairs = pairs
    return obj


@dataclass(frozen=True)
class _Where:
    """Where a value sits: the file and, inside a layer, the layer's label."""

    file: str = ""
    layer: str = ""

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        parts = [p for p in (self.file, self.layer) if p]
        if key:
            parts.append(f"key '{key}'")
        parts.append(message)
        raise ConfigError(": ".join(parts))

    def in_layer(self, name: str, index: int) -> _Where:
        return _Where(self.file, f"layer '{name}' (index {index})")


def _describe(value: Any) -> str:
    """Short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _suggest(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word.lower(), [c.lower() for c in candidates], n=1, cutoff=0.75)
    if not matches:
        return ""
    by_lower = {c.lower(): c for c in candidates}
    return f" (did you mean '{by_lower[matches[0]]}'?)"


def _items(obj: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    pairs = getattr(obj, "pairs", None)
    return list(pairs) if pairs is not None else list(obj.items())


def _canonical_items(
    obj: Mapping[Any, Any],
    table: Mapping[str, str],
    where: _Where,
    parent: str | None = None,
) -> dict[str, tuple[str, Any]]:
    """Map each key of ``obj`` to its canonical name; reject unknown, duplicate and doubly-aliased keys.

    Returns ``{canonical: (spelling, value)}`` in the object's order.
    """
    out: dict[str, tuple[str, Any]] = {}
    names = sorted(set(table.values()))
    for key, value in _items(obj):
        if not isinstance(key, str):
            where.fail(f"object keys must be strings, got {key!r}", parent)
        canon = table.get(key.lower())
        label = f"{parent}.{key}" if parent else key
        if canon is None:
            if parent:
                where.fail(f"unknown key '{key}' (valid keys: {', '.join(names)})", parent)
            where.fail(f"unknown key '{label}'{_suggest(key, table.values())}")
        if canon in out:
            first = out[canon][0]
            if first == key:
                where.fail("key given twice", label)
            where.fail(f"given twice (as '{first}' and '{key}', which mean the same)", label)
        out[canon] = (key, value)
    return out


def _as_object(value: Any, where: _Where, key: str, expected: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        where.fail(f"expected an object {expected}, got {_describe(value)}", key)
    return value


def _as_float(
    value: Any,
    where: _Where,
    key: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    max_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        where.fail(f"expected a number, got {_describe(value)}", key)
    result = float(value)
    if not math.isfinite(result):
        where.fail(f"expected a finite number, got {value!r}", key)
    if minimum is not None and result < minimum:
        where.fail(f"must be {_range_text(minimum, maximum, max_open)}, got {value!r}", key)
    if maximum is not None and (result >= maximum if max_open else result > maximum):
        where.fail(f"must be {_range_text(minimum, maximum, max_open)}, got {value!r}", key)
    return result


def _range_text(minimum: float | None, maximum: float | None, max_open: bool) -> str:
    if maximum is None:
        return f">= {minimum:g}"
    if minimum is None:
        return f"{'<' if max_open else '<='} {maximum:g}"
    return f"in [{minimum:g}, {maximum:g}{')' if max_open else ']'}"


def _as_int(value: Any, where: _Where, key: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        where.fail(f"expected an integer, got {_describe(value)}", key)
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            where.fail(f"expected an integer, got {value!r}", key)
        value = int(value)
    if value < minimum:
        where.fail(f"must be an integer >= {minimum}, got {value!r}", key)
    if value > _MAX_INT:
        where.fail(f"must be an integer <= {_MAX_INT} (the original stores 32-bit sizes), got {value!r}", key)
    return int(value)


def _as_bool(value: Any, where: _Where, key: str) -> bool:
    if not isinstance(value, bool):
        where.fail(f"expected true or false, got {_describe(value)}", key)
    return value


def _as_str(value: Any, where: _Where, key: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        where.fail(f"expected a string, got {_describe(value)}", key)
    if not allow_empty and not value:
        where.fail("must not be empty", key)
    return value


def _as_enum(value: Any, table: Mapping[str, Any], where: _Where, key: str, what: str) -> Any:
    if not isinstance(value, str):
        where.fail(f"expected a {what} name (string), got {_describe(value)}", key)
    result = table.get(value.lower())
    if result is None:
        names = ", ".join(_DISPLAY_NAMES.get(k, k) for k in table)
        hint = _suggest(value, [_DISPLAY_NAMES.get(k, k) for k in table])
        where.fail(f"invalid {what} '{value}' (expected one of: {names}){hint}", key)
    return result


def _as_name_list(value: Any, where: _Where, key: str) -> tuple[str, ...]:
    """Read a layer reference list: one string or a non-empty array of strings."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        if not value:
            where.fail("must name at least one layer (got an empty array)", key)
        items = list(value)
    else:
        where.fail(f"expected a layer name or an array of layer names, got {_describe(value)}", key)
    names = []
    for j, item in enumerate(items):
        label = f"{key}[{j}]" if not isinstance(value, str) else key
        names.append(_as_str(item, where, label, allow_empty=False))
    return tuple(names)


def _as_int_triple(value: Any, where: _Where, key: str) -> tuple[tuple[int, int, int], int]:
    """Read ``Kernel``/``KernelStride`` (an int or 1 to 3 ints); return (x, y, z) and the array length."""
    if isinstance(value, (list, tuple)):
        if not 1 <= len(value) <= 3:
            where.fail(f"array must have 1 to 3 elements [x, y, z], got {len(value)}", key)
        xyz = [_as_int(v, where, f"{key}[{j}]") for j, v in enumerate(value)]
        dims = len(xyz)
        xyz += [1] * (3 - dims)
        return (xyz[0], xyz[1], xyz[2]), dims
    return (_as_int(value, where, key), 1, 1), 1


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def _load(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, str]:
    """Return the decoded top-level value and the file name for messages ("" when not from a file)."""
    if isinstance(source, Mapping):
        return source, ""
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return _decode(source, ""), ""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConfigError(f"{path}: cannot read network definition: {detail}") from e
        return _decode(text, path), path
    raise ConfigError(
        f"network definition must be a file path, a JSON text or a mapping, got {type(source).__name__}"
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _decode(text: str, file: str) -> Any:
    prefix = f"{file}: " if file else ""
    try:
        return json.loads(text, object_pairs_hook=_object_hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{prefix}invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except ValueError as e:  # NaN / Infinity
        raise ConfigError(f"{prefix}invalid JSON: '{e}' is not a JSON number") from e
    except RecursionError as e:
        raise ConfigError(f"{prefix}invalid JSON: nested too deeply") from e


# ----------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------


def parse_network(source: str | os.PathLike[str] | Mapping[str, Any]) -> NetworkDescriptor:
    """Parse a DSSTNE JSON network definition.

    Args:
        source: a path to a JSON file, a JSON text (a string starting with ``{`` after whitespace), or an
            already-decoded mapping.

    Returns:
        The network descriptor. Layers with ``N: "auto"`` keep ``auto_size=True`` and Hidden
        Convolutional/Pooling layers fed (directly or not) by them stay underived until
        :func:`resolve_dimensions` is given the dataset shapes; all other sizes are final.

    Raises:
        ConfigError: for any malformed or invalid definition; the message names the file, layer and key.

    """
    data, file = _load(source)
    where = _Where(file)
    if not isinstance(data, Mapping):
        where.fail(f"the network definition must be a JSON object, got {_describe(data)}")
    keys = _canonical_items(data, _NETWORK_KEYS, where)
    values: dict[str, Any] = {}

    for canon, (spelling, value) in keys.items():
        if canon == "Version":
            version = _as_float(value, where, spelling)
            if version < _MIN_VERSION:
                where.fail(f"version {version:g} is not supported (must be at least 0.7)", spelling)
            values["version"] = version
        elif canon == "Name":
            values["name"] = _as_str(value, where, spelling)
        elif canon == "Kind":
            values["kind"] = _as_enum(value, _NETWORK_KINDS, where, spelling, "network kind")
        elif canon == "WeightsData":
            values["weights_data"] = _as_str(value, where, spelling)
        elif canon == "LRN":
            sub = _canonical_items(
                _as_object(value, where, spelling, "{k, n, alpha, beta}"), _LRN_KEYS, where, spelling
            )
            for name, (s, v) in sub.items():
                label = f"{spelling}.{s}"
                if name == "n":
                    values["lrn_n"] = _as_int(v, where, label, minimum=1)
                elif name == "k":
                    values["lrn_k"] = _as_float(v, where, label)
                elif name == "alpha":
                    values["lrn_alpha"] = _as_float(v, where, label)
                else:
                    values["lrn_beta"] = _as_float(v, where, label)
        elif canon == "MaxOut":
            sub = _canonical_items(_as_object(value, where, spelling, "{k}"), _MAXOUT_KEYS, where, spelling)
            for _name, (s, v) in sub.items():
                values["maxout_k"] = _as_int(v, where, f"{spelling}.{s}", minimum=1)
        elif canon == "SparsenessPenalty":
            p, beta = _parse_sparseness(value, where, spelling)
            if p is not None:
                values["sparseness_penalty_p"] = p
            if beta is not None:
                values["sparseness_penalty_beta"] = beta
        elif canon == "Denoising":
            sub = _canonical_items(
                _as_object(value, where, spelling, "{p}"), _DENOISING_KEYS, where, spelling
            )
            for _name, (s, v) in sub.items():
                values["denoising_p"] = _as_float(
                    v, where, f"{spelling}.{s}", minimum=0.0, maximum=1.0, max_open=True
                )
        elif canon == "DeltaBoost":
            sub = _canonical_items(
                _as_object(value, where, spelling, "{one, zero}"), _DELTA_BOOST_KEYS, where, spelling
            )
            for name, (s, v) in sub.items():
                values[f"delta_boost_{name}"] = _as_float(v, where, f"{spelling}.{s}", minimum=0.0)
        elif canon == "ScaledMarginalCrossEntropy":
            obj = _as_object(value, where, spelling, "{oneTarget, zeroTarget, oneScale, zeroScale}")
            sub = _canonical_items(obj, _SMCE_KEYS, where, spelling)
            for name, (s, v) in sub.items():
                label = f"{spelling}.{s}"
                if name.endswith("Target"):
                    values[f"smce_{name[:-6].lower()}_target"] = _as_float(
                        v, where, label, minimum=0.0, maximum=1.0
                    )
                else:
                    values[f"smce_{name[:-5].lower()}_scale"] = _as_float(v, where, label, minimum=0.0)
        elif canon == "ShuffleIndices":
            values["shuffle_indices"] = _as_bool(value, where, spelling)
        elif canon == "RELUSlope":
            values["relu_slope"] = _as_float(value, where, spelling)
        elif canon == "ELUAlpha":
            values["elu_alpha"] = _as_float(value, where, spelling)
        elif canon == "SELULambda":
            values["selu_lambda"] = _as_float(value, where, spelling)
        elif canon == "Decay":
            values["decay"] = _as_float(value, where, spelling, minimum=0.0)
        elif canon == "ErrorFunction":
            values["error_function"] = _as_enum(value, _ERROR_FUNCTIONS, where, spelling, "error function")

    if "Layers" not in keys:
        where.fail("missing key 'Layers' (the network has no layers)")
    spelling, raw_layers = keys["Layers"]
    if isinstance(raw_layers, Mapping):
        raw_list: list[Any] = [raw_layers]
    elif isinstance(raw_layers, (list, tuple)):
        raw_list = list(raw_layers)
    else:
        where.fail(f"expected an array of layer objects, got {_describe(raw_layers)}", spelling)
    if not raw_list:
        where.fail("the network has no layers (empty array)", spelling)

    defaults = NetworkDescriptor()
    relu_slope = values.get("relu_slope", defaults.relu_slope)
    elu_alpha = values.get("elu_alpha", defaults.elu_alpha)
    selu_lambda = values.get("selu_lambda", defaults.selu_lambda)
    denoising = values.get("denoising_p", 0.0) > 0.0

    layers: list[LayerDescriptor] = []
    for index, raw in enumerate(raw_list):
        layer = _parse_layer(raw, index, len(raw_list), layers, where)
        layer = dataclasses.replace(
            layer,
            relu_slope=relu_slope if math.isnan(layer.relu_slope) else layer.relu_slope,
            elu_alpha=elu_alpha if math.isnan(layer.elu_alpha) else layer.elu_alpha,
            selu_lambda=selu_lambda if math.isnan(layer.selu_lambda) else layer.selu_lambda,
            denoising=denoising and layer.kind == LayerKind.Input and layer.sparse,
        )
        layers.append(layer)

    _check_graph(layers, where)
    weights = _make_weights(layers, where)
    layers = _derive_dimensions(layers, where)
    _check_sizes(layers, weights, where)
    return NetworkDescriptor(layers=tuple(layers), weights=tuple(weights), path=file, **values)


def _parse_sparseness(value: Any, where: _Where, key: str) -> tuple[float | None, float | None]:
    sub = _canonical_items(_as_object(value, where, key, "{p, beta}"), _SPARSENESS_KEYS, where, key)
    p = beta = None
    for name, (s, v) in sub.items():
        if name == "p":
            p = _as_float(v, where, f"{key}.{s}", minimum=0.0, maximum=1.0)
        else:
            beta = _as_float(v, where, f"{key}.{s}", minimum=0.0)
    return p, beta


def _parse_layer(
    raw: Any, index: int, count: int, previous: list[LayerDescriptor], net_where: _Where
) -> LayerDescriptor:
    if index == 0:
        kind = LayerKind.Input
    elif index == count - 1:
        kind = LayerKind.Output
    else:
        kind = LayerKind.Hidden
    if not isinstance(raw, Mapping):
        net_where.in_layer(f"{kind.name}{index}", index).fail(
            f"a layer must be a JSON object, got {_describe(raw)}"
        )

    # First pass: Kind, Type and Name (needed to validate and to label every other key). A well-formed Name
    # or Kind labels even the errors found while the keys themselves are checked.
    label_kind, label_name = kind, ""
    for key, value in _items(raw):
        lowered = key.lower() if isinstance(key, str) else ""
        if lowered == "kind" and isinstance(value, str) and value.lower() in _LAYER_KINDS:
            label_kind = _LAYER_KINDS[value.lower()]
        elif lowered == "name" and isinstance(value, str) and value:
            label_name = value
    where = net_where.in_layer(label_name or f"{label_kind.name}{index}", index)
    keys = _canonical_items(raw, _LAYER_KEYS, where)
    if "Kind" in keys:
        s, v = keys["Kind"]
        kind = _as_enum(v, _LAYER_KINDS, where, s, "layer kind")
    name = f"{kind.name}{index}"
    where = net_where.in_layer(label_name or name, index)
    layer_type = LayerType.FullyConnected
    if "Type" in keys:
        s, v = keys["Type"]
        layer_type = _as_enum(v, _LAYER_TYPES, where, s, "layer type")
    if "Name" in keys:
        s, v = keys["Name"]
        name = _as_str(v, where, s, allow_empty=False)
        where = net_where.in_layer(name, index)

    fields: dict[str, Any] = {"name": name, "kind": kind, "type": layer_type}
    n_value: tuple[str, Any] | None = None
    shared: list[SharedWeightDescriptor] = []
    for canon, (s, v) in keys.items():
        if canon in ("Kind", "Type", "Name"):
            continue
        if kind not in _LAYER_KEY_KINDS[canon]:
            where.fail(f"unknown key '{s}' (not valid on {_article(kind.name)} {kind.name} layer)")
        if canon == "Function" and layer_type != LayerType.Pooling:
            where.fail(
                f"unknown key '{s}' (only valid on Pooling layers; this layer's Type is {layer_type.name})"
            )

        if canon == "Sparse":
            fields["sparse"] = _as_bool(v, where, s)
        elif canon == "N":
            n_value = (s, v)
        elif canon == "pDropout":
            fields["p_dropout"] = _as_float(v, where, s, minimum=0.0, maximum=1.0, max_open=True)
        elif canon == "Source":
            fields["sources"] = _as_name_list(v, where, s)
        elif canon == "Kernel":
            fields["kernel"], fields["kernel_dimensions"] = _as_int_triple(v, where, s)
        elif canon == "KernelStride":
            fields["kernel_stride"], _ = _as_int_triple(v, where, s)
        elif canon == "BatchNormalization":
            fields["batch_normalization"] = _as_bool(v, where, s)
        elif canon == "SparsenessPenalty":
            p, beta = _parse_sparseness(v, where, s)
            if p is not None:
                fields["sparseness_penalty_p"] = p
            if beta is not None:
                fields["sparseness_penalty_beta"] = beta
        elif canon == "Function":
            fields["pooling_function"] = _as_enum(v, _POOLING_FUNCTIONS, where, s, "pooling function")
        elif canon == "Skip":
            fields["skips"] = _as_name_list(v, where, s)
        elif canon == "Activation":
            fields["activation"] = _as_enum(v, _ACTIVATIONS, where, s, "activation")
        elif canon == "RELUSlope":
            fields["relu_slope"] = _as_float(v, where, s)
        elif canon == "ELUAlpha":
            fields["elu_alpha"] = _as_float(v, where, s)
        elif canon == "SELULambda":
            fields["selu_lambda"] = _as_float(v, where, s)
        elif canon == "WeightNorm":
            fields["weight_norm"] = _as_float(v, where, s, minimum=0.0)
        elif canon == "DeltaNorm":
            fields["delta_norm"] = _as_float(v, where, s, minimum=0.0)
        elif canon == "WeightInit":
            fields["weight_init"] = _parse_weight_init(v, where, s)
        elif canon == "SharedWeights":
            shared = _parse_shared_weights(v, where, s)
        elif canon == "DataSet":
            fields["dataset"] = _as_str(v, where, s, allow_empty=False)

    if n_value is not None:
        fields.update(_parse_n(n_value[0], n_value[1], kind, where))
        if fields.get("auto_size") and not fields.get("dataset"):
            where.fail("N is 'auto' but the layer has no DataSet to take its size from", n_value[0])

    if kind != LayerKind.Input and "sources" not in fields:
        if not previous:
            where.fail(
                f"{_article(kind.name)} {kind.name} layer needs a Source, and there is no previous layer"
            )
        fields["sources"] = (previous[-1].name,)
    sources: tuple[str, ...] = fields.get("sources", ())

    if layer_type == LayerType.Pooling:
        if kind not in _HIDDEN_OR_OUTPUT:
            where.fail(f"a Pooling layer must be a Hidden or Output layer, not {kind.name}", keys["Type"][0])
        function = fields.get("pooling_function", PoolingFunction.NONE)
        if function == PoolingFunction.NONE:
            where.fail("a Pooling layer needs a 'Function' (Max, Average, LRN, Maxout, DotProduct or Cosine)")
        if shared:
            where.fail("Pooling layers have no weights to share", keys["SharedWeights"][0])
        if function in (PoolingFunction.DotProduct, PoolingFunction.Cosine):
            if len(sources) < 2:
                where.fail(
                    f"a {function.name} pooling layer must have 2 or more sources, got {len(sources)}",
                    keys["Source"][0] if "Source" in keys else "Source",
                )
            fields.update(nx=len(sources) - 1, ny=1, nz=1, dimensions=1)
    elif len(set(sources)) != len(sources):
        dup = next(s for s in sources if sources.count(s) > 1)
        where.fail(f"source '{dup}' is listed twice", keys["Source"][0])

    if shared:
        for sw in shared:
            if sw.input_layer not in sources:
                where.fail(
                    f"Unable to locate all shared weights: InputLayer '{sw.input_layer}' is not a Source "
                    f"of this layer (sources: {', '.join(sources)})",
                    keys["SharedWeights"][0],
                )
        inputs = [sw.input_layer for sw in shared]
        for sw in shared:
            if inputs.count(sw.input_layer) > 1:
                where.fail(
                    f"Unable to locate all shared weights: InputLayer '{sw.input_layer}' is listed twice",
                    keys["SharedWeights"][0],
                )
        fields["shared_weights"] = tuple(shared)
    return LayerDescriptor(**fields)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _parse_n(key: str, value: Any, kind: LayerKind, where: _Where) -> dict[str, Any]:
    if isinstance(value, str):
        if value.lower() != "auto":
            where.fail(
                f'expected a positive integer, an array of 1 to 4 integers or "auto", got {_describe(value)}',
                key,
            )
        if kind == LayerKind.Hidden:
            where.fail(
                '"auto" is not allowed on a Hidden layer (only Input/Output layers take a DataSet\'s size)',
                key,
            )
        return {"auto_size": True}
    if isinstance(value, (list, tuple)):
        if not 1 <= len(value) <= 4:
            where.fail(f"array must have 1 to 4 elements [Nx, Ny, Nz, Nw], got {len(value)}", key)
        sizes = [_as_int(v, where, f"{key}[{j}]") for j, v in enumerate(value)]
        dims = len(sizes)
        sizes += [1] * (4 - dims)
        return {"nx": sizes[0], "ny": sizes[1], "nz": sizes[2], "nw": sizes[3], "dimensions": dims}
    return {"nx": _as_int(value, where, key), "dimensions": 1}


def _parse_weight_init(value: Any, where: _Where, key: str) -> WeightInitDescriptor:
    sub = _canonical_items(
        _as_object(value, where, key, "{Scheme, Scale, Bias}"), _WEIGHT_INIT_KEYS, where, key
    )
    result: dict[str, Any] = {}
    for name, (s, v) in sub.items():
        label = f"{key}.{s}"
        if name == "Scheme":
            result["scheme"] = _as_enum(v, _WEIGHT_INITS, where, label, "weight initialization scheme")
        elif name == "Scale":
            result["scale"] = _as_float(v, where, label)
        else:
            result["bias"] = _as_float(v, where, label)
    return WeightInitDescriptor(**result)


def _parse_shared_weights(value: Any, where: _Where, key: str) -> list[SharedWeightDescriptor]:
    expected = "{SourceInputLayer, SourceOutputLayer, InputLayer, Transposed}"
    if isinstance(value, (list, tuple)):
        if not value:
            where.fail("expected at least one shared weight entry (got an empty array)", key)
        entries = [(f"{key}[{j}]", v) for j, v in enumerate(value)]
    else:
        entries = [(key, value)]
    result = []
    for label, entry in entries:
        sub = _canonical_items(_as_object(entry, where, label, expected), _SHARED_WEIGHT_KEYS, where, label)
        values: dict[str, Any] = {}
        for name, (s, v) in sub.items():
            if name == "Transposed":
                values[name] = _as_bool(v, where, f"{label}.{s}")
            else:
                values[name] = _as_str(v, where, f"{label}.{s}", allow_empty=False)
        for required in ("SourceInputLayer", "SourceOutputLayer", "InputLayer"):
            if required not in values:
                where.fail(f"missing key '{required}'", label)
        result.append(
            SharedWeightDescriptor(
                source_input_layer=values["SourceInputLayer"],
                source_output_layer=values["SourceOutputLayer"],
                input_layer=values["InputLayer"],
                transposed=values.get("Transposed", False),
            )
        )
    return result


# ----------------------------------------------------------------------------------------------------------
# Whole-network checks, weights and derived dimensions
# ----------------------------------------------------------------------------------------------------------


def _label(layers: list[LayerDescriptor], index: int, where: _Where) -> _Where:
    return where.in_layer(layers[index].name, index)


def _check_graph(layers: list[LayerDescriptor], where: _Where) -> None:
    index: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.name in index:
            _label(layers, i, where).fail(
                f"duplicate layer name '{layer.name}' (also used by the layer at index {index[layer.name]})",
                "Name",
            )
        index[layer.name] = i

    for i, layer in enumerate(layers):
        lw = _label(layers, i, where)
        for key, names in (("Source", layer.sources), ("Skip", layer.skips)):
            for ref in names:
                if ref == layer.name:
                    lw.fail(f"a layer cannot use itself ('{ref}') as a {key.lower()}", key)
                if ref not in index:
                    lw.fail(f"no layer named '{ref}'{_suggest(ref, index)}", key)

    if not any(layer.kind == LayerKind.Input for layer in layers):
        where.fail("the network has no Input layer")
    if not any(layer.kind == LayerKind.Output for layer in layers):
        where.fail("the network has no Output layer")

    # Cycles over source and skip edges (depth-first search, iterative).
    state = [0] * len(layers)  # 0 = new, 1 = on the stack, 2 = done
    for start in range(len(layers)):
        if state[start]:
            continue
        stack: list[tuple[int, Iterable[str]]] = [(start, iter(layers[start].sources + layers[start].skips))]
        path = [start]
        state[start] = 1
        while stack:
            node, refs = stack[-1]
            nxt = next(iter(refs), None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            j = index[nxt]
            if state[j] == 1:
                cycle = [layers[k].name for k in path[path.index(j) :]] + [layers[j].name]
                _label(layers, node, where).fail(f"layers form a cycle: {' <- '.join(cycle)}")
            if state[j] == 0:
                state[j] = 1
                path.append(j)
                stack.append((j, iter(layers[j].sources + layers[j].skips)))


def _make_weights(layers: list[LayerDescriptor], where: _Where) -> list[WeightDescriptor]:
    weights: list[WeightDescriptor] = []
    for layer in layers:
        if layer.type == LayerType.Pooling:
            continue
        by_input = {sw.input_layer: sw for sw in layer.shared_weights}
        for src in layer.sources:
            sw = by_input.get(src)
            if sw is None:
                weights.append(WeightDescriptor(src, layer.name, norm=layer.weight_norm))
            else:
                weights.append(
                    WeightDescriptor(
                        src,
                        layer.name,
                        shared=True,
                        transposed=sw.transposed,
                        source_input_layer=sw.source_input_layer,
                        source_output_layer=sw.source_output_layer,
                        norm=layer.weight_norm,
                    )
                )

    unshared = {(w.input_layer, w.output_layer) for w in weights if not w.shared}
    names = {layer.name: i for i, layer in enumerate(layers)}
    for w in weights:
        if w.shared and (w.source_input_layer, w.source_output_layer) not in unshared:
            i = names[w.output_layer]
            _label(layers, i, where).fail(
                f"Unable to locate shared weights: there is no unshared connection "
                f"'{w.source_input_layer}' -> '{w.source_output_layer}' to share with "
                f"'{w.input_layer}' -> '{w.output_layer}'",
                "SharedWeights",
            )
        if w.shared and w.transposed:
            i = names[w.output_layer]
            for layer_name in (w.output_layer, w.source_output_layer):
                if layers[names[layer_name]].type == LayerType.Convolutional:
                    _label(layers, i, where).fail(
                        "Transposed shared weights need 2-D (fully-connected) weight matrices, but "
                        f"'{layer_name}' is Convolutional",
                        "SharedWeights",
                    )
    return weights


def _conv_size(width: int, kernel: int, stride: int) -> int:
    if width <= kernel:
        return 1
    if stride == 1:
        return width
    return (width - kernel) // stride + 1


def _padding(size: int, kernel: int, stride: int, current: int) -> int:
    if size < kernel:
        return (kernel - size + 1) // 2
    if stride == 1:
        return kernel // 2
    return current


def _derive_dimensions(layers: list[LayerDescriptor], where: _Where) -> list[LayerDescriptor]:
    """Compute sizes of Hidden Convolutional/Pooling layers whose sources' sizes are all known."""
    layers = list(layers)
    index = {layer.name: i for i, layer in enumerate(layers)}
    progress = True
    while progress:
        progress = False
        for i, layer in enumerate(layers):
            if layer.dimensions_known or layer.auto_size:
                continue
            srcs = [layers[index[s]] for s in layer.sources]
            if not all(s.dimensions_known for s in srcs):
                continue
            layers[i] = _derive_one(layer, srcs, _label(layers, i, where))
            progress = True
    return layers


def _derive_one(layer: LayerDescriptor, srcs: list[LayerDescriptor], where: _Where) -> LayerDescriptor:
    pooling = layer.type == LayerType.Pooling
    function = layer.pooling_function
    if pooling and function in (PoolingFunction.DotProduct, PoolingFunction.Cosine):
        first = srcs[0]
        for s in srcs[1:]:
            if (s.nx, s.ny, s.nz) != (first.nx, first.ny, first.nz):
                where.fail(
                    f"Inconsistent incoming data size for {function.name} layer: source '{s.name}' is "
                    f"{_dims_text(s)} but source '{first.name}' is {_dims_text(first)}"
                )
        return dataclasses.replace(layer, nx=len(srcs) - 1, ny=1, nz=1, nw=1, dimensions=1, derived=True)

    n = layer.nx
    kx, ky, kz = layer.kernel
    sx, sy, sz = layer.kernel_stride
    px, py, pz = layer.kernel_padding
    dims = layer.dimensions
    result: tuple[int, int, int, int] | None = None
    first_src: LayerDescriptor | None = None
    for s in srcs:
        if pooling and function == PoolingFunction.LRN:
            size = (s.nx, s.ny, s.nz, s.nw)
            dims = s.dimensions
        else:
            size = (_conv_size(s.nx, kx, sx), _conv_size(s.ny, ky, sy), _conv_size(s.nz, kz, sz), s.nw)
            if pooling:
                dims = s.dimensions
        if layer.kernel_dimensions >= 3:
            pz = _padding(s.nz, kz, sz, pz)
        if layer.kernel_dimensions >= 2:
            py = _padding(s.ny, ky, sy, py)
        px = _padding(s.nx, kx, sx, px)
        if result is not None and first_src is not None and size[:3] != result[:3]:
            where.fail(
                f"Inconsistent incoming data size: source '{s.name}' gives {size[0]}x{size[1]}x{size[2]} "
                f"but source '{first_src.name}' gives {result[0]}x{result[1]}x{result[2]}"
            )
        if result is None:
            result, first_src = size, s
    assert result is not None
    nx, ny, nz, nw = result
    if not pooling:
        if layer.kernel_dimensions == 1:
            ny, dims = n, 2
        elif layer.kernel_dimensions == 2:
            nz, dims = n, 3
        else:
            nw, dims = n, 4
    return dataclasses.replace(
        layer, nx=nx, ny=ny, nz=nz, nw=nw, dimensions=dims, kernel_padding=(px, py, pz), derived=True
    )


def _dims_text(layer: LayerDescriptor) -> str:
    return f"{layer.nx}x{layer.ny}x{layer.nz}"


def _check_sizes(layers: list[LayerDescriptor], weights: list[WeightDescriptor], where: _Where) -> None:
    """Run the checks that need sizes; each is skipped while a size it needs is still unknown."""
    index = {layer.name: i for i, layer in enumerate(layers)}
    for i, layer in enumerate(layers):
        lw = _label(layers, i, where)
        for skip in layer.skips:
            s = layers[index[skip]]
            if layer.dimensions_known and s.dimensions_known and s.stride != layer.stride:
                lw.fail(
                    f"Layer dimensions do not match for skip connection: '{skip}' has {s.stride} units, "
                    f"'{layer.name}' has {layer.stride}",
                    "Skip",
                )
        if layer.type == LayerType.Pooling and layer.pooling_function in (
            PoolingFunction.DotProduct,
            PoolingFunction.Cosine,
            PoolingFunction.Maxout,
        ):
            srcs = [layers[index[s]] for s in layer.sources]
            if not all(s.dimensions_known for s in srcs):
                continue
            first = srcs[0]
            for s in srcs[1:]:
                if s.stride != first.stride:
                    function = layer.pooling_function.name
                    lw.fail(
                        f"All source layer dimensions must match for {function} layer: '{s.name}' has "
                        f"{s.stride} units, '{first.name}' has {first.stride}",
                        "Source",
                    )

    for w in weights:
        if not w.shared:
            continue
        inp, out = layers[index[w.input_layer]], layers[index[w.output_layer]]
        sinp, sout = layers[index[w.source_input_layer]], layers[index[w.source_output_layer]]
        if LayerType.Convolutional in (out.type, sout.type):
            if out.type != sout.type:
                _label(layers, index[out.name], where).fail(
                    f"shared weights '{sinp.name}' -> '{sout.name}' and '{inp.name}' -> '{out.name}' "
                    "mix a convolution and a fully-connected weight",
                    "SharedWeights",
                )
            continue
        if not all(x.dimensions_known for x in (inp, out, sinp, sout)):
            continue
        want = (sout.stride, sinp.stride) if w.transposed else (sinp.stride, sout.stride)
        if (inp.stride, out.stride) != want:
            what = "Transposed dimensions" if w.transposed else "Dimensions"
            _label(layers, index[out.name], where).fail(
                f"{what} for shared weights do not match: '{inp.name}' -> '{out.name}' is "
                f"{inp.stride}x{out.stride} but '{sinp.name}' -> '{sout.name}' is "
                f"{sinp.stride}x{sout.stride}",
                "SharedWeights",
            )


# ----------------------------------------------------------------------------------------------------------
# Dimension resolution
# ----------------------------------------------------------------------------------------------------------


def resolve_dimensions(desc: NetworkDescriptor, datasets: Mapping[str, DataShape]) -> NetworkDescriptor:
    """Fill ``N: "auto"`` layers from dataset shapes and derive Hidden Convolutional/Pooling layer sizes.

    Args:
        desc: a descriptor from :func:`parse_network` (it is not modified).
        datasets: dataset name -> shape; any object with integer ``width``, ``height``, ``length`` and
            ``dimensions`` attributes is accepted. Only the datasets named by ``auto`` layers are looked up.

    Returns:
        A new descriptor in which every layer's dimensions are final (``desc.resolved`` is True).

    Raises:
        ConfigError: an ``auto`` layer's dataset is missing or malformed, or sizes turn out inconsistent
            (skip connections, multi-source pooling, shared weights, convolution sources).

    """
    where = _Where(desc.path)
    layers = list(desc.layers)
    for i, layer in enumerate(layers):
        if not layer.auto_size:
            continue
        lw = _label(layers, i, where)
        shape = datasets.get(layer.dataset) if isinstance(datasets, Mapping) else None
        if shape is None:
            known = (
                ", ".join(f"'{k}'" for k in datasets)
                if isinstance(datasets, Mapping) and datasets
                else "none"
            )
            lw.fail(
                f"Unable to find data set '{layer.dataset}' to determine the dimensions of N \"auto\" "
                f"(datasets given: {known})",
                "N",
            )
        sizes = []
        for attr in ("width", "height", "length", "dimensions"):
            value = getattr(shape, attr, None)
            low = 0 if attr == "dimensions" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                lw.fail(f"data set '{layer.dataset}' has an invalid {attr}: {value!r}", "N")
            sizes.append(value)
        layers[i] = dataclasses.replace(
            layer, auto_size=False, nx=sizes[0], ny=sizes[1], nz=sizes[2], dimensions=sizes[3]
        )
    layers = _derive_dimensions(layers, where)
    _check_sizes(layers, list(desc.weights), where)
    return dataclasses.replace(desc, layers=tuple(layers))
