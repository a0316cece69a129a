"""Skip connections and SharedWeights (plain and Transposed): gradients, forward maths, updates, files, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_csr
from test_gradients import check_gradients

import dsstne
from dsstne.errors import ConfigError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _data(n_in: int = 10, n_out: int = 8, rows: int = 12, sparse: bool = False, seed: int = 1):
    x = random_csr(rows, n_in, 0.06 if sparse else 0.3, seed, values=True)
    y = random_csr(rows, n_out, 0.3, seed + 1)
    inp = dsstne.DataSet.from_scipy(x, "input") if sparse else dsstne.DataSet.from_numpy(x.toarray(), "input")
    return inp, dsstne.DataSet.from_numpy(y.toarray(), "output"), x.toarray(), y.toarray()


def _cfg(layers: list[dict], error: str = "L2") -> dict:
    return {"Version": 0.8, "Name": "structure", "ShuffleIndices": False, "ErrorFunction": error, "Layers": layers}


def _input(sparse: bool = False) -> dict:
    return {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": sparse}


def _output(**extra) -> dict:
    return {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output", "Activation": "Sigmoid", **extra}


def skip_config() -> dict:
    return _cfg([
        _input(),
        {"Name": "H1", "Kind": "Hidden", "N": 8, "Activation": "Tanh"},
        {"Name": "H2", "Kind": "Hidden", "N": 8, "Activation": "Sigmoid", "Source": "H1"},
        {"Name": "H3", "Kind": "Hidden", "N": 8, "Activation": "SoftPlus", "Source": "H2", "Skip": "H1"},
        _output(Source="H3", Skip=["H1", "H2"]),
    ])


def tied_autoencoder(sparse: bool, transposed: bool = True) -> dict:
    """Input -> Hidden (W) -> Output (W^T shared), the classic tied-weight autoencoder."""
    shared = {"SourceInputLayer": "Input", "SourceOutputLayer": "Hidden", "InputLayer": "Hidden",
              "Transposed": transposed}
    return _cfg([
        _input(sparse),
        {"Name": "Hidden", "Kind": "Hidden", "N": 6, "Activation": "Sigmoid"},
        {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "input", "Activation": "Sigmoid",
         "SharedWeights": shared},
    ], error="CrossEntropy")


def plain_shared_config() -> dict:
    """Two parallel hidden layers of the same shape sharing one matrix (not transposed)."""
    return _cfg([
        _input(),
        {"Name": "A", "Kind": "Hidden", "N": 7, "Activation": "Tanh"},
        {"Name": "B", "Kind": "Hidden", "N": 7, "Activation": "Sigmoid", "Source": "Input",
         "SharedWeights": {"SourceInputLayer": "Input", "SourceOutputLayer": "A", "InputLayer": "Input"}},
        _output(Source=["A", "B"]),
    ])


# ------------------------------------------------------------------------------------------------ Skip
def test_skip_gradients_match_finite_differences():
    inp, out, _, _ = _data()
    net = dsstne.Network.from_json(skip_config(), [inp, out], batch=12, device="cpu")
    check_gradients(net)
    assert net.validate().passed


@pytest.mark.parametrize("sparse", [False, True])
def test_skip_from_input_layer(sparse):
    # A sparse input used as a skip source is expanded to dense units (the gather-sum path has none).
    inp, out, _, _ = _data(n_in=8, sparse=sparse)
    cfg = _cfg([_input(sparse), {"Name": "H", "Kind": "Hidden", "N": 8, "Activation": "Tanh"},
                _output(Source="H", Skip="Input")])
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu")
    check_gradients(net)


def test_skip_forward_matches_numpy():
    inp, out, x, _ = _data()
    net = dsstne.Network.from_json(skip_config(), [inp, out], batch=12, device="cpu")
    w1, b1 = net.weights("Input", "H1")
    w2, b2 = net.weights("H1", "H2")
    w3, b3 = net.weights("H2", "H3")
    w4, b4 = net.weights("H3", "Output")
    h1 = np.tanh(x @ w1 + b1)
    h2 = _sigmoid(h1 @ w2 + b2)
    h3 = np.log1p(np.exp(h2 @ w3 + b3 + h1))
    y = _sigmoid(h3 @ w4 + b4 + h1 + h2)
    np.testing.assert_allclose(net.predict(x), y, rtol=1e-5, atol=1e-6)


def test_skip_order_follows_skip_edges():
    # The skip source is declared after the layer that adds it: propagation order must still run it first.
    inp, out, x, _ = _data(n_in=8)
    cfg = _cfg([_input(), _output(Source="Input", Skip="H"),
                {"Name": "H", "Kind": "Hidden", "N": 8, "Activation": "Tanh", "Source": "Input"}])
    net = dsstne.Network.from_json(cfg, [inp, out], batch=12, device="cpu")
    (wo, bo), (wh, bh) = net.weights("Input", "Output"), net.weights("Input", "H")
    np.testing.assert_allclose(net.predict(x), _sigmoid(x @ wo + bo + np.tanh(x @ wh + bh)), rtol=1e-5, atol=1e-6)
    check_gradients(net)


def test_skip_size_mismatch_names_layer_and_key():
    inp, out, _, _ = _data()
    cfg = _cfg([_input(), {"Name": "H1", "Kind": "Hidden", "N": 5, "Activation": "Tanh"},
                _output(Source="H1", Skip="H1")])
    with pytest.raises(ConfigError, match=r"(?s)Output.*Skip.*'H1' has 5 units"):
        dsstne.Network.from_json(cfg, [inp, out], device="cpu")


def test_skip_training_is_deterministic():
    inp, out, _, _ = _data(rows=40)
    runs = []
    for _ in range(2):
        net = dsstne.Network.from_json(skip_config(), [inp, out], batch=8, device="cpu", seed=5)
        net.train(3, alpha=0.2, optimizer="Momentum")
        runs.append(net.weights("H3", "Output")[0])
    assert runs[0].tobytes() == runs[1].tobytes()


# ------------------------------------------------------------------------------------------------ SharedWeights
@pytest.mark.parametrize("sparse", [False, True])
def test_transposed_shared_gradients(sparse):
    x = random_csr(12, 10, 0.06 if sparse else 0.3, 4)
    inp = dsstne.DataSet.from_scipy(x, "input") if sparse else dsstne.DataSet.from_numpy(x.toarray(), "input")
    net = dsstne.Network.from_json(tied_autoencoder(sparse), [inp], batch=12, device="cpu")
    # The shared connection's gradient is the whole dE/dW (all users), transposed to its own shape.
    _, grads = net.gradients(0)
    g_owner, g_user = grads[("Input", "Hidden")][0], grads[("Hidden", "Output")][0]
    np.testing.assert_allclose(g_user, g_owner.T, rtol=1e-6, atol=1e-7)
    check_gradients(net)
    assert net.validate().passed


def test_plain_shared_gradients():
    inp, out, _, _ = _data()
    net = dsstne.Network.from_json(plain_shared_config(), [inp, out], batch=12, device="cpu")
    check_gradients(net)
    assert net.validate().passed


def test_shared_forward_matches_numpy():
    x = random_csr(12, 10, 0.3, 4).toarray()
    net = dsstne.Network.from_json(tied_autoencoder(False), [dsstne.DataSet.from_numpy(x, "input")], batch=12,
                                   device="cpu")
    w, b = net.weights("Input", "Hidden")
    wt, bo = net.weights("Hidden", "Output")
    np.testing.assert_array_equal(wt, w.T)
    assert not np.array_equal(bo[: b.size], b) or b.size != bo.size  # biases are never shared
    np.testing.assert_allclose(net.predict(x), _sigmoid(_sigmoid(x @ w + b) @ w.T + bo), rtol=1e-5, atol=1e-6)
    # Writing through the sharer writes the owner's matrix.
    net.set_weights("Hidden", "Output", wt * 0.5, bo)
    np.testing.assert_allclose(net.weights("Input", "Hidden")[0], w * 0.5)


def test_shared_update_uses_one_over_sharing_count():
    # DSSTNE's update: W += alpha * (-(1/(sharingCount * rows)) * sum of the users' X^T delta).
    x = random_csr(12, 10, 0.3, 4).toarray()
    inp = dsstne.DataSet.from_numpy(x, "input")
    net = dsstne.Network.from_json(tied_autoencoder(False), [inp], batch=12, device="cpu")
    w0, _ = net.weights("Input", "Hidden")
    _, grads = net.gradients(0)
    total = grads[("Input", "Hidden")][0]  # dE/dW summed over both users
    net.train(1, alpha=0.5, lambda_=0.0)
    expected = w0 - 0.5 * total / (2 * 12)
    np.testing.assert_allclose(net.weights("Input", "Hidden")[0], expected, rtol=1e-5, atol=1e-6)


def test_shared_save_load_round_trip(tmp_path):
    x = random_csr(30, 10, 0.3, 4).toarray()
    inp = dsstne.DataSet.from_numpy(x, "input")
    net = dsstne.Network.from_json(tied_autoencoder(False), [inp], batch=10, device="cpu")
    net.train(2, alpha=0.3, optimizer="Adam")
    path = tmp_path / "tied.nc"
    net.save(path)
    back = dsstne.load(path, [inp], device="cpu")
    w = back.descriptor.weights[1]
    assert w.shared and w.transposed and (w.source_input_layer, w.source_output_layer) == ("Input", "Hidden")
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    # Sharing survives: training continues identically on both.
    net.train(1, alpha=0.3, optimizer="Adam", clear_velocity=False)
    back.train(1, alpha=0.3, optimizer="Adam", clear_velocity=False)
    np.testing.assert_array_equal(back.weights("Hidden", "Output")[0], net.weights("Hidden", "Output")[0])
    np.testing.assert_array_equal(back.weights("Hidden", "Output")[0], back.weights("Input", "Hidden")[0].T)


def test_shared_training_is_deterministic():
    x = random_csr(40, 30, 0.08, 4)
    runs = []
    for _ in range(2):
        net = dsstne.Network.from_json(tied_autoencoder(True), [dsstne.DataSet.from_scipy(x, "input")], batch=8,
                                       device="cpu", seed=9)
        net.train(3, alpha=0.3)
        runs.append(net.weights("Input", "Hidden")[0])
    assert runs[0].tobytes() == runs[1].tobytes()


def test_shared_weights_that_cannot_be_located():
    inp, out, _, _ = _data()
    cfg = plain_shared_config()
    cfg["Layers"][2]["SharedWeights"]["SourceOutputLayer"] = "Output"
    with pytest.raises(ConfigError, match=r"(?s)'B'.*SharedWeights.*Unable to locate"):
        dsstne.Network.from_json(cfg, [inp, out], device="cpu")


def test_shared_transposed_size_mismatch():
    x = random_csr(12, 10, 0.3, 4).toarray()
    cfg = tied_autoencoder(False, transposed=False)  # [10 x 6] cannot serve Hidden(6) -> Output(10)
    with pytest.raises(ConfigError, match=r"(?s)SharedWeights.*do not match"):
        dsstne.Network.from_json(cfg, [dsstne.DataSet.from_numpy(x, "input")], device="cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("which", ["skip", "tied_sparse", "plain_shared"])
def test_structure_cuda_matches_cpu(which):
    if which == "skip":
        inp, out, _, _ = _data(rows=64)
        cfg, sets = skip_config(), [inp, out]
    elif which == "plain_shared":
        inp, out, _, _ = _data(rows=64)
        cfg, sets = plain_shared_config(), [inp, out]
    else:
        cfg, sets = tied_autoencoder(True), [dsstne.DataSet.from_scipy(random_csr(64, 30, 0.08, 4), "input")]
    nets = [dsstne.Network.from_json(cfg, sets, batch=16, device=d, seed=3) for d in ("cpu", "cuda")]
    for n in nets:
        n.train(2, alpha=0.2, optimizer="Momentum")
    for w in nets[0].descriptor.weights:
        a, b = (n.weights(w.input_layer, w.output_layer)[0] for n in nets)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    gpu_again = dsstne.Network.from_json(cfg, sets, batch=16, device="cuda", seed=3)
    gpu_again.train(2, alpha=0.2, optimizer="Momentum")
    w = nets[0].descriptor.weights[0]
    assert gpu_again.weights(w.input_layer, w.output_layer)[0].tobytes() == \
        nets[1].weights(w.input_layer, w.output_layer)[0].tobytes()


def test_skip_and_norms_save_load_round_trip(tmp_path):
    inp, out, x, _ = _data(rows=24)
    cfg = skip_config()
    cfg["Layers"][2].update({"WeightNorm": 0.8, "DeltaNorm": 0.5})
    net = dsstne.Network.from_json(cfg, [inp, out], batch=8, device="cpu", seed=3)
    net.train(2, alpha=0.3)
    net.save(tmp_path / "skip.nc")
    back = dsstne.load(tmp_path / "skip.nc", [inp, out], device="cpu")
    assert back.descriptor.layer("Output").skips == ("H1", "H2")
    assert back.descriptor.layer("H2").weight_norm == pytest.approx(0.8)
    assert back.descriptor.layer("H2").delta_norm == pytest.approx(0.5)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    for n in (net, back):
        n.train(1, alpha=0.3)
    np.testing.assert_array_equal(back.weights("H1", "H2")[0], net.weights("H1", "H2")[0])
