"""Finite-difference gradient checks (DSSTNE's Validate idea) on the CPU target.

The engine's analytic gradients of the summed minibatch loss are compared with central differences of
the loss it reports, for every activation x loss in scope, dense and sparse inputs and targets.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import network_config, random_csr

import dsstne

HIDDEN_ACTIVATIONS = ["Sigmoid", "Tanh", "RectifiedLinear", "Linear", "LeakyRectifiedLinear",
                      "ExponentialLinear", "ScaledExponentialLinear", "SoftPlus", "SoftSign"]
# (error function, output activation, SMCE parameters keeping every unit inside the counted region)
LOSSES = [
    ("L2", "Sigmoid"),
    ("L2", "Linear"),
    ("L2", "Tanh"),
    ("CrossEntropy", "Sigmoid"),
    ("CrossEntropy", "SoftMax"),
    ("ScaledMarginalCrossEntropy", "Sigmoid"),
    ("ScaledMarginalCrossEntropy", "SoftMax"),
    ("DataScaledMarginalCrossEntropy", "Sigmoid"),
    ("L1", "Sigmoid"),  # |a - t| has a kink at a = t: Sigmoid units never reach 0 or 1
    ("L2Hinge", "Sigmoid"),
    ("L2Hinge", "Linear"),
    ("Hinge", "Sigmoid"),
    ("Hinge", "SoftSign"),
]
SMCE_ALWAYS = {"oneTarget": 1.0, "zeroTarget": 0.0, "oneScale": 3.0, "zeroScale": 0.5}


INPUTS = ["sparse", "sparse_dense_path", "dense"]


def _data(inputs: str, sparse_target: bool, activation: str, seed: int):
    # Sparse inputs at density <= 0.1 take the gather-sum path; denser ones are expanded (DSSTNE's rule).
    sparse = inputs == "sparse"
    x = random_csr(12, 40, 0.06, seed, values=True) if sparse else random_csr(12, 10, 0.3, seed, values=True)
    sparse_input = inputs != "dense"
    y = random_csr(12, 7, 0.3, seed + 1)
    if activation == "SoftMax" and not sparse_target:
        d = y.toarray()
        y = sp.csr_matrix(d / d.sum(axis=1, keepdims=True))
    inp = dsstne.DataSet.from_scipy(x, "input") if sparse_input else dsstne.DataSet.from_numpy(x.toarray(), "input")
    out = (dsstne.DataSet.from_scipy(y, "output", boolean=True) if sparse_target
           else dsstne.DataSet.from_numpy(y.toarray(), "output"))
    return inp, out


def check_gradients(net: dsstne.Network, rtol: float = 2e-2, atol: float = 2e-3, eps: float = 1e-2) -> None:
    error, grads = net.gradients(0)
    assert np.isfinite(error)
    rng = np.random.default_rng(0)
    for (src, dst), (gw, gb) in grads.items():
        w, b = net.weights(src, dst)
        probes = [(i, j) for i, j in zip(rng.integers(0, w.shape[0], 6), rng.integers(0, w.shape[1], 6))]
        for i, j in probes:
            losses = []
            for sign in (1, -1):
                w2 = w.copy()
                w2[i, j] += sign * eps
                net.set_weights(src, dst, w2, b)
                losses.append(net.gradients(0)[0])
            net.set_weights(src, dst, w, b)
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert numeric == pytest.approx(gw[i, j], rel=rtol, abs=atol), (src, dst, i, j)
        for j in rng.integers(0, b.shape[0], 3):
            losses = []
            for sign in (1, -1):
                b2 = b.copy()
                b2[j] += sign * eps
                net.set_weights(src, dst, w, b2)
                losses.append(net.gradients(0)[0])
            net.set_weights(src, dst, w, b)
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert numeric == pytest.approx(gb[j], rel=rtol, abs=atol), (src, dst, "bias", j)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# Smooth hidden activations cross every loss; the piecewise-linear ones have their own test (small steps).
SMOOTH_HIDDEN = [a for a in HIDDEN_ACTIVATIONS if a not in ("RectifiedLinear", "LeakyRectifiedLinear")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("error,output_activation", LOSSES)
@pytest.mark.parametrize("hidden", SMOOTH_HIDDEN)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("sparse_target", [True, False], ids=["sparse_out", "dense_out"])
def test_loss_gradients(error, output_activation, hidden, inputs, sparse_target, device):
    inp, out = _data(inputs, sparse_target, output_activation, seed=11)
    sparse_input = inputs != "dense"
    # DSSTNE's SoftMax deltas are the gradient of its SMCE error only with equal scales.
    smce = SMCE_ALWAYS if output_activation != "SoftMax" else {**SMCE_ALWAYS, "oneScale": 1.0, "zeroScale": 1.0}
    cfg = network_config(hidden=[(5, hidden)], output_activation=output_activation, error=error,
                         sparse_input=sparse_input, ScaledMarginalCrossEntropy=smce)
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device=device, seed=5)
    check_gradients(net)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("inputs", INPUTS)
def test_hidden_activation_gradients(activation, inputs, device):
    inp, out = _data(inputs, True, "Sigmoid", seed=21)
    sparse_input = inputs != "dense"
    # Parameters away from their defaults, so that one ignored by the forward and its derivative alike shows.
    cfg = network_config(hidden=[(6, activation), (4, "Sigmoid")], error="L2", sparse_input=sparse_input,
                         RELUSlope=0.3, ELUAlpha=0.6)
    cfg["Layers"][1]["WeightInit"] = {"Scheme": "Gaussian", "Scale": 0.5, "Bias": 0.1}
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device=device, seed=7)
    # Piecewise-linear units have kinks: a small step keeps the central difference on one side of them.
    kinked = activation in ("RectifiedLinear", "LeakyRectifiedLinear")
    check_gradients(net, eps=1e-4 if kinked else 1e-2, atol=3e-3)


@pytest.mark.parametrize("inputs", INPUTS[:2])
def test_denoised_sparse_input_gradients(inputs):
    # The denoising mask is fixed for an epoch, so the loss stays a smooth function of the weights.
    inp, out = _data(inputs, True, "Sigmoid", seed=31)
    cfg = network_config(hidden=[(5, "Sigmoid")], error="CrossEntropy", Denoising={"p": 0.3})
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu", seed=9)
    check_gradients(net)


def test_smce_margins_zero_the_gradient_inside_the_margin():
    inp, out = _data("sparse", True, "Sigmoid", seed=41)
    cfg = network_config(hidden=[(5, "Sigmoid")], ScaledMarginalCrossEntropy={
        "oneTarget": 0.0, "zeroTarget": 1.0, "oneScale": 1.0, "zeroScale": 1.0})
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu")
    error, grads = net.gradients(0)
    assert error == 0.0
    for gw, gb in grads.values():
        assert not gw.any() and not gb.any()


@pytest.mark.parametrize("inputs", INPUTS)
def test_several_sources_gradients(inputs):
    # Output fed by Input and by a hidden layer: both contributions and both biases are summed.
    inp, out = _data(inputs, True, "Sigmoid", seed=51)
    cfg = network_config(hidden=[(6, "Tanh")], error="L2", sparse_input=inputs != "dense")
    cfg["Layers"][-1]["Source"] = ["Hidden1", "Input"]
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu", seed=3)
    assert set(net.gradients(0)[1]) == {("Input", "Hidden1"), ("Hidden1", "Output"), ("Input", "Output")}
    check_gradients(net)


def test_validate_passes_for_dsstne_gradient_check_networks():
    # DSSTNE's tst/test_data networks, rebuilt: L2 linear regression, L2 with LReLU slopes 0 and 0.5,
    # SMCE with oneScale 30, DSMCE.
    n = 64
    s = np.arange(n, dtype=np.float32)
    reg_in = dsstne.DataSet.from_numpy((s % 7)[:, None] / 7, "input")
    reg_out = dsstne.DataSet.from_numpy((-2 * (s % 7) + 3)[:, None] / 7, "output")
    linear = {"Version": 0.8, "ShuffleIndices": False, "ErrorFunction": "L2", "Layers": [
        {"Kind": "Input", "N": 1, "DataSet": "input"},
        {"Kind": "Output", "N": 1, "DataSet": "output", "Activation": "Linear"}]}
    assert dsstne.Network.from_json(linear, [reg_in, reg_out], batch=4, device="cpu").validate().passed
    cls = sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) % 2)), shape=(n, 2))
    cls_in, cls_out = dsstne.DataSet.from_scipy(cls, "input"), dsstne.DataSet.from_scipy(cls, "output")
    for slope in (0.0, 0.5):
        lrelu = {"Version": 0.8, "ShuffleIndices": False, "ErrorFunction": "L2", "Layers": [
            {"Kind": "Input", "N": 2, "DataSet": "input", "Sparse": True},
            {"Kind": "Hidden", "N": 2, "Activation": "LRelu", "Slope": slope},
            {"Kind": "Output", "N": 2, "DataSet": "output", "Activation": "Linear", "Source": "Input0"}]}
        assert dsstne.Network.from_json(lrelu, [cls_in, cls_out], batch=4, device="cpu").validate().passed
    for key in ("ScaledMarginalCrossEntropy", "DataScaledMarginalCrossEntropy"):
        smce = {"Version": 0.8, "ShuffleIndices": False, "ErrorFunction": key,
                key: {"oneTarget": 1.0, "zeroTarget": 0.0, "oneScale": 30.0, "zeroScale": 1.0}, "Layers": [
                    {"Kind": "Input", "N": 2, "DataSet": "input", "Sparse": True},
                    {"Kind": "Hidden", "N": 2, "Activation": "Sigmoid"},
                    {"Kind": "Output", "N": 2, "DataSet": "output", "Activation": "Sigmoid"}]}
        report = dsstne.Network.from_json(smce, [cls_in, cls_out], batch=4, device="cpu").validate()
        assert report.passed, report.failures()


def test_validate_catches_a_wrong_gradient():
    # A loss the engine's delta does not differentiate: DSSTNE's SoftMax SMCE with unequal scales.
    inp, out = _data("sparse", True, "SoftMax", seed=61)
    cfg = network_config(hidden=[(5, "Tanh")], output_activation="SoftMax",
                         ScaledMarginalCrossEntropy={**SMCE_ALWAYS, "oneScale": 3.0, "zeroScale": 0.2})
    report = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu").validate()
    assert not report.passed and report.failures()


@pytest.mark.parametrize("error,output_activation", [("L2", "Sigmoid"), ("ScaledMarginalCrossEntropy", "Sigmoid"),
                                                     ("CrossEntropy", "SoftMax"), ("L1", "Sigmoid")])
@pytest.mark.parametrize("sparse_target", [True, False], ids=["sparse_out", "dense_out"])
@pytest.mark.parametrize("device", DEVICES)
def test_weighted_and_indexed_datasets(error, output_activation, sparse_target, device):
    # Weighted: per-example weights scale input values and loss terms. Indexed: examples are rows of a
    # smaller table of unique examples.
    inp, out = _data("sparse", sparse_target, output_activation, seed=71)
    rng = np.random.default_rng(5)
    unique = out.examples
    index = rng.integers(0, unique, 12).astype(np.uint32)
    for ds in (inp, out):
        ds.weights = rng.uniform(0.5, 2.0, 12).astype(np.float32)
    out.indexed = index
    out.examples = 12
    cfg = network_config(hidden=[(5, "Tanh")], output_activation=output_activation, error=error,
                         ScaledMarginalCrossEntropy=SMCE_ALWAYS if output_activation != "SoftMax" else
                         {**SMCE_ALWAYS, "oneScale": 1.0, "zeroScale": 1.0})
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device=device, seed=5)
    check_gradients(net)
    plain = dsstne.Network.from_json(cfg, [inp, dsstne.DataSet.from_scipy(out.to_scipy(), "output")]
                                     if sparse_target else [inp, dsstne.DataSet.from_numpy(out.to_numpy(), "output")],
                                     batch=12, device=device, seed=5)
    assert net.gradients(0)[0] != pytest.approx(plain.gradients(0)[0])  # the weights change the loss


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sparse_target", [True, False], ids=["sparse_out", "dense_out"])
def test_output_units_after_a_training_forward_and_a_ranking(sparse_target, device):
    # A forward whose activation the loss or top-k op applies leaves the output layer's linear sums in
    # rows of its deltas' pitch (7 units: rows of 8). units() still gives the activations, row by row,
    # a plain forward writes rows of 7, and the ranking reads rows of 8.
    inp, out = _data("dense", sparse_target, "Sigmoid", seed=31)
    cfg = network_config(hidden=[(5, "Sigmoid")], sparse_input=False)
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device=device, seed=3)
    net.gradients(0)
    w, b = net.weights("Hidden1", "Output")
    expected = 1 / (1 + np.exp(-(net.units("Hidden1").astype(np.float64) @ w + b)))
    np.testing.assert_allclose(net.units("Output"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.units("Output"), expected, rtol=1e-5, atol=1e-6)  # read twice
    np.testing.assert_allclose(net.predict(inp), expected, rtol=1e-5, atol=1e-6)
    index, scores = net.recommend(inp, 7)
    np.testing.assert_array_equal(index, np.argsort(-expected, axis=1, kind="stable"))
    np.testing.assert_allclose(scores, np.take_along_axis(expected, index, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.units("Output"), expected, rtol=1e-5, atol=1e-6)  # the ranked batch's
