"""BatchNormalization on fully connected layers (inventory 1.12): forward (training and inference) against
numpy, gradients against finite differences, one step against PyTorch's batch_norm, running statistics,
model files, determinism, and the CUDA target against the CPU one (`cuda` marker).

Semantics under test: per-unit statistics over the minibatch rows, between the linear sum (+ skips) and
the activation; normalisation with the biased variance and eps = 1e-5; running statistics
``(1 - m) old + m batch`` with m = 1 by default (the original's: the last minibatch's), the running variance
unbiased; inference with the running statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import network_config

import dsstne
from dsstne.formats.model_netcdf import BatchNormState, read_model

EPS = 1e-5


def _data(rows: int = 24, n_in: int = 10, n_out: int = 6, seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n_in)).astype(np.float32)
    y = rng.uniform(0.1, 0.9, size=(rows, n_out)).astype(np.float32)
    return x, y


def _net(x, y, *, batch=None, hidden=(8, "Tanh"), second=None, momentum=1.0, seed=3, skip=False, **extra):
    """Input -> Hidden1 (BatchNormalization) [-> Hidden2 (BN)] -> Output (Sigmoid), L2 loss, dense data."""
    layers = [hidden] + ([second] if second else [])
    cfg = network_config(hidden=layers, output_activation="Sigmoid", error="L2", sparse_input=False, **extra)
    cfg["Layers"][1]["BatchNormalization"] = True
    if second:
        cfg["Layers"][2]["BatchNormalization"] = True
        if skip:  # Hidden2 = BN(h1 W + b + h1): the skip add sits before the normalisation
            cfg["Layers"][2]["Skip"] = ["Hidden1"]
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(y, "output")]
    return dsstne.Network.from_json(cfg, sets, batch=batch or x.shape[0], device="cpu", seed=seed,
                                    batch_norm_momentum=momentum)


def _randomise_bn(net, layer, seed):
    rng = np.random.default_rng(seed)
    n = net.batch_norm_state(layer).scale.shape[0]
    state = BatchNormState(rng.uniform(0.5, 1.5, n).astype(np.float32), rng.normal(0, 0.3, n).astype(np.float32),
                           rng.normal(0, 0.5, n).astype(np.float32), rng.uniform(0.2, 2.0, n).astype(np.float32))
    net.set_batch_norm_state(layer, state)
    return state


def _fields(s: BatchNormState):
    return s.scale, s.bias, s.running_mean, s.running_variance


def _bn_numpy(z, gamma, beta):
    z = z.astype(np.float64)
    mean, var = z.mean(axis=0), z.var(axis=0)
    return gamma * (z - mean) / np.sqrt(var + EPS) + beta, mean, var


# ---------------------------------------------------------------------------------------------- forward

def test_initial_state_and_api():
    x, y = _data()
    net = _net(x, y)
    assert net.batch_norm_layers == ["Hidden1"]
    s = net.batch_norm_state("Hidden1")
    np.testing.assert_array_equal(s.scale, np.ones(8, np.float32))
    for a in (s.bias, s.running_mean, s.running_variance):
        np.testing.assert_array_equal(a, np.zeros(8, np.float32))
    with pytest.raises(dsstne.DataError, match="does not use BatchNormalization"):
        net.batch_norm_state("Output")
    with pytest.raises(dsstne.DataError, match="must have 8 values"):
        net.set_batch_norm_state("Hidden1", BatchNormState(*(np.ones(3, np.float32) for _ in range(4))))
    with pytest.raises(dsstne.DataError, match="negative"):
        net.set_batch_norm_state("Hidden1", BatchNormState(*(np.ones(8, np.float32) for _ in range(3)),
                                                            -np.ones(8, np.float32)))
    with pytest.raises(dsstne.ConfigError, match="batch_norm_momentum"):
        _net(x, y, momentum=1.5)


def test_training_forward_matches_numpy():
    x, y = _data()
    net = _net(x, y)
    gamma, beta = _fields(_randomise_bn(net, "Hidden1", 1))[:2]
    w1, b1 = net.weights("Input", "Hidden1")
    w2, b2 = net.weights("Hidden1", "Output")
    net.gradients()  # one training-mode forward of the whole batch
    bn, _, _ = _bn_numpy(x.astype(np.float64) @ w1 + b1, gamma, beta)
    h = np.tanh(bn)
    np.testing.assert_allclose(net.units("Hidden1"), h, rtol=1e-5, atol=2e-6)
    out = 1 / (1 + np.exp(-(h @ w2 + b2)))
    np.testing.assert_allclose(net.units("Output"), out, rtol=1e-5, atol=2e-6)


def test_inference_uses_running_statistics():
    x, y = _data()
    net = _net(x, y, batch=7)  # several minibatches, one partial: inference is per example
    gamma, beta, mean, var = _fields(_randomise_bn(net, "Hidden1", 2))
    w1, b1 = net.weights("Input", "Hidden1")
    w2, b2 = net.weights("Hidden1", "Output")
    z = x.astype(np.float64) @ w1 + b1
    h = np.tanh(gamma * (z - mean) / np.sqrt(var.astype(np.float64) + EPS) + beta)
    np.testing.assert_allclose(net.predict(x, layer="Hidden1"), h, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(net.predict(x), 1 / (1 + np.exp(-(h @ w2 + b2))), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("momentum", [1.0, 0.1])
def test_running_statistics_after_training(momentum):
    x, y = _data(rows=24)
    net = _net(x, y, batch=10, momentum=momentum)  # minibatches of 10, 10 and 4 rows
    old = _randomise_bn(net, "Hidden1", 3)
    w1, b1 = net.weights("Input", "Hidden1")
    net.train(1, alpha=0.0, lambda_=0.0)  # no learning: every minibatch sees the same weights
    s = net.batch_norm_state("Hidden1")
    mean, var = old.running_mean.astype(np.float64), old.running_variance.astype(np.float64)
    for start in (0, 10, 20):
        z = x[start:start + 10].astype(np.float64) @ w1 + b1
        mean = (1 - momentum) * mean + momentum * z.mean(axis=0)
        var = (1 - momentum) * var + momentum * z.var(axis=0, ddof=1)  # stored unbiased
    np.testing.assert_allclose(s.running_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.running_variance, var, rtol=1e-5, atol=1e-6)
    # Gradient queries leave the running statistics alone.
    net.gradients()
    net.batch_norm_gradients()
    np.testing.assert_array_equal(net.batch_norm_state("Hidden1").running_mean, s.running_mean)


# ---------------------------------------------------------------------------------------------- gradients

def _fd_check(analytic, values, set_values, loss, eps, rtol=3e-2, atol=3e-3):
    """Central differences of loss() along every element of values (float32 engine: loose tolerances)."""
    flat = values.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        set_values(values)
        up = loss()
        flat[i] = keep - eps
        set_values(values)
        down = loss()
        flat[i] = keep
        set_values(values)
        numeric = (up - down) / (2 * eps)
        assert abs(numeric - analytic.reshape(-1)[i]) <= atol + rtol * abs(numeric), (i, numeric, analytic)


@pytest.mark.parametrize("skip", [False, True], ids=["plain", "skip"])
def test_weight_gradients_below_and_above_bn(skip):
    x, y = _data(rows=16)
    net = _net(x, y, second=(8, "Sigmoid"), skip=skip)
    _randomise_bn(net, "Hidden1", 4)
    _randomise_bn(net, "Hidden2", 5)
    result = net.validate(probes=24, eps=1e-2, rtol=5e-2, atol=5e-3)
    assert result.passed, result.failures()
    assert len(result.checks) >= 3 * 24
    # The bias before a normalisation has no effect on the loss: its gradient is zero.
    _, grads = net.gradients()
    np.testing.assert_allclose(grads[("Input", "Hidden1")][1], 0.0, atol=1e-4)


def test_scale_and_bias_gradients_match_finite_differences():
    x, y = _data(rows=16)
    net = _net(x, y, second=(6, "Sigmoid"))
    for layer, seed in (("Hidden1", 6), ("Hidden2", 7)):
        _randomise_bn(net, layer, seed)
    _, grads = net.batch_norm_gradients()
    assert set(grads) == {"Hidden1", "Hidden2"}

    def loss():
        return net.gradients()[0]

    for layer in ("Hidden1", "Hidden2"):
        s = net.batch_norm_state(layer)
        gscale, gbias = grads[layer]
        assert np.abs(gscale).max() > 1e-3 and np.abs(gbias).max() > 1e-3
        scale, bias = s.scale.copy(), s.bias.copy()
        _fd_check(gscale, scale, lambda v, s=s, layer=layer: net.set_batch_norm_state(
            layer, BatchNormState(v, s.bias, s.running_mean, s.running_variance)), loss, eps=1e-2)
        _fd_check(gbias, bias, lambda v, s=s, layer=layer: net.set_batch_norm_state(
            layer, BatchNormState(s.scale, v, s.running_mean, s.running_variance)), loss, eps=1e-2)


# ---------------------------------------------------------------------------------------------- PyTorch

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("optimizer", ["SGD", "Momentum"])
def test_one_step_matches_torch(optimizer):
    x, y = _data(rows=20)
    net = _net(x, y, second=(5, "Sigmoid"))
    states = {ly: _randomise_bn(net, ly, s) for ly, s in (("Hidden1", 8), ("Hidden2", 9))}
    names = [("Input", "Hidden1"), ("Hidden1", "Hidden2"), ("Hidden2", "Output")]
    before = [net.weights(*k) for k in names]
    alpha, lam = 0.5, 0.01

    def t(a):
        return torch.tensor(np.asarray(a, np.float64), requires_grad=True)

    params = [(t(w), t(b)) for w, b in before]
    bn = {ly: (t(s.scale), t(s.bias), torch.tensor(s.running_mean, dtype=torch.float64),
               torch.tensor(s.running_variance, dtype=torch.float64)) for ly, s in states.items()}
    h = torch.tensor(x, dtype=torch.float64)
    for (w, b), layer, act in zip(params[:2], ("Hidden1", "Hidden2"), (torch.tanh, torch.sigmoid)):
        g, beta, rm, rv = bn[layer]
        # BatchNorm1d semantics: biased variance in the normalisation, unbiased in the running variance;
        # momentum 1 = the original's (running statistics = this minibatch's).
        h = act(torch.nn.functional.batch_norm(h @ w + b, rm, rv, g, beta, training=True, momentum=1.0, eps=EPS))
    w, b = params[2]
    a = torch.sigmoid(h @ w + b)
    err = 0.5 * ((a - torch.tensor(y, dtype=torch.float64)) ** 2).sum()
    (err / x.shape[0]).backward()

    net.train(1, alpha=alpha, lambda_=lam, mu=0.9, optimizer=optimizer)
    with torch.no_grad():  # DSSTNE's step from zero velocity: Momentum's first step equals SGD's
        for (w, b), key in zip(params, names):
            ew, eb = w - alpha * (w.grad + lam * w), b - alpha * b.grad
            got_w, got_b = net.weights(*key)
            np.testing.assert_allclose(got_w, ew.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got_b, eb.numpy(), rtol=1e-5, atol=1e-6)
        for layer, (g, beta, rm, rv) in bn.items():
            s = net.batch_norm_state(layer)
            assert not np.array_equal(s.scale, states[layer].scale)
            np.testing.assert_allclose(s.scale, (g - alpha * g.grad).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.bias, (beta - alpha * beta.grad).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.running_mean, rm.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.running_variance, rv.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- files, bits

def _trained(seed=3, epochs=2, optimizer="Adam"):
    x, y = _data(rows=60)
    net = _net(x, y, batch=16, second=(6, "Sigmoid"), seed=seed, ShuffleIndices=True)
    net.train(epochs, alpha=0.01, optimizer=optimizer, mu=0.9, mu1=0.999)
    return net, x, y


def test_save_load_round_trip(tmp_path):
    net, x, y = _trained()
    path = tmp_path / "bn.nc"
    net.save(path)
    model = read_model(path)
    netCDF4 = pytest.importorskip("netCDF4")
    with netCDF4.Dataset(path) as nc:  # the original's names (inventory 3.2): Hidden1 is layer1
        assert nc.dimensions["layer1_bnDim"].size == 8
        np.testing.assert_array_equal(nc["layer1_runningVarianceBN"][:],
                                      net.batch_norm_state("Hidden1").running_variance)
        assert {"layer1_scaleBN", "layer1_biasBN", "layer1_runningMeanBN"} <= set(nc.variables)
    assert set(model.batch_norm) == {"Hidden1", "Hidden2"}
    assert set(model.batch_norm_optimizer["Hidden1"]) == {"velocity", "velocity_bias", "velocity2",
                                                         "velocity2_bias"}
    back = dsstne.load(path, [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(y, "output")],
                       device="cpu")
    for layer in ("Hidden1", "Hidden2"):
        a, b = net.batch_norm_state(layer), back.batch_norm_state(layer)
        for field in ("scale", "bias", "running_mean", "running_variance"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    # Resuming continues bit for bit, the batch-norm optimiser state included.
    net.train(1, alpha=0.01, optimizer="Adam", mu=0.9, mu1=0.999, clear_velocity=False)
    back.train(1, alpha=0.01, optimizer="Adam", mu=0.9, mu1=0.999, clear_velocity=False)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    np.testing.assert_array_equal(back.batch_norm_state("Hidden1").scale, net.batch_norm_state("Hidden1").scale)


def test_training_is_bitwise_reproducible():
    a, x, _ = _trained(epochs=3)
    b, _, _ = _trained(epochs=3)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    for layer in ("Hidden1", "Hidden2"):
        sa, sb = a.batch_norm_state(layer), b.batch_norm_state(layer)
        for field in ("scale", "bias", "running_mean", "running_variance"):
            np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field))
    assert np.isfinite(a.history[-1].error) and a.history[-1].error < a.history[0].error


# ---------------------------------------------------------------------------------------------- CUDA

def _pair(batch=32, n=150, seed=11):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 300)).astype(np.float32)
    y = rng.uniform(0, 1, size=(n, 70)).astype(np.float32)
    cfg = network_config(hidden=[(100, "Tanh"), (40, "RectifiedLinear")], error="L2", sparse_input=False,
                         ShuffleIndices=True)
    cfg["Layers"][1]["BatchNormalization"] = True
    cfg["Layers"][2]["BatchNormalization"] = True
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(y, "output")]
    nets = [dsstne.Network.from_json(cfg, sets, batch=batch, device=d, seed=seed) for d in ("cpu", "cuda")]
    return nets, x


@pytest.mark.cuda
def test_cuda_matches_cpu():
    (cpu, gpu), x = _pair()
    for layer in ("Hidden1", "Hidden2"):
        state = _randomise_bn(cpu, layer, 12)
        gpu.set_batch_norm_state(layer, state)
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-6)
    (ec, gc), (eg, gg) = cpu.gradients(), gpu.gradients()
    assert eg == pytest.approx(ec, rel=1e-4)
    for key in gc:
        np.testing.assert_allclose(gg[key][0], gc[key][0], rtol=1e-4, atol=1e-5)
    (_, bc), (_, bg) = cpu.batch_norm_gradients(), gpu.batch_norm_gradients()
    for layer in bc:
        for a, b in zip(bg[layer], bc[layer]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for net in (cpu, gpu):
        net.train(2, alpha=0.01)
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-3, atol=1e-4)
    for layer in ("Hidden1", "Hidden2"):
        for a, b in zip(_fields(gpu.batch_norm_state(layer)), _fields(cpu.batch_norm_state(layer))):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.cuda
def test_cuda_is_bitwise_reproducible():
    runs = []
    for _ in range(2):
        (_, gpu), x = _pair()
        gpu.train(2, alpha=0.01, optimizer="Adam", mu=0.9, mu1=0.999)
        runs.append((gpu.predict(x), gpu.batch_norm_state("Hidden1")))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1].running_variance, runs[1][1].running_variance)
