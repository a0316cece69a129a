"""Network's `math`: the GPU's GEMMs on the tensor cores (``tf32x3``: our kernel, cuda/tensor_gemm.cu;
``tf32``: cuBLAS, and our kernel's one-product variant for the deep products and the side stream's large
ones that cuBLAS cannot load by 16 bytes, and cuBLASLt algorithms pinned for the benchmark's output layer),
against FP64 numpy and the CPU target; which shapes take our kernel and which fall back to cuBLAS;
reproducibility.

Bounds, relative to the largest output (bench/gemm_shapes.cu measures the same on the output layer's
shapes): ``tf32x3`` as FP32, 5e-6 (measured 3.6e-7 - 6.5e-7 at K = 128 - 27,278, cuBLAS FP32 4.5e-7 -
1.6e-6), ``tf32`` 3e-3 (its operands keep 10 of 23 mantissa bits: cuBLAS measured 2.1e-5 - 2.8e-4).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne
from dsstne.errors import ConfigError

BOUND = {"fp32": 5e-6, "tf32": 3e-3, "tf32x3": 5e-6}


def _linear(rows: int, inputs: int, units: int, math: str, device: str = "cuda", seed: int = 3,
            low: float = -1.0):
    """A dense input -> Linear output network with weights, biases and input uniform in [low, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, 1, (rows, inputs)).astype(np.float32)
    cfg = network_config(hidden=[], output_activation="Linear", error="L2", sparse_input=False)
    inp = dsstne.DataSet.from_numpy(x, "input")
    out = dsstne.DataSet.from_numpy(np.zeros((rows, units), np.float32), "output")
    net = dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=device, seed=seed, math=math)
    w = rng.uniform(low, 1, (inputs, units)).astype(np.float32)
    b = rng.uniform(low, 1, units).astype(np.float32)
    net.set_weights("Input", "Output", w, b)
    return net, x, w, b


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def test_math_mode_is_checked_and_cpu_ignores_it():
    with pytest.raises(ConfigError, match="math must be one of"):
        _linear(8, 4, 6, "fp16", device="cpu")
    fp32, x, _, _ = _linear(40, 30, 50, "fp32", device="cpu")
    tensor, _, _, _ = _linear(40, 30, 50, "tf32x3", device="cpu")
    assert tensor.math == "tf32x3"
    assert tensor.predict(x).tobytes() == fp32.predict(x).tobytes()


@pytest.mark.cuda
@pytest.mark.parametrize("math", ["tf32", "tf32x3"])
@pytest.mark.parametrize("rows, inputs, units",
                         [(256, 128, 4002), (300, 130, 2048), (300, 132, 2048), (77, 1024, 514),
                          (256, 512, 8950)],
                         ids=["sample_like", "ragged_rows", "ragged_bulk_copies", "deep", "tail_split"])
def test_forward_matches_fp64_and_leaves_fp32(math, rows, inputs, units):
    # Under tf32x3 on Hopper, an input of 16-byte rows (128, 132, 1,024, 512 floats) reaches the kernel by
    # bulk tensor copies, which fill the rows past the batch and the depths past the input with zeros; so
    # does the weight matrix (an even number of rows, an even pitch: 4,002 and 514 need the odd rows' box
    # to start two columns early, 2,048 not). Under tf32, "deep" and "tail_split" (K = 1,024 and 512 into
    # rows of 514 and 8,950 floats, which cuBLAS would read float by float) run our kernel's one-product
    # variant, the others cuBLAS.
    net, x, w, b = _linear(rows, inputs, units, math)
    ref = x.astype(np.float64) @ w.astype(np.float64) + b
    got = net.predict(x)
    assert _relative_error(got, ref) < BOUND[math]
    fp32, _, _, _ = _linear(rows, inputs, units, "fp32")
    plain = fp32.predict(x)
    assert _relative_error(plain, ref) < BOUND["fp32"]
    assert got.tobytes() != plain.tobytes()  # the tensor cores ran, not cuBLAS FP32
    assert net.predict(x).tobytes() == got.tobytes()


@pytest.mark.cuda
def test_tf32x3_long_sums_round_like_fp32():
    # Positive operands, K = 2,048 inside one tile (132 tiles: no split over K). The tensor cores add into
    # their accumulator truncating; left to accumulate over all of K that drifts to ~1e-5 here, while
    # the kernel's once-a-step rounded adds keep it as accurate as cuBLAS FP32.
    net, x, w, b = _linear(256, 2048, 8448, "tf32x3", low=0.0)
    ref = x.astype(np.float64) @ w.astype(np.float64) + b
    error = _relative_error(net.predict(x), ref)
    fp32, _, _, _ = _linear(256, 2048, 8448, "fp32", low=0.0)
    # (A numpy model of both accumulations on these operands: 1.7e-5 left to accumulate, 5.4e-7 rounded,
    # sequential FP32 2.9e-6.)
    assert error < max(2 * _relative_error(fp32.predict(x), ref), 1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("units", [999, 27277])
def test_odd_widths_fall_back_to_cublas(units):
    # An odd row pitch cannot be copied in 8-byte pairs: tf32x3 runs cuBLAS FP32, bit for bit as fp32.
    tensor, x, _, _ = _linear(64, 32, units, "tf32x3")
    fp32, _, _, _ = _linear(64, 32, units, "fp32")
    assert tensor.predict(x).tobytes() == fp32.predict(x).tobytes()


def _hidden_pair(math: str, rows: int = 256, hidden: int = 128, items: int = 12000,
                 devices: tuple[str, ...] = ("cpu", "cuda")):
    x = random_csr(rows * 3, 300, 0.05, seed=31)
    y = random_csr(rows * 3, items, 0.005, seed=32)
    cfg = network_config(hidden=[(hidden, "Sigmoid")])
    inp, out = dsstne.DataSet.from_scipy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    return [dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=d, seed=5, math=math) for d in devices]


@pytest.mark.cuda
@pytest.mark.parametrize("math", ["tf32", "tf32x3"])
@pytest.mark.parametrize("rows, hidden, items", [(256, 128, 12000), (250, 100, 12000), (256, 128, 12002)],
                         ids=["sample_like", "ragged", "padded_deltas"])
def test_deltas_and_gradients_match_cpu(math, rows, hidden, items):
    # The output layer's three products: forward (H W), weight gradient (H^T delta) and the hidden delta
    # (delta W^T: K = 12,000, which our kernel splits over blocks and sums in split order). 250 rows and 100
    # hidden units leave the last tiles ragged in every dimension: the forward's depths, the weight
    # gradient's rows (H^T, rows contiguous) and depths, the delta's columns. 12,002 output units, as the
    # benchmark's 27,278, are not whole 16 bytes: the output's delta rows are padded to 12,004 floats.
    cpu, gpu = _hidden_pair(math, rows=rows, hidden=hidden, items=items)
    e_cpu, g_cpu = cpu.gradients(0)
    e_gpu, g_gpu = gpu.gradients(0)
    bound = BOUND[math] * 10  # through a Sigmoid, the loss and a second product
    assert e_gpu == pytest.approx(e_cpu, rel=bound)
    for layer in ("Hidden1", "Output"):
        assert _relative_error(gpu.units(layer), cpu.units(layer)) < bound
        assert _relative_error(gpu.deltas(layer), cpu.deltas(layer)) < bound
    for key in g_cpu:
        for a, b in zip(g_gpu[key], g_cpu[key]):
            assert _relative_error(a, b) < bound
    deltas = gpu.deltas("Hidden1")
    gpu.gradients(0)
    assert gpu.deltas("Hidden1").tobytes() == deltas.tobytes()


@pytest.mark.cuda
def test_tf32_wide_weight_gradient_on_one_product_kernel_matches_cpu():
    # Hidden 1,024 into 16,000 outputs: the output weight gradient (on the side stream) is 8 x 125 tiles,
    # many rounds of the side's share of the device, so under tf32 it runs our kernel with one TF32
    # product a pair (operands rounded to nearest, as cuBLAS's TF32 rounds them).
    cpu, gpu = _hidden_pair("tf32", hidden=1024, items=16000)
    _, g_cpu = cpu.gradients(0)
    _, g_gpu = gpu.gradients(0)
    for key in g_cpu:
        for a, b in zip(g_gpu[key], g_cpu[key]):
            assert _relative_error(a, b) < BOUND["tf32"] * 10
    again = gpu.gradients(0)[1]
    for key in g_gpu:
        for a, b in zip(again[key], g_gpu[key]):
            assert a.tobytes() == b.tobytes()


@pytest.mark.cuda
def test_tf32x3_training_matches_cpu_and_repeats_bitwise():
    # Two epochs of SGD with weight decay: the output matrix steps inside its gradient GEMM (beta != 0).
    cpu, gpu = _hidden_pair("tf32x3")
    e_cpu = cpu.train(2, alpha=0.2, lambda_=0.001)
    e_gpu = gpu.train(2, alpha=0.2, lambda_=0.001)
    np.testing.assert_allclose(e_gpu, e_cpu, rtol=1e-4)
    for src, dst in (("Input", "Hidden1"), ("Hidden1", "Output")):
        for a, b in zip(gpu.weights(src, dst), cpu.weights(src, dst)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    _, again = _hidden_pair("tf32x3")
    assert again.train(2, alpha=0.2, lambda_=0.001) == e_gpu
    for src, dst in (("Input", "Hidden1"), ("Hidden1", "Output")):
        for a, b in zip(again.weights(src, dst), gpu.weights(src, dst)):
            assert a.tobytes() == b.tobytes()


@pytest.mark.cuda
def test_tf32x3_layer_with_two_sources_matches_cpu():
    # The output layer's second forward product adds into the first (beta = 1: the kernel reads C in its
    # stores); 300 rows leave the last tile of rows part empty.
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (300, 130)).astype(np.float32)
    layers = [{"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "input", "Sparse": False},
              {"Name": "A", "Kind": "Hidden", "N": 200, "Activation": "Sigmoid", "Source": ["Input"]},
              {"Name": "B", "Kind": "Hidden", "N": 140, "Activation": "Tanh", "Source": ["Input"]},
              {"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output", "Activation": "Linear",
               "Source": ["A", "B"]}]
    cfg = {"Version": 0.8, "Name": "two", "Kind": "FeedForward", "ErrorFunction": "L2", "Layers": layers}
    data = [dsstne.DataSet.from_numpy(x, "input"),
            dsstne.DataSet.from_numpy(np.zeros((300, 4098), np.float32), "output")]
    cpu, gpu = (dsstne.Network.from_json(cfg, data, batch=300, device=d, seed=9, math="tf32x3")
                for d in ("cpu", "cuda"))
    got, ref = gpu.predict(x), cpu.predict(x)
    assert _relative_error(got, ref) < BOUND["tf32x3"] * 10  # through an activation and a second product
    assert gpu.predict(x).tobytes() == got.tobytes()


_KERNEL_BITS = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from test_tensor_math import _hidden_pair, _linear
gpu = _hidden_pair("tf32x3")[1]
error, gradients = gpu.gradients(0)
digest = hashlib.sha256()
for layer in ("Hidden1", "Output"):
    digest.update(gpu.units(layer).tobytes())
    digest.update(gpu.deltas(layer).tobytes())
for key in sorted(gradients):
    for array in gradients[key]:
        digest.update(array.tobytes())
# 132 tiles of 16 steps and 8 over: the 8 run as a second product split over K (TensorGemmPlan::tail_n0).
net, x, _, _ = _linear(256, 512, 8950, "tf32x3")
digest.update(net.predict(x).tobytes())
# A and B by bulk copies on Hopper: rows past the batch and depths past the input (300 x 132).
net, x, _, _ = _linear(300, 132, 514, "tf32x3")
digest.update(net.predict(x).tobytes())
# The output's delta rows padded to whole 16 bytes (12,002 units, 12,004 floats a row).
_, gradients = _hidden_pair("tf32x3", items=12002)[1].gradients(0)
for key in sorted(gradients):
    for array in gradients[key]:
        digest.update(array.tobytes())
# Ragged tiles in every dimension of all three products (250 rows, 100 hidden units).
_, gradients = _hidden_pair("tf32x3", rows=250, hidden=100)[1].gradients(0)
for key in sorted(gradients):
    for array in gradients[key]:
        digest.update(array.tobytes())
print(repr(error), digest.hexdigest())
"""


@pytest.mark.cuda
def test_hopper_and_mma_kernels_give_the_same_bits():
    # On a card of compute capability 9.0 tf32x3 runs the wgmma kernel; DSSTNE_TENSOR_GEMM=mma forces
    # the mma.sync one (which other cards run anyway), =cp-async the wgmma kernel with its bulk tensor
    # copies (A's, B's rows in pairs) replaced by cp.async ones. All take each output's products in the
    # same order (three TF32 products an 8-deep slice, rounded into FP32 every 32 depths), so the forward,
    # weight-gradient and delta GEMMs (A K- and row-contiguous, B row- and K-contiguous, a K split, a
    # product whose last tiles run split, ragged tiles) agree bit for bit.
    tests = str(Path(__file__).parent)
    runs = [subprocess.run([sys.executable, "-c", _KERNEL_BITS, tests], env={**os.environ, **extra},
                           capture_output=True, text=True, check=True).stdout
            for extra in ({}, {"DSSTNE_TENSOR_GEMM": "mma"}, {"DSSTNE_TENSOR_GEMM": "cp-async"})]
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0].split()) == 2


# The benchmark's output layer in a process of its own (the pins are chosen when its backend is made):
# the three products' results saved to argv[2].
_PINNED_PRODUCTS = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_tensor_math import _hidden_pair
gpu = _hidden_pair("tf32", hidden=1024, items=27278, devices=("cuda",))[0]
_, gradients = gpu.gradients(0)
hopper = gpu.device_description.endswith("compute capability 9.0")
np.savez(sys.argv[2], units=gpu.units("Output"), deltas=gpu.deltas("Hidden1"),
         gradient=gradients[("Hidden1", "Output")][0], hopper=hopper)
"""


@pytest.mark.cuda
def test_tf32_pinned_cublaslt_products_match_cpu_and_repeat_bitwise(tmp_path):
    # The benchmark's output layer (256 rows, 1,024 hidden units, 27,278 outputs in rows of 27,280 floats):
    # under tf32 its forward, delta and weight-gradient products run the cuBLASLt algorithms that
    # cuda/pinned_gemm.cu pins by configuration on a card of compute capability 9.0. With the pins, twice,
    # and with DSSTNE_PINNED_GEMMS=off (cublasSgemm's own choices).
    tests = str(Path(__file__).parent)

    def run(name: str, extra: dict[str, str]):
        path = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", _PINNED_PRODUCTS, tests, str(path)], env={**os.environ, **extra},
                       check=True)
        return np.load(path)

    on, again, off = run("on", {}), run("again", {}), run("off", {"DSSTNE_PINNED_GEMMS": "off"})
    cpu = _hidden_pair("tf32", hidden=1024, items=27278, devices=("cpu",))[0]
    _, g_cpu = cpu.gradients(0)
    expected = {"units": cpu.units("Output"), "deltas": cpu.deltas("Hidden1"),
                "gradient": g_cpu[("Hidden1", "Output")][0]}
    for key, ref in expected.items():
        for result in (on, off):
            assert _relative_error(result[key], ref) < BOUND["tf32"] * 10, key
        assert on[key].tobytes() == again[key].tobytes(), key
    # The pinned algorithms ran: other sums than cublasSgemm's somewhere. (A product's bits depend only on
    # its order over K, which a pin need not change: on the H200 the forward's and the weight gradient's
    # pins give cublasSgemm's bits, the delta's other ones.)
    changed = [key for key in expected if on[key].tobytes() != off[key].tobytes()]
    assert changed or not on["hopper"]


def _tf32_exact(v: np.ndarray) -> np.ndarray:
    """v in float32 with its 13 lowest mantissa bits cleared: TF32 keeps it as it is."""
    bits = np.asarray(v, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return bits.view(np.float32)


def _output_deltas(error: str, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The output layer's delta of a Sigmoid under `error` (DSSTNE's default margins), in float32."""
    if error == "CrossEntropy":
        return (a - t).astype(np.float32)
    one = np.where(a < np.float32(0.9), a - np.float32(1), np.float32(0))
    zero = np.where(a > np.float32(0.1), a, np.float32(0))
    return np.where(t == 1, one, zero).astype(np.float32)


@pytest.mark.cuda
@pytest.mark.parametrize("error", ["CrossEntropy", "ScaledMarginalCrossEntropy"])
def test_tf32_activations_and_losses_take_the_hardware_approximations(error):
    # Under tf32 the activation and loss ops take ex2, rcp and lg2 .approx (as the original's -use_fast_math
    # build did). Operands exact in TF32 make the sums those of FP32: the Sigmoid is then within the
    # approximations' bounds of float64 (CUDA documents __expf(x) to 2 + 1.173 |x| ulp, the reciprocal to
    # 1: ≈ 4.8e-7 + 1.4e-7 |z| relative), the loss pass (sparse targets) takes the same Sigmoid as the
    # activation op, bit for bit, and its summed loss is the exact one's to 1e-5.
    rng = np.random.default_rng(11)
    rows, units = 250, 7000
    w = _tf32_exact(np.stack([rng.uniform(-80, 30, units), rng.uniform(-4, 4, units)]))
    x = np.stack([np.ones(rows), rng.choice([0.0, 0.5, -0.25, 1.0], rows)], 1).astype(np.float32)
    y = random_csr(rows, units, 0.01, seed=12)
    cfg = network_config(hidden=[], output_activation="Sigmoid", error=error, sparse_input=False)
    inp, out = dsstne.DataSet.from_numpy(x, "input"), dsstne.DataSet.from_scipy(y, "output")
    nets = {(d, m): dsstne.Network.from_json(cfg, [inp, out], batch=rows, device=d, seed=1, math=m)
            for d, m in (("cuda", "tf32"), ("cuda", "fp32"), ("cpu", "fp32"))}
    for net in nets.values():
        net.set_weights("Input", "Output", w, np.zeros(units, np.float32))
    fast = nets["cuda", "tf32"]
    sums = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32).astype(np.float64)
    reference = 1.0 / (1.0 + np.exp(-sums))
    a = fast.predict(x)
    relative = np.abs(a - reference) / reference  # sums from -84 to 34: no denormal, no 0
    assert (relative <= 1e-6 + 2e-7 * np.abs(sums)).all()
    assert (a != nets["cuda", "fp32"].predict(x)).mean() > 0.01  # FP32 keeps the accurate functions
    e_fast, _ = fast.gradients(0)
    deltas = fast.deltas("Output")
    np.testing.assert_array_equal(deltas, _output_deltas(error, a, y.toarray().astype(np.float32)))
    e_exact, _ = nets["cpu", "fp32"].gradients(0)
    assert e_fast == pytest.approx(e_exact, rel=1e-5)
    assert e_fast != nets["cuda", "fp32"].gradients(0)[0]
    e_again, _ = fast.gradients(0)
    assert e_again == e_fast and fast.deltas("Output").tobytes() == deltas.tobytes()
