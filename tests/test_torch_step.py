"""One SGD step of the engine against PyTorch autograd (float64) with DSSTNE's update rule.

DSSTNE's step: w += alpha * (-(1/rows) dE/dw - lambda * w); biases without lambda. E is the summed SMCE
loss; the sparseness penalty enters as beta * rows * sum_j KL(p || mean activation of unit j).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne

torch = pytest.importorskip("torch")

SMCE = {"oneTarget": 0.8, "zeroTarget": 0.2, "oneScale": 2.0, "zeroScale": 0.5}


def reference_step(x, y, params, alpha, lam, penalty):
    """New (W, b) per layer after one step, computed with torch float64 autograd."""
    (w1, b1), (w2, b2) = [(torch.tensor(w, dtype=torch.float64, requires_grad=True),
                           torch.tensor(b, dtype=torch.float64, requires_grad=True)) for w, b in params]
    x = torch.tensor(x, dtype=torch.float64)
    t = torch.tensor(y, dtype=torch.float64)
    h = torch.sigmoid(x @ w1 + b1)
    a = torch.sigmoid(h @ w2 + b2)
    one = (t == 1) & (a < SMCE["oneTarget"])
    zero = (t == 0) & (a > SMCE["zeroTarget"])
    err = (-SMCE["oneScale"] * torch.log(a) * one - SMCE["zeroScale"] * torch.log(1 - a) * zero).sum()
    rows = x.shape[0]
    if penalty:
        p, beta = penalty
        rho = h.mean(dim=0)
        err = err + beta * rows * (p * torch.log(p / rho) + (1 - p) * torch.log((1 - p) / (1 - rho))).sum()
    (err / rows).backward()
    with torch.no_grad():
        out = []
        for w, b in ((w1, b1), (w2, b2)):
            out.append(((w - alpha * (w.grad + lam * w)).numpy(), (b - alpha * b.grad).numpy()))
    return out


@pytest.mark.parametrize("sparse_input", [True, False], ids=["sparse_in", "dense_in"])
@pytest.mark.parametrize("penalty", [None, (0.3, 0.7)], ids=["plain", "sparseness_penalty"])
def test_one_step_matches_torch(sparse_input, penalty):
    x = random_csr(16, 30, 0.15, seed=1, values=True)
    y = random_csr(16, 20, 0.2, seed=2)
    cfg = network_config(hidden=[(8, "Sigmoid")], sparse_input=sparse_input, ScaledMarginalCrossEntropy=SMCE)
    if penalty:
        cfg["SparsenessPenalty"] = {"p": penalty[0], "beta": penalty[1]}
        cfg["Layers"][1]["Sparse"] = True
    inp = dsstne.DataSet.from_scipy(x, "input") if sparse_input else dsstne.DataSet.from_numpy(x.toarray(), "input")
    out = dsstne.DataSet.from_scipy(y, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=16, device="cpu", seed=3)
    before = [net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")]
    alpha, lam = 0.3, 0.01
    net.train(1, alpha=alpha, lambda_=lam)
    after = [net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")]
    expected = reference_step(x.toarray(), y.toarray(), before, alpha, lam, penalty)
    for (w, b), (ew, eb), (w0, _) in zip(after, expected, before):
        assert not np.array_equal(w, w0)  # the step moved the weights
        np.testing.assert_allclose(w, ew, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b, eb, rtol=1e-5, atol=1e-7)


def test_partial_last_batch_uses_its_own_size():
    # 21 examples in batches of 8: the last step averages over 5 rows.
    x = random_csr(21, 12, 0.3, seed=4)
    cfg = network_config(hidden=[(4, "Sigmoid")], sparse_input=True, ScaledMarginalCrossEntropy=SMCE)
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=8, device="cpu", seed=3)
    params = [net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")]
    dense = x.toarray()
    for start in range(0, 21, 8):
        params = reference_step(dense[start:start + 8], dense[start:start + 8], params, 0.2, 0.0, None)
    net.train(1, alpha=0.2, lambda_=0.0)
    for (w, b), (ew, eb) in zip([net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")], params):
        np.testing.assert_allclose(w, ew, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, eb, rtol=1e-5, atol=1e-6)


def test_one_step_with_a_sparse_input_feeding_two_layers_matches_torch():
    # Input feeds Hidden1 and Output: two sparse weight gradients in one backward (each orders its own
    # datapoints there, as they share the workspace), and Output sums two contributions and two biases.
    x = random_csr(16, 30, 0.15, seed=5, values=True)
    y = random_csr(16, 20, 0.2, seed=6)
    cfg = network_config(hidden=[(8, "Sigmoid")], ScaledMarginalCrossEntropy=SMCE)
    cfg["Layers"][-1]["Source"] = ["Hidden1", "Input"]
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=16, device="cpu", seed=7)
    keys = [("Input", "Hidden1"), ("Hidden1", "Output"), ("Input", "Output")]
    before = [net.weights(*k) for k in keys]
    alpha, lam = 0.3, 0.01
    net.train(1, alpha=alpha, lambda_=lam)

    (w1, b1), (w2, b2), (w3, b3) = [(torch.tensor(w, dtype=torch.float64, requires_grad=True),
                                     torch.tensor(b, dtype=torch.float64, requires_grad=True)) for w, b in before]
    xt, t = (torch.tensor(m.toarray(), dtype=torch.float64) for m in (x, y))
    a = torch.sigmoid(torch.sigmoid(xt @ w1 + b1) @ w2 + b2 + xt @ w3 + b3)
    one, zero = (t == 1) & (a < SMCE["oneTarget"]), (t == 0) & (a > SMCE["zeroTarget"])
    err = (-SMCE["oneScale"] * torch.log(a) * one - SMCE["zeroScale"] * torch.log(1 - a) * zero).sum()
    (err / 16).backward()
    with torch.no_grad():
        for k, (w, b) in zip(keys, ((w1, b1), (w2, b2), (w3, b3))):
            got_w, got_b = net.weights(*k)
            np.testing.assert_allclose(got_w, (w - alpha * (w.grad + lam * w)).numpy(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(got_b, (b - alpha * b.grad).numpy(), rtol=1e-5, atol=1e-7)
            assert not np.array_equal(got_w, before[keys.index(k)][0])
