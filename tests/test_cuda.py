"""The CUDA target against the CPU target (the reference), op by op through the public API, and
bitwise reproducibility of CUDA runs. Skipped without a GPU.

Tolerances: forward activations 1e-5 relative (float32 with different summation/FMA order); losses and
gradients 1e-4 relative; weights after 2 training epochs 1e-3 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import network_config, random_csr

import dsstne

pytestmark = pytest.mark.cuda

CASES = {
    # name: (config overrides, input kind)
    "smce_sparse": ({}, "sparse"),
    "ce_softmax": ({"ErrorFunction": "CrossEntropy", "out": "SoftMax"}, "sparse"),
    "l2_dense_path": ({"ErrorFunction": "L2"}, "sparse_dense_path"),
    "l2_dense_input": ({"ErrorFunction": "L2", "out": "Linear"}, "dense"),
    "penalty_denoise_dropout": ({"SparsenessPenalty": {"p": 0.4, "beta": 1.5}, "Denoising": {"p": 0.3},
                                 "dropout": 0.2}, "sparse"),
}


def _pair(case: str, batch: int = 32, seed: int = 11):
    extra, inputs = CASES[case]
    extra = dict(extra)
    out_act = extra.pop("out", "Sigmoid")
    dropout = extra.pop("dropout", 0.0)
    x = random_csr(150, 300, 0.03 if inputs == "sparse" else 0.2, seed=1, values=True)
    y = random_csr(150, 120, 0.05, seed=2)
    cfg = network_config(hidden=[(64, "Tanh"), (32, "Sigmoid")], output_activation=out_act,
                         sparse_input=inputs != "dense", ShuffleIndices=True, **extra)
    cfg["Layers"][1]["Sparse"] = True
    cfg["Layers"][1]["pDropout"] = dropout
    dense = inputs == "dense"
    inp = dsstne.DataSet.from_numpy(x.toarray(), "input") if dense else dsstne.DataSet.from_scipy(x, "input")
    out = dsstne.DataSet.from_scipy(y, "output")
    nets = [dsstne.Network.from_json(cfg, [inp, out], batch=batch, device=d, seed=seed) for d in ("cpu", "cuda")]
    return nets, inp


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_cpu(case):
    (cpu, gpu), inp = _pair(case)
    assert gpu.device.startswith("cuda")
    for layer in ("Hidden1", "Hidden2", "Output"):
        np.testing.assert_allclose(gpu.predict(inp, layer=layer), cpu.predict(inp, layer=layer), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_loss_deltas_gradients_match_cpu(case):
    (cpu, gpu), _ = _pair(case)
    e_cpu, g_cpu = cpu.gradients(32)
    e_gpu, g_gpu = gpu.gradients(32)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-4)
    for layer in ("Hidden1", "Output"):  # dropout masks agree: the RNG is counter-based
        np.testing.assert_allclose(gpu.units(layer), cpu.units(layer), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gpu.deltas(layer), cpu.deltas(layer), rtol=1e-4, atol=1e-6)
    for key in g_cpu:
        for a, b in zip(g_gpu[key], g_cpu[key]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("error", ["ScaledMarginalCrossEntropy", "CrossEntropy"])
def test_loss_pass_over_more_rows_than_a_block_reads_ahead_matches_cpu(error):
    # A minibatch of 2,200 rows over a 120-unit output: each of the pass's 64 row groups takes 34 or 35
    # rows, past the 32 whose datapoint ranges a block reads ahead, so it reads the next ones mid-pass.
    rows = 2200
    x = dsstne.DataSet.from_scipy(random_csr(rows, 300, 0.03, seed=3), "input")
    y = dsstne.DataSet.from_scipy(random_csr(rows, 120, 0.05, seed=4, values=True), "output")
    cfg = network_config(hidden=[(32, "Sigmoid")], error=error)
    cpu, gpu = (dsstne.Network.from_json(cfg, [x, y], batch=rows, device=d, seed=5) for d in ("cpu", "cuda"))
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-4)
    np.testing.assert_allclose(gpu.deltas("Output"), cpu.deltas("Output"), rtol=1e-4, atol=1e-6)
    for a, b in zip(g_gpu[("Hidden1", "Output")], g_cpu[("Hidden1", "Output")]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("case", CASES)
def test_two_epochs_match_cpu(case):
    (cpu, gpu), _ = _pair(case)
    e_cpu = cpu.train(2, alpha=0.2, lambda_=0.001)
    e_gpu = gpu.train(2, alpha=0.2, lambda_=0.001)
    np.testing.assert_allclose(e_gpu, e_cpu, rtol=1e-4)
    for src, dst in (("Input", "Hidden1"), ("Hidden1", "Hidden2"), ("Hidden2", "Output")):
        for a, b in zip(gpu.weights(src, dst), cpu.weights(src, dst)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("k", [1, 10, 32, 50, 119, 500])
def test_recommend_matches_cpu(k):
    (cpu, gpu), inp = _pair("smce_sparse")
    cpu.train(1, alpha=0.2)
    gpu.train(1, alpha=0.2)
    history = random_csr(150, 120, 0.1, seed=5)
    i_cpu, s_cpu = cpu.recommend(inp, k, exclude=history)
    i_gpu, s_gpu = gpu.recommend(inp, k, exclude=history)
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-4, atol=1e-6)
    agree = (i_gpu == i_cpu).mean()
    assert agree > 0.99  # float near-ties may swap neighbours
    seen = history.toarray() > 0
    valid = i_gpu >= 0
    rows = np.nonzero(valid)[0]
    assert not seen[rows, i_gpu[valid]].any()
    assert ((i_gpu == -1).sum(axis=1) == np.maximum(0, k - (~seen).sum(axis=1))).all()


@pytest.mark.parametrize("batch", [25, 30])  # six and five batches: either buffer ends in the layer
def test_recommend_overlapping_batches_matches_cpu_and_leaves_the_last_units(batch):
    # A batch is ranked on a side stream while the next one's forward runs, the output units alternating
    # between two buffers: the results must match the CPU target's and repeat exactly on a second call,
    # and units() must then hold the last batch's activations.
    (cpu, gpu), inp = _pair("smce_sparse", batch=batch)
    for net in (cpu, gpu):
        net.train(1, alpha=0.2)
    scores = gpu.predict(inp)
    i_cpu, s_cpu = cpu.recommend(inp, 10)
    i_gpu, s_gpu = gpu.recommend(inp, 10)
    again = gpu.recommend(inp, 10)
    np.testing.assert_array_equal(again[0], i_gpu)
    np.testing.assert_array_equal(again[1], s_gpu)
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-4, atol=1e-6)
    assert (i_gpu == i_cpu).mean() > 0.99  # float near-ties may swap neighbours
    last = (len(scores) - 1) // batch * batch
    np.testing.assert_array_equal(gpu.units("Output")[:len(scores) - last], scores[last:])


@pytest.mark.parametrize("case", ["smce_sparse", "penalty_denoise_dropout"])
@pytest.mark.parametrize("optimizer", ["SGD", "RMSProp"])  # RMSProp: the sparse input's rows step lazily
def test_cuda_runs_are_bitwise_reproducible(case, optimizer):
    runs = []
    for _ in range(2):
        (_, gpu), _ = _pair(case)
        gpu.train(2, alpha=0.2 if optimizer == "SGD" else 0.01, lambda_=0.001, optimizer=optimizer, mu=0.9)
        runs.append([gpu.weights(s, d) for s, d in (("Input", "Hidden1"), ("Hidden2", "Output"))])
    for (w1, b1), (w2, b2) in zip(*runs):
        assert w1.tobytes() == w2.tobytes() and b1.tobytes() == b2.tobytes()


def test_partial_batches_and_sparse_gradient_on_many_rows():
    # 1000 examples, batch 384 (a partial last batch), 5000 inputs: many small buckets of the gradient.
    x = random_csr(1000, 5000, 0.004, seed=8)
    cfg = network_config(hidden=[(48, "Sigmoid")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(x, "output")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=384, device=d, seed=2) for d in ("cpu", "cuda")]
    for net in (cpu, gpu):
        net.train(2, alpha=0.3)
    for a, b in zip(gpu.weights("Input", "Hidden1"), cpu.weights("Input", "Hidden1")):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_sparse_gradient_of_a_wide_layer_matches_cpu_and_repeats():
    # A 600-unit layer over a sparse input: each gradient row is summed in three passes of columns (the last
    # partial), for small buckets (a warp each) and large ones (units in every row or in about half of
    # them: more than 32 datapoints, ranked then summed by blocks).
    rng = np.random.default_rng(21)
    dense = (rng.random((200, 400)) < 0.02).astype(np.float32)
    dense[:, :5] = 1.0
    dense[:, 5:15] = rng.random((200, 10)) < 0.5
    x = sp.csr_matrix(dense * rng.uniform(0.5, 2.0, dense.shape).astype(np.float32))
    cfg = network_config(hidden=[(600, "Tanh")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(sp.csr_matrix(dense), "output")
    nets = [dsstne.Network.from_json(cfg, [inp, out], batch=200, device=d, seed=5) for d in ("cpu", "cuda", "cuda")]
    (_, g_cpu), (_, g_gpu), (_, g_again) = [net.gradients(0) for net in nets]
    key = ("Input", "Hidden1")
    np.testing.assert_allclose(g_gpu[key][0], g_cpu[key][0], rtol=1e-4, atol=1e-5 * np.abs(g_cpu[key][0]).max())
    assert g_gpu[key][0].tobytes() == g_again[key][0].tobytes()


@pytest.mark.parametrize("error", ["ScaledMarginalCrossEntropy", "CrossEntropy"])
def test_sigmoid_output_pass_over_several_spans_matches_cpu(error):
    # The Sigmoid output's loss pass (compiled for that activation and loss) over 5,000 outputs, wider
    # than one block's span of columns, and 300 rows, more than the grid has rows of blocks; analog
    # targets, one row listing 700 units (more than a block has threads). The pass also sums the output
    # bias's gradient per row group.
    x = random_csr(300, 300, 0.03, seed=12)
    y = random_csr(300, 5000, 0.01, seed=13, values=True).tolil()
    rng = np.random.default_rng(13)
    for j in rng.choice(5000, 700, replace=False):
        y[7, j] = float(rng.uniform(0.1, 1.0))
    cfg = network_config(hidden=[(32, "Tanh")], error=error)
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y.tocsr(), "output")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=300, device=d, seed=6) for d in ("cpu", "cuda")]
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-5)
    np.testing.assert_allclose(gpu.deltas("Output"), cpu.deltas("Output"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gpu.units("Output"), cpu.units("Output"), rtol=1e-5, atol=1e-7)
    b_gpu, b_cpu = g_gpu[("Hidden1", "Output")][1], g_cpu[("Hidden1", "Output")][1]
    assert np.abs(b_cpu).min() > 0
    np.testing.assert_allclose(b_gpu, b_cpu, rtol=1e-4, atol=1e-6 * np.abs(b_cpu).max())


@pytest.mark.parametrize("hidden", [200, 1030])
def test_sparse_gradient_buckets_of_every_size_match_cpu(hidden):
    # Input units in every row (a bucket over several blocks' worth of keys), in 100, 33 and exactly 32
    # rows (the two bucket kernels' border), listed twice in one row, and analog values with zeros (not
    # bucketed). Hidden widths leave partial column passes.
    rows, n_in = 600, 400
    x = random_csr(rows, n_in, 0.02, seed=9, values=True).tolil()
    rng = np.random.default_rng(9)
    for unit, count in ((0, rows), (1, 100), (2, 33), (3, 32)):
        for r in rng.choice(rows, count, replace=False):
            x[r, unit] = float(rng.uniform(0.2, 1.0))
    x = x.tocsr()
    x.data[x.indptr[7]] = 0.0  # a stored zero
    inp = dsstne.DataSet.from_scipy(x, "input")
    first = inp.start[11]
    inp.index[first + 1] = inp.index[first]  # row 11 lists a unit twice
    out = dsstne.DataSet.from_scipy(random_csr(rows, 50, 0.1, seed=10), "output")
    cfg = network_config(hidden=[(hidden, "Tanh")])
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=d, seed=4) for d in ("cpu", "cuda")]
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-4)
    w_gpu, w_cpu = g_gpu[("Input", "Hidden1")][0], g_cpu[("Input", "Hidden1")][0]
    assert np.abs(w_cpu[:4]).min(axis=1).max() > 0  # the crowded units do get gradients
    np.testing.assert_allclose(w_gpu, w_cpu, rtol=1e-4, atol=1e-6 * np.abs(w_cpu).max())
    absent = np.setdiff1d(np.arange(n_in), inp.index)
    assert not w_gpu[absent].any()


@pytest.mark.parametrize("rows", [300, 64])
def test_hidden_deltas_of_a_wide_and_a_narrow_layer_match_cpu(rows):
    # The hidden-layer delta op (sparseness penalty from the column means, derivative, bias gradient)
    # over a layer of more than 132 blocks of 32 columns and a narrow one (the two block shapes), with
    # the penalty's loss included by gradients().
    x = random_csr(rows, 200, 0.05, seed=21)
    y = random_csr(rows, 60, 0.1, seed=22)
    cfg = network_config(hidden=[(5000, "Sigmoid"), (40, "Sigmoid")], SparsenessPenalty={"p": 0.3, "beta": 0.5})
    cfg["Layers"][1]["Sparse"] = True
    cfg["Layers"][2]["Sparse"] = True
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=d, seed=8) for d in ("cpu", "cuda")]
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-4)
    for layer in ("Hidden1", "Hidden2"):
        np.testing.assert_allclose(gpu.deltas(layer), cpu.deltas(layer), rtol=1e-4,
                                   atol=1e-5 * np.abs(cpu.deltas(layer)).max())
    for key in g_cpu:
        for a, b in zip(g_gpu[key], g_cpu[key]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("rows, hidden, items", [(256, 128, 27278), (200, 100, 9001), (256, 40, 12000)],
                         ids=["sample_shape", "odd_width", "narrow"])
def test_delta_of_a_narrow_layer_feeding_a_wide_one_matches_cpu(rows, hidden, items):
    # delta_hidden = delta_out W^T over k = the output width (the sample network's shape, cuBLAS splitting
    # k over blocks; a batch and a layer short of it; an odd row pitch). Bitwise the same run to run.
    x = random_csr(rows, 300, 0.05, seed=31)
    y = random_csr(rows, items, 0.005, seed=32)
    cfg = network_config(hidden=[(hidden, "Sigmoid")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=d, seed=5) for d in ("cpu", "cuda")]
    cpu.gradients(0)
    gpu.gradients(0)
    expected = cpu.deltas("Hidden1")
    assert np.abs(expected).max() > 0
    got = gpu.deltas("Hidden1")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    gpu.gradients(0)
    assert gpu.deltas("Hidden1").tobytes() == got.tobytes()


def test_out_of_memory_is_a_clean_error():
    x = random_csr(10, 20, 0.2, seed=1)
    cfg = network_config(n_in=20, hidden=[(1 << 16, "Sigmoid")])
    cfg["Layers"][-1]["N"] = 1 << 20
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_numpy(np.zeros((10, 1 << 20)), "output")
    with pytest.raises((dsstne.DeviceError, MemoryError), match="memory"):
        dsstne.Network.from_json(cfg, [inp, out], device="cuda")


def test_targets_listing_a_unit_twice_match_cpu():
    # Rows that repeat a unit take the ordered (last listing wins) path on the GPU, 32 listings at a
    # time: row 5 lists a unit twice within its first 32, row 6 lists one 40 listings apart; analog
    # targets, so the two listings ask for different deltas.
    x = random_csr(40, 50, 0.1, seed=3)
    y = random_csr(40, 3000, 0.02, seed=4, values=True)
    out = dsstne.DataSet.from_scipy(y, "output")
    out.index[out.start[5] + 1] = out.index[out.start[5]]
    assert out.start[7] - out.start[6] > 41
    out.index[out.start[6] + 41] = out.index[out.start[6] + 1]
    inp = dsstne.DataSet.from_scipy(x, "input")
    cfg = network_config(hidden=[(8, "Sigmoid")], error="L2")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=40, device=d, seed=2) for d in ("cpu", "cuda")]
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    assert e_gpu == pytest.approx(e_cpu, rel=1e-5)
    np.testing.assert_allclose(gpu.deltas("Output"), cpu.deltas("Output"), rtol=1e-5, atol=1e-7)
    b_gpu, b_cpu = g_gpu[("Hidden1", "Output")][1], g_cpu[("Hidden1", "Output")][1]
    np.testing.assert_allclose(b_gpu, b_cpu, rtol=1e-4, atol=1e-6 * np.abs(b_cpu).max())


@pytest.mark.parametrize("k", [1, 10, 32, 64])
def test_recommend_ties_match_cpu(k):
    # Scores from three values (heavy ties), and one input whose row is a single value (every column ties):
    # every GPU selection path must rank exactly as the CPU target (column order). Example 3 has only five
    # columns left after its exclusions (padding).
    rng = np.random.default_rng(k)
    n_in, n_out, examples = 50, 300, 120
    w = rng.choice(np.float32([0.0, 0.5, 1.0]), size=(n_in, n_out))
    w[0] = 0.25
    x = sp.csr_matrix((np.ones(examples, np.float32), (np.arange(examples), np.arange(examples) % n_in)),
                      shape=(examples, n_in))
    history = random_csr(examples, n_out, 0.05, seed=k).tolil()
    history[3, 5:] = 1.0
    history = history.tocsr()
    cfg = network_config(hidden=(), output_activation="Linear", error="L2")
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(history, "output")
    results = []
    for device in ("cpu", "cuda"):
        net = dsstne.Network.from_json(cfg, [inp, out], batch=32, device=device, seed=1)
        net.set_weights("Input", "Output", w, np.zeros(n_out, np.float32))
        results.append(net.recommend(inp, k, exclude=history))
    (i_cpu, s_cpu), (i_gpu, s_gpu) = results
    np.testing.assert_array_equal(i_gpu, i_cpu)
    np.testing.assert_array_equal(s_gpu, s_cpu)


@pytest.mark.parametrize("k", [1, 10, 32, 64])
def test_recommend_sigmoid_is_top_k_of_its_predictions(k):
    # The Sigmoid output's selection skips columns whose linear sum proves them after the row bar or the
    # k-th: it must still rank exactly as the layer's own activations do (ties on the lower column). Each example reads
    # one input unit, so the linear sums are that unit's weights, exactly: spread ones, runs a few float
    # steps apart (near the skipping bar), saturated ones (Sigmoid 1.0: ties), ones at 0.0, and a row
    # where every column saturates; each warp's share spans several prefetch groups. Examples 3 and 4
    # exclude all but 5 and 40 columns (fewer than k in a warp's share, or in the whole row: padding).
    rng = np.random.default_rng(k)
    n_in, n_out, examples = 40, 9000, 120
    w = rng.normal(0.0, 3.0, size=(n_in, n_out)).astype(np.float32)
    for lo in (100, 6000):
        steps = rng.integers(0, 6, size=(n_in, 300)).astype(np.float32)
        w[:, lo:lo + 300] = np.float32(2.0) + steps * np.float32(2.4e-7)
    w[:, 500:800] = rng.uniform(17.0, 40.0, size=(n_in, 300)).astype(np.float32)
    w[:, 900:1000] = -100.0
    w[0] = 25.0
    bias = rng.normal(0.0, 1.0, n_out).astype(np.float32)
    bias[100:1000] = 0.0
    x = sp.csr_matrix((np.ones(examples, np.float32), (np.arange(examples), np.arange(examples) % n_in)),
                      shape=(examples, n_in))
    history = random_csr(examples, n_out, 0.02, seed=k).tolil()
    for r, kept in ((3, [7, 1500, 1501, 8990, 8999]), (4, rng.choice(n_out, 40, replace=False))):
        history[r, :] = 1.0
        history[r, kept] = 0.0
    history = history.tocsr()
    history.eliminate_zeros()
    cfg = network_config(hidden=(), output_activation="Sigmoid")
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(history, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=32, device="cuda", seed=1)
    net.set_weights("Input", "Output", w, bias)
    scores = net.predict(inp)
    idx, top = net.recommend(inp, k, exclude=history)
    seen = history.toarray() > 0
    for r in range(examples):
        candidates = np.flatnonzero(~seen[r])
        order = candidates[np.lexsort((candidates, -scores[r, candidates]))][:k]
        np.testing.assert_array_equal(idx[r], np.pad(order, (0, k - len(order)), constant_values=-1))
        np.testing.assert_array_equal(top[r, :len(order)], scores[r, order])
        assert (top[r, len(order):] == -np.inf).all()


def test_long_sparse_rows_split_over_blocks_match_cpu():
    # Rows of thousands of inputs are summed in segments over several blocks; a batch whose longest row is
    # shorter than the dataset's (8,000 vs 8,200) can take more segments than the dataset's longest row.
    lengths = [8000, 10, 8200, 7, 300, 5000]
    rng = np.random.default_rng(4)
    rows = [np.sort(rng.choice(10000, n, replace=False)) for n in lengths]
    x = sp.csr_matrix((np.ones(sum(lengths), np.float32), np.concatenate(rows),
                       np.concatenate([[0], np.cumsum(lengths)])), shape=(len(lengths), 10000))
    y = random_csr(len(lengths), 40, 0.2, seed=5)
    cfg = network_config(hidden=[(200, "Tanh")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=2, device=d, seed=3) for d in ("cpu", "cuda")]
    np.testing.assert_allclose(gpu.predict(inp, layer="Hidden1"), cpu.predict(inp, layer="Hidden1"), rtol=1e-5,
                               atol=1e-5)
    for net in (cpu, gpu):
        net.train(2, alpha=0.1)
    for a, b in zip(gpu.weights("Input", "Hidden1"), cpu.weights("Input", "Hidden1")):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("math", ["fp32", "tf32"])
def test_gather_finishes_rows_with_the_layers_activation(math):
    # A layer fed by a sparse input alone, without dropout, takes its bias and Sigmoid as the gather writes
    # each row's sums (short rows in the gather's blocks, long ones in the combine of their segments), not
    # in an activation op after it: the CPU target's units (its op after the sums). Under tf32 the Sigmoid
    # is the hardware's approximation, within 1e-5. With dropout the activation op still follows.
    lengths = [3000, 10, 700, 2, 300, 64, 1, 2500]
    rng = np.random.default_rng(21)
    rows = [np.sort(rng.choice(40000, n, replace=False)) for n in lengths]
    x = sp.csr_matrix((rng.uniform(0.2, 1.0, sum(lengths)).astype(np.float32), np.concatenate(rows),
                       np.concatenate([[0], np.cumsum(lengths)])), shape=(len(lengths), 40000))
    assert x.nnz / (x.shape[0] * x.shape[1]) <= 0.1  # a gather-sum, not a sparse input expanded to dense
    y = random_csr(len(lengths), 50, 0.2, seed=22)
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    for dropout in (0.0, 0.4):
        cfg = network_config(hidden=[(100, "Sigmoid")])
        cfg["Layers"][1]["pDropout"] = dropout
        cpu, gpu = [dsstne.Network.from_json(cfg, [inp, out], batch=len(lengths), device=d, seed=9, math=math)
                    for d in ("cpu", "cuda")]
        e_cpu, _ = cpu.gradients(0)
        e_gpu, _ = gpu.gradients(0)
        u_cpu, u_gpu = cpu.units("Hidden1"), gpu.units("Hidden1")
        dropped = u_cpu == 0.5  # a dropped Sigmoid unit is 0.5, unscaled
        assert (0.3 < dropped.mean() < 0.5) if dropout else not dropped.any()
        np.testing.assert_array_equal(u_gpu == 0.5, dropped)
        np.testing.assert_allclose(u_gpu, u_cpu, rtol=1e-5, atol=1e-6)
        assert e_gpu == pytest.approx(e_cpu, rel=1e-4)
        np.testing.assert_allclose(gpu.predict(inp, layer="Hidden1"), cpu.predict(inp, layer="Hidden1"),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width", [130, 132, 1024], ids=["odd_pairs", "quads_partial_pass", "quads"])
def test_gather_sum_of_any_width_matches_numpy(width):
    # The gather-sum takes a row's weights by 16-byte quads where the layer's width is a multiple of 4, else
    # float by float: either way (and for a last pass of 2 or 4 columns, long rows over several blocks, zero
    # inputs) it is x W + b, against numpy in float64.
    lengths = [3000, 1, 37, 0, 600, 64] + [3] * 40
    rng = np.random.default_rng(width)
    rows = [np.sort(rng.choice(4000, n, replace=False)) for n in lengths]
    values = rng.uniform(-1.0, 1.0, sum(lengths)).astype(np.float32)
    values[::7] = 0.0
    x = sp.csr_matrix((values, np.concatenate(rows), np.concatenate([[0], np.cumsum(lengths)])),
                      shape=(len(lengths), 4000))
    assert x.nnz / (x.shape[0] * x.shape[1]) <= 0.1  # a gather-sum, not a sparse input expanded to dense
    y = random_csr(len(lengths), 20, 0.2, seed=6)
    cfg = network_config(hidden=[(width, "Linear")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=4, device="cuda", seed=8)
    w, b = net.weights("Input", "Hidden1")
    want = x.astype(np.float64) @ w.astype(np.float64) + b
    np.testing.assert_allclose(net.predict(inp, layer="Hidden1"), want, rtol=1e-5, atol=1e-5)


def test_sigmoid_matches_cpu_over_its_range():
    # The GPU's Sigmoid takes 1 / (1 + e^-z) by the reciprocal's approximation and one Newton step (the
    # correctly rounded sequence of the division below 2^126, without the division's branch): within a
    # few ulp of the CPU's (their expf differ by up to 2 ulp) down to z = -87.3, and 0 from z = -87.34
    # on, where the division gives a denormal below 1.2e-38.
    z = np.concatenate([np.linspace(-110, 30, 7001), [-87.3, -87.4, -88.7, -103.0, -104.0]]).astype(np.float32)
    cfg = network_config(hidden=[], output_activation="Sigmoid", error="L2", sparse_input=False)
    x = np.ones((1, 2), np.float32)
    inp = dsstne.DataSet.from_numpy(x, "input")
    out = dsstne.DataSet.from_numpy(np.zeros((1, z.size), np.float32), "output")
    gpu, cpu = [dsstne.Network.from_json(cfg, [inp, out], batch=1, device=d, seed=1) for d in ("cuda", "cpu")]
    w = np.stack([z, np.zeros_like(z)])  # the sums are z exactly: 1 z + 1 0
    for net in (gpu, cpu):
        net.set_weights("Input", "Output", w, np.zeros_like(z))
    a_gpu, a_cpu = gpu.predict(x)[0], cpu.predict(x)[0]
    normal, below = z > -87.3, z < -87.4
    assert normal.sum() > 5000 and below.sum() > 400
    np.testing.assert_array_max_ulp(a_gpu[normal], a_cpu[normal], maxulp=4)
    assert (a_gpu[below] == 0).all()
    assert (a_cpu[below] < 1.2e-38).all() and (a_cpu[below] > 0).any()
