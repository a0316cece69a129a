"""Model NetCDF files: the original's layout (built here directly with netCDF4), save/load, exact resume."""

from __future__ import annotations

import ctypes
import dataclasses
import os

import netCDF4
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import network_config, random_csr
from test_formats_dataset import build_set, new_file

import dsstne
from dsstne.enums import DataSetAttributes as A
from dsstne.enums import DataType as T
from dsstne.formats import (
    BatchNormState,
    Checkpointer,
    ModelFile,
    checkpoint_path,
    dataset_netcdf,
    model_netcdf,
    read_datasets,
    read_model,
    write_model,
)
from dsstne.formats.model_netcdf import weight_shape


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------------------------------------
# the original's required items (inventory §3), checked independently of our reader
# ---------------------------------------------------------------------------------------------------------

NETWORK_REQUIRED = {
    "version": "f4",
    "name": "S",
    "kind": "u4",
    "errorFunction": "u4",
    "maxout_k": "i4",
    "LRN_k": "f4",
    "LRN_n": "i4",
    "LRN_alpha": "f4",
    "LRN_beta": "f4",
    "bSparsenessPenalty": "u4",
    "sparsenessPenalty_p": "f4",
    "sparsenessPenalty_beta": "f4",
    "bDenoising": "u4",
    "denoising_p": "f4",
    "deltaBoost_one": "f4",
    "deltaBoost_zero": "f4",
    "SMCE_oneScale": "f4",
    "SMCE_zeroScale": "f4",
    "SMCE_oneTarget": "f4",
    "SMCE_zeroTarget": "f4",
    "ShuffleIndices": "u4",
    "layers": "u4",
    "weights": "u4",
}
NETWORK_WRITTEN = {
    "decay": "f4",
    "checkpoint_name": "S",
    "checkpoint_interval": "i4",
    "checkpoint_epochs": "i4",
}
LAYER_REQUIRED = {
    "name": "S",
    "kind": "u4",
    "type": "u4",
    "dataSet": "S",
    "Nx": "u4",
    "Ny": "u4",
    "Nz": "u4",
    "Nw": "u4",
    "dimensions": "u4",
    "kernelX": "u4",
    "kernelY": "u4",
    "kernelZ": "u4",
    "kernelDimensions": "u4",
    "kernelStrideX": "u4",
    "kernelStrideY": "u4",
    "kernelStrideZ": "u4",
    "kernelPaddingX": "u4",
    "kernelPaddingY": "u4",
    "kernelPaddingZ": "u4",
    "pDropout": "f4",
    "weightInit": "u4",
    "weightInitScale": "f4",
    "biasInit": "f4",
    "weightNorm": "f4",
    "deltaNorm": "f4",
    "activation": "u4",
    "RELUSlope": "f4",
    "ELUAlpha": "f4",
    "SELULambda": "f4",
    "attributes": "u4",
    "sources": "u4",
    "skips": "u4",
    "poolingfunction": "u4",
    "sparsenessPenalty_p": "f4",
    "sparsenessPenalty_beta": "f4",
}
WEIGHT_REQUIRED = {
    "inputLayer": "S",
    "outputLayer": "S",
    "width": "u8",
    "height": "u8",
    "length": "u8",
    "depth": "u8",
    "breadth": "u8",
    "bShared": "u4",
    "bLocked": "u4",
    "norm": "f4",
}


def _att_type(value):
    if isinstance(value, str):
        return "S"
    return np.asarray(value).dtype.str[1:]


def nc_att_info(path, name):
    """(NetCDF type code, length) of a global attribute, from the C library (2 = NC_CHAR text)."""
    lib = dataset_netcdf._libnetcdf()
    if lib is None:
        pytest.skip("NetCDF C library not found")
    ncid, t, n = ctypes.c_int(), ctypes.c_int(), ctypes.c_size_t()
    assert lib.nc_open(os.fspath(path).encode(), 0, ctypes.byref(ncid)) == 0
    try:
        assert lib.nc_inq_att(ncid, -1, name.encode(), ctypes.byref(t), ctypes.byref(n)) == 0, name
    finally:
        lib.nc_close(ncid)
    return t.value, n.value


def check_original_rules(path):
    """Every item the original's LoadNeuralNetworkNetCDF requires, with the NetCDF type SaveNetCDF writes."""
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF4"
        g = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for key, t in {**NETWORK_REQUIRED, **NETWORK_WRITTEN}.items():
            assert key in g and _att_type(g[key]) == t, key
        for i in range(int(g["layers"])):
            p = f"layer{i}_"
            for key, t in LAYER_REQUIRED.items():
                assert p + key in g and _att_type(g[p + key]) == t, p + key
            for k in range(int(g[p + "sources"])):
                assert isinstance(g[f"{p}source{k}"], str)
            for k in range(int(g[p + "skips"])):
                assert isinstance(g[f"{p}skip{k}"], str)
            if int(g[p + "attributes"]) & 4:
                for v in ("scaleBN", "biasBN", "runningMeanBN", "runningVarianceBN"):
                    assert (
                        nc.variables[p + v].dimensions == (p + "bnDim",) and nc.variables[p + v].dtype == "f4"
                    )
        for j in range(int(g["weights"])):
            p = f"weight{j}_"
            for key, t in WEIGHT_REQUIRED.items():
                assert p + key in g and _att_type(g[p + key]) == t, p + key
            assert nc.variables[p + "bias"].dimensions == (p + "biasDim",)
            if int(g[p + "bShared"]):
                assert _att_type(g[p + "bTransposed"]) == "u4"
                assert isinstance(g[p + "sourceInputLayer"], str) and isinstance(
                    g[p + "sourceOutputLayer"], str
                )
                assert p + "weights" not in nc.variables
            else:
                assert nc.variables[p + "weights"].dimensions == (p + "weightDim",)
                assert nc.variables[p + "weights"].dtype == "f4"


# ---------------------------------------------------------------------------------------------------------
# a model file in the original's layout, written here without our writer
# ---------------------------------------------------------------------------------------------------------


def write_original_model(path, layers, weights, **network):
    """layers: dicts (name, kind, N, dataset, activation, sources, attributes); weights: (in, out, W, b)."""
    f4, u4, i4, u8 = np.float32, np.uint32, np.int32, np.uint64
    net = dict(name="AE", kind=0, errorFunction=3, decay=0.0, shuffle=0, denoising=0.0, penalty=(0.0, 0.0))
    net.update(network)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        put = nc.setncattr
        put("version", f4(0.9))
        put("name", net["name"])
        put("kind", u4(net["kind"]))
        put("errorFunction", u4(net["errorFunction"]))
        put("maxout_k", i4(2))
        put("decay", f4(net["decay"]))
        put("LRN_k", f4(2))
        put("LRN_n", i4(5))
        put("LRN_alpha", f4(0.0001))
        put("LRN_beta", f4(0.75))
        put("bSparsenessPenalty", u4(net["penalty"][1] > 0))
        put("sparsenessPenalty_p", f4(net["penalty"][0]))
        put("sparsenessPenalty_beta", f4(net["penalty"][1]))
        put("bDenoising", u4(net["denoising"] > 0))
        put("denoising_p", f4(net["denoising"]))
        put("deltaBoost_one", f4(1))
        put("deltaBoost_zero", f4(1))
        put("SMCE_oneScale", f4(1))
        put("SMCE_zeroScale", f4(1))
        put("SMCE_oneTarget", f4(1))
        put("SMCE_zeroTarget", f4(0))
        put("ShuffleIndices", u4(net["shuffle"]))
        put("checkpoint_name", "checkpoint")
        put("checkpoint_interval", i4(0))
        put("checkpoint_epochs", i4(0))
        put("layers", u4(len(layers)))
        for i, ly in enumerate(layers):
            p = f"layer{i}_"
            put(p + "name", ly["name"])
            put(p + "kind", u4(ly["kind"]))
            put(p + "type", u4(0))
            put(p + "poolingfunction", u4(0))
            put(p + "dataSet", ly.get("dataset", ""))
            for k, v in (
                ("Nx", ly["N"]),
                ("Ny", 1),
                ("Nz", 1),
                ("Nw", 1),
                ("dimensions", 1),
                ("kernelX", 1),
                ("kernelY", 1),
                ("kernelZ", 1),
                ("kernelDimensions", 1),
                ("kernelStrideX", 1),
                ("kernelStrideY", 1),
                ("kernelStrideZ", 1),
                ("kernelPaddingX", 0),
                ("kernelPaddingY", 0),
                ("kernelPaddingZ", 0),
            ):
                put(p + k, u4(v))
            put(p + "pDropout", f4(0))
            put(p + "weightInit", u4(0))
            put(p + "weightInitScale", f4(1))
            put(p + "biasInit", f4(0))
            put(p + "weightNorm", f4(0))
            put(p + "deltaNorm", f4(0))
            put(p + "activation", u4(ly.get("activation", 0)))
            put(p + "sparsenessPenalty_p", f4(0))
            put(p + "sparsenessPenalty_beta", f4(0))
            put(p + "RELUSlope", f4(1))
            put(p + "ELUAlpha", f4(1))
            put(p + "SELULambda", f4(1.050701))
            put(p + "attributes", u4(ly.get("attributes", 0)))
            put(p + "sources", u4(len(ly.get("sources", ()))))
            for k, s in enumerate(ly.get("sources", ())):
                put(f"{p}source{k}", s)
            put(p + "skips", u4(0))
        put("weights", u4(len(weights)))
        for j, (src, dst, w, b) in enumerate(weights):
            p = f"weight{j}_"
            put(p + "inputLayer", src)
            put(p + "outputLayer", dst)
            sizes = (w.shape[1], w.shape[0], 1, 1, 1)
            for k, v in zip(("width", "height", "length", "depth", "breadth"), sizes, strict=True):
                put(p + k, u8(v))
            put(p + "bShared", u4(0))
            put(p + "bLocked", u4(0))
            put(p + "norm", f4(0))
            nc.createDimension(p + "biasDim", b.shape[0])
            nc.createVariable(p + "bias", "f4", (p + "biasDim",))[:] = b
            nc.createDimension(p + "weightDim", w.size)
            nc.createVariable(p + "weights", "f4", (p + "weightDim",))[:] = w.reshape(-1)  # [input][output]


def _three_layer(path, rng, n_in=128, n_hidden=16, n_out=128):
    w1 = rng.normal(0, 0.3, (n_in, n_hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, n_hidden).astype(np.float32)
    w2 = rng.normal(0, 0.3, (n_hidden, n_out)).astype(np.float32)
    b2 = rng.normal(0, 0.1, n_out).astype(np.float32)
    layers = [
        dict(name="Input", kind=0, N=n_in, dataset="gl_input", attributes=1 | 2),
        dict(name="Hidden", kind=1, N=n_hidden, activation=0, sources=["Input"], attributes=1),
        dict(
            name="Output",
            kind=2,
            N=n_out,
            dataset="gl_output",
            activation=0,
            sources=["Hidden"],
            attributes=1,
        ),
    ]
    write_original_model(
        path,
        layers,
        [("Input", "Hidden", w1, b1), ("Hidden", "Output", w2, b2)],
        denoising=0.2,
        penalty=(0.5, 2.0),
    )
    return w1, b1, w2, b2


def _generate_style_set(path, name, x, analog=False):
    """A file as generateNetCDF writes it (indicator: Sparse|Boolean UInt; analog: Sparse Float)."""
    csr = sp.csr_matrix(x)
    with new_file(path) as nc:
        build_set(
            nc,
            0,
            name=name,
            data_type=T.Float if analog else T.UInt,
            attributes=A.Sparse | (0 if analog else A.Boolean),
            dims=(128, 1, 1),
            examples=csr.shape[0],
            start=csr.indptr[:-1].astype(np.uint32),
            end=csr.indptr[1:].astype(np.uint32),
            index=csr.indices.astype(np.uint32),
            values=csr.data.astype(np.float32) if analog else None,
        )
    return path


@pytest.mark.parametrize("analog", [False, True], ids=["indicator", "analog"])
def test_original_three_layer_model_loads_and_predicts(tmp_path, analog):
    rng = np.random.default_rng(5)
    w1, b1, w2, b2 = _three_layer(tmp_path / "gl.nc", rng)
    x = random_csr(40, 100, 0.06, seed=2, values=analog)
    (inp,) = read_datasets(_generate_style_set(tmp_path / "gl_input.nc", "gl_input", x, analog))
    (out,) = read_datasets(_generate_style_set(tmp_path / "gl_output.nc", "gl_output", x, analog))
    net = dsstne.load(tmp_path / "gl.nc", [inp, out], batch=16, device="cpu")
    d = net.descriptor
    assert [ly.name for ly in d.layers] == ["Input", "Hidden", "Output"] and d.name == "AE"
    assert d.denoising_p == pytest.approx(0.2) and d.layers[0].denoising and d.sparseness_penalty_beta == 2.0
    assert d.error_function == dsstne.enums.ErrorFunction.ScaledMarginalCrossEntropy and not d.shuffle_indices
    np.testing.assert_array_equal(net.weights("Input", "Hidden")[0], w1)
    np.testing.assert_array_equal(net.weights("Hidden", "Output")[1], b2)
    X = np.zeros((40, 128), np.float32)
    X[:, :100] = x.toarray()
    want = sigmoid(sigmoid(X @ w1 + b1) @ w2 + b2)
    np.testing.assert_allclose(net.predict(inp), want, rtol=2e-5, atol=1e-6)
    assert (net.epochs_done, net.batches_done, net.batch) == (0, 0, 16)


def test_cifar_like_dense_uchar_set_predicts(tmp_path):
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (30, 3, 4, 4)).astype(np.uint8)  # channel-planar, as samples/cifar-10/dparse
    labels = rng.integers(0, 10, 30)
    path = tmp_path / "cifar.nc"
    with new_file(path, 2) as nc:
        build_set(
            nc,
            0,
            name="input",
            data_type=T.UChar,
            attributes=0,
            dims=(4, 4, 3),
            examples=30,
            kind=1,
            data=raw.reshape(-1),
        )
        build_set(
            nc,
            1,
            name="output",
            data_type=T.UInt,
            attributes=A.Sparse | A.Boolean,
            dims=(10, 1, 1),
            examples=30,
            start=np.arange(30, dtype=np.uint32),
            end=np.arange(1, 31, dtype=np.uint32),
            index=labels.astype(np.uint32),
        )
    inp, out = read_datasets(path)
    assert inp.dims == (4, 4, 3) and inp.dimensions == 3
    cfg = network_config(hidden=[(12, "Tanh")], sparse_input=False)
    net = dsstne.Network.from_json(cfg, [inp, out], batch=8, device="cpu", seed=4)
    assert net.descriptor.layer("Input").stride == 48
    w1, b1 = net.weights("Input", "Hidden1")
    w2, b2 = net.weights("Hidden1", "Output")
    X = raw.reshape(30, 48).astype(np.float32) / 256 - 0.5
    want = sigmoid(np.tanh(X @ w1 + b1) @ w2 + b2)
    np.testing.assert_allclose(net.predict(inp), want, rtol=2e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# our files: save, load, predict, resume
# ---------------------------------------------------------------------------------------------------------

FULL = {"ShuffleIndices": True, "Denoising": {"p": 0.2}, "SparsenessPenalty": {"p": 0.5, "beta": 2.0}}


def _pair(x):
    return dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")


def _net(x, seed=11, **extra):
    cfg = network_config(hidden=[(16, "Sigmoid")], **{**FULL, **extra})
    cfg["Layers"][1]["Sparse"] = True
    return dsstne.Network.from_json(cfg, _pair(x), batch=32, device="cpu", seed=seed)


def _same_weights(a, b):
    for w in a.descriptor.weights:
        mine, theirs = a.weights(w.input_layer, w.output_layer), b.weights(w.input_layer, w.output_layer)
        for u, v in zip(mine, theirs, strict=True):
            if u.tobytes() != v.tobytes():
                return False
    return True


def test_save_load_predicts_identically(tmp_path):
    x = random_csr(150, 70, 0.08, seed=1)
    net = _net(x)
    net.train(3, alpha=0.2)
    net.save(tmp_path / "model.nc")
    check_original_rules(tmp_path / "model.nc")
    assert nc_att_info(tmp_path / "model.nc", "layer1_dataSet") == (2, 0)  # "" as the original writes it
    assert nc_att_info(tmp_path / "model.nc", "layer0_dataSet") == (2, 5)  # NC_CHAR, not NC_STRING
    assert nc_att_info(tmp_path / "model.nc", "weight0_width") == (11, 1)  # NC_UINT64
    inp, out = _pair(x)
    back = dsstne.load(tmp_path / "model.nc", [inp, out], device="cpu")
    assert back.descriptor == net.descriptor
    assert (back.epochs_done, back.batches_done, back.batch, back.seed) == (3, 15, 32, 11)
    assert _same_weights(net, back)
    assert net.predict(inp).tobytes() == back.predict(inp).tobytes()
    bare = dsstne.load(tmp_path / "model.nc", device="cpu")  # prediction needs no datasets
    assert bare.predict(inp).tobytes() == net.predict(inp).tobytes()
    with netCDF4.Dataset(tmp_path / "model.nc") as nc:  # row-major [input][output]
        w, b = net.weights("Input", "Hidden1")
        np.testing.assert_array_equal(nc["weight0_weights"][:], w.reshape(-1))
        w, b = net.weights("Hidden1", "Output")  # rows of 70 floats, 72 apart on the target (pads_matrix)
        np.testing.assert_array_equal(nc["weight1_weights"][:], w.reshape(-1))
        np.testing.assert_array_equal(nc["weight1_bias"][:], b)
        assert int(nc.getncattr("weight0_width")) == 16 and int(nc.getncattr("weight0_height")) == 70
        assert nc.getncattr("layer0_attributes") == 1 | 2  # Sparse | Denoising
        assert float(nc.getncattr("version")) == pytest.approx(0.9)


def test_resume_is_bitwise_and_needs_the_counters(tmp_path):
    x = random_csr(150, 70, 0.08, seed=1)
    full = _net(x)
    full.train(4, alpha=0.2)
    half = _net(x)
    half.train(2, alpha=0.2)
    half.save(tmp_path / "half.nc")
    inp, out = _pair(x)
    resumed = dsstne.load(tmp_path / "half.nc", [inp, out], device="cpu")
    resumed.train(2, alpha=0.2)
    assert _same_weights(full, resumed)
    assert (resumed.epochs_done, resumed.batches_done) == (4, full.batches_done)
    forgetful = dsstne.load(tmp_path / "half.nc", [inp, out], device="cpu")
    forgetful.set_counters(0, 0)  # without the counters, shuffling and denoising repeat epochs 1-2
    forgetful.train(2, alpha=0.2)
    assert not _same_weights(full, forgetful)


def test_checkpoints_named_as_the_original_and_resumable(tmp_path):
    assert checkpoint_path("gl.nc", 10) == "gl.nc10.nc"
    x = random_csr(100, 50, 0.1, seed=4)
    net = _net(x)
    ckpt = Checkpointer(net, str(tmp_path / "gl.nc"), 2)
    net.train(5, alpha=0.2, callback=ckpt)
    assert ckpt.saved == [str(tmp_path / "gl.nc2.nc"), str(tmp_path / "gl.nc4.nc")]
    model = read_model(tmp_path / "gl.nc4.nc")
    assert (model.checkpoint_name, model.checkpoint_interval, model.checkpoint_epochs) == (
        str(tmp_path / "gl.nc"),
        2,
        2,
    )
    assert model.epochs == 4
    resumed = dsstne.load(tmp_path / "gl.nc4.nc", _pair(x), device="cpu")
    resumed.train(1, alpha=0.2)
    assert _same_weights(net, resumed)


def test_failed_save_leaves_previous_model_intact(tmp_path, monkeypatch):
    x = random_csr(60, 30, 0.1, seed=4)
    net = _net(x)
    net.save(tmp_path / "m.nc")
    before = (tmp_path / "m.nc").read_bytes()
    net.train(1, alpha=0.2)

    def explode(*args, **kwargs):
        raise RuntimeError("killed mid-write (simulated)")

    monkeypatch.setattr(model_netcdf, "_write_weight", explode)
    with pytest.raises(RuntimeError, match="simulated"):
        net.save(tmp_path / "m.nc")
    assert (tmp_path / "m.nc").read_bytes() == before and os.listdir(tmp_path) == ["m.nc"]


# ---------------------------------------------------------------------------------------------------------
# every descriptor field survives a file round trip (features the engine cannot run yet included)
# ---------------------------------------------------------------------------------------------------------

EVERYTHING = {
    "Version": 0.81,
    "Name": "all",
    "Kind": "AutoEncoder",
    "LRN": {"k": 3, "n": 7, "alpha": 0.001, "beta": 0.5},
    "MaxOut": {"k": 3},
    "SparsenessPenalty": {"p": 0.3, "beta": 1.5},
    "Denoising": {"p": 0.25},
    "DeltaBoost": {"one": 2, "zero": 0.5},
    "ShuffleIndices": False,
    "RELUSlope": 0.1,
    "ELUAlpha": 1.5,
    "ScaledMarginalCrossEntropy": {"oneTarget": 0.8, "zeroTarget": 0.2, "oneScale": 3, "zeroScale": 0.7},
    "SELULambda": 1.1,
    "Decay": 0.01,
    "ErrorFunction": "L2",
    "Layers": [
        {"Name": "img", "Kind": "Input", "N": [8, 8, 3], "DataSet": "img", "Sparse": True, "pDropout": 0.1},
        {
            "Name": "c1",
            "Kind": "Hidden",
            "Type": "Convolutional",
            "N": 4,
            "Kernel": [3, 3],
            "KernelStride": [1, 1],
            "Activation": "Relu",
            "WeightInit": {"Scheme": "Gaussian", "Scale": 0.02, "Bias": 0.1},
        },
        {
            "Name": "p1",
            "Kind": "Hidden",
            "Type": "Pooling",
            "Function": "Max",
            "Kernel": [2, 2],
            "KernelStride": [2, 2],
        },
        {
            "Name": "h1",
            "Kind": "Hidden",
            "N": 32,
            "Activation": "Tanh",
            "BatchNormalization": True,
            "WeightNorm": 2.5,
            "DeltaNorm": 1.5,
            "SparsenessPenalty": {"p": 0.2, "beta": 3},
        },
        {
            "Name": "h2",
            "Kind": "Hidden",
            "N": 32,
            "Skip": "h1",
            "Activation": "LRelu",
            "RELUSlope": 0.2,
            "Sparse": True,
        },
        {"Name": "h3", "Kind": "Hidden", "N": 16, "Source": ["h1", "h2"], "Activation": "Elu"},
        {
            "Name": "h4",
            "Kind": "Hidden",
            "N": 32,
            "Activation": "Selu",
            "SharedWeights": {
                "SourceInputLayer": "h2",
                "SourceOutputLayer": "h3",
                "InputLayer": "h3",
                "Transposed": True,
            },
        },
        {"Name": "out", "Kind": "Output", "N": 10, "DataSet": "lbl", "Activation": "SoftMax", "Sparse": True},
    ],
}


def test_every_descriptor_field_roundtrips(tmp_path):
    d = dsstne.parse_network(EVERYTHING)
    rng = np.random.default_rng(0)
    model = ModelFile(
        descriptor=d,
        epochs=7,
        batches=91,
        batch=64,
        seed=5,
        checkpoint_name="run",
        checkpoint_interval=5,
        checkpoint_epochs=2,
        optimizer={("h1", "h2"): {"velocity": rng.normal(size=32 * 32)}},
        locked={("h4", "out")},
    )
    for w in d.weights:
        _, shape, bias_len = weight_shape(d, w)
        model.biases[(w.input_layer, w.output_layer)] = rng.normal(size=bias_len).astype(np.float32)
        if not w.shared:
            model.weights[(w.input_layer, w.output_layer)] = rng.normal(size=shape).astype(np.float32)
    model.batch_norm["h1"] = BatchNormState(*(rng.normal(size=32).astype(np.float32) for _ in range(4)))
    write_model(tmp_path / "all.nc", model)
    check_original_rules(tmp_path / "all.nc")
    back = read_model(tmp_path / "all.nc")
    assert back.descriptor == d
    for a, b in zip(back.descriptor.layers, d.layers, strict=True):
        assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert back.weights.keys() == model.weights.keys() and back.biases.keys() == model.biases.keys()
    for k in model.weights:
        np.testing.assert_array_equal(back.weights[k], model.weights[k])
    for k in model.biases:
        np.testing.assert_array_equal(back.biases[k], model.biases[k])
    np.testing.assert_array_equal(
        back.batch_norm["h1"].running_variance, model.batch_norm["h1"].running_variance
    )
    np.testing.assert_array_equal(
        back.optimizer[("h1", "h2")]["velocity"], model.optimizer[("h1", "h2")]["velocity"].astype(np.float32)
    )
    assert (back.epochs, back.batches, back.batch, back.seed) == (7, 91, 64, 5)
    assert back.locked == {("h4", "out")}
    assert (back.checkpoint_name, back.checkpoint_interval, back.checkpoint_epochs) == ("run", 5, 2)
    with netCDF4.Dataset(tmp_path / "all.nc") as nc:
        assert tuple(int(nc.getncattr(f"weight0_{k}")) for k in ("width", "height", "length", "depth")) == (
            4,
            3,
            3,
            3,
        )  # conv filter [out ch][in ch][kY][kX]
        assert nc.getncattr("weight5_sourceInputLayer") == "h2" and "weight5_weights" not in nc.variables
        assert nc.getncattr("layer2_poolingfunction") == 1 and nc.getncattr("layer0_dataSet") == "img"
        assert nc.getncattr("layer4_skip0") == "h1" and nc.getncattr("layer5_source1") == "h2"


# ---------------------------------------------------------------------------------------------------------
# bad model files
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        "LRN_k",
        "ShuffleIndices",
        "layer1_SELULambda",
        "layer2_sources",
        "weight0_bShared",
        "weight1_width",
        "layers",
    ],
)
def test_missing_required_model_attribute(tmp_path, item):
    _three_layer(tmp_path / "m.nc", np.random.default_rng(0))
    with netCDF4.Dataset(tmp_path / "m.nc", "a") as nc:
        nc.delncattr(item)
    with pytest.raises(dsstne.FormatError, match=rf"m\.nc: missing attribute '{item}'"):
        read_model(tmp_path / "m.nc")


def test_inconsistent_model_files(tmp_path):
    rng = np.random.default_rng(0)
    _three_layer(tmp_path / "m.nc", rng)
    with netCDF4.Dataset(tmp_path / "m.nc", "a") as nc:
        nc.setncattr("layer2_source0", "Nowhere")
    with pytest.raises(dsstne.FormatError, match=r"m\.nc: layer2 \('Output'\) refers to layer 'Nowhere'"):
        read_model(tmp_path / "m.nc")
    _three_layer(tmp_path / "w.nc", rng, n_hidden=16)
    with netCDF4.Dataset(tmp_path / "w.nc", "a") as nc:
        nc.setncattr("layer1_Nx", np.uint32(17))
    with pytest.raises(
        dsstne.FormatError, match=r"w\.nc: variable 'weight0_bias' has 16 values; Hidden needs 17"
    ):
        read_model(tmp_path / "w.nc")
    _three_layer(tmp_path / "e.nc", rng)
    with netCDF4.Dataset(tmp_path / "e.nc", "a") as nc:
        nc.setncattr("errorFunction", np.uint32(42))
    with pytest.raises(dsstne.FormatError, match=r"e\.nc: attribute 'errorFunction' .* 42"):
        read_model(tmp_path / "e.nc")
    (tmp_path / "junk.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(dsstne.FormatError, match=r"junk\.nc: not a readable NetCDF file"):
        dsstne.load(tmp_path / "junk.nc")
