"""Training loop behaviour: determinism, shuffling, denoising/dropout effects, prediction and top-K."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne


def _net(x, seed=1, device="cpu", batch=32, dense_targets=False, **cfg_extra):
    cfg = network_config(hidden=[(16, "Sigmoid")], **cfg_extra)
    cfg["Layers"][1]["Sparse"] = True
    inp = dsstne.DataSet.from_scipy(x, "input")
    out = (dsstne.DataSet.from_numpy(x.toarray().astype(np.float32), "output") if dense_targets
           else dsstne.DataSet.from_scipy(x, "output"))
    return dsstne.Network.from_json(cfg, [inp, out], batch=batch, device=device, seed=seed), inp


FULL = {"ShuffleIndices": True, "Denoising": {"p": 0.2}, "SparsenessPenalty": {"p": 0.5, "beta": 2.0}}


def test_same_seed_same_bits_after_two_epochs(small_sparse):
    runs = []
    for _ in range(2):
        net, _ = _net(small_sparse, seed=77, **FULL)
        net.train(2, alpha=0.1)
        runs.append([net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")])
    for (w1, b1), (w2, b2) in zip(*runs):
        assert w1.tobytes() == w2.tobytes() and b1.tobytes() == b2.tobytes()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("targets", ["sparse", "dense"])
def test_output_bias_gradient_apart_from_the_loss_takes_the_same_steps(small_sparse, device, targets):
    # Without the divergence brake, an SGD step's training totals the output bias's gradient apart from
    # the loss op, on the side stream beside the delta's propagation (Network::output_deltas), and
    # backward waits for it; the brake, which may skip backward, keeps it in the loss op. Before the
    # brake's 100 minibatches of warm-up nothing else differs, so every weight and bias must have the same
    # bits either way.
    runs = []
    for brake in (False, True):
        net, _ = _net(small_sparse, seed=5, device=device, dense_targets=targets == "dense", **FULL)
        net.train(2, alpha=0.1, divergence_brake=brake)
        runs.append([a.tobytes() for pair in (("Input", "Hidden1"), ("Hidden1", "Output"))
                     for a in net.weights(*pair)] + [[h.error for h in net.history]])
    assert runs[0] == runs[1]


def test_different_seed_different_weights(small_sparse):
    a, _ = _net(small_sparse, seed=1, **FULL)
    b, _ = _net(small_sparse, seed=2, **FULL)
    assert not np.array_equal(a.weights("Input", "Hidden1")[0], b.weights("Input", "Hidden1")[0])


def test_training_reduces_error(small_sparse):
    net, _ = _net(small_sparse, **FULL)
    errors = net.train(8, alpha=0.5, lambda_=0.0)
    assert len(errors) == 8 and errors[-1] < 0.8 * errors[0]
    assert [r.epoch for r in net.history] == list(range(1, 9))


def test_shuffle_changes_the_trajectory(small_sparse):
    plain, _ = _net(small_sparse, seed=5)
    shuffled, _ = _net(small_sparse, seed=5, ShuffleIndices=True)
    plain.train(1, alpha=0.1)
    shuffled.train(1, alpha=0.1)
    assert not np.array_equal(plain.weights("Input", "Hidden1")[0], shuffled.weights("Input", "Hidden1")[0])


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in_order"])
def test_shuffle_draws_a_new_order_each_epoch(shuffle):
    # One-hot examples through an identity layer (weights locked): the last minibatch's units name the
    # examples it held, so each epoch's order shows. DSSTNE reshuffles every epoch.
    x = np.eye(32, dtype=np.float32)
    cfg = network_config(n_in=32, hidden=[(32, "Linear")], output_activation="Linear", error="L2",
                         sparse_input=False, ShuffleIndices=shuffle)
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(x, "output")]
    net = dsstne.Network.from_json(cfg, sets, batch=8, device="cpu", seed=3)
    net.set_weights("Input", "Hidden1", np.eye(32, dtype=np.float32), np.zeros(32, np.float32))
    for pair in (("Input", "Hidden1"), ("Hidden1", "Output")):
        net.lock_weights(*pair)
    last = []
    for _ in range(3):
        net.train(1, alpha=0.1)
        units = net.units("Hidden1")
        np.testing.assert_array_equal(units.sum(axis=1), np.ones(8, np.float32))  # one example a row
        last.append(tuple(np.argmax(units, axis=1)))
    if shuffle:
        assert len(set(last)) == 3
    else:
        assert last == [tuple(range(24, 32))] * 3


def test_denoising_changes_training_but_not_prediction(small_sparse):
    clean, inp = _net(small_sparse, seed=5)
    noisy, _ = _net(small_sparse, seed=5, Denoising={"p": 0.5})
    np.testing.assert_array_equal(clean.predict(inp), noisy.predict(inp))  # same initial weights
    clean.train(1, alpha=0.1)
    noisy.train(1, alpha=0.1)
    assert not np.array_equal(clean.predict(inp), noisy.predict(inp))


def test_denoising_keeps_scaled_inputs_with_a_fresh_mask_each_epoch():
    # An identity Linear hidden layer shows the denoised input itself: each listed input is kept as
    # 1 / (1 - p) or dropped, about p of them dropped, and the mask is drawn anew each epoch.
    # gradients() uses the mask the next training step draws. Locked weights keep every epoch's forward
    # the same but for the mask.
    x = random_csr(64, 40, 0.3, seed=4)
    cfg = network_config(n_in=40, hidden=[(40, "Linear")], output_activation="Linear", error="L2",
                         Denoising={"p": 0.4})
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=64, device="cpu", seed=6)
    net.set_weights("Input", "Hidden1", np.eye(40, dtype=np.float32), np.zeros(40, np.float32))
    for pair in (("Input", "Hidden1"), ("Hidden1", "Output")):
        net.lock_weights(*pair)
    listed = x.toarray() != 0
    net.gradients(0)
    drawn = net.units("Hidden1").copy()
    masks = []
    for _ in range(2):
        net.train(1, alpha=0.1)
        units = net.units("Hidden1")
        assert np.isin(units[listed], [0.0, np.float32(1 / 0.6)]).all() and not units[~listed].any()
        assert 0.3 < (units[listed] == 0).mean() < 0.5
        masks.append(units != 0)
        if len(masks) == 1:
            np.testing.assert_array_equal(units, drawn)  # gradients() drew the first epoch's mask
    assert (masks[0] != masks[1]).mean() > 0.1


@pytest.mark.parametrize(("activation", "keys", "reference"), [
    ("LeakyRectifiedLinear", {"RELUSlope": 0.2}, lambda z: np.where(z > 0, z, 0.2 * z)),
    ("ExponentialLinear", {"ELUAlpha": 0.6}, lambda z: np.where(z > 0, z, 0.6 * np.expm1(z))),
    ("ScaledExponentialLinear", {"SELULambda": 1.2, "ELUAlpha": 1.5},
     lambda z: 1.2 * np.where(z > 0, z, 1.5 * np.expm1(z))),
], ids=["lrelu", "elu", "selu"])
@pytest.mark.parametrize("where", ["network", "layer"])
def test_activation_parameters_reach_the_forward(activation, keys, reference, where):
    # Set on the network (every layer's default) or on the layer, which then overrides a network value.
    x = np.random.default_rng(8).normal(size=(32, 6)).astype(np.float32)
    cfg = network_config(n_in=6, hidden=[(6, activation)], output_activation="Linear", error="L2",
                         sparse_input=False)
    if where == "network":
        cfg.update(keys)
    else:
        cfg.update({k: 3.0 for k in keys})
        cfg["Layers"][1].update(keys)
    sets = [dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_numpy(x, "output")]
    net = dsstne.Network.from_json(cfg, sets, batch=32, device="cpu", seed=2)
    w, b = net.weights("Input", "Hidden1")
    got = net.predict(sets[0], layer="Hidden1")
    np.testing.assert_allclose(got, reference(x.astype(np.float64) @ w + b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sparse_input", [True, False], ids=["sparse_in", "dense_in"])
def test_indexed_datasets_train_as_their_rows_written_out(sparse_input):
    # Indexed: 24 examples that point into 7 stored rows (inputs, targets and their weights per example).
    # Training and prediction must read each example's row through the index: the same bits as the rows
    # written out one per example.
    rng = np.random.default_rng(10)
    rows = rng.integers(0, 7, 24).astype(np.uint32)
    x = random_csr(7, 20, 0.3, seed=11, values=True)
    y = random_csr(7, 15, 0.3, seed=12)
    weights = rng.uniform(0.5, 2.0, 24).astype(np.float32)

    def data(indexed):
        if sparse_input:
            inp = dsstne.DataSet.from_scipy(x if indexed else x[rows], "input")
        else:
            inp = dsstne.DataSet.from_numpy(x.toarray() if indexed else x.toarray()[rows], "input")
        out = dsstne.DataSet.from_scipy(y if indexed else y[rows], "output", weights=None if indexed else weights)
        if indexed:  # the stored rows, read per example through `indexed`
            inp, out = (dsstne.DataSet(name=d.name, dims=d.dims, examples=len(rows), start=d.start, end=d.end,
                                       index=d.index, value=d.value, data=d.data, weights=w, indexed=rows)
                        for d, w in ((inp, None), (out, weights)))
        return inp, out

    cfg = network_config(n_in=20, hidden=[(8, "Sigmoid")], sparse_input=sparse_input, ShuffleIndices=True)
    nets = []
    for indexed in (False, True):
        inp, out = data(indexed)
        net = dsstne.Network.from_json(cfg, [inp, out], batch=8, device="cpu", seed=4)
        net.train(2, alpha=0.2)
        nets.append((net, net.predict(inp)))
    (plain, plain_pred), (indexed, indexed_pred) = nets
    assert indexed_pred.tobytes() == plain_pred.tobytes()
    for pair in (("Input", "Hidden1"), ("Hidden1", "Output")):
        for a, b in zip(indexed.weights(*pair), plain.weights(*pair)):
            assert a.tobytes() == b.tobytes()
    assert [r.error for r in indexed.history] == [r.error for r in plain.history]


def test_dropout_is_training_only_and_inverted():
    x = random_csr(64, 20, 0.3, seed=9)
    cfg = network_config(hidden=[(400, "RectifiedLinear")])
    cfg["Layers"][1]["pDropout"] = 0.25
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=64, device="cpu", seed=3)
    net.predict(inp, layer="Hidden1")
    clean = net.units("Hidden1")
    net.gradients(0)  # a training-mode forward pass
    dropped = net.units("Hidden1")
    alive = clean > 0
    kept = dropped[alive] != 0
    assert abs(1 - kept.mean() - 0.25) < 0.02  # dropped fraction
    np.testing.assert_allclose(dropped[alive][kept], clean[alive][kept] / 0.75, rtol=1e-6)


def test_predict_matches_numpy_forward(small_sparse):
    net, inp = _net(small_sparse)
    net.train(2, alpha=0.2)
    (w1, b1), (w2, b2) = net.weights("Input", "Hidden1"), net.weights("Hidden1", "Output")

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    x = small_sparse.toarray().astype(np.float64)
    expected = sigmoid(sigmoid(x @ w1 + b1) @ w2 + b2)
    np.testing.assert_allclose(net.predict(inp), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.predict(inp, layer="Hidden1"), sigmoid(x @ w1 + b1), rtol=1e-5, atol=1e-6)
    assert net.predict(small_sparse).shape == (200, 60)  # a scipy matrix is accepted directly


@pytest.mark.parametrize("k", [1, 10, 59, 60, 500])
def test_recommend_is_top_k_of_predict_without_excluded(small_sparse, k):
    net, inp = _net(small_sparse)
    net.train(1, alpha=0.2)
    scores = net.predict(inp)
    idx, top = net.recommend(inp, k, exclude="input")
    seen = small_sparse.toarray() > 0
    for r in range(scores.shape[0]):
        candidates = np.flatnonzero(~seen[r])
        order = candidates[np.lexsort((candidates, -scores[r, candidates]))][:k]
        n = len(order)
        np.testing.assert_array_equal(idx[r, :n], order)
        np.testing.assert_allclose(top[r, :n], scores[r, order], rtol=1e-6)
        assert (idx[r, n:] == -1).all() and np.isneginf(top[r, n:]).all()
        assert not seen[r, idx[r, :n]].any()


def test_units_are_activations_after_training_steps_and_recommendations(small_sparse):
    # Training and ranking leave the output layer's linear sums in place (their ops apply the bias and
    # activation as they read); units() must still give the activations of the last minibatch.
    net, inp = _net(small_sparse)
    net.train(1, alpha=0.2)
    scores = net.predict(inp)  # 200 examples, batch 32: the last minibatch holds examples 192..199
    net.recommend(inp, 5)
    np.testing.assert_array_equal(net.units("Output")[:8], scores[192:])
    net.gradients(0)  # a training-mode forward and loss over examples 0..31 (stored order)
    np.testing.assert_array_equal(net.units("Output"), scores[:32])


def test_recommend_without_exclusion_returns_everything_for_large_k(small_sparse):
    net, inp = _net(small_sparse)
    idx, _ = net.recommend(inp, 100)
    assert (np.sort(idx[:, :60], axis=1) == np.arange(60)).all() and (idx[:, 60:] == -1).all()


def test_training_after_prediction_uses_training_data(small_sparse):
    a, inp = _net(small_sparse, seed=4)
    b, _ = _net(small_sparse, seed=4)
    other = random_csr(10, 60, 0.1, seed=99)
    a.predict(other)
    a.train(1, alpha=0.1)
    b.train(1, alpha=0.1)
    assert a.weights("Input", "Hidden1")[0].tobytes() == b.weights("Input", "Hidden1")[0].tobytes()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_prediction_after_shuffled_training_keeps_the_rows_in_order(small_sparse, device):
    # The identity order is uploaded once and kept while nothing replaces it; a shuffled epoch replaces
    # it, so the next prediction must put it back: each row's prediction alone is the oracle.
    net, inp = _net(small_sparse, device=device, **FULL)
    before = net.predict(inp)
    net.train(1, alpha=0.1)
    after = net.predict(inp)
    assert not np.array_equal(before, after)
    alone = np.vstack([net.predict(small_sparse[i:i + 1]) for i in range(0, 200, 23)])
    np.testing.assert_allclose(after[0:200:23], alone, rtol=1e-6, atol=1e-7)
    assert net.predict(inp).tobytes() == after.tobytes()


def test_callback_sees_each_epoch_and_can_stop(small_sparse):
    net, _ = _net(small_sparse)
    seen = []
    net.train(5, alpha=0.1, callback=lambda r: seen.append(r.epoch) or r.epoch < 2)
    assert seen == [1, 2] and net.epochs_done == 2


def test_callback_exception_propagates(small_sparse):
    net, _ = _net(small_sparse)

    def boom(report):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        net.train(3, callback=boom)


def test_device_is_reported(small_sparse):
    net, _ = _net(small_sparse)
    assert net.device == "cpu" and "CPU" in net.device_description and "device=cpu" in repr(net)
    assert net.memory()["peak_bytes"] > 0


def test_datasets_do_not_keep_a_dropped_network_device_alive(small_sparse):
    import gc
    import weakref

    net, inp = _net(small_sparse)
    context = weakref.ref(net._context)
    del net
    gc.collect()
    assert context() is None and len(inp._uploads) == 0
