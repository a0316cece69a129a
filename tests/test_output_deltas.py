"""Output deltas that are not the gradient of their error, against DSSTNE's formulas written in numpy.

Finite differences check every delta that is its error's gradient (test_gradients.py). These are the ones
DSSTNE defines apart from the error, so only the formulas can check them (inventory 1.9): DeltaBoost's
scaling of sparse-target deltas, SoftMax SMCE's listed delta (oneScale multiplies the target), and the
data-scaled SMCE's analog targets. Plus top-K's order among equal scores.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_csr

import dsstne

SMCE = {"oneTarget": 0.7, "zeroTarget": 0.3, "oneScale": 4.0, "zeroScale": 0.5}


def _deltas(error, activation, targets, extra=None):
    """Input -> Output network: (output deltas of one training minibatch, the activations a in float64)."""
    x = random_csr(16, 10, 0.4, seed=1, values=True).toarray().astype(np.float32)
    cfg = {"Version": 0.8, "Name": "deltas", "ShuffleIndices": False, "ErrorFunction": error, **(extra or {}),
           "Layers": [{"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input"},
                      {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output",
                       "Activation": activation}]}
    out = (dsstne.DataSet.from_scipy(targets, "output") if hasattr(targets, "tocsr")
           else dsstne.DataSet.from_numpy(targets, "output"))
    net = dsstne.Network.from_json(cfg, [dsstne.DataSet.from_numpy(x, "input"), out], batch=16, device="cpu",
                                   seed=3)
    w, b = net.weights("Input", "Output")
    z = x.astype(np.float64) @ w + b
    if activation == "SoftMax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        a = e / e.sum(axis=1, keepdims=True)
    else:
        a = 1.0 / (1.0 + np.exp(-z))
    net.gradients(0)
    return net.deltas("Output"), a


@pytest.mark.parametrize("values", [False, True], ids=["boolean", "analog"])
def test_delta_boost_scales_l2_sparse_deltas(values):
    y = random_csr(16, 12, 0.3, seed=2, values=values)
    d, a = _deltas("L2", "Sigmoid", y, {"DeltaBoost": {"one": 3.0, "zero": 0.5}})
    t = y.toarray() if values else (y.toarray() != 0).astype(np.float64)
    fd = a * (1 - a)
    expected = np.where(y.toarray() != 0, 3.0 * (a - t) * fd, 0.5 * a * fd)
    np.testing.assert_allclose(d, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("units", [12, 13], ids=["whole_rows", "padded_rows"])
def test_delta_boost_scales_cross_entropy_sparse_deltas(units):
    # 13 units: the output's delta rows are padded to whole 16 bytes (16 floats); deltas() leaves the padding.
    y = random_csr(16, units, 0.3, seed=4)
    d, a = _deltas("CrossEntropy", "Sigmoid", y, {"DeltaBoost": {"one": 2.5, "zero": 0.25}})
    expected = np.where(y.toarray() != 0, 2.5 * (a - 1), 0.25 * a)
    np.testing.assert_allclose(d, expected, rtol=1e-5, atol=1e-7)


def test_softmax_smce_listed_delta_scales_the_target():
    y = random_csr(16, 12, 0.3, seed=5)
    listed = y.toarray() != 0
    assert listed.any(axis=1).all()
    d, a = _deltas("ScaledMarginalCrossEntropy", "SoftMax", y, {"ScaledMarginalCrossEntropy": SMCE})
    k = listed.sum(axis=1, keepdims=True)
    raw = np.where(a > SMCE["zeroTarget"], SMCE["zeroScale"] * a, 0.0)
    nz = np.where(a < SMCE["oneTarget"], a - SMCE["oneScale"] / k, 0.0)
    np.testing.assert_allclose(d, np.where(listed, nz, raw), rtol=1e-5, atol=1e-7)


def test_data_scaled_smce_weighs_the_one_side_by_the_target():
    rng = np.random.default_rng(6)
    t = np.where(rng.random((16, 12)) < 0.3, rng.uniform(0.5, 3.0, (16, 12)), 0.0).astype(np.float32)
    d, a = _deltas("DataScaledMarginalCrossEntropy", "Sigmoid", t, {"ScaledMarginalCrossEntropy": SMCE})
    one = np.where(a < SMCE["oneTarget"], SMCE["oneScale"] * t * (a - 1), 0.0)
    zero = np.where(a > SMCE["zeroTarget"], SMCE["zeroScale"] * a, 0.0)
    np.testing.assert_allclose(d, np.where(t > 0, one, zero), rtol=1e-5, atol=1e-7)


def test_topk_takes_the_lower_column_among_equal_scores():
    # Zero weights and biases: every score is Sigmoid(0), so the order is the columns' own.
    x = random_csr(8, 10, 0.4, seed=7)
    y = random_csr(8, 12, 0.2, seed=8)
    cfg = {"Version": 0.8, "Name": "ties", "ShuffleIndices": False, "ErrorFunction": "L2",
           "Layers": [{"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": True},
                      {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output",
                       "Activation": "Sigmoid"}]}
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=8, device="cpu", seed=3)
    w, b = net.weights("Input", "Output")
    net.set_weights("Input", "Output", np.zeros_like(w), np.zeros_like(b))
    index, scores = net.recommend(inp, k=4, exclude=out)
    np.testing.assert_array_equal(scores, np.full((8, 4), 0.5, np.float32))
    for row, taken in zip(y.toarray() != 0, index):
        np.testing.assert_array_equal(taken, np.flatnonzero(~row)[:4])
