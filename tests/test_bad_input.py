"""Bad input gets a clear dsstne exception naming what is wrong; never a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import network_config, random_csr

import dsstne


@pytest.fixture
def sets():
    x = random_csr(20, 30, 0.2, seed=1)
    return dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")


def test_malformed_json_names_file_and_line(tmp_path, sets):
    path = tmp_path / "net.json"
    path.write_text('{\n  "Version": 0.8,\n  "Layers": [ \n')
    with pytest.raises(dsstne.ConfigError, match=r"net\.json.*line"):
        dsstne.Network.from_json(path, sets)


def test_unknown_key_names_key_and_layer(sets):
    cfg = network_config()
    cfg["Layers"][1]["Activaton"] = "Sigmoid"
    with pytest.raises(dsstne.ConfigError, match=r"Hidden1.*Activaton"):
        dsstne.Network.from_json(cfg, sets)


@pytest.mark.parametrize("key,value", [("N", "sixteen"), ("N", -3), ("pDropout", "0.5"), ("Sparse", "yes")])
def test_wrong_types(sets, key, value):
    cfg = network_config()
    cfg["Layers"][1][key] = value
    with pytest.raises(dsstne.ConfigError, match=key):
        dsstne.Network.from_json(cfg, sets)


def test_auto_size_without_dataset():
    with pytest.raises(dsstne.ConfigError, match="input"):
        dsstne.Network.from_json(network_config(), [], device="cpu")


def test_dataset_width_mismatch(sets):
    inp, _ = sets
    other = dsstne.DataSet.from_scipy(random_csr(20, 31, 0.2, seed=2), "output")
    cfg = network_config()
    cfg["Layers"][-1]["N"] = 30
    with pytest.raises(dsstne.DataError, match=r"'output'.*31.*'Output'.*30"):
        dsstne.Network.from_json(cfg, [inp, other], device="cpu")


def test_example_count_mismatch(sets):
    inp, _ = sets
    out = dsstne.DataSet.from_scipy(random_csr(19, 30, 0.2, seed=2), "output")
    net = dsstne.Network.from_json(network_config(), [inp, out], device="cpu")
    with pytest.raises(dsstne.DataError, match="examples"):
        net.train(1)


def test_sparse_index_out_of_range():
    ds = dsstne.DataSet.from_scipy(random_csr(5, 10, 0.3, seed=1), "input")
    ds.index[3] = 10  # == width
    out = dsstne.DataSet.from_scipy(random_csr(5, 10, 0.3, seed=1), "output")
    with pytest.raises(dsstne.DataError, match=r"'input'.*index 10.*width 10"):
        dsstne.Network.from_json(network_config(), [ds, out], device="cpu")


def test_inconsistent_sparse_offsets():
    ds = dsstne.DataSet.from_scipy(random_csr(5, 10, 0.3, seed=1), "input")
    ds.end[2] = ds.start[2] - 1 if ds.start[2] > 0 else 10**6
    out = dsstne.DataSet.from_scipy(random_csr(5, 10, 0.3, seed=1), "output")
    with pytest.raises(dsstne.DataError, match=r"'input'.*row 2"):
        dsstne.Network.from_json(network_config(), [ds, out], device="cpu")


def test_nan_in_dense_data():
    a = np.ones((4, 3), np.float32)
    a[2, 1] = np.nan
    with pytest.raises(dsstne.DataError, match=r"'dense'.*\(2, 1\)"):
        dsstne.DataSet.from_numpy(a, "dense")


def test_nan_in_sparse_values():
    m = sp.csr_matrix(np.array([[0, 1.5], [np.inf, 0]], np.float32))
    with pytest.raises(dsstne.DataError, match="example 1"):
        dsstne.DataSet.from_scipy(m, "x")


def test_nan_weights_set_by_user_are_rejected(sets):
    net = dsstne.Network.from_json(network_config(), sets, device="cpu")
    w, b = net.weights("Input", "Hidden1")
    w[0, 0] = np.nan
    with pytest.raises(dsstne.DataError, match="not finite"):
        net.set_weights("Input", "Hidden1", w, b)
    with pytest.raises(dsstne.DataError, match="shape"):
        net.set_weights("Input", "Hidden1", w[:, :3], b)


def test_unknown_layer_and_connection(sets):
    net = dsstne.Network.from_json(network_config(), sets, device="cpu")
    with pytest.raises(dsstne.DataError, match="'Nope'"):
        net.predict(sets[0], layer="Nope")
    with pytest.raises(dsstne.DataError, match="'Output'.*'Input'"):
        net.weights("Output", "Input")


def test_not_supported_features_say_so(sets):
    with pytest.raises(dsstne.NotSupportedError, match="SoftMax output layer 'Output'"):
        dsstne.Network.from_json(network_config(error="L1", output_activation="SoftMax"), sets, device="cpu")
    with pytest.raises(dsstne.NotSupportedError, match="needs a Sigmoid or SoftMax output"):
        dsstne.Network.from_json(network_config(error="CrossEntropy", output_activation="Linear"), sets, device="cpu")
    net = dsstne.Network.from_json(network_config(), sets, device="cpu")
    with pytest.raises(dsstne.ConfigError, match="unknown optimizer"):
        net.train(1, optimizer="Adamax")


def test_unknown_device_and_cuda_without_gpu(sets):
    with pytest.raises(dsstne.DeviceError, match="unknown device"):
        dsstne.Network.from_json(network_config(), sets, device="tpu")
    if not dsstne.cuda_available():
        with pytest.raises(dsstne.DeviceError, match="no CUDA device"):
            dsstne.Network.from_json(network_config(), sets, device="cuda")


def test_bad_batch_and_k(sets):
    with pytest.raises(dsstne.ConfigError, match="batch"):
        dsstne.Network.from_json(network_config(), sets, batch=0, device="cpu")
    net = dsstne.Network.from_json(network_config(), sets, device="cpu")
    with pytest.raises(dsstne.DataError, match="k must be"):
        net.recommend(sets[0], 0)


def test_config_file_round_trip(tmp_path, sets):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(network_config()))
    assert dsstne.Network.from_json(str(path), sets, device="cpu").device == "cpu"
