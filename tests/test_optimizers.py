"""Every optimiser's 20-step trajectory against numpy written from DSSTNE's update formulas (float64).

Network: dense input (5) -> Linear output (3), L2 loss, one minibatch of 8 examples, so the gradient is
exact in numpy: G = -(1/rows) X^T (Z - T), gb = -mean(Z - T), with L2 (lambda) and L1 (lambda1) on weights.
Then the update's shortcuts: SGD steps taken inside the gradient GEMMs (a hidden layer's network
against numpy, and the GPU against the CPU target), the output matrix's step deferred to the next
forward (the same two oracles, RMSProp), and a sparse input's gradient read only in the rows its
minibatch wrote (against the same examples fed as a dense input).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne

RNG = np.random.default_rng(4)
X = RNG.normal(size=(8, 5)).astype(np.float32)
T = RNG.normal(size=(8, 3)).astype(np.float32)


def reference(w, b, mode, steps, alpha, lam, lam1, mu, mu1, decay=0.0, adam_offset=1):
    w, b = w.astype(np.float64), b.astype(np.float64)
    state = {k: np.zeros_like(w) for k in ("v", "v2")} | {k: np.zeros_like(b) for k in ("bv", "bv2")}
    for step in range(1, steps + 1):
        z = X @ w + b
        delta = z - T
        gw = -(X.T @ delta) / len(X) - lam * w - lam1 * np.sign(w)
        gb = -delta.mean(axis=0)
        a = alpha / (1 + decay * (step - 1)) if decay > 0 else alpha
        w = _step(mode, w, gw, state, "v", "v2", a, mu, mu1, step + adam_offset)
        b = _step(mode, b, gb, state, "bv", "bv2", a, mu, mu1, step + adam_offset)
    return w, b


def _step(mode, w, g, s, k1, k2, alpha, mu, mu1, tau):
    floor = 1e-9
    if mode == "SGD":
        return w + alpha * g
    if mode == "Momentum":
        s[k1] = mu * s[k1] + alpha * g
        return w + s[k1]
    if mode == "AdaGrad":
        s[k1] = s[k1] + g * g
        return w + alpha * g / np.sqrt(np.maximum(floor, s[k1]))
    if mode == "Nesterov":
        prev = s[k1]
        s[k1] = mu * prev + alpha * g
        return w + s[k1] + mu * (s[k1] - prev)
    if mode == "RMSProp":
        s[k1] = mu * s[k1] + (1 - mu) * g * g
        return w + alpha * g / np.sqrt(np.maximum(floor, s[k1]))
    if mode == "AdaDelta":
        s[k2] = mu * s[k2] + (1 - mu) * g * g
        dw = np.sqrt(np.maximum(floor, s[k1]) / np.maximum(floor, s[k2])) * g
        s[k1] = mu * s[k1] + (1 - mu) * dw * dw
        return w + dw
    if mode == "Adam":
        s[k1] = mu * s[k1] + (1 - mu) * g
        s[k2] = mu1 * s[k2] + (1 - mu1) * g * g
        m = s[k1] / (1 - mu**tau)
        v = s[k2] / (1 - mu1**tau)
        return w + alpha * m / (np.sqrt(v) + 1e-8)
    raise AssertionError(mode)


def _net(decay=0.0, device="cpu"):
    cfg = network_config(n_in=5, hidden=(), output_activation="Linear", error="L2", sparse_input=False)
    cfg["Layers"][0]["N"] = 5
    if decay:
        cfg["Decay"] = decay
    sets = [dsstne.DataSet.from_numpy(X, "input"), dsstne.DataSet.from_numpy(T, "output")]
    return dsstne.Network.from_json(cfg, sets, batch=8, device=device, seed=1)


PARAMS = {
    "SGD": dict(alpha=0.1, mu=0.0, mu1=0.0),
    "Momentum": dict(alpha=0.05, mu=0.9, mu1=0.0),
    "AdaGrad": dict(alpha=0.1, mu=0.0, mu1=0.0),
    "Nesterov": dict(alpha=0.05, mu=0.8, mu1=0.0),
    "RMSProp": dict(alpha=0.01, mu=0.9, mu1=0.0),
    "AdaDelta": dict(alpha=1.0, mu=0.95, mu1=0.0),
    "Adam": dict(alpha=0.01, mu=0.9, mu1=0.999),
}


@pytest.mark.parametrize("mode", PARAMS)
def test_twenty_steps_match_the_formulas(mode):
    net = _net()
    w0, b0 = net.weights("Input", "Output")
    p = PARAMS[mode]
    net.train(20, lambda_=0.01, lambda1=0.001, optimizer=mode, **p)
    w, b = net.weights("Input", "Output")
    ew, eb = reference(w0, b0, mode, 20, lam=0.01, lam1=0.001, **p)
    assert not np.allclose(w, w0)
    np.testing.assert_allclose(w, ew, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, eb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dsstne_step", [True, False], ids=["dsstne_tau", "textbook_tau"])
def test_adam_first_step_convention(dsstne_step):
    net = _net()
    w0, b0 = net.weights("Input", "Output")
    net.train(5, optimizer="Adam", adam_dsstne_step=dsstne_step, **PARAMS["Adam"], lambda_=0.0)
    ew, eb = reference(w0, b0, "Adam", 5, lam=0.0, lam1=0.0, adam_offset=1 if dsstne_step else 0,
                       **PARAMS["Adam"])
    np.testing.assert_allclose(net.weights("Input", "Output")[0], ew, rtol=1e-5, atol=1e-6)


def test_learning_rate_decay_per_minibatch():
    net = _net(decay=0.5)
    w0, b0 = net.weights("Input", "Output")
    net.train(10, alpha=0.1, lambda_=0.0)
    ew, _ = reference(w0, b0, "SGD", 10, alpha=0.1, lam=0.0, lam1=0.0, mu=0.0, mu1=0.0, decay=0.5)
    np.testing.assert_allclose(net.weights("Input", "Output")[0], ew, rtol=1e-5, atol=1e-6)


def test_velocity_is_cleared_per_train_call_unless_asked_not_to():
    one, two, kept = _net(), _net(), _net()
    p = PARAMS["Momentum"]
    one.train(4, optimizer="Momentum", **p)
    two.train(2, optimizer="Momentum", **p)
    two.train(2, optimizer="Momentum", **p)  # the original's semantics: state restarts
    kept.train(2, optimizer="Momentum", **p)
    kept.train(2, optimizer="Momentum", clear_velocity=False, **p)
    w1, w2, w3 = (n.weights("Input", "Output")[0] for n in (one, two, kept))
    assert not np.array_equal(w1, w2)
    assert w1.tobytes() == w3.tobytes()


def test_optimizer_state_round_trips_through_a_model_file(tmp_path):
    net = _net()
    net.train(3, optimizer="Adam", **PARAMS["Adam"])
    path = tmp_path / "adam.nc"
    net.save(path)
    again = dsstne.load(path, [dsstne.DataSet.from_numpy(X, "input"), dsstne.DataSet.from_numpy(T, "output")],
                        device="cpu")
    for n in (net, again):
        n.train(3, optimizer="Adam", clear_velocity=False, **PARAMS["Adam"])
    assert net.weights("Input", "Output")[0].tobytes() == again.weights("Input", "Output")[0].tobytes()


@pytest.mark.cuda
@pytest.mark.parametrize("mode", PARAMS)
def test_cuda_optimizers_match_cpu(mode):
    cpu, gpu = _net(), _net(device="cuda")
    for n in (cpu, gpu):
        n.train(20, lambda_=0.01, lambda1=0.001, optimizer=mode, **PARAMS[mode])
    np.testing.assert_allclose(gpu.weights("Input", "Output")[0], cpu.weights("Input", "Output")[0],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("lam1", [0.001, 0.0], ids=["l1_update_op", "l2_only_step_in_gemm"])
def test_regularization_error_is_reported_separately(device, lam1):
    # One minibatch per epoch: the reported term is sum(0.5 lambda w^2 + lambda1 |w|) of the weights before the
    # step (without L1, SGD steps the matrix inside the gradient GEMM and a separate op sums the term).
    net = _net(device=device)
    w0, _ = net.weights("Input", "Output")
    net.train(1, alpha=0.1, lambda_=0.01, lambda1=lam1)
    expected = np.sum(0.5 * 0.01 * w0.astype(np.float64) ** 2 + lam1 * np.abs(w0))
    assert net.history[-1].regularization == pytest.approx(expected, rel=1e-5)
    plain = _net(device=device)
    plain.train(1, alpha=0.1, lambda_=0.0)
    assert plain.history[-1].regularization == 0.0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("mode", ["RMSProp", "SGD"], ids=["update_op", "sum_op"])
@pytest.mark.parametrize("c", [1, 3], ids=["ties_down", "ties_up"])
def test_regularization_error_rounds_each_term_half_to_even(device, mode, c):
    # Each weight's term is rounded to fixed point (2^30) before the integer sum. lambda = c 2^-17 over 8
    # rows and w = a / 256 (a odd) make a term c a^2 / 2 exactly (every product fits a float's 24 bits):
    # a tie, whose even neighbour is below it for c = 1 (a^2 = 1 mod 8) and above it for c = 3, on either
    # target, from terms of one half to terms past 2^22, beyond the CPU target's exact integer path
    # (vec::fixed, under 2^21). Rounding half away from zero fails c = 1, truncation fails c = 3.
    past = {1: [2897, 3001, 4093, 4095], 3: [1673, 2049, 2361, 2363]}[c]  # c a^2 / 2 >= 2^22, c a^2 < 2^24
    a = np.array([1, 3, 5, 7, 9, 11, 13, 15, 255, 1023, 2047, *past], dtype=np.int64)
    assert (c * a * a < 2**24).all() and (c * a * a / 2 >= 2**22).any()
    net = _net(device=device)
    net.set_weights("Input", "Output", (a / 256.0).astype(np.float32).reshape(5, 3), np.zeros(3, np.float32))
    net.train(1, lambda_=c * 2.0**-17, lambda1=0.0, optimizer=mode, **{**PARAMS[mode], "alpha": 0.0})
    even = np.rint(c * a * a / 2.0).astype(np.int64)  # numpy rounds halves to even
    assert net.history[-1].regularization == float(even.sum()) / 2.0**30 / len(X)


def _mlp(x, t, hidden, device="cpu", batch=None):
    cfg = network_config(n_in=x.shape[1], hidden=tuple((n, "Sigmoid") for n in hidden), output_activation="Linear",
                         error="L2", sparse_input=False)
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(t, "output")]
    return dsstne.Network.from_json(cfg, sets, batch=batch or len(x), device=device, seed=1)


# The update's steps beside the backward, on a network of two hidden layers. SGD with L2 only steps every
# matrix inside its gradient GEMM (Network::steps_in_gemm), where each layer's delta must use the matrix from
# before the step and the regularisation error the weights from before it. RMSProp defers the output
# matrix's step to the side stream until the next forward's output layer (Network::defers_step) and steps
# the others in the update's pass; each forward must see every matrix after the step before it.
BESIDE = {"SGD": dict(alpha=0.2, mu=0.0, mu1=0.0), "RMSProp": PARAMS["RMSProp"]}
PAIRS = (("Input", "Hidden1"), ("Hidden1", "Hidden2"), ("Hidden2", "Output"))


def _check_mlp_steps(net, mode, p, lam, lam1=0.0, steps=20):
    """`steps` one-minibatch epochs of the (4, 3) MLP against its forward, backward and steps in float64,
    the reported regularisation term (of the weights before each step) included."""
    params = {pair: [a.astype(np.float64) for a in net.weights(*pair)] for pair in PAIRS}
    state = {(pair, i, k): np.zeros_like(a) for pair, pb in params.items() for i, a in enumerate(pb) for k in (1, 2)}
    rows = len(X)
    regularization = []
    for step in range(steps):
        regularization.append(sum(np.sum(0.5 * lam * w * w + lam1 * np.abs(w)) for w, _ in params.values()))
        units = [X]  # each layer's input
        for w, b in list(params.values())[:-1]:
            units.append(1 / (1 + np.exp(-(units[-1] @ w + b))))
        w_out, b_out = params[PAIRS[-1]]
        delta = units[-1] @ w_out + b_out - T
        grads = {}
        for pair, x_in in zip(PAIRS[::-1], units[::-1]):
            w = params[pair][0]
            grads[pair] = (-(x_in.T @ delta) / rows - lam * w - lam1 * np.sign(w), -delta.mean(axis=0))
            delta = (delta @ w.T) * x_in * (1 - x_in)  # the input layer's (unused)
        params = {pair: [_step(mode, a, g, state, (pair, i, 1), (pair, i, 2), p["alpha"], p["mu"], p["mu1"], step + 2)
                         for i, (a, g) in enumerate(zip(pb, grads[pair]))] for pair, pb in params.items()}
    net.train(steps, lambda_=lam, lambda1=lam1, optimizer=mode, **p)
    for pair, expected in params.items():
        for a, b in zip(net.weights(*pair), expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r.regularization for r in net.history], regularization, rtol=1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("mode", BESIDE)
def test_steps_beside_the_backward_match_the_formulas(mode, device):
    _check_mlp_steps(_mlp(X, T, (4, 3), device=device), mode, BESIDE[mode], lam=0.05)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("mode", PARAMS)
def test_padded_matrices_step_as_the_formulas(mode, device):
    # Hidden1 -> Hidden2 (4 x 3) and Hidden2 -> Output (3 x 3) keep rows of 4 floats (Network::pads_matrix):
    # every mode, with L1 and L2, must leave the padding zero (the regularisation term sums it) and step
    # the rest as the formulas do.
    _check_mlp_steps(_mlp(X, T, (4, 3), device=device), mode, PARAMS[mode], lam=0.01, lam1=0.001)


@pytest.mark.cuda
@pytest.mark.parametrize("mode", BESIDE)
def test_cuda_steps_beside_the_backward_match_cpu(mode):
    # Wide enough that a race would show, four minibatches an epoch, the weights read right after training.
    # SGD's steps run on the side stream after the deltas' GEMMs (which read the matrices before them),
    # beside the rest of the backward and the update; RMSProp's output step (4 times the largest other)
    # beside the next minibatch's input and hidden layers. RMSProp divides each gradient by its own running
    # RMS, so an element whose gradient is near zero steps by up to alpha either way on rounding noise: about
    # 0.2 % of the elements part (float32 against float64 in numpy: 0.16 %; the GPU against the CPU before
    # the deferral: 0.15 %). A race would part most of them.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(1024, 300)).astype(np.float32)
    t = rng.normal(size=(1024, 2000)).astype(np.float32)
    cpu, gpu = _mlp(x, t, (512, 512), batch=256), _mlp(x, t, (512, 512), device="cuda", batch=256)
    p = {**BESIDE[mode], "alpha": 0.01}
    for n in (cpu, gpu):
        n.train(3, lambda_=0.01, optimizer=mode, **p)
    for pair in PAIRS:
        for a, b in zip(gpu.weights(*pair), cpu.weights(*pair)):
            if mode == "SGD":
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
            else:
                assert np.isclose(a, b, rtol=1e-4, atol=1e-6).mean() > 0.99
                np.testing.assert_allclose(a, b, atol=p["alpha"])
    if mode == "SGD":  # the last forward's units, from the weights before the last step
        for layer in ("Hidden1", "Hidden2"):
            np.testing.assert_allclose(gpu.units(layer), cpu.units(layer), rtol=1e-4, atol=1e-6)
    for field in ("error", "regularization"):
        np.testing.assert_allclose([getattr(r, field) for r in gpu.history],
                                   [getattr(r, field) for r in cpu.history], rtol=1e-4 if mode == "SGD" else 1e-3)


@pytest.mark.cuda
def test_cuda_deferred_steps_of_two_matrices_match_cpu():
    # Two hidden layers of unequal widths feed the output, so the deferred list holds two matrices that share
    # the GPU's grid in proportion (UpdateListArgs::beside), a few blocks for the narrow one. Momentum, not
    # RMSProp: it does not scale a near-zero gradient's rounding noise up to a whole step (RMSProp parted
    # 2.6 % of the narrow layer's input weights beyond 1e-4 here), so the bounds can be tight; a missed or
    # raced step moves a weight by about alpha times its gradient, far beyond them.
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1024, 300)).astype(np.float32)
    t = rng.normal(size=(1024, 2000)).astype(np.float32)
    layers = [{"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": False},
              {"Name": "A", "Kind": "Hidden", "N": 512, "Activation": "Sigmoid", "Source": ["Input"]},
              {"Name": "B", "Kind": "Hidden", "N": 20, "Activation": "Tanh", "Source": ["Input"]},
              {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output", "Activation": "Linear",
               "Source": ["A", "B"]}]
    cfg = {"Version": 0.8, "Name": "two", "Kind": "FeedForward", "ErrorFunction": "L2", "ShuffleIndices": False,
           "Layers": layers}
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(t, "output")]
    cpu, gpu = (dsstne.Network.from_json(cfg, sets, batch=256, device=d, seed=1) for d in ("cpu", "cuda"))
    p = {**PARAMS["Momentum"], "alpha": 0.01}
    for n in (cpu, gpu):
        n.train(3, lambda_=0.01, optimizer="Momentum", **p)
    for pair in (("Input", "A"), ("Input", "B"), ("A", "Output"), ("B", "Output")):
        for a, b in zip(gpu.weights(*pair), cpu.weights(*pair)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose([r.error for r in gpu.history], [r.error for r in cpu.history], rtol=1e-4)


def _sparse_or_dense(x, device, sparse, hidden, batch):
    """Input -> (hidden Sigmoid units, or none for hidden 0) -> 3 Linear outputs, L2, on random targets."""
    cfg = network_config(n_in=x.shape[1], hidden=((hidden, "Sigmoid"),) if hidden else (),
                         output_activation="Linear", error="L2", sparse_input=sparse)
    t = np.random.default_rng(5).normal(size=(x.shape[0], 3)).astype(np.float32)
    data = dsstne.DataSet.from_scipy(x, "input") if sparse else dsstne.DataSet.from_numpy(x.toarray(), "input")
    return dsstne.Network.from_json(cfg, [data, dsstne.DataSet.from_numpy(t, "output")], batch=batch, device=device,
                                    seed=1)


def _nearly_all_close(actual, desired, rtol, atol, err_msg=""):
    """All but 1 in 10,000 elements (at least 2) within (rtol, atol), and every one within 5 % or 1e-4."""
    outside = ~np.isclose(actual, desired, rtol=rtol, atol=atol)
    assert outside.sum() <= max(2, 1e-4 * outside.size), \
        f"{err_msg}: {outside.sum()} of {outside.size} elements outside the bounds"
    np.testing.assert_allclose(actual, desired, rtol=5e-2, atol=1e-4, err_msg=err_msg)


def _popular(rows, cols, seed):
    """Sparse rows in which unit 0 is listed by every row: on the GPU its gradient row is a large bucket."""
    x = random_csr(rows, cols, 0.05, seed=seed, values=True).tolil()
    x[:, 0] = 0.5
    return x.tocsr()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("mode", ["SGD", "AdaGrad", "RMSProp", "Adam"])
@pytest.mark.parametrize("shape", ["narrow", "wide-popular", "large", "long-epoch"])
@pytest.mark.parametrize("lam", [0.01, 0.0], ids=["l2", "unregularised"])
def test_sparse_input_trains_as_the_same_data_dense(device, mode, shape, lam):
    # The sparse input's gradient is written only in the rows of the units a minibatch lists; the update
    # must take every other row's gradient as zero (and still decay it), never an older minibatch's row.
    # Unregularised, such a row's step leaves its weights alone under SGD, AdaGrad and RMSProp (and its
    # state under the first two), which the update skips; RMSProp's state still decays, Adam's weights move.
    # "wide-popular": 300 hidden units (several passes of columns a row on the GPU) and a unit listed by
    # all 48 rows of a batch (summed by a block of warps, not by one warp). "large": 8,066 x 260 = 2^21 + 8
    # weights, which the GPU steps in a launch of their own (rows of 65 quads), most rows unlisted. There
    # the adaptive modes' first steps scale a few near-zero gradients (rounding noise, summed in another
    # order by the dense oracle) up to a whole step: a few of the 2M weights differ by up to 2 %. So the
    # bounds hold for all but 1 in 10,000 weights (a row mapped wrong is 260 of them), and a loose one
    # for all. "long-epoch": 20 minibatches an epoch over 400 units, most of them unlisted for several in a
    # row. Regularised under AdaGrad or RMSProp, the sparse input's matrix is stepped lazily
    # (Network::steps_lazily; not under SGD or Adam): a row that the next minibatch does not list waits
    # (its own minibatch's step too, with its gradient row), and replays its steps before a minibatch that
    # lists it, when all rows catch up (every 8 minibatches) or at the epoch's end; the dense oracle steps
    # every row every time.
    # Oracle: the same examples as a dense input, whose gradient is a dense GEMM.
    x, hidden, batch = {"narrow": lambda: (random_csr(32, 60, 0.05, seed=8, values=True), 6, 8),
                        "wide-popular": lambda: (_popular(96, 70, seed=9), 300, 48),
                        "large": lambda: (random_csr(64, 8066, 0.01, seed=10, values=True), 260, 32),
                        "long-epoch": lambda: (random_csr(160, 400, 0.01, seed=11, values=True), 12, 8)}[shape]()
    sparse, dense = (_sparse_or_dense(x, device, s, hidden, batch) for s in (True, False))
    for pair in (("Input", "Hidden1"), ("Hidden1", "Output")):
        dense.set_weights(*pair, *sparse.weights(*pair))
    w0 = sparse.weights("Input", "Hidden1")[0]
    for n in (sparse, dense):
        n.train(3, lambda_=lam, optimizer=mode, **PARAMS[mode])
    w = sparse.weights("Input", "Hidden1")[0]
    assert not np.allclose(w, w0)
    # On the GPU the dense oracle's GEMM sums in another order, and RMSProp can scale a near-zero
    # gradient's rounding up to a step on the long epoch too; a row mapped wrong is 12 weights there.
    close = (_nearly_all_close if shape == "large" or (shape == "long-epoch" and device == "cuda")
             else np.testing.assert_allclose)
    close(w, dense.weights("Input", "Hidden1")[0], rtol=1e-5, atol=1e-6)
    if mode != "SGD":
        state = sparse.optimizer_state()[("Input", "Hidden1")]
        for name, v in dense.optimizer_state()[("Input", "Hidden1")].items():
            close(state[name], v, rtol=1e-5, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(sparse.weights("Hidden1", "Output")[0], dense.weights("Hidden1", "Output")[0],
                               rtol=1e-5, atol=1e-6)
    # (20 minibatches an epoch sum more of the two orders' rounding: 1.1e-6 apart, where one row's missed
    # decay step would be 1e-4.)
    assert [h.regularization for h in sparse.history] == pytest.approx([h.regularization for h in dense.history],
                                                                        rel=3e-6 if shape == "long-epoch" else 1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("mode", ["Momentum", "AdaGrad", "Nesterov", "RMSProp", "AdaDelta"])
def test_lazily_stepped_rows_take_the_steps_of_every_row(device, mode):
    # Regularised, a sparse input's rows that the next minibatch does not list wait for their steps (the
    # step with the gradient of a minibatch that listed them, then the decay steps) and replay them later
    # (Network::steps_lazily). The divergence brake turns that off and steps every row every time; before
    # its 100 minibatches of warm-up it changes nothing else, so the two runs must give the same weights,
    # optimiser state, errors and regularisation: to the bit on the CPU, whose update runs one formula
    # either way; on the GPU the replay is a kernel of its own, so to rounding. 20 minibatches an epoch,
    # all rows caught up every 8 and at each epoch's end.
    x = random_csr(160, 400, 0.01, seed=11, values=True)
    runs = []
    for brake in (False, True):
        n = _sparse_or_dense(x, device, True, 12, 8)
        n.train(3, lambda_=0.01, lambda1=0.001, optimizer=mode, divergence_brake=brake, **PARAMS[mode])
        runs.append((n.weights("Input", "Hidden1")[0], n.optimizer_state()[("Input", "Hidden1")],
                     [(h.error, h.regularization) for h in n.history]))
    (w, state, history), (w_every, state_every, history_every) = runs
    if device == "cpu":
        assert w.tobytes() == w_every.tobytes()
        for name, v in state_every.items():
            assert state[name].tobytes() == v.tobytes(), name
        assert history == history_every
    else:
        np.testing.assert_allclose(w, w_every, rtol=1e-6, atol=1e-9)
        for name, v in state_every.items():
            np.testing.assert_allclose(state[name], v, rtol=1e-6, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(history, history_every, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize(("mode", "lam", "hidden"), [("SGD", 0.01, 12), ("SGD", 0.0, 12), ("Adam", 0.01, 12),
                                                     ("RMSProp", 0.0, 12), ("Momentum", 0.0, 12),
                                                     ("AdaDelta", 0.0, 12), ("SGD", 0.01, 0)])
def test_sparse_input_step_in_the_gradient_and_beside_the_loss_takes_the_same_steps(device, mode, lam, hidden):
    # A sparse input's step (not lazy), known before the forward, is taken in two parts
    # (Network::steps_with_sparse_gradient): the listed rows in the sparse gradient's kernels as each row's
    # sum ends (its gradient never stored), and the others, where their step moves them, on the side stream
    # beside the loss pass. The divergence brake, which leaves the step unknown until after the forward,
    # turns that off; before its 100 minibatches of warm-up it changes nothing else, so the two runs must
    # give the same weights, optimiser state, errors and regularisation, to the bit: each row takes the same
    # formula in either run, and the regularisation error is a fixed-point sum. With no hidden layer
    # (hidden 0) no GEMM propagates a delta, and the unlisted rows' step is queued just before the sparse
    # gradient.
    x = random_csr(160, 400, 0.01, seed=12, values=True)
    into = "Hidden1" if hidden else "Output"
    runs = []
    for brake in (False, True):
        n = _sparse_or_dense(x, device, True, hidden, 8)
        n.train(3, lambda_=lam, optimizer=mode, divergence_brake=brake, **PARAMS[mode])
        runs.append((n.weights("Input", into)[0], n.optimizer_state().get(("Input", into), {}),
                     [(h.error, h.regularization) for h in n.history]))
    (w, state, history), (w_every, state_every, history_every) = runs
    assert state.keys() == state_every.keys()
    assert w.tobytes() == w_every.tobytes()
    for name, v in state_every.items():
        assert state[name].tobytes() == v.tobytes(), name
    assert history == history_every
