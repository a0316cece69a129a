"""Tests of dsstne.config: DSSTNE's JSON network language.

The sample networks are rebuilt from the reference inventory (sections 8, 9.1, 9.2, 9.3 and 9.4): same
topology, keys and values as the original's samples/, benchmarks/ and tst/test_data/ files.
"""

from __future__ import annotations

import copy
import json
import math
import pathlib
from typing import Any

import pytest

from dsstne.config import (
    DataShape,
    LayerDescriptor,
    NetworkDescriptor,
    SharedWeightDescriptor,
    WeightDescriptor,
    WeightInitDescriptor,
    parse_network,
    resolve_dimensions,
)
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

# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def net(layers: Any, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"Version": 0.8, "Name": "t", "Kind": "FeedForward"}
    cfg.update(top)
    cfg["Layers"] = layers
    return cfg


INPUT = {"Name": "Input", "Kind": "Input", "N": 4, "DataSet": "input", "Sparse": True}
HIDDEN = {"Name": "Hidden", "Kind": "Hidden", "N": 3, "Activation": "Sigmoid"}
OUTPUT = {"Name": "Output", "Kind": "Output", "N": 4, "DataSet": "output", "Activation": "Sigmoid"}


def simple(**changes: Any) -> dict[str, Any]:
    """Input(4) -> Hidden(3) -> Output(4), with per-layer key changes: simple(Hidden={"pDropout": 2})."""
    layers = [dict(INPUT), dict(HIDDEN), dict(OUTPUT)]
    top = {}
    for key, value in changes.items():
        idx = {"Input": 0, "Hidden": 1, "Output": 2}.get(key)
        if idx is None:
            top[key] = value
        else:
            layers[idx].update(value)
    return net(layers, **top)


def fails(cfg: Any, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_network(cfg)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def write(tmp_path: pathlib.Path, cfg: Any, name: str = "config.json") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg, indent=2))
    return path


# ---------------------------------------------------------------------------------------------------------
# The original's sample networks (inventory §9.1, §9.2, §9.4, §8)
# ---------------------------------------------------------------------------------------------------------

SMCE_1011 = {"oneTarget": 1.0, "zeroTarget": 0.0, "oneScale": 1.0, "zeroScale": 1.0}
SMCE_10301 = {"oneTarget": 1.0, "zeroTarget": 0.0, "oneScale": 30.0, "zeroScale": 1.0}


def config_1() -> dict[str, Any]:
    return {
        "Version": 0.7,
        "Name": "AE",
        "Kind": "FeedForward",
        "SparsenessPenalty": {"p": 0.5, "beta": 2.0},
        "ShuffleIndices": False,
        "Denoising": {"p": 0.2},
        "ScaledMarginalCrossEntropy": SMCE_1011,
        "Layers": [
            {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": True},
            {
                "Name": "Hidden",
                "Kind": "Hidden",
                "Type": "FullyConnected",
                "N": 128,
                "Activation": "Sigmoid",
                "Sparse": True,
            },
            {
                "Name": "Output",
                "Kind": "Output",
                "Type": "FullyConnected",
                "DataSet": "input",
                "N": "auto",
                "Activation": "Sigmoid",
                "Sparse": True,
            },
        ],
        "ErrorFunction": "ScaledMarginalCrossEntropy",
    }


def two_hidden(name: str, units: int) -> dict[str, Any]:
    gauss = {"Scheme": "Gaussian", "Scale": 0.01}
    return {
        "Version": 0.8,
        "Name": name,
        "Kind": "FeedForward",
        "ShuffleIndices": False,
        "ScaledMarginalCrossEntropy": SMCE_1011,
        "Layers": [
            {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": True},
            {
                "Name": "Hidden1",
                "Kind": "Hidden",
                "Type": "FullyConnected",
                "Source": "Input",
                "N": units,
                "Activation": "Relu",
                "Sparse": False,
                "pDropout": 0.5,
                "WeightInit": gauss,
            },
            {
                "Name": "Hidden2",
                "Kind": "Hidden",
                "Type": "FullyConnected",
                "Source": ["Hidden1"],
                "N": units,
                "Activation": "Relu",
                "Sparse": False,
                "pDropout": 0.5,
                "WeightInit": gauss,
            },
            {
                "Name": "Output",
                "Kind": "Output",
                "Type": "FullyConnected",
                "DataSet": "output",
                "N": "auto",
                "Activation": "Sigmoid",
                "Sparse": True,
                "WeightInit": {"Scheme": "Gaussian", "Scale": 0.01, "Bias": -10.2},
            },
        ],
        "ErrorFunction": "ScaledMarginalCrossEntropy",
    }


def autoencoder(name: str, version: float, units: int, in_ds: str, out_ds: str, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"Version": version, "Name": name, "Kind": "FeedForward"}
    cfg.update(top)
    cfg["Layers"] = [
        {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": in_ds, "Sparse": True},
        {"Name": "Hidden1", "Kind": "Hidden", "Type": "FullyConnected", "N": units, "Activation": "Sigmoid",
         "Sparse": True},
        {"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "DataSet": out_ds, "N": "auto",
         "Activation": "Sigmoid", "Sparse": True},
    ]  # fmt: skip
    return cfg


def config_3() -> dict[str, Any]:
    return autoencoder(
        "AutoEncoder Test",
        0.7,
        128,
        "input",
        "input",
        SparsenessPenalty={"p": 0.5, "beta": 2.0},
        DeltaBoost={"one": 30.0, "zero": 1.0},
        ErrorFunction="CrossEntropy",
    )


def config_5() -> dict[str, Any]:
    return autoencoder(
        "One layer Sigmoid",
        0.8,
        256,
        "input",
        "output",
        ShuffleIndices=False,
        ScaledMarginalCrossEntropy=SMCE_10301,
        SparsenessPenalty={"p": 0.5, "beta": 2.0},
        Denoising={"p": 0.4},
        ErrorFunction="ScaledMarginalCrossEntropy",
    )


def config_6() -> dict[str, Any]:
    return autoencoder(
        "Denoising",
        0.7,
        256,
        "glinput",
        "gl_output",
        ShuffleIndices=False,
        ScaledMarginalCrossEntropy=SMCE_10301,
        SparsenessPenalty={"p": 0.5, "beta": 2.0},
        Denoising={"p": 0.28},
        ErrorFunction="ScaledMarginalCrossEntropy",
    )


def movielens() -> dict[str, Any]:
    cfg = config_1()
    cfg["Layers"][0]["DataSet"] = "gl_input"
    cfg["Layers"][2]["DataSet"] = "gl_output"
    return cfg


def benchmark() -> dict[str, Any]:
    hidden = [
        {"Name": f"Hidden{i}", "Kind": "Hidden", "Type": "FullyConnected", "N": 1024, "Activation": "Sigmoid",
         "pDropout": 0.5, "WeightInit": {"Scheme": "Gaussian", "Scale": 0.01}}
        for i in (1, 2, 3)
    ]  # fmt: skip
    return {
        "Version": 0.8,
        "Name": "Benchmark",
        "Kind": "FeedForward",
        "ShuffleIndices": False,
        "ScaledMarginalCrossEntropy": SMCE_1011,
        "Layers": [
            {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "gl_input", "Sparse": True},
            *hidden,
            {"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "DataSet": "gl_output",
             "N": "auto", "Activation": "Sigmoid", "Sparse": True,
             "WeightInit": {"Scheme": "Gaussian", "Scale": 0.01, "Bias": -10.2}},
        ],
        "ErrorFunction": "ScaledMarginalCrossEntropy",
    }  # fmt: skip


def validate(name: str, layers: list[dict[str, Any]], error: str, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"Version": 0.8, "Name": name, "Kind": "FeedForward", "ShuffleIndices": False}
    cfg.update(top)
    cfg["Layers"] = layers
    cfg["ErrorFunction"] = error
    return cfg


def v_input(n: int) -> dict[str, Any]:
    return {"Name": "Input", "Kind": "Input", "N": n, "DataSet": "input", "Sparse": True}


def v_output(n: int, source: Any, activation: str) -> dict[str, Any]:
    return {"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "DataSet": "output", "N": n,
            "Source": source, "Activation": activation, "Sparse": True}  # fmt: skip


def v_hidden(n: int, activation: str, **extra: Any) -> dict[str, Any]:
    layer = {"Name": "Hidden", "Kind": "Hidden", "Type": "FullyConnected", "Source": "Input", "N": n,
             "Activation": activation, "Sparse": True}  # fmt: skip
    layer.update(extra)
    return layer


def test_config_1_autoencoder_fields() -> None:
    d = parse_network(config_1())
    assert (d.version, d.name, d.kind) == (0.7, "AE", NetworkKind.FeedForward)
    assert d.error_function == ErrorFunction.ScaledMarginalCrossEntropy
    assert (d.sparseness_penalty_p, d.sparseness_penalty_beta, d.sparseness_penalty) == (0.5, 2.0, True)
    assert (d.denoising_p, d.denoising) == (0.2, True)
    assert d.shuffle_indices is False
    assert (d.smce_one_target, d.smce_zero_target, d.smce_one_scale, d.smce_zero_scale) == (
        1.0,
        0.0,
        1.0,
        1.0,
    )
    # untouched network defaults
    assert (d.lrn_k, d.lrn_n, d.lrn_alpha, d.lrn_beta, d.maxout_k) == (2.0, 5, 1e-4, 0.75, 2)
    assert (d.delta_boost_one, d.delta_boost_zero, d.decay) == (1.0, 1.0, 0.0)
    assert (d.relu_slope, d.elu_alpha, d.selu_lambda) == (1.0, 1.0, 1.050701)

    inp, hid, out = d.layers
    assert [layer.kind for layer in d.layers] == [LayerKind.Input, LayerKind.Hidden, LayerKind.Output]
    assert inp.auto_size and out.auto_size and not hid.auto_size
    assert (inp.dataset, out.dataset, hid.dataset) == ("input", "input", "")
    # Denoising marks only the Sparse *Input* layer
    assert inp.denoising and inp.attributes == LayerAttributes.Sparse | LayerAttributes.Denoising
    assert not out.denoising and out.attributes == LayerAttributes.Sparse
    assert hid.sparse and hid.attributes == LayerAttributes.Sparse
    assert (hid.nx, hid.stride, hid.dimensions, hid.activation) == (128, 128, 1, Activation.Sigmoid)
    assert inp.sources == () and hid.sources == ("Input",) and out.sources == ("Hidden",)
    assert d.weights == (
        WeightDescriptor("Input", "Hidden", False, False, "", "", 0.0),
        WeightDescriptor("Hidden", "Output", False, False, "", "", 0.0),
    )
    assert not d.resolved

    r = resolve_dimensions(d, {"input": DataShape(27278)})
    assert r.resolved
    assert (r.layers[0].nx, r.layers[0].stride, r.layers[0].auto_size) == (27278, 27278, False)
    assert r.layers[2].stride == 27278
    # the original descriptor is untouched
    assert d.layers[0].auto_size and d.layers[0].nx == 1


@pytest.mark.parametrize(("name", "units"), [("2 Hidden Layer", 1024), ("2 layer ReLu", 1536)])
def test_config_2_and_4_relu_dropout_gaussian(name: str, units: int) -> None:
    d = parse_network(two_hidden(name, units))
    assert d.name == name and d.version == 0.8 and d.shuffle_indices is False
    assert not d.denoising and not d.sparseness_penalty
    _, h1, h2, out = d.layers
    for h in (h1, h2):
        assert h.nx == units and h.activation == Activation.RectifiedLinear
        assert h.p_dropout == 0.5 and not h.sparse
        assert h.weight_init == WeightInitDescriptor(WeightInit.Gaussian, 0.01, 0.0)
    assert h1.sources == ("Input",) and h2.sources == ("Hidden1",)
    assert out.weight_init == WeightInitDescriptor(WeightInit.Gaussian, 0.01, -10.2)
    assert out.sparse and out.dataset == "output"
    assert [(w.input_layer, w.output_layer) for w in d.weights] == [
        ("Input", "Hidden1"),
        ("Hidden1", "Hidden2"),
        ("Hidden2", "Output"),
    ]
    r = resolve_dimensions(d, {"input": DataShape(1000), "output": DataShape(500)})
    assert (r.layers[0].nx, r.layers[3].nx) == (1000, 500)


def test_config_3_cross_entropy_delta_boost_default_shuffle() -> None:
    d = parse_network(config_3())
    assert d.error_function == ErrorFunction.CrossEntropy
    assert (d.delta_boost_one, d.delta_boost_zero) == (30.0, 1.0)
    assert d.shuffle_indices is True  # default
    assert d.sparseness_penalty and not d.denoising
    assert not d.layers[0].denoising and d.layers[0].attributes == LayerAttributes.Sparse
    # SMCE parameters keep their defaults
    assert (d.smce_one_target, d.smce_zero_target, d.smce_one_scale, d.smce_zero_scale) == (
        0.9,
        0.1,
        1.0,
        1.0,
    )


def test_config_5_one_scale_30_and_denoising() -> None:
    d = parse_network(config_5())
    assert d.smce_one_scale == 30.0 and d.smce_zero_scale == 1.0
    assert d.denoising_p == 0.4 and d.layers[0].denoising
    assert d.layers[1].nx == 256


def test_config_6_and_movielens_dataset_names() -> None:
    d6 = parse_network(config_6())
    assert d6.denoising_p == pytest.approx(0.28)
    assert (d6.layers[0].dataset, d6.layers[2].dataset) == ("glinput", "gl_output")
    r6 = resolve_dimensions(d6, {"glinput": DataShape(100), "gl_output": DataShape(80)})
    assert (r6.layers[0].nx, r6.layers[2].nx) == (100, 80)

    m = parse_network(movielens())
    assert (m.name, m.version, m.shuffle_indices, m.denoising_p) == ("AE", 0.7, False, 0.2)
    rm = resolve_dimensions(m, {"gl_input": DataShape(27278), "gl_output": DataShape(27278)})
    assert [layer.stride for layer in rm.layers] == [27278, 128, 27278]


def test_benchmark_config() -> None:
    d = parse_network(benchmark())
    assert [layer.name for layer in d.layers] == ["Input", "Hidden1", "Hidden2", "Hidden3", "Output"]
    assert all(layer.p_dropout == 0.5 and layer.nx == 1024 for layer in d.layers[1:4])
    # default Source = previous layer
    assert [w.input_layer for w in d.weights] == ["Input", "Hidden1", "Hidden2", "Hidden3"]
    assert d.layers[4].weight_init.bias == -10.2


def test_validate_l2_networks() -> None:
    l2_01 = parse_network(validate("L2 1d regression", [v_input(1), v_output(1, "Input", "Linear")], "L2"))
    assert l2_01.error_function == ErrorFunction.L2
    assert [(w.input_layer, w.output_layer) for w in l2_01.weights] == [("Input", "Output")]
    assert l2_01.layers[1].activation == Activation.Linear

    # Hidden layer exists but the Output is fed from the Input
    l2_02 = parse_network(
        validate(
            "L2 1d regression", [v_input(1), v_hidden(4, "Sigmoid"), v_output(1, ["Input"], "Linear")], "L2"
        )
    )
    assert [(w.input_layer, w.output_layer) for w in l2_02.weights] == [
        ("Input", "Hidden"),
        ("Input", "Output"),
    ]
    assert l2_02.layers[1].sparse and l2_02.layers[1].nx == 4


@pytest.mark.parametrize("slope", [0.0, 0.5])
def test_validate_lrelu_slope(slope: float) -> None:
    cfg = validate(
        "L2 1d regression",
        [v_input(2), v_hidden(2, "LRelu", Slope=slope), v_output(2, ["Input"], "Linear")],
        "L2",
    )
    d = parse_network(cfg)
    hidden, output = d.layers[1], d.layers[2]
    assert hidden.activation == Activation.LeakyRectifiedLinear
    assert hidden.relu_slope == slope
    assert output.relu_slope == 1.0  # inherited network default (the original's quirk)
    assert (hidden.elu_alpha, hidden.selu_lambda) == (1.0, 1.050701)


def test_validate_smce_and_dsmce() -> None:
    smce_01 = parse_network(
        validate("ScaledMarginalCrossEntropy", [v_input(2), v_output(2, "Input", "Sigmoid")],
                 "ScaledMarginalCrossEntropy", ScaledMarginalCrossEntropy=SMCE_10301)
    )  # fmt: skip
    assert smce_01.error_function == ErrorFunction.ScaledMarginalCrossEntropy
    assert (smce_01.smce_one_target, smce_01.smce_zero_target) == (1.0, 0.0)
    assert (smce_01.smce_one_scale, smce_01.smce_zero_scale) == (30.0, 1.0)

    layers = [v_input(2), v_hidden(2, "Sigmoid"), v_output(2, ["Hidden"], "Sigmoid")]
    smce_02 = parse_network(
        validate("ScaledMarginalCrossEntropy", copy.deepcopy(layers), "ScaledMarginalCrossEntropy",
                 ScaledMarginalCrossEntropy=SMCE_10301)
    )  # fmt: skip
    dsmce_02 = parse_network(
        validate("DataScaledMarginalCrossEntropy", copy.deepcopy(layers), "DataScaledMarginalCrossEntropy",
                 DataScaledMarginalCrossEntropy=SMCE_10301)
    )  # fmt: skip
    assert dsmce_02.error_function == ErrorFunction.DataScaledMarginalCrossEntropy
    # both keys write the same four parameters
    for attr in ("smce_one_target", "smce_zero_target", "smce_one_scale", "smce_zero_scale"):
        assert getattr(dsmce_02, attr) == getattr(smce_02, attr)
    assert [(w.input_layer, w.output_layer) for w in dsmce_02.weights] == [
        ("Input", "Hidden"),
        ("Hidden", "Output"),
    ]


# ---------------------------------------------------------------------------------------------------------
# CIFAR-like convolutional network and resolve_dimensions (§1.5, §9.3)
# ---------------------------------------------------------------------------------------------------------


def cifar() -> dict[str, Any]:
    def conv(name: str, n: int, k: int) -> dict[str, Any]:
        return {"Name": name, "Kind": "Hidden", "Type": "Convolutional", "N": n, "Kernel": [k, k],
                "KernelStride": [1, 1], "Activation": "Linear",
                "WeightInit": {"Scheme": "Gaussian", "Scale": 0.02, "Bias": 0.0}}  # fmt: skip

    def pool(name: str, k: int) -> dict[str, Any]:
        return {"Name": name, "Kind": "Hidden", "Type": "Pooling", "Function": "Max", "Kernel": [k, k],
                "KernelStride": [2, 2]}  # fmt: skip

    return {
        "Version": 0.81,
        "Name": "CIFAR-100",
        "Kind": "FeedForward",
        "LocalResponseNormalization": {"k": 2, "n": 5, "alpha": 0.0001, "beta": 0.75},
        "Layers": [
            {"Name": "Input", "Kind": "Input", "Type": "Convolutional", "N": "auto", "DataSet": "input"},
            conv("C1", 128, 7), conv("C1a", 128, 7), pool("P1", 4),
            conv("C2", 128, 7), conv("C2a", 128, 7), pool("P2", 4),
            conv("C3", 96, 5), conv("C3a", 96, 5), pool("P3", 2),
            {"Kind": "Hidden", "Type": "FullyConnected", "BatchNormalization": True, "N": 1024,
             "Activation": "Relu", "pDropout": 0.5},
            {"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "N": "auto", "DataSet": "output",
             "Activation": "SoftMax", "WeightInit": {"Scheme": "Gaussian", "Scale": 0.01, "Bias": 0.0}},
        ],
        "ErrorFunction": "CrossEntropy",
    }  # fmt: skip


def test_cifar_parse_before_resolve() -> None:
    d = parse_network(cifar())
    assert (d.lrn_k, d.lrn_n, d.lrn_alpha, d.lrn_beta) == (2.0, 5, 0.0001, 0.75)
    c1 = d.layer("C1")
    assert c1.type == LayerType.Convolutional and c1.kernel == (7, 7, 1) and c1.kernel_dimensions == 2
    assert c1.kernel_stride == (1, 1, 1) and c1.nx == 128 and not c1.derived
    p1 = d.layer("P1")
    assert p1.pooling_function == PoolingFunction.Max and p1.kernel_stride == (2, 2, 1)
    fc = d.layers[10]
    assert fc.name == "Hidden10" and fc.sources == ("P3",) and fc.batch_normalization
    assert fc.attributes == LayerAttributes.BatchNormalization
    # Pooling layers have no weights; conv and FC layers one per source
    assert [w.output_layer for w in d.weights] == [
        "C1",
        "C1a",
        "C2",
        "C2a",
        "C3",
        "C3a",
        "Hidden10",
        "Output",
    ]
    assert [w.input_layer for w in d.weights] == ["Input", "C1", "P1", "C2", "P2", "C3", "P3", "Hidden10"]
    assert not d.resolved


def test_cifar_resolve_derives_conv_and_pool_dims() -> None:
    d = parse_network(cifar())
    r = resolve_dimensions(d, {"input": DataShape(32, 32, 3, 3), "output": DataShape(100)})
    assert r.resolved
    dims = {layer.name: (layer.nx, layer.ny, layer.nz, layer.nw, layer.dimensions) for layer in r.layers}
    assert dims["Input"] == (32, 32, 3, 1, 3)
    assert dims["C1"] == (32, 32, 128, 1, 3)  # stride 1 keeps size; N -> Nz for a 2-D kernel
    assert dims["C1a"] == (32, 32, 128, 1, 3)
    assert dims["P1"] == (15, 15, 128, 1, 3)  # (32 - 4) / 2 + 1
    assert dims["P2"] == (6, 6, 128, 1, 3)  # (15 - 4) / 2 + 1
    assert dims["C3"] == (6, 6, 96, 1, 3)
    assert dims["P3"] == (3, 3, 96, 1, 3)  # (6 - 2) / 2 + 1
    assert dims["Hidden10"] == (1024, 1, 1, 1, 1)
    assert dims["Output"] == (100, 1, 1, 1, 1)
    assert r.layer("C1").kernel_padding == (3, 3, 0)  # kernel/2 when stride 1
    assert r.layer("C3").kernel_padding == (2, 2, 0)
    assert r.layer("P1").kernel_padding == (0, 0, 0)  # stride 2, source >= kernel
    assert r.layer("P1").stride == 15 * 15 * 128
    # resolving again is a no-op
    assert resolve_dimensions(r, {}) == r


def test_conv_without_auto_is_derived_at_parse_time() -> None:
    cfg = net(
        [
            {"Kind": "Input", "N": [8, 8, 2]},
            {"Kind": "Hidden", "Type": "Convolutional", "N": 4, "Kernel": [3, 3], "KernelStride": [2, 2]},
            {"Kind": "Hidden", "Type": "Pooling", "Function": "Average", "Kernel": [2, 2], "KernelStride": 2},
            {"Kind": "Output", "N": 10},
        ]
    )
    d = parse_network(cfg)
    assert d.resolved
    conv, pool = d.layers[1], d.layers[2]
    assert (conv.nx, conv.ny, conv.nz, conv.dimensions, conv.derived) == (3, 3, 4, 3, True)  # (8-3)/2+1
    assert conv.kernel_padding == (0, 0, 0)
    assert pool.kernel_stride == (2, 1, 1)  # int stride sets X only
    # X: (3 - 2) // 2 + 1 = 1; Y has stride 1 so keeps 3; Z keeps the 4 feature maps
    assert (pool.nx, pool.ny, pool.nz, pool.dimensions) == (1, 3, 4, 3)


def test_conv_kernel_dimensions_place_feature_maps() -> None:
    one_d = parse_network(net([
        {"Kind": "Input", "N": 20},
        {"Kind": "Hidden", "Type": "Convolutional", "N": 6, "Kernel": 5},
        {"Kind": "Output", "N": 1},
    ]))  # fmt: skip
    c = one_d.layers[1]
    assert (c.nx, c.ny, c.nz, c.nw, c.dimensions, c.kernel_dimensions) == (20, 6, 1, 1, 2, 1)
    assert c.kernel_padding == (2, 0, 0)

    three_d = parse_network(net([
        {"Kind": "Input", "N": [10, 10, 10]},
        {"Kind": "Hidden", "Type": "Convolutional", "N": 7, "Kernel": [3, 3, 3]},
        {"Kind": "Output", "N": 1},
    ]))  # fmt: skip
    c = three_d.layers[1]
    assert (c.nx, c.ny, c.nz, c.nw, c.dimensions) == (10, 10, 10, 7, 4)
    assert c.kernel_padding == (1, 1, 1)


def test_small_source_padding_and_size_one() -> None:
    d = parse_network(net([
        {"Kind": "Input", "N": [3, 3]},
        {"Kind": "Hidden", "Type": "Pooling", "Function": "Max", "Kernel": [5, 5], "KernelStride": [2, 2]},
        {"Kind": "Output", "N": 1},
    ]))  # fmt: skip
    p = d.layers[1]
    assert (p.nx, p.ny, p.dimensions) == (1, 1, 2)  # width <= kernel -> 1
    assert p.kernel_padding == (1, 1, 0)  # (5 - 3 + 1) // 2


def test_lrn_and_maxout_pooling_keep_source_dims() -> None:
    d = parse_network(net([
        {"Name": "A", "Kind": "Input", "N": [4, 4, 8]},
        {"Name": "B", "Kind": "Input", "N": [4, 4, 8]},
        {"Name": "L", "Kind": "Hidden", "Type": "Pooling", "Function": "LocalResponseNormalization",
         "Source": "A"},
        {"Name": "M", "Kind": "Hidden", "Type": "Pooling", "Function": "maxout", "Source": ["L", "B"]},
        {"Name": "O", "Kind": "Output", "N": 2},
    ]))  # fmt: skip
    lrn, maxout = d.layer("L"), d.layer("M")
    assert lrn.pooling_function == PoolingFunction.LRN
    assert (lrn.nx, lrn.ny, lrn.nz, lrn.dimensions) == (4, 4, 8, 3)
    assert maxout.pooling_function == PoolingFunction.Maxout
    assert (maxout.stride, maxout.dimensions) == (128, 3)
    assert [w.output_layer for w in d.weights] == ["O"]
    assert d.input_layers == (d.layer("A"), d.layer("B"))
    assert d.output_layers == (d.layer("O"),)


@pytest.mark.parametrize("function", ["DotProduct", "Cosine"])
def test_dot_product_and_cosine_pooling(function: str) -> None:
    d = parse_network(net([
        {"Name": "A", "Kind": "Input", "N": 5},
        {"Name": "B", "Kind": "Input", "N": 5},
        {"Name": "C", "Kind": "Input", "N": 5},
        {"Name": "D", "Kind": "Hidden", "Type": "Pooling", "Function": function, "Source": ["A", "B", "C"]},
        {"Name": "O", "Kind": "Output", "N": 1, "Type": "Pooling", "Function": function,
         "Source": ["A", "B"]},
    ]))  # fmt: skip
    assert (d.layer("D").nx, d.layer("D").stride, d.layer("D").dimensions) == (2, 2, 1)
    assert d.layer("O").nx == 1
    assert d.weights == ()


def test_dot_product_inconsistent_sources() -> None:
    cfg = net([
        {"Name": "A", "Kind": "Input", "N": 5},
        {"Name": "B", "Kind": "Input", "N": 6},
        {"Name": "D", "Kind": "Hidden", "Type": "Pooling", "Function": "DotProduct", "Source": ["A", "B"]},
        {"Name": "O", "Kind": "Output", "N": 1},
    ])  # fmt: skip
    fails(cfg, "layer 'D' (index 2)", "Inconsistent incoming data size")


def test_conv_inconsistent_sources_after_resolve() -> None:
    cfg = net([
        {"Name": "A", "Kind": "Input", "N": "auto", "DataSet": "a"},
        {"Name": "B", "Kind": "Input", "N": [8, 8]},
        {"Name": "C", "Kind": "Hidden", "Type": "Convolutional", "N": 2, "Kernel": [3, 3],
         "Source": ["A", "B"]},
        {"Name": "O", "Kind": "Output", "N": 1},
    ])  # fmt: skip
    d = parse_network(cfg)
    assert not d.layer("C").derived
    assert resolve_dimensions(d, {"a": DataShape(8, 8, 1, 2)}).layer("C").stride == 8 * 8 * 2
    with pytest.raises(ConfigError, match=r"layer 'C' \(index 2\).*Inconsistent incoming data size"):
        resolve_dimensions(d, {"a": DataShape(9, 8, 1, 2)})


def test_maxout_sources_must_match() -> None:
    cfg = net([
        {"Name": "A", "Kind": "Input", "N": 4},
        {"Name": "B", "Kind": "Input", "N": 5},
        {"Name": "O", "Kind": "Output", "Type": "Pooling", "Function": "Maxout", "N": 4,
         "Source": ["A", "B"]},
    ])  # fmt: skip
    fails(cfg, "layer 'O' (index 2)", "key 'Source'", "All source layer dimensions must match")


# ---------------------------------------------------------------------------------------------------------
# resolve_dimensions errors
# ---------------------------------------------------------------------------------------------------------


def test_resolve_missing_dataset_names_layer_and_dataset(tmp_path: pathlib.Path) -> None:
    d = parse_network(write(tmp_path, config_1()))
    with pytest.raises(ConfigError) as info:
        resolve_dimensions(d, {"other": DataShape(3)})
    msg = str(info.value)
    assert "config.json" in msg and "layer 'Input' (index 0)" in msg and "'input'" in msg and "'other'" in msg


def test_resolve_copies_all_shape_fields_and_accepts_duck_types() -> None:
    class Shape:
        width, height, length, dimensions = 4, 3, 2, 3

    d = parse_network(simple(Input={"N": "auto"}))
    r = resolve_dimensions(d, {"input": Shape()})
    assert (r.layers[0].nx, r.layers[0].ny, r.layers[0].nz, r.layers[0].nw, r.layers[0].dimensions) == (
        4,
        3,
        2,
        1,
        3,
    )
    with pytest.raises(ConfigError, match="invalid width"):
        resolve_dimensions(
            d, {"input": type("S", (), {"width": 0, "height": 1, "length": 1, "dimensions": 1})()}
        )


def test_resolve_skip_size_checked_after_resolve() -> None:
    cfg = net([
        {"Name": "In", "Kind": "Input", "N": "auto", "DataSet": "x"},
        {"Name": "H", "Kind": "Hidden", "N": 6},
        {"Name": "Out", "Kind": "Output", "N": "auto", "DataSet": "x", "Source": "H", "Skip": "In"},
    ])  # fmt: skip
    d = parse_network(cfg)
    assert d.layer("Out").skips == ("In",)
    assert resolve_dimensions(d, {"x": DataShape(7)}).layer("Out").stride == 7
    # an explicit size on the skipping layer is only checked once the skipped one is resolved
    d2 = parse_network(_with(cfg, 2, N=7))
    assert resolve_dimensions(d2, {"x": DataShape(7)}).layer("Out").stride == 7
    with pytest.raises(
        ConfigError, match=r"layer 'Out' \(index 2\): key 'Skip': Layer dimensions do not match"
    ):
        resolve_dimensions(d2, {"x": DataShape(8)})


def _with(cfg: dict[str, Any], index: int, **values: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    cfg["Layers"][index].update(values)
    return cfg


def test_skip_size_checked_at_parse_when_known() -> None:
    cfg = simple(Output={"Skip": "Hidden"})
    fails(cfg, "layer 'Output' (index 2)", "key 'Skip'", "'Hidden' has 3 units", "'Output' has 4")
    ok = parse_network(simple(Output={"Skip": "Input"}))
    assert ok.layer("Output").skips == ("Input",)


def test_data_shape_validation() -> None:
    assert DataShape(5) == DataShape(5, 1, 1, 1)
    with pytest.raises(ConfigError):
        DataShape(0)
    with pytest.raises(ConfigError):
        DataShape(3, dimensions=5)


# ---------------------------------------------------------------------------------------------------------
# Sources of input: path, PathLike, JSON text, mapping; JSON-level errors
# ---------------------------------------------------------------------------------------------------------


def test_all_source_forms_agree(tmp_path: pathlib.Path) -> None:
    cfg = config_1()
    path = write(tmp_path, cfg)
    from_path = parse_network(path)
    from_str = parse_network(str(path))
    from_text = parse_network("  \n" + json.dumps(cfg))
    from_dict = parse_network(cfg)
    assert from_path == from_str == from_text == from_dict
    assert from_path.path == str(path) and from_text.path == ""


def test_malformed_json_reports_file_line_and_column(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, '{\n  "Version": 0.8,\n  "Layers": [ }\n')
    msg = fails(path, "config.json", "line 3", "column")
    assert "invalid JSON" in msg
    fails('{"Version": 0.8,,}', "invalid JSON", "line 1 column 17")


def test_non_standard_json_constants_rejected() -> None:
    fails('{"Version": NaN, "Layers": []}', "NaN")
    fails('{"Decay": Infinity, "Layers": []}', "Infinity")


def test_missing_file_and_bad_top_level(tmp_path: pathlib.Path) -> None:
    fails(tmp_path / "nope.json", "nope.json", "cannot read")
    fails(write(tmp_path, "[1, 2]", "arr.json"), "arr.json", "must be a JSON object")
    fails(12, "file path")  # type: ignore[arg-type]


def test_duplicate_json_key_rejected(tmp_path: pathlib.Path) -> None:
    text = '{"Version": 0.8, "Layers": [{"N": 1, "N": 2}, {"N": 1}]}'
    fails(text, "layer 'Input0' (index 0)", "key 'N'", "given twice")
    fails('{"Name": "a", "name": "b", "Layers": []}', "key 'name'", "'Name' and 'name'")


def test_alias_pairs_given_together_rejected() -> None:
    fails(simple(RELUSlope=0.1, Slope=0.2), "key 'Slope'", "'RELUSlope' and 'Slope'")
    fails(
        simple(LRN={"k": 2}, LocalResponseNormalization={"k": 2}), "LocalResponseNormalization", "given twice"
    )


# ---------------------------------------------------------------------------------------------------------
# Case-insensitivity and aliases
# ---------------------------------------------------------------------------------------------------------


def test_keys_and_values_case_insensitive() -> None:
    cfg = {
        "VERSION": 0.8,
        "name": "x",
        "kInD": "AUTOENCODER",
        "sparsenessPENALTY": {"P": 0.25, "BETA": 1.5},
        "deltaboost": {"ONE": 2.0, "Zero": 0.5},
        "SCALEDMARGINALCROSSENTROPY": {"ONETARGET": 0.8, "zerotarget": 0.2, "OneScale": 2, "ZEROSCALE": 3},
        "shuffleindices": False,
        "errorfunction": "CROSS ENTROPY",
        "lAyErS": [
            {"kind": "INPUT", "n": 3, "DATASET": "in", "SPARSE": True},
            {"KIND": "hidden", "TYPE": "fullyconnected", "n": 2, "ACTIVATION": "sElU", "SELULAMBDA": 1.1,
             "WEIGHTINIT": {"SCHEME": "caffexavier", "SCALE": 2, "BIAS": 0.5}, "pdropout": 0.1},
            {"KIND": "OUTPUT", "N": 3, "dataset": "out", "activation": "SOFTMAX", "WEIGHTNORM": 2.5,
             "DELTANORM": 1.5},
        ],
    }  # fmt: skip
    d = parse_network(cfg)
    assert d.kind == NetworkKind.AutoEncoder and d.error_function == ErrorFunction.CrossEntropy
    assert (d.sparseness_penalty_p, d.sparseness_penalty_beta) == (0.25, 1.5)
    assert (d.delta_boost_one, d.delta_boost_zero) == (2.0, 0.5)
    assert (d.smce_one_target, d.smce_zero_target, d.smce_one_scale, d.smce_zero_scale) == (
        0.8,
        0.2,
        2.0,
        3.0,
    )
    h = d.layers[1]
    assert h.activation == Activation.ScaledExponentialLinear and h.selu_lambda == 1.1 and h.p_dropout == 0.1
    assert h.weight_init == WeightInitDescriptor(WeightInit.CaffeXavier, 2.0, 0.5)
    o = d.layers[2]
    assert (o.activation, o.weight_norm, o.delta_norm, o.dataset) == (Activation.SoftMax, 2.5, 1.5, "out")
    assert d.weights[1].norm == 2.5 and d.weights[0].norm == 0.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Sigmoid", Activation.Sigmoid),
        ("Tanh", Activation.Tanh),
        ("Linear", Activation.Linear),
        ("Relu", Activation.RectifiedLinear),
        ("RectifiedLinear", Activation.RectifiedLinear),
        ("LRelu", Activation.LeakyRectifiedLinear),
        ("LeakyRectifiedLinear", Activation.LeakyRectifiedLinear),
        ("Elu", Activation.ExponentialLinear),
        ("ExponentialLinear", Activation.ExponentialLinear),
        ("Selu", Activation.ScaledExponentialLinear),
        ("ScaledExponentialLinear", Activation.ScaledExponentialLinear),
        ("SoftPlus", Activation.SoftPlus),
        ("SoftSign", Activation.SoftSign),
        ("SoftMax", Activation.SoftMax),
        ("ReluMax", Activation.RELUMax),
        ("LinearMax", Activation.LinearMax),
        ("softmax", Activation.SoftMax),
    ],
)
def test_activation_names(name: str, expected: Activation) -> None:
    assert parse_network(simple(Hidden={"Activation": name})).layers[1].activation == expected


def test_parametric_relu_has_no_json_name() -> None:
    fails(simple(Hidden={"Activation": "ParametricRectifiedLinear"}), "layer 'Hidden' (index 1)",
          "key 'Activation'", "invalid activation 'ParametricRectifiedLinear'")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("L1", ErrorFunction.L1),
        ("L2", ErrorFunction.L2),
        ("L2Hinge", ErrorFunction.L2Hinge),
        ("Hinge", ErrorFunction.Hinge),
        ("CrossEntropy", ErrorFunction.CrossEntropy),
        ("cross entropy", ErrorFunction.CrossEntropy),
        ("ScaledMarginalCrossEntropy", ErrorFunction.ScaledMarginalCrossEntropy),
        ("DataScaledMarginalCrossEntropy", ErrorFunction.DataScaledMarginalCrossEntropy),
    ],
)
def test_error_function_names(name: str, expected: ErrorFunction) -> None:
    assert parse_network(simple(ErrorFunction=name)).error_function == expected


def test_default_error_function_is_cross_entropy() -> None:
    assert parse_network(simple()).error_function == ErrorFunction.CrossEntropy


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Xavier", WeightInit.Xavier),
        ("CaffeXavier", WeightInit.CaffeXavier),
        ("Gaussian", WeightInit.Gaussian),
        ("Uniform", WeightInit.Uniform),
        ("UnitBall", WeightInit.UnitBall),
        ("Constant", WeightInit.Constant),
        ("SELU", WeightInit.SELU),
    ],
)
def test_weight_init_schemes(name: str, expected: WeightInit) -> None:
    layer = parse_network(simple(Hidden={"WeightInit": {"Scheme": name}})).layers[1]
    assert layer.weight_init == WeightInitDescriptor(expected, 1.0, 0.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Max", PoolingFunction.Max),
        ("Average", PoolingFunction.Average),
        ("LRN", PoolingFunction.LRN),
        ("LocalResponseNormalization", PoolingFunction.LRN),
        ("Maxout", PoolingFunction.Maxout),
    ],
)
def test_pooling_function_names(name: str, expected: PoolingFunction) -> None:
    d = parse_network(simple(Hidden={"Type": "Pooling", "Function": name}))
    assert d.layers[1].pooling_function == expected
    assert [w.output_layer for w in d.weights] == ["Output"]


@pytest.mark.parametrize("name", ["Stochastic", "LCN", "GlobalTemporal", "min"])
def test_unparseable_pooling_functions(name: str) -> None:
    fails(simple(Hidden={"Type": "Pooling", "Function": name}), "key 'Function'", f"'{name}'")


def test_network_lrn_maxout_and_slopes() -> None:
    d = parse_network(simple(LRN={"K": 1.5, "N": 3, "Alpha": 0.01, "Beta": 0.5}, MaxOut={"k": 4},
                             Slope=0.2, ELUAlpha=0.7, SELULambda=1.2, Decay=0.01, WeightsData="w.nc",
                             Hidden={"ELUAlpha": 0.3}))  # fmt: skip
    assert (d.lrn_k, d.lrn_n, d.lrn_alpha, d.lrn_beta, d.maxout_k) == (1.5, 3, 0.01, 0.5, 4)
    assert (d.relu_slope, d.elu_alpha, d.selu_lambda, d.decay) == (0.2, 0.7, 1.2, 0.01)
    # every layer inherits what it does not set; Input layers too
    assert [layer.relu_slope for layer in d.layers] == [0.2, 0.2, 0.2]
    assert [layer.elu_alpha for layer in d.layers] == [0.7, 0.3, 0.7]
    assert [layer.selu_lambda for layer in d.layers] == [1.2, 1.2, 1.2]
    assert not any(math.isnan(layer.relu_slope) for layer in d.layers)
    assert parse_network(simple(RELUSlope=0.05, Hidden={"RELUSlope": 0.3})).layers[1].relu_slope == 0.3


# ---------------------------------------------------------------------------------------------------------
# Layer defaults
# ---------------------------------------------------------------------------------------------------------


def test_positional_defaults_names_and_sources() -> None:
    d = parse_network(net([{"N": 5}, {"N": 4}, {"N": 3}, {"N": 5}]))
    assert [layer.kind for layer in d.layers] == [LayerKind.Input, LayerKind.Hidden, LayerKind.Hidden,
                                                  LayerKind.Output]  # fmt: skip
    assert [layer.name for layer in d.layers] == ["Input0", "Hidden1", "Hidden2", "Output3"]
    assert [layer.sources for layer in d.layers] == [(), ("Input0",), ("Hidden1",), ("Hidden2",)]
    h = d.layers[1]
    assert h.type == LayerType.FullyConnected and h.activation == Activation.Sigmoid
    assert (h.kernel, h.kernel_stride, h.kernel_padding, h.kernel_dimensions) == (
        (1, 1, 1),
        (1, 1, 1),
        (0, 0, 0),
        1,
    )
    assert (h.p_dropout, h.weight_norm, h.delta_norm, h.sparseness_penalty_p, h.sparseness_penalty_beta) == (
        0.0, 0.0, 0.0, 0.0, 0.0)  # fmt: skip
    assert h.weight_init == WeightInitDescriptor() and h.shared_weights == () and h.skips == ()
    assert h.pooling_function == PoolingFunction.NONE and h.attributes == LayerAttributes.NONE
    assert d.version == 0.8 and parse_network({"Layers": [{"N": 1}, {"N": 1}]}).version == pytest.approx(0.9)


def test_default_name_uses_explicit_kind_and_index() -> None:
    d = parse_network(net([{"N": 2}, {"Kind": "Output", "N": 2}, {"Kind": "Target", "N": 2}]))
    assert [layer.name for layer in d.layers] == ["Input0", "Output1", "Target2"]
    assert d.layers[2].kind == LayerKind.Target and d.layers[2].sources == ("Output1",)
    assert [(w.input_layer, w.output_layer) for w in d.weights] == [
        ("Input0", "Output1"),
        ("Output1", "Target2"),
    ]


def test_layers_may_be_a_single_object() -> None:
    fails(net({"N": 3, "Bogus": 1}), "layer 'Input0' (index 0)", "unknown key 'Bogus'")
    fails(net({"N": 3}), "no Output layer")


def test_kind_and_type_read_before_other_keys() -> None:
    # keys listed before Kind/Type are judged by the declared Kind/Type
    d = parse_network(net([
        {"N": 2},
        {"Activation": "Tanh", "Kind": "Hidden", "N": 2},
        {"Function": "Max", "Type": "Pooling"},
        {"N": 2, "Kind": "Output"},
    ]))  # fmt: skip
    assert d.layers[1].activation == Activation.Tanh
    assert d.layers[2].pooling_function == PoolingFunction.Max
    # DataSet listed before Kind Hidden on the last layer: rejected as for the original
    fails(net([{"N": 2}, {"N": 2, "Kind": "Output"}, {"DataSet": "x", "Kind": "Hidden", "N": 2}]),
          "layer 'Hidden2' (index 2)", "unknown key 'DataSet'")  # fmt: skip


def test_sparse_hidden_and_output_layers_are_not_denoising() -> None:
    d = parse_network(simple(Denoising={"p": 0.5}, Hidden={"Sparse": True}, Output={"Sparse": True}))
    assert [layer.denoising for layer in d.layers] == [True, False, False]
    d2 = parse_network(simple(Denoising={"p": 0.5}, Input={"Sparse": False}))
    assert not d2.layers[0].denoising and d2.denoising


def test_layer_sparseness_penalty_override() -> None:
    h = parse_network(simple(Hidden={"SparsenessPenalty": {"p": 0.1, "Beta": 3}})).layers[1]
    assert (h.sparseness_penalty_p, h.sparseness_penalty_beta) == (0.1, 3.0)


def test_n_array_and_kernel_forms() -> None:
    d = parse_network(
        simple(Input={"N": [2, 3, 4, 5]}, Hidden={"N": [6, 7], "Kernel": [3, 2], "KernelStride": 2})
    )
    i, h = d.layers[0], d.layers[1]
    assert (i.nx, i.ny, i.nz, i.nw, i.dimensions, i.stride) == (2, 3, 4, 5, 4, 120)
    assert (h.nx, h.ny, h.dimensions, h.kernel, h.kernel_dimensions, h.kernel_stride) == (
        6, 7, 2, (3, 2, 1), 2, (2, 1, 1))  # fmt: skip
    assert parse_network(simple(Hidden={"N": 12.0})).layers[1].nx == 12


def test_shared_weights_descriptors() -> None:
    cfg = net([
        {"Name": "In", "Kind": "Input", "N": 10},
        {"Name": "Enc", "Kind": "Hidden", "N": 4},
        {"Name": "Out", "Kind": "Output", "N": 10,
         "SharedWeights": {"SourceInputLayer": "In", "SourceOutputLayer": "Enc", "InputLayer": "Enc",
                           "Transposed": True}},
    ])  # fmt: skip
    d = parse_network(cfg)
    assert d.layer("Out").shared_weights == (SharedWeightDescriptor("In", "Enc", "Enc", True),)
    assert d.weights[1] == WeightDescriptor("Enc", "Out", True, True, "In", "Enc", 0.0)
    assert d.weights[0] == WeightDescriptor("In", "Enc")

    # array form, case-insensitive sub-keys, untransposed sharing with equal sizes
    cfg2 = net([
        {"Name": "A", "Kind": "Input", "N": 3},
        {"Name": "B", "Kind": "Input", "N": 3},
        {"Name": "H", "Kind": "Hidden", "N": 2, "Source": "A"},
        {"Name": "O", "Kind": "Output", "N": 2, "Source": ["B"],
         "sharedweights": [{"sourceinputlayer": "A", "SOURCEOUTPUTLAYER": "H", "InputLayer": "B"}]},
    ])  # fmt: skip
    w = parse_network(cfg2).weights[1]
    assert (w.shared, w.transposed, w.source_input_layer, w.source_output_layer) == (True, False, "A", "H")


# ---------------------------------------------------------------------------------------------------------
# Failing cases: every message names the layer and the key
# ---------------------------------------------------------------------------------------------------------


def test_unknown_layer_key_message_format(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, simple(Hidden={"Activaton": "Relu"}))
    msg = fails(path, "unknown key 'Activaton'")
    assert msg.startswith(f"{path}: layer 'Hidden' (index 1): unknown key 'Activaton'")
    assert "did you mean 'Activation'" in msg


def test_unknown_network_key() -> None:
    fails(simple(Epochs=3), "unknown key 'Epochs'")
    fails(simple(Layer=[]), "unknown key 'Layer'", "did you mean 'Layers'")


@pytest.mark.parametrize(
    ("layer", "key"),
    [
        ("Hidden", {"DataSet": "x"}),
        ("Input", {"Activation": "Relu"}),
        ("Input", {"Source": "Output"}),
        ("Input", {"Kernel": 3}),
        ("Input", {"KernelStride": 3}),
        ("Input", {"Skip": "Hidden"}),
        ("Input", {"WeightInit": {"Scheme": "Xavier"}}),
        ("Input", {"WeightNorm": 1.0}),
        ("Input", {"RELUSlope": 0.1}),
        ("Output", {"BatchNormalization": True}),
        ("Output", {"SparsenessPenalty": {"p": 0.1}}),
        ("Input", {"BatchNormalization": True}),
        ("Hidden", {"Function": "Max"}),  # not a Pooling layer
        ("Hidden", {"Padding": 1}),
        ("Hidden", {"Recurrent": True}),
        ("Hidden", {"L1Penalty": 0.1}),
        ("Hidden", {"Target": "x"}),
        ("Hidden", {"ErrorFunction": "L2"}),
        ("Hidden", {"Dimensions": 2}),
    ],
)
def test_keys_not_allowed_for_kind(layer: str, key: dict[str, Any]) -> None:
    index = {"Input": 0, "Hidden": 1, "Output": 2}[layer]
    (name,) = key
    fails(simple(**{layer: key}), f"layer '{layer}' (index {index})", f"unknown key '{name}'")


def test_errors_before_a_bad_name_use_the_default_name() -> None:
    fails(net([{"N": 1}, {"Name": 7, "Kind": "Bogus"}, {"N": 1}]), "layer 'Hidden1' (index 1)", "key 'Kind'")
    fails(net([{"N": 1}, {"Name": 7}, {"N": 1}]), "layer 'Hidden1' (index 1)", "key 'Name'", "number 7")


def test_pooling_kind_is_a_type_not_a_kind() -> None:
    fails(simple(Hidden={"Kind": "Pooling"}), "key 'Kind'", "invalid layer kind 'Pooling'")


def test_transpose_spelling_rejected_in_shared_weights() -> None:
    sw = {
        "SourceInputLayer": "Input",
        "SourceOutputLayer": "Hidden",
        "InputLayer": "Hidden",
        "Transpose": True,
    }
    fails(simple(Output={"SharedWeights": sw}), "layer 'Output' (index 2)", "key 'SharedWeights'",
          "unknown key 'Transpose'")  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"Version": 0.6}, ["key 'Version'", "at least 0.7"]),
        ({"Version": "0.8"}, ["key 'Version'", "expected a number", 'string "0.8"']),
        ({"SparsenessPenalty": {"p": 1.5, "beta": 1}}, ["key 'SparsenessPenalty.p'", "in [0, 1]"]),
        ({"SparsenessPenalty": {"p": 0.5, "beta": -1}}, ["key 'SparsenessPenalty.beta'", ">= 0"]),
        ({"SparsenessPenalty": True}, ["key 'SparsenessPenalty'", "expected an object"]),
        ({"SparsenessPenalty": {"q": 1}}, ["key 'SparsenessPenalty'", "unknown key 'q'"]),
        ({"Denoising": {"p": 1.0}}, ["key 'Denoising.p'", "in [0, 1)"]),
        ({"Denoising": {"p": -0.1}}, ["key 'Denoising.p'"]),
        ({"DeltaBoost": {"one": -1}}, ["key 'DeltaBoost.one'", ">= 0"]),
        ({"DeltaBoost": {"zero": -0.5}}, ["key 'DeltaBoost.zero'"]),
        ({"ScaledMarginalCrossEntropy": {"oneTarget": 1.5}}, ["key 'ScaledMarginalCrossEntropy.oneTarget'"]),
        ({"ScaledMarginalCrossEntropy": {"zeroTarget": -0.1}}, ["zeroTarget", "in [0, 1]"]),
        (
            {"DataScaledMarginalCrossEntropy": {"oneScale": -1}},
            ["key 'DataScaledMarginalCrossEntropy.oneScale'"],
        ),
        ({"ScaledMarginalCrossEntropy": {"zeroScale": -2}}, ["zeroScale", ">= 0"]),
        ({"Decay": -0.1}, ["key 'Decay'", ">= 0"]),
        ({"ShuffleIndices": "false"}, ["key 'ShuffleIndices'", "expected true or false", 'string "false"']),
        ({"ShuffleIndices": 0}, ["key 'ShuffleIndices'", "expected true or false"]),
        ({"Kind": "Recurrent"}, ["key 'Kind'", "invalid network kind 'Recurrent'"]),
        ({"ErrorFunction": "MSE"}, ["key 'ErrorFunction'", "invalid error function 'MSE'"]),
        ({"ErrorFunction": 2}, ["key 'ErrorFunction'", "expected a error function name"]),
        ({"Name": 5}, ["key 'Name'", "expected a string"]),
        ({"LRN": {"n": 0}}, ["key 'LRN.n'", ">= 1"]),
        ({"LRN": {"n": 2.5}}, ["key 'LRN.n'", "integer"]),
        (
            {"LocalResponseNormalization": {"gamma": 1}},
            ["key 'LocalResponseNormalization'", "unknown key 'gamma'"],
        ),
        ({"MaxOut": {"k": 0}}, ["key 'MaxOut.k'"]),
        ({"MaxOut": {"n": 2}}, ["key 'MaxOut'", "unknown key 'n'"]),
        ({"RELUSlope": "0.1"}, ["key 'RELUSlope'", "expected a number"]),
        ({"Slope": True}, ["key 'Slope'", "expected a number", "boolean true"]),
        ({"SELULambda": None}, ["key 'SELULambda'", "null"]),
        ({"WeightsData": 3}, ["key 'WeightsData'"]),
    ],
)
def test_network_level_validation(changes: dict[str, Any], fragments: list[str]) -> None:
    fails(simple(**changes), *fragments)


@pytest.mark.parametrize(
    ("layer", "changes", "fragments"),
    [
        ("Hidden", {"N": -3}, ["key 'N'", ">= 1"]),
        ("Hidden", {"N": 0}, ["key 'N'", ">= 1"]),
        ("Hidden", {"N": 2.5}, ["key 'N'", "expected an integer", "2.5"]),
        ("Hidden", {"N": "128"}, ["key 'N'", 'string "128"']),
        ("Hidden", {"N": True}, ["key 'N'", "boolean"]),
        ("Hidden", {"N": [1, 2, 3, 4, 5]}, ["key 'N'", "1 to 4 elements", "got 5"]),
        ("Hidden", {"N": []}, ["key 'N'", "got 0"]),
        ("Hidden", {"N": [2, "x"]}, ["key 'N[1]'", "expected an integer"]),
        ("Hidden", {"N": "auto"}, ["key 'N'", "not allowed on a Hidden layer"]),
        ("Input", {"N": "automatic"}, ["key 'N'", 'string "automatic"']),
        ("Hidden", {"Kernel": [3, 3, 3, 3]}, ["key 'Kernel'", "1 to 3 elements"]),
        ("Hidden", {"Kernel": 0}, ["key 'Kernel'", ">= 1"]),
        ("Hidden", {"KernelStride": [1, 0]}, ["key 'KernelStride[1]'", ">= 1"]),
        ("Hidden", {"pDropout": 1.0}, ["key 'pDropout'", "in [0, 1)"]),
        ("Hidden", {"pDropout": -0.1}, ["key 'pDropout'"]),
        ("Hidden", {"pDropout": "0.5"}, ["key 'pDropout'", "expected a number"]),
        ("Hidden", {"Sparse": "true"}, ["key 'Sparse'", "expected true or false"]),
        ("Hidden", {"BatchNormalization": 1}, ["key 'BatchNormalization'", "expected true or false"]),
        (
            "Hidden",
            {"Kind": "Hiden"},
            ["layer 'Hidden' (index 1)", "key 'Kind'", "invalid layer kind 'Hiden'"],
        ),
        ("Hidden", {"Type": "Dense"}, ["key 'Type'", "invalid layer type 'Dense'"]),
        ("Hidden", {"Name": ""}, ["key 'Name'", "must not be empty"]),
        ("Hidden", {"Name": 3}, ["key 'Name'", "expected a string"]),
        ("Hidden", {"Activation": "gelu"}, ["key 'Activation'", "invalid activation 'gelu'"]),
        ("Hidden", {"WeightNorm": -1}, ["key 'WeightNorm'", ">= 0"]),
        ("Hidden", {"DeltaNorm": -1}, ["key 'DeltaNorm'", ">= 0"]),
        ("Hidden", {"WeightInit": {"Scheme": "He"}}, ["key 'WeightInit.Scheme'", "'He'"]),
        ("Hidden", {"WeightInit": {"Sigma": 1}}, ["key 'WeightInit'", "unknown key 'Sigma'"]),
        ("Hidden", {"WeightInit": {"Scale": "1"}}, ["key 'WeightInit.Scale'", "expected a number"]),
        ("Hidden", {"WeightInit": "Xavier"}, ["key 'WeightInit'", "expected an object"]),
        ("Hidden", {"SparsenessPenalty": {"p": 2}}, ["key 'SparsenessPenalty.p'"]),
        ("Hidden", {"SparsenessPenalty": {"x": 2}}, ["key 'SparsenessPenalty'", "unknown key 'x'"]),
        ("Hidden", {"Source": []}, ["key 'Source'", "at least one layer"]),
        ("Hidden", {"Source": 3}, ["key 'Source'", "expected a layer name"]),
        ("Hidden", {"Source": ["Input", 3]}, ["key 'Source[1]'", "expected a string"]),
        ("Hidden", {"Source": ["Input", "Input"]}, ["key 'Source'", "listed twice"]),
        ("Hidden", {"Source": "Inptu"}, ["key 'Source'", "no layer named 'Inptu'", "did you mean 'Input'"]),
        ("Hidden", {"Source": "Hidden"}, ["key 'Source'", "cannot use itself"]),
        ("Output", {"Skip": "Nowhere"}, ["key 'Skip'", "no layer named 'Nowhere'"]),
        ("Output", {"Skip": "Output"}, ["key 'Skip'", "cannot use itself"]),
        ("Output", {"DataSet": ""}, ["key 'DataSet'", "must not be empty"]),
        ("Output", {"DataSet": 1}, ["key 'DataSet'", "expected a string"]),
        ("Output", {"N": "auto", "DataSet": None}, ["key 'DataSet'"]),
        ("Hidden", {"Type": "Pooling"}, ["needs a 'Function'"]),
        ("Hidden", {"Type": "Pooling", "Function": "DotProduct"}, ["key 'Source'", "2 or more sources"]),
        (
            "Hidden",
            {"Type": "Pooling", "Function": "Cosine", "Source": "Input"},
            ["Cosine", "2 or more sources"],
        ),
    ],
)
def test_layer_level_validation(layer: str, changes: dict[str, Any], fragments: list[str]) -> None:
    index = {"Input": 0, "Hidden": 1, "Output": 2}[layer]
    default_label = f"(index {index})"
    fails(simple(**{layer: changes}), default_label, *fragments)


def test_auto_without_dataset() -> None:
    cfg = simple()
    del cfg["Layers"][0]["DataSet"]
    cfg["Layers"][0]["N"] = "auto"
    fails(cfg, "layer 'Input' (index 0)", "key 'N'", "no DataSet")


def test_duplicate_layer_names() -> None:
    fails(
        simple(Output={"Name": "Hidden"}),
        "layer 'Hidden' (index 2)",
        "duplicate layer name 'Hidden'",
        "index 1",
    )
    # an explicit name that collides with a default one
    fails(net([{"N": 1}, {"Name": "Output2", "N": 1}, {"N": 1}]), "duplicate layer name 'Output2'")


def test_structure_errors() -> None:
    fails({"Version": 0.8}, "missing key 'Layers'")
    fails(net([]), "key 'Layers'", "no layers")
    fails(net("Input"), "key 'Layers'", "expected an array")
    fails(net([{"N": 1}, 5]), "layer 'Output1' (index 1)", "must be a JSON object")
    fails(net([{"N": 1}, {"N": 1}, {"Kind": "Hidden", "N": 1}]), "no Output layer")
    fails(net([{"Kind": "Hidden", "N": 1}, {"N": 1}]), "layer 'Hidden0' (index 0)", "needs a Source")
    fails(
        net([{"Kind": "Output", "Source": "Output1", "N": 1}, {"N": 1, "Source": "Output0"}]),
        "no Input layer",
    )


def test_cycle_detected() -> None:
    cfg = net([
        {"Name": "In", "Kind": "Input", "N": 2},
        {"Name": "A", "Kind": "Hidden", "N": 2, "Source": ["In", "B"]},
        {"Name": "B", "Kind": "Hidden", "N": 2, "Source": "A"},
        {"Name": "Out", "Kind": "Output", "N": 2, "Source": "B"},
    ])  # fmt: skip
    fails(cfg, "layers form a cycle", "A <- B")
    # forward references without a cycle are fine (order independent, as in the original)
    ok = parse_network(net([
        {"Name": "In", "Kind": "Input", "N": 2},
        {"Name": "Out", "Kind": "Output", "N": 2, "Source": "H"},
        {"Name": "H", "Kind": "Hidden", "N": 2, "Source": "In"},
    ]))  # fmt: skip
    assert [(w.input_layer, w.output_layer) for w in ok.weights] == [("H", "Out"), ("In", "H")]


def test_shared_weights_must_match_a_source() -> None:
    sw = {"SourceInputLayer": "Input", "SourceOutputLayer": "Hidden", "InputLayer": "Input"}
    fails(simple(Output={"SharedWeights": sw}), "layer 'Output' (index 2)", "key 'SharedWeights'",
          "Unable to locate all shared weights")  # fmt: skip


def test_shared_weights_errors() -> None:
    base = {"SourceInputLayer": "Input", "SourceOutputLayer": "Hidden", "InputLayer": "Hidden"}
    # missing sub-key
    fails(simple(Output={"SharedWeights": {"SourceInputLayer": "Input", "InputLayer": "Hidden"}}),
          "key 'SharedWeights'", "missing key 'SourceOutputLayer'")  # fmt: skip
    # the source connection does not exist
    fails(simple(Output={"SharedWeights": dict(base, SourceOutputLayer="Output")}),
          "Unable to locate shared weights", "'Input' -> 'Output'")  # fmt: skip
    # untransposed: 4x3 matrix cannot serve a 3x4 connection
    fails(
        simple(Output={"SharedWeights": base}),
        "key 'SharedWeights'",
        "Dimensions for shared weights do not match",
    )
    # transposed 4x3 -> 3x4 fits
    d = parse_network(simple(Output={"SharedWeights": dict(base, Transposed=True)}))
    assert d.weights[1].shared and d.weights[1].transposed
    # same InputLayer twice
    fails(simple(Output={"SharedWeights": [dict(base, Transposed=True)] * 2}), "listed twice")
    fails(simple(Output={"SharedWeights": dict(base, Transposed="yes")}), "key 'SharedWeights.Transposed'")
    fails(simple(Output={"SharedWeights": []}), "key 'SharedWeights'", "at least one")
    pooling = {"Type": "Pooling", "Function": "Max", "SharedWeights": dict(base, InputLayer="Input")}
    fails(simple(Hidden=pooling), "Pooling layers have no weights")


def test_transposed_sharing_of_a_convolution_rejected() -> None:
    cfg = net([
        {"Name": "In", "Kind": "Input", "N": [8, 8]},
        {"Name": "C", "Kind": "Hidden", "Type": "Convolutional", "N": 2, "Kernel": [3, 3]},
        {"Name": "Out", "Kind": "Output", "N": 64, "Source": "C",
         "SharedWeights": {"SourceInputLayer": "In", "SourceOutputLayer": "C", "InputLayer": "C",
                           "Transposed": True}},
    ])  # fmt: skip
    fails(cfg, "layer 'Out' (index 2)", "key 'SharedWeights'", "'C' is Convolutional")


def test_sizes_are_32_bit() -> None:
    fails(simple(Hidden={"N": 2**31}), "key 'N'", "<= 2147483647")
    assert parse_network(simple(Hidden={"N": 2**31 - 1})).layers[1].nx == 2**31 - 1


def test_pooling_on_input_rejected() -> None:
    fails(simple(Input={"Type": "Pooling"}), "layer 'Input' (index 0)", "key 'Type'", "Hidden or Output")


def test_error_without_file_has_no_file_prefix() -> None:
    msg = fails(simple(Hidden={"Bogus": 1}), "unknown key 'Bogus'")
    assert msg.startswith("layer 'Hidden' (index 1): unknown key 'Bogus'")


def test_errors_are_config_errors_and_value_errors() -> None:
    with pytest.raises(ValueError):
        parse_network(simple(Hidden={"N": -1}))


# ---------------------------------------------------------------------------------------------------------
# Descriptor API
# ---------------------------------------------------------------------------------------------------------


def test_descriptor_api() -> None:
    d = parse_network(simple())
    assert isinstance(d, NetworkDescriptor)
    assert d.layer("Hidden").nx == 3 and d.layer_index("Output") == 2
    with pytest.raises(KeyError):
        d.layer("Nope")
    assert [layer.name for layer in d.input_layers] == ["Input"]
    assert [layer.name for layer in d.output_layers] == ["Output"]
    assert not d.sparseness_penalty and not d.denoising and d.resolved
    layer = LayerDescriptor(name="x", nx=2, ny=3, nz=4, nw=5, sparse=True, batch_normalization=True)
    assert layer.stride == 120
    assert layer.attributes == LayerAttributes.Sparse | LayerAttributes.BatchNormalization
    assert int(layer.attributes) == 5
    with pytest.raises(AttributeError):
        d.name = "y"  # type: ignore[misc]
