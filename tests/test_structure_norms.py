"""WeightNorm, DeltaNorm, alpha dropout, the Tanh dropout-scale rule, weight locking, Target layers, the
divergence brake and the original's sample configs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_csr
from test_config import config_1, config_3, config_5, config_6, two_hidden
from test_gradients import check_gradients

import dsstne


def _cfg(hidden: dict, output: dict | None = None, error: str = "L2") -> dict:
    return {"Version": 0.8, "Name": "norms", "ShuffleIndices": False, "ErrorFunction": error, "Layers": [
        {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input"},
        {"Name": "Hidden", "Kind": "Hidden", "N": 9, "Activation": "Tanh", **hidden},
        {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output", "Activation": "Sigmoid",
         **(output or {})},
    ]}


def _sets(rows: int = 16, seed: int = 1):
    x = random_csr(rows, 12, 0.4, seed, values=True).toarray() * 3.0
    y = random_csr(rows, 6, 0.3, seed + 1).toarray()
    return [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(y, "output")], x


def _max_norm_columns(w: np.ndarray, norm: float) -> np.ndarray:
    n = np.sqrt((w.astype(np.float64) ** 2).sum(axis=0))
    return (w * np.where(n > norm, norm / n, 1.0)).astype(np.float32)


def _clamp_rows(d: np.ndarray, norm: float) -> np.ndarray:
    n = np.sqrt((d.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    return (d * np.where(n > norm, norm / n, 1.0)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ WeightNorm
def test_weight_norm_clamps_columns_after_the_update():
    sets, _ = _sets()
    plain = dsstne.Network.from_json(_cfg({}), sets, batch=16, device="cpu", seed=4)
    normed = dsstne.Network.from_json(_cfg({"WeightNorm": 0.3}, {"WeightNorm": 0.5}), sets, batch=16, device="cpu",
                                      seed=4)
    for net in (plain, normed):  # one minibatch: the same update, then the clamp
        net.train(1, alpha=2.0, lambda_=0.0)
    for (src, dst), norm in ((("Input", "Hidden"), 0.3), (("Hidden", "Output"), 0.5)):
        w_plain, b_plain = plain.weights(src, dst)
        w_norm, b_norm = normed.weights(src, dst)
        expected = _max_norm_columns(w_plain, norm)
        assert (np.sqrt((w_plain.astype(np.float64) ** 2).sum(0)) > norm).any()  # the clamp did something
        np.testing.assert_allclose(w_norm, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(b_norm, b_plain)  # biases are not normalised


# ------------------------------------------------------------------------------------------------ DeltaNorm
def test_delta_norm_clamps_each_example():
    sets, _ = _sets()
    plain = dsstne.Network.from_json(_cfg({}), sets, batch=16, device="cpu", seed=4)
    out_only = dsstne.Network.from_json(_cfg({}, {"DeltaNorm": 0.2}), sets, batch=16, device="cpu", seed=4)
    hidden_only = dsstne.Network.from_json(_cfg({"DeltaNorm": 0.05}), sets, batch=16, device="cpu", seed=4)
    for net in (plain, out_only, hidden_only):
        net.gradients(0)
    d_out = plain.deltas("Output")
    assert (np.linalg.norm(d_out, axis=1) > 0.2).any()
    np.testing.assert_allclose(out_only.deltas("Output"), _clamp_rows(d_out, 0.2), rtol=1e-5, atol=1e-7)
    # Hidden: after the activation derivative, from the unclamped output deltas.
    np.testing.assert_array_equal(hidden_only.deltas("Output"), d_out)
    d_hidden = plain.deltas("Hidden")
    assert (np.linalg.norm(d_hidden, axis=1) > 0.05).any()
    np.testing.assert_allclose(hidden_only.deltas("Hidden"), _clamp_rows(d_hidden, 0.05), rtol=1e-5, atol=1e-7)
    # The weight gradient follows the clamped delta: dE/dW = X^T delta.
    _, grads = hidden_only.gradients(0)
    x = sets[0].to_numpy()
    np.testing.assert_allclose(grads[("Input", "Hidden")][0], x.T @ hidden_only.deltas("Hidden"), rtol=1e-4,
                               atol=1e-5)


def test_norms_training_is_deterministic():
    sets, _ = _sets(rows=64)
    cfg = _cfg({"WeightNorm": 0.4, "DeltaNorm": 0.1}, {"DeltaNorm": 0.3})
    runs = []
    for _ in range(2):
        net = dsstne.Network.from_json(cfg, sets, batch=8, device="cpu", seed=2)
        net.train(3, alpha=0.5, optimizer="Nesterov")
        runs.append(net.weights("Input", "Hidden")[0])
    assert runs[0].tobytes() == runs[1].tobytes()


# ------------------------------------------------------------------------------------------------ dropout variants
@pytest.mark.parametrize("activation", ["ExponentialLinear", "ScaledExponentialLinear"])
def test_alpha_dropout(activation):
    sets, x = _sets(rows=64)
    cfg = _cfg({"Activation": activation, "pDropout": 0.3, "ELUAlpha": 1.2, "N": 40})
    net = dsstne.Network.from_json(cfg, sets, batch=64, device="cpu", seed=3)
    clean = net.predict(x, layer="Hidden")
    net.gradients(0)  # a training-mode forward: dropout applied
    dropped_units = net.units("Hidden")
    lam = 1.050701 if activation == "ScaledExponentialLinear" else 1.0
    alpha, p = -lam * 1.2, 0.3
    q = 1 - p
    a = 1 / np.sqrt(q + alpha * alpha * p * q)
    b = -a * p * alpha
    dropped = np.isclose(dropped_units, a * alpha + b, rtol=1e-6, atol=1e-7)
    assert 0.2 < dropped.mean() < 0.4
    np.testing.assert_allclose(dropped_units[~dropped], (a * clean + b)[~dropped], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("layer, activation, target, scaled",
                         [("Hidden", "Sigmoid", 0.5, False), ("Hidden", "RectifiedLinear", 0.0, True),
                          ("Hidden", "Tanh", 0.0, True), ("Output", "SoftMax", 0.0, True)])
def test_plain_dropout_after_the_activation(device, layer, activation, target, scaled):
    # Element-wise kinds take the mask in the activation's own pass, SoftMax in the dropout op after it; both
    # draw it from the unit's flat index, so the two targets drop the same units.
    sets, x = _sets(rows=64)
    p = 0.3
    hidden, output = {"N": 40}, {}
    (hidden if layer == "Hidden" else output).update({"Activation": activation, "pDropout": p})
    cfg = _cfg(hidden, output, error="CrossEntropy" if activation == "SoftMax" else "L2")
    nets = [dsstne.Network.from_json(cfg, sets, batch=64, device=d, seed=3) for d in ("cpu", device)]
    kept = nets[1].predict(x, layer=layer) * (1 / (1 - p) if scaled else 1.0)
    for net in nets:
        net.gradients(0)  # a training-mode forward: dropout applied
    units = [net.units(layer) for net in nets]
    dropped = ~np.isclose(units[1], kept, rtol=1e-5, atol=1e-7)
    assert 0.2 < dropped.sum() / (kept != target).sum() < 0.4
    np.testing.assert_array_equal(units[1][dropped], target)
    np.testing.assert_array_equal(dropped, ~np.isclose(units[0], kept, rtol=1e-5, atol=1e-7))  # the same mask


def test_tanh_dropout_scale_rule():
    sets, _ = _sets(rows=32)
    cfg = _cfg({"pDropout": 0.25})
    nets = [dsstne.Network.from_json(cfg, sets, batch=32, device="cpu", seed=6, tanh_dropout_scale=t)
            for t in (True, False)]
    for n in nets:
        n.gradients(0)
    a = nets[0].units("Hidden")
    np.testing.assert_array_equal(a, nets[1].units("Hidden"))  # same mask
    s = 1 / (1 - 0.25)
    factor = s * (1 - (a / s) ** 2) / (1 - a * a)
    np.testing.assert_allclose(nets[0].deltas("Hidden"), nets[1].deltas("Hidden") * factor, rtol=1e-4, atol=1e-6)
    # Without dropout the rule changes nothing.
    plain = [dsstne.Network.from_json(_cfg({}), sets, batch=32, device="cpu", seed=6, tanh_dropout_scale=t)
             for t in (True, False)]
    for n in plain:
        n.gradients(0)
    np.testing.assert_array_equal(plain[0].deltas("Hidden"), plain[1].deltas("Hidden"))


# ------------------------------------------------------------------------------------------------ locking, Target
def test_locked_weights_keep_their_values_and_round_trip(tmp_path):
    sets, x = _sets(rows=32)
    net = dsstne.Network.from_json(_cfg({}), sets, batch=8, device="cpu", seed=1)
    net.lock_weights("Input", "Hidden")
    assert net.weights_locked("Input", "Hidden") and not net.weights_locked("Hidden", "Output")
    before = [net.weights(*k) for k in (("Input", "Hidden"), ("Hidden", "Output"))]
    net.train(2, alpha=0.5, optimizer="Adam")
    after = [net.weights(*k) for k in (("Input", "Hidden"), ("Hidden", "Output"))]
    np.testing.assert_array_equal(after[0][0], before[0][0])
    np.testing.assert_array_equal(after[0][1], before[0][1])
    assert not np.array_equal(after[1][0], before[1][0])
    path = tmp_path / "locked.nc"
    net.save(path)
    from dsstne.formats.model_netcdf import read_model

    assert read_model(path).locked == {("Input", "Hidden")}
    back = dsstne.load(path, sets, device="cpu")
    assert back.locked_connections == {("Input", "Hidden")}
    back.train(1, alpha=0.5)
    np.testing.assert_array_equal(back.weights("Input", "Hidden")[0], before[0][0])
    net.lock_weights("Input", "Hidden", False)
    net.train(1, alpha=0.5)
    assert not np.array_equal(net.weights("Input", "Hidden")[0], before[0][0])


def test_target_layer_runs_as_hidden():
    sets, x = _sets()
    cfg = _cfg({})
    cfg["Layers"][1]["Kind"] = "Target"
    del cfg["Layers"][1]["Activation"]  # Hidden/Output keys only: a Target keeps the default Sigmoid
    cfg["Layers"][2]["Source"] = "Hidden"
    net = dsstne.Network.from_json(cfg, sets, batch=16, device="cpu")
    check_gradients(net)
    errors = net.train(3, alpha=0.5)
    assert errors[-1] < errors[0]
    assert net.predict(x).shape == (16, 6)


# ------------------------------------------------------------------------------------------------ divergence brake
def test_divergence_brake_off_when_stable_changes_nothing():
    sets, _ = _sets(rows=64)
    nets = [dsstne.Network.from_json(_cfg({}), sets, batch=4, device="cpu", seed=2) for _ in range(2)]
    nets[0].train(2, alpha=0.1)
    nets[1].train(2, alpha=0.1, divergence_brake=True)
    assert nets[0].weights("Input", "Hidden")[0].tobytes() == nets[1].weights("Input", "Hidden")[0].tobytes()


def test_divergence_brake_skips_the_spike_and_slows_down():
    rows = 140
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (rows, 4)).astype(np.float32)
    y = np.full((rows, 2), 0.5, np.float32)
    y[120] = 1000.0  # one example whose error dwarfs the moving average (Linear output, L2)
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(y, "output")]
    cfg = _cfg({"N": 3}, {"Activation": "Linear"})
    net = dsstne.Network.from_json(cfg, sets, batch=1, device="cpu", seed=2)
    net.train(1, alpha=1e-3, lambda_=0.0, divergence_brake=True)
    assert net.batches_done == rows
    assert net.optimizer_steps == rows - 1  # the detecting minibatch was not learned from
    plain = dsstne.Network.from_json(cfg, sets, batch=1, device="cpu", seed=2)
    plain.train(1, alpha=1e-3, lambda_=0.0)
    assert plain.optimizer_steps == rows
    assert not np.array_equal(plain.weights("Hidden", "Output")[0], net.weights("Hidden", "Output")[0])
    # The same schedule by hand: examples 0 - 119 at alpha, 120 skipped, the last 19 at a tenth of it (the
    # brake lasts 24 more minibatches). SGD keeps no state, so two plain runs give the same bits.
    pairs = (("Input", "Hidden"), ("Hidden", "Output"))
    head = dsstne.Network.from_json(cfg, [dsstne.DataSet.from_numpy(x[:120], "input"),
                                          dsstne.DataSet.from_numpy(y[:120], "output")], batch=1, device="cpu", seed=2)
    head.train(1, alpha=1e-3, lambda_=0.0)
    tail = dsstne.Network.from_json(cfg, [dsstne.DataSet.from_numpy(x[121:], "input"),
                                          dsstne.DataSet.from_numpy(y[121:], "output")], batch=1, device="cpu", seed=2)
    for pair in pairs:
        tail.set_weights(*pair, *head.weights(*pair))
    tail.train(1, alpha=float(np.float32(1e-3) * np.float32(0.1)), lambda_=0.0)
    for pair in pairs:
        for got, want in zip(net.weights(*pair), tail.weights(*pair)):
            assert got.tobytes() == want.tobytes()


# ------------------------------------------------------------------------------------------------ sample configs
def _sample_data(cfg: dict, rows: int = 48, width: int = 120):
    names = {ly.get("DataSet") for ly in cfg["Layers"] if ly.get("DataSet")}
    return [dsstne.DataSet.from_scipy(random_csr(rows, width, 0.05, 7 + i), name, boolean=True)
            for i, name in enumerate(sorted(names))]


SAMPLES = {"config_1": config_1, "config_2": lambda: two_hidden("2 Hidden Layer", 1024), "config_3": config_3,
           "config_4": lambda: two_hidden("2 layer ReLu", 1536), "config_5": config_5, "config_6": config_6}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_configs_train_two_epochs(name):
    cfg = SAMPLES[name]()
    net = dsstne.Network.from_json(cfg, _sample_data(cfg), batch=16, device="cpu")
    errors = net.train(2, alpha=0.01)
    assert len(errors) == 2 and all(np.isfinite(errors))


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_configs_train_two_epochs_cuda(name):
    cfg = SAMPLES[name]()
    net = dsstne.Network.from_json(cfg, _sample_data(cfg), batch=16, device="cuda")
    errors = net.train(2, alpha=0.01)
    assert len(errors) == 2 and all(np.isfinite(errors))


@pytest.mark.cuda
def test_norms_and_alpha_dropout_cuda_match_cpu():
    sets, _ = _sets(rows=64)
    cfg = _cfg({"Activation": "ScaledExponentialLinear", "WeightNorm": 0.4, "DeltaNorm": 0.1, "pDropout": 0.2},
               {"DeltaNorm": 0.3})
    nets = [dsstne.Network.from_json(cfg, sets, batch=16, device=d, seed=2) for d in ("cpu", "cuda")]
    for n in nets:
        n.train(2, alpha=0.5)
    for key in (("Input", "Hidden"), ("Hidden", "Output")):
        np.testing.assert_allclose(nets[0].weights(*key)[0], nets[1].weights(*key)[0], rtol=1e-4, atol=1e-5)
    again = dsstne.Network.from_json(cfg, sets, batch=16, device="cuda", seed=2)
    again.train(2, alpha=0.5)
    assert again.weights("Input", "Hidden")[0].tobytes() == nets[1].weights("Input", "Hidden")[0].tobytes()
