"""DSSTNE's model (network) NetCDF files: the layout of the original's ``SaveNetCDF`` and its loader.

Everything is a global attribute except the weight, bias and batch-norm arrays (reference inventory,
section 3): network attributes (``version``, ``name``, ``kind``, ``errorFunction``, ...), per-layer
attributes prefixed ``layer<i>_``, per-connection attributes and variables prefixed ``weight<j>_``.
Weights are stored row-major ``[input unit][output unit]`` (``weight<j>_weights``, ``width`` = output units,
``height`` = input units), biases per output unit; shared connections store their bias and the name of the
connection whose matrix they reuse. Files are NetCDF-4, as the original's ``NcFile::replace`` writes them.

A file written here satisfies every "required" rule of the original's reader, and a file in the original's
layout reads here. What the original does not save, but an exact resume needs, goes into extra items the
original ignores, all named ``dsstne_*``: the epoch and minibatch counters, the minibatch size, the seed,
the JSON ``Version`` and network-level activation defaults, and (room for) optimiser state per connection
(``weight<j>_dsstne_<name>``).

Decision on the original's quirk (inventory §11, item 9): its loader gives every layer the *network's*
sparseness-penalty p/beta; this reader keeps the per-layer values the file stores (they are what the saved
network trained with). A network-level ``bSparsenessPenalty`` / ``bDenoising`` of 0 switches the penalty /
denoising off, as in the original.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import (
    NN_VERSION,
    LayerDescriptor,
    NetworkDescriptor,
    SharedWeightDescriptor,
    WeightDescriptor,
    WeightInitDescriptor,
)
from ..enums import (
    Activation,
    ErrorFunction,
    LayerAttributes,
    LayerKind,
    LayerType,
    NetworkKind,
    PoolingFunction,
    WeightInit,
)
from ..errors import DataError
from .atomic import atomic_path
from .dataset_netcdf import _open, _Reader, put_text

if TYPE_CHECKING:
    from ..dataset import DataSet
    from ..network import Network

__all__ = [
    "FORMAT_VERSION",
    "BatchNormState",
    "Checkpointer",
    "ModelFile",
    "checkpoint_path",
    "load_network",
    "read_model",
    "save_network",
    "weight_shape",
    "write_model",
]

#: Version of the ``dsstne_*`` extras this module writes (attribute ``dsstne_format``).
FORMAT_VERSION = 1


def checkpoint_path(name: str | os.PathLike[str], epoch: int) -> str:
    """Name a checkpoint file as the original's ``Train`` does: ``<name><epoch>.nc`` (``gl.nc10.nc``)."""
    return f"{os.fspath(name)}{int(epoch)}.nc"


@dataclass(frozen=True)
class BatchNormState:
    """Batch-normalisation arrays of one layer (``layer<i>_scaleBN`` etc., one value per unit or channel)."""

    scale: np.ndarray
    bias: np.ndarray
    running_mean: np.ndarray
    running_variance: np.ndarray


@dataclass
class ModelFile:
    """Everything a model file holds.

    ``weights`` maps each unshared connection ``(input layer, output layer)`` to its matrix (fully connected:
    ``[input units, output units]``; convolution: the filter ``[out ch, in ch, kZ, kY, kX]`` as stored);
    ``biases`` maps every connection, shared ones included, to its bias vector. ``input_sparse`` overrides
    the Sparse attribute written for Input layers (the original writes the bound dataset's sparseness).
    ``optimizer`` holds per-connection optimiser arrays (e.g. velocities) under free names; ``locked``
    lists the connections the original's ``LockWeights`` froze (``bLocked``). ``batch_norm_optimizer`` holds
    the optimiser arrays of BatchNormalization layers' scale and bias, per layer, under free names.
    """

    descriptor: NetworkDescriptor
    weights: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    biases: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    batch_norm: dict[str, BatchNormState] = field(default_factory=dict)
    epochs: int = 0
    batches: int = 0
    optimizer_steps: int = 0
    batch: int | None = None
    seed: int | None = None
    checkpoint_name: str = "checkpoint"
    checkpoint_interval: int = 0
    checkpoint_epochs: int = 0
    optimizer: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    batch_norm_optimizer: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    input_sparse: dict[str, bool] = field(default_factory=dict)
    locked: set[tuple[str, str]] = field(default_factory=set)
    written_by_dsstne: bool = True  # False for files without the dsstne_* extras (the original's)


# ----------------------------------------------------------------------------------------------------------
# sizes
# ----------------------------------------------------------------------------------------------------------


def weight_shape(
    d: NetworkDescriptor, w: WeightDescriptor
) -> tuple[tuple[int, int, int, int, int], tuple[int, ...], int]:
    """(width, height, length, depth, breadth) attributes, array shape and bias length of a connection.

    Follows the original's ``NNWeight`` constructor (single process): fully connected ``width`` = output
    units, ``height`` = input units; convolution: output/input channels and kernel sizes (for a 1-D
    convolution the original takes the *input* layer's kernelX, a quirk kept for the attributes).
    """
    src, dst = d.layer(w.input_layer), d.layer(w.output_layer)
    if dst.type != LayerType.Convolutional:
        return (dst.stride, src.stride, 1, 1, 1), (src.stride, dst.stride), dst.stride
    kx, ky, kz = dst.kernel
    if dst.dimensions == 2:
        dims = (dst.ny, src.ny, src.kernel[0], 1, 1)
    elif dst.dimensions == 3:
        dims = (dst.nz, src.nz, ky, kx, 1)
    else:
        dims = (dst.nw, src.nw, kz, ky, kx)
    return dims, (dims[0], dims[1], kz, ky, kx), dims[0]


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------


def write_model(path: str | os.PathLike[str], model: ModelFile) -> None:
    """Write `model` in the original's layout (atomically: a failure leaves any previous file intact)."""
    d = model.descriptor
    if not d.resolved:
        raise DataError('the network\'s sizes are not final (N "auto" unresolved): bind its datasets first')
    arrays = _check_arrays(model)
    import netCDF4

    with atomic_path(path, suffix=".nc.tmp") as tmp:
        nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            nc.set_fill_off()
            _write_network(nc, model)
            nc.setncattr("layers", np.uint32(len(d.layers)))
            for i, layer in enumerate(d.layers):
                _write_layer(nc, i, layer, model)
            nc.setncattr("weights", np.uint32(len(d.weights)))
            for j, w in enumerate(d.weights):
                _write_weight(nc, j, w, arrays[j], model)
        finally:
            nc.close()


def _check_arrays(model: ModelFile) -> list[tuple[np.ndarray | None, np.ndarray]]:
    d = model.descriptor
    out = []
    for w in d.weights:
        key = (w.input_layer, w.output_layer)
        dims, shape, bias_len = weight_shape(d, w)
        bias = model.biases.get(key)
        if bias is None:
            raise DataError(f"no bias for connection {key[0]} -> {key[1]}")
        bias = np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        if bias.shape[0] != bias_len:
            raise DataError(f"bias of {key[0]} -> {key[1]} has {bias.shape[0]} values, expected {bias_len}")
        matrix = None
        if not w.shared:
            matrix = model.weights.get(key)
            if matrix is None:
                raise DataError(f"no weights for connection {key[0]} -> {key[1]}")
            matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)
            if matrix.shape[0] != int(np.prod(shape)):
                raise DataError(
                    f"weights of {key[0]} -> {key[1]} have {matrix.shape[0]} values, "
                    f"expected {int(np.prod(shape))} ({' x '.join(map(str, shape))})"
                )
        out.append((matrix, bias))
    for layer in d.layers:
        if layer.batch_normalization and layer.name not in model.batch_norm:
            raise DataError(f"layer '{layer.name}' uses BatchNormalization but no batch-norm state was given")
    return out


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _write_network(nc: Any, model: ModelFile) -> None:
    d = model.descriptor
    put = nc.setncattr
    put("version", _f32(NN_VERSION))
    put_text(nc, "name", d.name)
    put("kind", np.uint32(int(d.kind)))
    put("errorFunction", np.uint32(int(d.error_function)))
    put("maxout_k", np.int32(d.maxout_k))
    put("decay", _f32(d.decay))
    put("LRN_k", _f32(d.lrn_k))
    put("LRN_n", np.int32(d.lrn_n))
    put("LRN_alpha", _f32(d.lrn_alpha))
    put("LRN_beta", _f32(d.lrn_beta))
    put("bSparsenessPenalty", np.uint32(d.sparseness_penalty))
    put("sparsenessPenalty_p", _f32(d.sparseness_penalty_p))
    put("sparsenessPenalty_beta", _f32(d.sparseness_penalty_beta))
    put("bDenoising", np.uint32(d.denoising))
    put("denoising_p", _f32(d.denoising_p))
    put("deltaBoost_one", _f32(d.delta_boost_one))
    put("deltaBoost_zero", _f32(d.delta_boost_zero))
    put("SMCE_oneScale", _f32(d.smce_one_scale))
    put("SMCE_zeroScale", _f32(d.smce_zero_scale))
    put("SMCE_oneTarget", _f32(d.smce_one_target))
    put("SMCE_zeroTarget", _f32(d.smce_zero_target))
    put("ShuffleIndices", np.uint32(d.shuffle_indices))
    put_text(nc, "checkpoint_name", model.checkpoint_name)
    put("checkpoint_interval", np.int32(model.checkpoint_interval))
    put("checkpoint_epochs", np.int32(model.checkpoint_epochs))
    # extras (ignored by the original's reader)
    put("dsstne_format", np.uint32(FORMAT_VERSION))
    put("dsstne_config_version", np.float64(d.version))
    put("dsstne_RELUSlope", np.float64(d.relu_slope))
    put("dsstne_ELUAlpha", np.float64(d.elu_alpha))
    put("dsstne_SELULambda", np.float64(d.selu_lambda))
    if d.weights_data:
        put_text(nc, "dsstne_WeightsData", d.weights_data)
    for name, value, nctype in (
        ("dsstne_epochs", model.epochs, "u8"),
        ("dsstne_batches", model.batches, "u8"),
        ("dsstne_optimizer_steps", model.optimizer_steps, "u8"),
        ("dsstne_batch", model.batch, "u4"),
        ("dsstne_seed", model.seed, "u8"),
    ):
        if value is not None:
            var = nc.createVariable(name, nctype, ())
            var.assignValue(int(value))


def _write_layer(nc: Any, i: int, ly: LayerDescriptor, model: ModelFile) -> None:
    p = f"layer{i}_"
    put = nc.setncattr
    put_text(nc, p + "name", ly.name)
    put(p + "kind", np.uint32(int(ly.kind)))
    put(p + "type", np.uint32(int(ly.type)))
    put(p + "poolingfunction", np.uint32(int(ly.pooling_function)))
    put_text(nc, p + "dataSet", ly.dataset)
    for key, value in (
        ("Nx", ly.nx),
        ("Ny", ly.ny),
        ("Nz", ly.nz),
        ("Nw", ly.nw),
        ("dimensions", ly.dimensions),
        ("kernelX", ly.kernel[0]),
        ("kernelY", ly.kernel[1]),
        ("kernelZ", ly.kernel[2]),
        ("kernelDimensions", ly.kernel_dimensions),
        ("kernelStrideX", ly.kernel_stride[0]),
        ("kernelStrideY", ly.kernel_stride[1]),
        ("kernelStrideZ", ly.kernel_stride[2]),
        ("kernelPaddingX", ly.kernel_padding[0]),
        ("kernelPaddingY", ly.kernel_padding[1]),
        ("kernelPaddingZ", ly.kernel_padding[2]),
    ):
        put(p + key, np.uint32(value))
    put(p + "pDropout", _f32(ly.p_dropout))
    put(p + "weightInit", np.uint32(int(ly.weight_init.scheme)))
    put(p + "weightInitScale", _f32(ly.weight_init.scale))
    put(p + "biasInit", _f32(ly.weight_init.bias))
    put(p + "weightNorm", _f32(ly.weight_norm))
    put(p + "deltaNorm", _f32(ly.delta_norm))
    put(p + "activation", np.uint32(int(ly.activation)))
    put(p + "sparsenessPenalty_p", _f32(ly.sparseness_penalty_p))
    put(p + "sparsenessPenalty_beta", _f32(ly.sparseness_penalty_beta))
    put(p + "RELUSlope", _f32(ly.relu_slope))
    put(p + "ELUAlpha", _f32(ly.elu_alpha))
    put(p + "SELULambda", _f32(ly.selu_lambda))
    attributes = ly.attributes
    if ly.kind == LayerKind.Input and ly.name in model.input_sparse:
        if model.input_sparse[ly.name]:
            attributes |= LayerAttributes.Sparse
        else:
            attributes &= ~LayerAttributes.Sparse
        put("dsstne_" + p + "Sparse", np.uint32(ly.sparse))  # the JSON flag, when it differs from the data
    put(p + "attributes", np.uint32(int(attributes)))
    put(p + "sources", np.uint32(len(ly.sources)))
    for k, s in enumerate(ly.sources):
        put_text(nc, f"{p}source{k}", s)
    put(p + "skips", np.uint32(len(ly.skips)))
    for k, s in enumerate(ly.skips):
        put_text(nc, f"{p}skip{k}", s)
    if ly.batch_normalization:
        bn = model.batch_norm[ly.name]
        arrays = [
            np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
            for a in (bn.scale, bn.bias, bn.running_mean, bn.running_variance)
        ]
        if len({a.shape[0] for a in arrays}) != 1:
            raise DataError(f"batch-norm arrays of layer '{ly.name}' differ in length")
        nc.createDimension(p + "bnDim", arrays[0].shape[0])
        for name, a in zip(("scaleBN", "biasBN", "runningMeanBN", "runningVarianceBN"), arrays, strict=True):
            var = nc.createVariable(p + name, "f4", (p + "bnDim",), fill_value=False)
            var[:] = a
        # dsstne extra (the original saves no optimiser state): layer<i>_dsstne_<name>BN, one per unit.
        for name, a in sorted(model.batch_norm_optimizer.get(ly.name, {}).items()):
            a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
            if a.shape[0] != arrays[0].shape[0]:
                raise DataError(f"batch-norm optimiser state '{name}' of layer '{ly.name}' has {a.shape[0]} values")
            var = nc.createVariable(f"{p}dsstne_{name}BN", "f4", (p + "bnDim",), fill_value=False)
            var[:] = a


def _write_weight(
    nc: Any, j: int, w: WeightDescriptor, arrays: tuple[np.ndarray | None, np.ndarray], model: ModelFile
) -> None:
    p = f"weight{j}_"
    put = nc.setncattr
    dims, _shape, _bias = weight_shape(model.descriptor, w)
    put_text(nc, p + "inputLayer", w.input_layer)
    put_text(nc, p + "outputLayer", w.output_layer)
    for key, value in zip(("width", "height", "length", "depth", "breadth"), dims, strict=True):
        put(p + key, np.uint64(value))
    put(p + "bShared", np.uint32(w.shared))
    put(p + "bLocked", np.uint32((w.input_layer, w.output_layer) in model.locked))
    put(p + "norm", _f32(w.norm))
    matrix, bias = arrays
    nc.createDimension(p + "biasDim", bias.shape[0])
    var = nc.createVariable(p + "bias", "f4", (p + "biasDim",), fill_value=False)
    var[:] = bias
    if w.shared:
        put(p + "bTransposed", np.uint32(w.transposed))
        put_text(nc, p + "sourceInputLayer", w.source_input_layer)
        put_text(nc, p + "sourceOutputLayer", w.source_output_layer)
    else:
        assert matrix is not None
        nc.createDimension(p + "weightDim", matrix.shape[0])
        var = nc.createVariable(p + "weights", "f4", (p + "weightDim",), fill_value=False)
        var[:] = matrix
    for name, a in sorted(model.optimizer.get((w.input_layer, w.output_layer), {}).items()):
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        dim = f"{p}dsstne_{name}Dim"
        nc.createDimension(dim, a.shape[0])
        var = nc.createVariable(f"{p}dsstne_{name}", "f4", (dim,), fill_value=False)
        var[:] = a


# ----------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------


def _enum(r: _Reader, name: str, what: str, enum: Any) -> Any:
    value = r.int_att(name, what)
    try:
        return enum(value)
    except ValueError:
        raise r.fail(
            f"attribute '{name}' ({what}) holds {value}, which is not a valid {enum.__name__}"
        ) from None


def _scalar_var(nc: Any, name: str) -> int | None:
    var = nc.variables.get(name)
    if var is None:
        return None
    return int(np.asarray(var[...]).reshape(-1)[0])


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read a model file written by the original's ``SaveNetCDF`` or by :func:`write_model`.

    Raises:
        FormatError: the file is missing, not NetCDF, lacks an attribute or variable the original requires,
            or is inconsistent (unknown layer names, array sizes that do not fit the layers); the message
            names the file and the item.

    """
    path = os.fspath(path)
    nc = _open(path)
    try:
        return _read(nc, _Reader(nc, path), path)
    finally:
        nc.close()


def _read(nc: Any, r: _Reader, path: str) -> ModelFile:
    r.float_att("version", "model format version")
    ours = r.has("dsstne_format")
    values: dict[str, Any] = {
        "name": r.str_att("name", "network name"),
        "kind": _enum(r, "kind", "network kind", NetworkKind),
        "error_function": _enum(r, "errorFunction", "error function", ErrorFunction),
        "maxout_k": r.int_att("maxout_k", "MaxOut k"),
        "decay": r.float_att("decay", "learning-rate decay", default=0.0),
        "lrn_k": r.float_att("LRN_k", "LRN k"),
        "lrn_n": r.int_att("LRN_n", "LRN n"),
        "lrn_alpha": r.float_att("LRN_alpha", "LRN alpha"),
        "lrn_beta": r.float_att("LRN_beta", "LRN beta"),
        "sparseness_penalty_p": r.float_att("sparsenessPenalty_p", "sparseness penalty p"),
        "sparseness_penalty_beta": r.float_att("sparsenessPenalty_beta", "sparseness penalty beta"),
        "denoising_p": r.float_att("denoising_p", "denoising p"),
        "delta_boost_one": r.float_att("deltaBoost_one", "DeltaBoost one"),
        "delta_boost_zero": r.float_att("deltaBoost_zero", "DeltaBoost zero"),
        "smce_one_scale": r.float_att("SMCE_oneScale", "SMCE oneScale"),
        "smce_zero_scale": r.float_att("SMCE_zeroScale", "SMCE zeroScale"),
        "smce_one_target": r.float_att("SMCE_oneTarget", "SMCE oneTarget"),
        "smce_zero_target": r.float_att("SMCE_zeroTarget", "SMCE zeroTarget"),
        "shuffle_indices": r.int_att("ShuffleIndices", "shuffle flag") != 0,
    }
    penalty_on = r.int_att("bSparsenessPenalty", "sparseness penalty flag") != 0
    if not r.int_att("bDenoising", "denoising flag"):
        values["denoising_p"] = 0.0
    if not penalty_on:
        values["sparseness_penalty_beta"] = 0.0
    if ours:
        values["version"] = r.float_att("dsstne_config_version", "JSON version", default=NN_VERSION)
        values["relu_slope"] = r.float_att("dsstne_RELUSlope", "network RELUSlope", default=1.0)
        values["elu_alpha"] = r.float_att("dsstne_ELUAlpha", "network ELUAlpha", default=1.0)
        values["selu_lambda"] = r.float_att("dsstne_SELULambda", "network SELULambda", default=1.050701)
        values["weights_data"] = r.str_att("dsstne_WeightsData", "WeightsData", default="")
    checkpoint = (
        r.str_att("checkpoint_name", "checkpoint name", default="checkpoint"),
        r.int_att("checkpoint_interval", "checkpoint interval", default=0),
        r.int_att("checkpoint_epochs", "checkpoint epochs", default=0),
    )

    n_layers = r.int_att("layers", "layer count")
    if n_layers < 1:
        raise r.fail(f"attribute 'layers' is {n_layers}: the network has no layers")
    layers: list[LayerDescriptor] = []
    batch_norm: dict[str, BatchNormState] = {}
    batch_norm_optimizer: dict[str, dict[str, np.ndarray]] = {}
    input_sparse: dict[str, bool] = {}
    for i in range(n_layers):
        layer, bn = _read_layer(r, i, penalty_on)
        if ours and r.has(f"dsstne_layer{i}_Sparse"):
            input_sparse[layer.name] = layer.sparse
            layer = _replace(layer, sparse=r.int_att(f"dsstne_layer{i}_Sparse", "JSON Sparse flag") != 0)
        layers.append(layer)
        if bn is not None:
            batch_norm[layer.name] = bn
            extra = {
                name[len(f"layer{i}_dsstne_") : -len("BN")]: r.var(name, f"batch-norm optimiser state of layer{i}")
                .astype(np.float32)
                for name in nc.variables
                if name.startswith(f"layer{i}_dsstne_") and name.endswith("BN")
            }
            if extra:
                batch_norm_optimizer[layer.name] = extra
    names = [ly.name for ly in layers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise r.fail(f"several layers are named {dup[0]!r}")
    for i, ly in enumerate(layers):
        for ref in ly.sources + ly.skips:
            if ref not in names:
                raise r.fail(
                    f"layer{i} ('{ly.name}') refers to layer {ref!r}, which the file does not define"
                )

    n_weights = r.int_att("weights", "weight (connection) count")
    weights: list[WeightDescriptor] = []
    raw: list[tuple[np.ndarray | None, np.ndarray]] = []
    optimizer: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    locked: set[tuple[str, str]] = set()
    for j in range(n_weights):
        w, matrix, bias, extra, is_locked = _read_weight(nc, r, j, names)
        if is_locked:
            locked.add((w.input_layer, w.output_layer))
        weights.append(w)
        raw.append((matrix, bias))
        if extra:
            optimizer[(w.input_layer, w.output_layer)] = extra

    shared: dict[str, list[SharedWeightDescriptor]] = {}
    for w in weights:
        if w.shared:
            shared.setdefault(w.output_layer, []).append(
                SharedWeightDescriptor(
                    w.source_input_layer, w.source_output_layer, w.input_layer, w.transposed
                )
            )
    layers = [_replace(ly, shared_weights=tuple(shared.get(ly.name, ()))) for ly in layers]
    desc = NetworkDescriptor(layers=tuple(layers), weights=tuple(weights), path=path, **values)

    model = ModelFile(
        descriptor=desc,
        batch_norm=batch_norm,
        batch_norm_optimizer=batch_norm_optimizer,
        checkpoint_name=checkpoint[0],
        checkpoint_interval=checkpoint[1],
        checkpoint_epochs=checkpoint[2],
        input_sparse=input_sparse,
        written_by_dsstne=ours,
        optimizer=optimizer,
        locked=locked,
    )
    unshared = {(w.input_layer, w.output_layer) for w in weights if not w.shared}
    for j, (w, (matrix, bias)) in enumerate(zip(weights, raw, strict=True)):
        key = (w.input_layer, w.output_layer)
        dims, shape, bias_len = weight_shape(desc, w)
        if bias.shape[0] != bias_len:
            raise r.fail(f"variable 'weight{j}_bias' has {bias.shape[0]} values; {key[1]} needs {bias_len}")
        model.biases[key] = bias
        if w.shared:
            if (w.source_input_layer, w.source_output_layer) not in unshared:
                raise r.fail(
                    f"weight{j} shares the weights of {w.source_input_layer} -> {w.source_output_layer}, "
                    "which the file does not store"
                )
            continue
        assert matrix is not None
        size = int(np.prod(shape))
        if matrix.shape[0] != size:
            raise r.fail(
                f"variable 'weight{j}_weights' has {matrix.shape[0]} values; {key[0]} -> {key[1]} needs "
                f"{size} ({' x '.join(map(str, shape))})"
            )
        model.weights[key] = matrix.reshape(shape)
    for name in ("epochs", "batches", "optimizer_steps", "batch", "seed"):
        value = _scalar_var(nc, "dsstne_" + name)
        if value is not None:
            setattr(model, name, value)
    return model


def _replace(layer: LayerDescriptor, **changes: Any) -> LayerDescriptor:
    import dataclasses

    return dataclasses.replace(layer, **changes)


def _read_layer(r: _Reader, i: int, penalty_on: bool) -> tuple[LayerDescriptor, BatchNormState | None]:
    p = f"layer{i}_"
    name = r.str_att(p + "name", f"name of layer {i}")
    what = f"layer {i} ('{name}')"
    kind = _enum(r, p + "kind", f"kind of {what}", LayerKind)
    type_ = _enum(r, p + "type", f"type of {what}", LayerType)
    if r.has(p + "poolingfunction"):
        pooling = _enum(r, p + "poolingfunction", f"pooling function of {what}", PoolingFunction)
    elif type_ == LayerType.Pooling:
        raise r.fail(f"missing attribute '{p}poolingfunction' (pooling function of Pooling {what})")
    else:
        pooling = PoolingFunction.NONE

    def u(key: str, low: int = 0) -> int:
        value = r.int_att(p + key, f"{key} of {what}")
        if not low <= value <= 0xFFFFFFFF:
            raise r.fail(f"attribute '{p}{key}' ({key} of {what}) is {value}, out of range")
        return value

    def f(key: str) -> float:
        return r.float_att(p + key, f"{key} of {what}")

    dataset = r.str_att(p + "dataSet", f"dataset of {what}")
    nx, ny, nz, nw = u("Nx", 1), u("Ny", 1), u("Nz", 1), u("Nw", 1)
    dimensions = u("dimensions")
    kernel = (u("kernelX"), u("kernelY"), u("kernelZ"))
    kernel_stride = (u("kernelStrideX"), u("kernelStrideY"), u("kernelStrideZ"))
    kernel_padding = (u("kernelPaddingX"), u("kernelPaddingY"), u("kernelPaddingZ"))
    kernel_dimensions = u("kernelDimensions")
    scheme = _enum(r, p + "weightInit", f"weightInit of {what}", WeightInit)
    init = WeightInitDescriptor(scheme, f("weightInitScale"), f("biasInit"))
    weight_norm, delta_norm, p_dropout = f("weightNorm"), f("deltaNorm"), f("pDropout")
    activation = _enum(r, p + "activation", f"activation of {what}", Activation)
    relu_slope, elu_alpha, selu_lambda = f("RELUSlope"), f("ELUAlpha"), f("SELULambda")
    # the original requires the global attributes here (and uses them: quirk); we keep the layer's own
    sp_p = r.float_att(p + "sparsenessPenalty_p", "", default=0.0)
    sp_beta = r.float_att(p + "sparsenessPenalty_beta", "", default=0.0) if penalty_on else 0.0
    attributes = LayerAttributes(u("attributes") & 7)
    sources = tuple(r.str_att(f"{p}source{k}", f"source {k} of {what}") for k in range(u("sources")))
    skips = tuple(r.str_att(f"{p}skip{k}", f"skip {k} of {what}") for k in range(u("skips")))
    bn = None
    if attributes & LayerAttributes.BatchNormalization:
        size = r.dim(p + "bnDim", f"batch-norm size of {what}")
        arrays = [
            r.var(p + key, f"batch-norm {key} of {what}", size).astype(np.float32)
            for key in ("scaleBN", "biasBN", "runningMeanBN", "runningVarianceBN")
        ]
        bn = BatchNormState(*arrays)
    layer = LayerDescriptor(
        name=name,
        kind=kind,
        type=type_,
        nx=nx,
        ny=ny,
        nz=nz,
        nw=nw,
        dimensions=dimensions,
        sparse=bool(attributes & LayerAttributes.Sparse),
        denoising=bool(attributes & LayerAttributes.Denoising),
        batch_normalization=bool(attributes & LayerAttributes.BatchNormalization),
        p_dropout=p_dropout,
        sources=sources,
        skips=skips,
        kernel=kernel,
        kernel_dimensions=kernel_dimensions,
        kernel_stride=kernel_stride,
        kernel_padding=kernel_padding,
        pooling_function=pooling,
        activation=activation,
        relu_slope=relu_slope,
        elu_alpha=elu_alpha,
        selu_lambda=selu_lambda,
        weight_norm=weight_norm,
        delta_norm=delta_norm,
        weight_init=init,
        sparseness_penalty_p=sp_p,
        sparseness_penalty_beta=sp_beta,
        dataset=dataset,
    )
    if layer.needs_derivation:
        layer = _replace(layer, derived=True)  # sizes are stored: nothing to derive (as the original)
    return layer, bn


def _read_weight(
    nc: Any, r: _Reader, j: int, names: list[str]
) -> tuple[WeightDescriptor, np.ndarray | None, np.ndarray, dict[str, np.ndarray], bool]:
    p = f"weight{j}_"
    what = f"weight {j}"
    src = r.str_att(p + "inputLayer", f"input layer of {what}")
    dst = r.str_att(p + "outputLayer", f"output layer of {what}")
    for ref in (src, dst):
        if ref not in names:
            raise r.fail(f"{what} ({src} -> {dst}) refers to layer {ref!r}, which the file does not define")
    shared = r.int_att(p + "bShared", f"shared flag of {what}") != 0
    for key in ("width", "height", "length", "depth", "breadth"):
        r.int_att(p + key, f"{key} of {what}")
    locked = r.int_att(p + "bLocked", f"locked flag of {what}", default=0) != 0
    norm = r.float_att(p + "norm", f"norm of {what}", default=0.0)
    source_in = source_out = ""
    transposed = False
    if shared:
        source_in = r.str_att(p + "sourceInputLayer", f"shared source input layer of {what}")
        source_out = r.str_att(p + "sourceOutputLayer", f"shared source output layer of {what}")
        transposed = r.int_att(p + "bTransposed", f"transposed flag of {what}") != 0
    bias_len = r.dim(p + "biasDim", f"bias size of {what}")
    bias = r.var(p + "bias", f"bias of {what}", bias_len).astype(np.float32)
    matrix = None
    if not shared:
        size = r.dim(p + "weightDim", f"weight count of {what}")
        matrix = r.var(p + "weights", f"weights of {what}", size).astype(np.float32)
    extra = {}
    for name in nc.variables:
        if name.startswith(p + "dsstne_"):
            extra[name[len(p) + len("dsstne_") :]] = r.var(name, f"optimiser state of {what}").astype(
                np.float32
            )
    w = WeightDescriptor(
        src,
        dst,
        shared=shared,
        transposed=transposed,
        source_input_layer=source_in,
        source_output_layer=source_out,
        norm=norm,
    )
    return w, matrix, bias, extra, locked


# ----------------------------------------------------------------------------------------------------------
# Network <-> file
# ----------------------------------------------------------------------------------------------------------


def save_network(
    network: Network,
    path: str | os.PathLike[str],
    *,
    checkpoint: tuple[str, int, int] | None = None,
) -> None:
    """Save a :class:`~dsstne.Network` (descriptor, weights, batch-norm state, counters, batch, seed) atomically.

    `checkpoint` is (name, interval, epochs since the last checkpoint) as the original records them.
    """
    d = network.descriptor
    model = ModelFile(
        descriptor=d,
        epochs=network.epochs_done,
        batches=network.batches_done,
        optimizer_steps=network.optimizer_steps,
        optimizer=network.optimizer_state(),
        batch_norm={layer: network.batch_norm_state(layer) for layer in network.batch_norm_layers},
        batch_norm_optimizer=network.batch_norm_optimizer_state(),
        locked=network.locked_connections,
        batch=network.batch,
        seed=network.seed,
    )
    if checkpoint is not None:
        model.checkpoint_name, model.checkpoint_interval, model.checkpoint_epochs = checkpoint
    for w in d.weights:
        matrix, bias = network.weights(w.input_layer, w.output_layer)
        model.biases[(w.input_layer, w.output_layer)] = bias
        if not w.shared:
            model.weights[(w.input_layer, w.output_layer)] = matrix
    for layer in d.input_layers:
        ds = network.datasets.get(layer.dataset)
        if ds is not None and ds.is_sparse != layer.sparse:
            model.input_sparse[layer.name] = ds.is_sparse
    write_model(path, model)


def load_network(
    path: str | os.PathLike[str],
    datasets: Any = (),
    *,
    batch: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    math: str = "fp32",
    batch_norm_momentum: float = 1.0,
) -> Network:
    """Build a :class:`~dsstne.Network` from a model file: its descriptor, then its weights and counters.

    `batch` and `seed` default to the saved ones (the original's DefaultBatch 512 and FIXED_SEED for files
    that do not record them).
    """
    from ..network import DEFAULT_SEED, Network

    model = read_model(path)
    sets: list[DataSet] = list(datasets.values()) if isinstance(datasets, Mapping) else list(datasets)
    net = Network(
        model.descriptor,
        sets,
        batch=batch if batch is not None else (model.batch or 512),
        device=device,
        seed=seed if seed is not None else (model.seed if model.seed is not None else DEFAULT_SEED),
        math=math,
        batch_norm_momentum=batch_norm_momentum,
    )
    for (src, dst), matrix in model.weights.items():
        net.set_weights(src, dst, matrix, model.biases[(src, dst)])
    for w in model.descriptor.weights:  # shared connections: the owner's matrix (set above), their own bias
        key = (w.input_layer, w.output_layer)
        if w.shared and key in model.biases:
            net.set_weights(*key, net.weights(*key)[0], model.biases[key])
    for key in model.locked:
        net.lock_weights(*key)
    net.set_counters(model.epochs, model.batches, model.optimizer_steps)
    net.set_optimizer_state(model.optimizer)
    for layer, bn in model.batch_norm.items():
        net.set_batch_norm_state(layer, bn)
    net.set_batch_norm_optimizer_state(model.batch_norm_optimizer)
    return net


class Checkpointer:
    """An epoch callback for :meth:`Network.train` that saves checkpoints as the original's ``Train`` does.

    Every `interval` epochs the network is saved (atomically) to ``<name><epoch>.nc`` (see
    :func:`checkpoint_path`), the file recording ``checkpoint_name``, ``checkpoint_interval`` and
    ``checkpoint_epochs`` like the original's. ``saved`` lists the files written. Pass it as
    ``net.train(..., callback=Checkpointer(net, "gl.nc", 10))``; `then` is called after it (its return
    value, False to stop, is passed on).
    """

    def __init__(
        self, network: Network, name: str | os.PathLike[str], interval: int, then: Any = None
    ) -> None:
        """Save `network` every `interval` epochs under `name`."""
        if not isinstance(interval, int) or interval <= 0:
            raise DataError(f"checkpoint interval must be a positive integer, not {interval!r}")
        self.network = network
        self.name = os.fspath(name)
        self.interval = interval
        self.then = then
        self.epochs_since = 0
        self.saved: list[str] = []

    def __call__(self, report: Any) -> bool | None:
        """Count the epoch; save when `interval` epochs have passed since the last checkpoint."""
        self.epochs_since += 1
        if self.epochs_since >= self.interval:
            path = checkpoint_path(self.name, self.network.epochs_done)
            save_network(self.network, path, checkpoint=(self.name, self.interval, self.epochs_since))
            self.saved.append(path)
            self.epochs_since = 0
        return self.then(report) if self.then is not None else None
