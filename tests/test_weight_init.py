"""Every WeightInit scheme produces DSSTNE's distribution (inventory §1.8), biases set to WeightInit.Bias."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne

N_IN, N_OUT = 400, 300


def _weights(scheme: str, scale: float = 0.5, bias: float = 0.25):
    x = random_csr(8, N_IN, 0.05, seed=1)
    cfg = network_config(hidden=(), output_activation="Sigmoid")
    cfg["Layers"][-1]["N"] = N_OUT
    cfg["Layers"][-1]["WeightInit"] = {"Scheme": scheme, "Scale": scale, "Bias": bias}
    y = random_csr(8, N_OUT, 0.05, seed=2)
    net = dsstne.Network.from_json(cfg, [dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")],
                                   device="cpu", seed=3)
    return net.weights("Input", "Output")


@pytest.mark.parametrize("scheme,low,high", [
    ("Xavier", -0.5 * 0.5 * np.sqrt(6 / (N_IN + N_OUT)), 0.5 * 0.5 * np.sqrt(6 / (N_IN + N_OUT))),
    ("CaffeXavier", -0.5 * np.sqrt(3 / N_OUT), 0.5 * np.sqrt(3 / N_OUT)),
    ("Uniform", -0.5, 0.5),
    ("UnitBall", 0.0, 0.5),
])
def test_uniform_schemes_fill_their_range(scheme, low, high):
    w, b = _weights(scheme)
    assert w.min() >= low - 1e-6 and w.max() <= high + 1e-6
    span = high - low
    assert w.min() < low + 0.01 * span and w.max() > high - 0.01 * span  # the whole range is used
    assert abs(w.mean() - (low + high) / 2) < 0.02 * span
    np.testing.assert_array_equal(b, np.float32(0.25))


@pytest.mark.parametrize("scheme,sigma", [("Gaussian", 0.5), ("SELU", 1 / N_IN)])
def test_gaussian_schemes(scheme, sigma):
    w, _ = _weights(scheme)
    assert abs(w.std() - sigma) < 0.02 * sigma and abs(w.mean()) < 0.02 * sigma


def test_constant_scheme():
    w, _ = _weights("Constant", scale=0.125)
    np.testing.assert_array_equal(w, np.float32(0.125))
