"""Network: a DSSTNE network definition bound to datasets and a target, trained and queried from Python."""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _engine
from .config import DataShape, NetworkDescriptor, parse_network, resolve_dimensions
from .dataset import DataSet, as_dataset
from .device import plugin_path, resolve_device
from .enums import LayerKind, LayerType, TrainingMode
from .errors import ConfigError, DataError, NotSupportedError
from .formats.model_netcdf import BatchNormState
from .validation import ValidationResult, validate_network

log = logging.getLogger("dsstne")

DEFAULT_SEED = 12134  # the original's fixed seed of its command-line tools
MATH_MODES = ("fp32", "tf32", "tf32x3")  # how a GPU's GEMMs multiply (Network's `math`)

EpochCallback = Callable[["EpochReport"], "bool | None"]


@dataclass(frozen=True)
class EpochReport:
    """What one training epoch produced."""

    epoch: int  # epochs completed by the network, this one included
    error: float  # mean loss per example
    regularization: float  # mean regularisation error per example
    seconds: float
    examples: int

    @property
    def total(self) -> float:
        """Loss plus regularisation, the number the original reports per epoch."""
        return self.error + self.regularization

    @property
    def examples_per_second(self) -> float:
        """Training throughput of the epoch."""
        return self.examples / self.seconds if self.seconds > 0 else float("inf")


class Network:
    """A DSSTNE network on one target (CPU or a CUDA device).

    Build one with :meth:`from_json`; train with :meth:`train`; score with :meth:`predict` and
    :meth:`recommend`. ``device`` tells which target runs it.
    """

    def __init__(
        self,
        descriptor: NetworkDescriptor,
        datasets: Iterable[DataSet] = (),
        *,
        batch: int = 512,
        device: str = "auto",
        seed: int = DEFAULT_SEED,
        math: str = "fp32",
        tanh_dropout_scale: bool = True,
        batch_norm_momentum: float = 1.0,
    ) -> None:
        """Bind `descriptor` to `datasets` (matched by name to the layers' DataSet) on `device`.

        `math` is how a GPU's GEMMs multiply: ``"fp32"`` (cuBLAS FP32, the reference), ``"tf32"`` (TF32 products
        on the tensor cores, operands rounded to TF32's 10 mantissa bits: cuBLAS, and our kernel for the
        large weight gradients it computes beside the backward; the activations and losses then take the
        GPU's approximate exponential, reciprocal and logarithm, as the original's ``-use_fast_math`` build
        did: relative errors of 1e-7 - 1e-5 against the products' ≈ 1e-3) or ``"tf32x3"`` (our tensor-core
        GEMM, each operand split into two TF32 parts and three products summed, rounded into FP32 once
        every 32 depths: errors of cuBLAS FP32's size, faster than ``"fp32"`` on Hopper). The CPU target
        always computes in FP32. docs/performance.md gives each mode's speed and measured error.

        `tanh_dropout_scale` keeps the original's Tanh hidden-layer derivative under dropout,
        ``s(1 - (a/s)^2)`` with ``s = 1/(1 - pDropout)`` (the derivative of a kept, rescaled unit); False uses
        ``1 - a^2``. Without dropout both are the same.

        `batch_norm_momentum` is the weight of each training minibatch in the BatchNormalization running
        statistics, ``running = (1 - m) running + m batch`` (cuDNN's exponential average factor, PyTorch's
        momentum). The default 1 is the original's behaviour: its running mean and variance are the last
        training minibatch's. Inference (:meth:`predict`) normalises with them; the running variance is
        the unbiased one, the normalisation during training uses the biased batch variance.
        """
        datasets = list(datasets)
        if not isinstance(batch, int) or batch <= 0:
            raise ConfigError(f"batch must be a positive integer, not {batch!r}")
        names = [d.name for d in datasets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DataError(f"several datasets are named {sorted(dup)}")
        shapes = {d.name: DataShape(*d.dims, dimensions=d.dimensions) for d in datasets}
        self.descriptor: NetworkDescriptor = resolve_dimensions(descriptor, shapes)
        _check_supported(self.descriptor)
        if not 0.0 <= float(batch_norm_momentum) <= 1.0:
            raise ConfigError(f"batch_norm_momentum must lie in [0, 1], not {batch_norm_momentum!r}")
        self.batch = batch
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.seed = int(seed)
        self.datasets: dict[str, DataSet] = {d.name: d for d in datasets}
        self._context = _engine.EngineContext(resolve_device(device), self.seed, plugin_path())
        if math not in MATH_MODES:
            raise ConfigError(f"math must be one of {', '.join(MATH_MODES)}, not {math!r}")
        self._context.set_math(math)
        self.math: str = math
        uploads = [d._upload(self._context) for d in datasets]
        spec = _spec(self.descriptor, batch, tanh_dropout_scale)
        spec["bn_momentum"] = self.batch_norm_momentum
        self._net = _engine.EngineNetwork(self._context, spec, uploads)
        self.history: list[EpochReport] = []
        log.info("dsstne: network '%s' on %s (%s)", self.descriptor.name, self.device, self.device_description)

    @classmethod
    def from_json(
        cls,
        config: str | os.PathLike[str] | Mapping[str, Any],
        datasets: Iterable[DataSet] = (),
        *,
        batch: int = 512,
        device: str = "auto",
        seed: int = DEFAULT_SEED,
        math: str = "fp32",
        tanh_dropout_scale: bool = True,
        batch_norm_momentum: float = 1.0,
    ) -> Network:
        """Build a network from DSSTNE JSON (a path, JSON text or a dict) and the datasets it names."""
        return cls(parse_network(config), datasets, batch=batch, device=device, seed=seed, math=math,
                   tanh_dropout_scale=tanh_dropout_scale, batch_norm_momentum=batch_norm_momentum)

    # ------------------------------------------------------------------ facts
    @property
    def device(self) -> str:
        """The target running this network: "cpu" or "cuda:N"."""
        return self._context.name

    @property
    def device_description(self) -> str:
        """Human description of the target (GPU model, CPU threads)."""
        return self._context.description

    @property
    def epochs_done(self) -> int:
        """Epochs trained so far."""
        return self._net.epochs_done

    @property
    def batches_done(self) -> int:
        """Minibatches trained so far (the optimiser's step counter)."""
        return self._net.batches_done

    @property
    def optimizer_steps(self) -> int:
        """Updates since the optimiser state was last cleared (Adam's step count, learning-rate decay)."""
        return self._net.optimizer_steps

    def set_counters(self, epochs: int, batches: int, optimizer_steps: int = 0) -> None:
        """Restore the training counters (resuming a saved model continues bit for bit)."""
        self._net.set_counters(int(epochs), int(batches), int(optimizer_steps))

    @property
    def batch_norm_layers(self) -> list[str]:
        """Names of the layers that use BatchNormalization, in declaration order."""
        return [ly.name for ly in self.descriptor.layers if ly.batch_normalization]

    def batch_norm_state(self, layer: str) -> BatchNormState:
        """BatchNormalization arrays of `layer` (scale, bias, running mean, running variance; one per unit).

        The running variance is the unbiased variance (rows/(rows-1)) of the minibatches it averages.
        """
        return BatchNormState(*self._net.get_batch_norm(layer))

    def set_batch_norm_state(self, layer: str, state: BatchNormState) -> None:
        """Replace the BatchNormalization arrays of `layer` (a :class:`BatchNormState`, e.g. from a file)."""
        self._net.set_batch_norm(layer, state.scale, state.bias, state.running_mean, state.running_variance)

    def batch_norm_optimizer_state(self) -> dict[str, dict[str, np.ndarray]]:
        """Optimiser buffers of the BatchNormalization parameters: {layer: {"velocity": gamma's, ...}}."""
        state: dict[str, dict[str, np.ndarray]] = {}
        for layer in self.batch_norm_layers:
            for which, name in enumerate(_STATE_NAMES):
                try:
                    scale, bias = self._net.get_batch_norm_state(layer, which)
                except DataError:  # this mode keeps fewer buffers
                    break
                state.setdefault(layer, {})[name] = scale
                state[layer][name + "_bias"] = bias
        return state

    def set_batch_norm_optimizer_state(self, state: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Restore buffers saved by :meth:`batch_norm_optimizer_state`."""
        for layer, arrays in state.items():
            for which, name in enumerate(_STATE_NAMES):
                if name in arrays:
                    self._net.set_batch_norm_state(layer, which, arrays[name], arrays[name + "_bias"])

    def optimizer_state(self) -> dict[tuple[str, str], dict[str, np.ndarray]]:
        """Optimiser buffers per connection: {(source, layer): {"velocity": W, "velocity_bias": b, ...}}."""
        state: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        for w in self.descriptor.weights:
            key = (w.input_layer, w.output_layer)
            for which, name in enumerate(_STATE_NAMES):
                try:
                    sw, sb = self._net.get_state(*key, which)
                except DataError:  # this mode keeps fewer buffers
                    break
                state.setdefault(key, {})[name] = sw
                state[key][name + "_bias"] = sb
        return state

    def set_optimizer_state(self, state: Mapping[tuple[str, str], Mapping[str, np.ndarray]]) -> None:
        """Restore optimiser buffers saved by :meth:`optimizer_state`."""
        for key, arrays in state.items():
            for which, name in enumerate(_STATE_NAMES):
                if name in arrays:
                    self._net.set_state(*key, which, arrays[name], arrays[name + "_bias"])

    def memory(self) -> dict[str, int]:
        """Target memory in use and its peak, in bytes."""
        current, peak = self._context.memory()
        return {"current_bytes": current, "peak_bytes": peak}

    @property
    def input_layers(self) -> list[str]:
        """Names of the Input layers, in declaration order."""
        return [ly.name for ly in self.descriptor.layers if ly.kind == LayerKind.Input]

    @property
    def output_layers(self) -> list[str]:
        """Names of the Output layers, in declaration order."""
        return [ly.name for ly in self.descriptor.layers if ly.kind == LayerKind.Output]

    def __repr__(self) -> str:
        sizes = " -> ".join(f"{ly.name}({ly.stride})" for ly in self.descriptor.layers)
        return f"Network({self.descriptor.name!r}: {sizes}, batch={self.batch}, device={self.device})"

    # ------------------------------------------------------------------ training
    def train(
        self,
        epochs: int = 1,
        alpha: float = 0.025,
        lambda_: float = 0.0001,
        lambda1: float = 0.0,
        mu: float = 0.5,
        mu1: float = 0.0,
        *,
        optimizer: str | TrainingMode = TrainingMode.SGD,
        callback: EpochCallback | None = None,
        verbose: bool = False,
        clear_velocity: bool = True,
        adam_dsstne_step: bool = True,
        divergence_brake: bool = False,
    ) -> list[float]:
        """Train `epochs` epochs; return each epoch's mean error (loss + regularisation) per example.

        Defaults are the original ``train`` tool's. `callback` receives an :class:`EpochReport` after each
        epoch and may return False to stop. `verbose` prints one progress line per epoch to stderr.
        `clear_velocity` zeroes the optimiser state first, as each of the original's ``Train`` calls does
        (pass False to continue a resumed run exactly). `adam_dsstne_step` keeps the original's Adam bias
        correction, whose first step uses t = 2; False uses the textbook t = 1. `divergence_brake` turns on
        the original's brake (after 100 minibatches of a call, a minibatch whose error exceeds twice the
        moving average is skipped and the next 24 use alpha/10); it costs one device synchronisation per
        minibatch, so it is off by default.
        """
        if not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, not {epochs!r}")
        mode = _training_mode(optimizer)
        examples = self._training_examples()

        def on_epoch(epoch: int, error: float, reg: float, seconds: float) -> bool:
            report = EpochReport(epoch, error, reg, seconds, examples)
            self.history.append(report)
            if verbose:
                print(
                    f"epoch {epoch:4d}  error {report.total:.6f}  {seconds:7.3f} s  "
                    f"{report.examples_per_second:,.0f} examples/s  [{self.device}]",
                    file=sys.stderr,
                    flush=True,
                )
            return callback(report) is not False if callback is not None else True

        reports = self._net.train(epochs, int(mode), alpha, lambda_, lambda1, mu, mu1, on_epoch, clear_velocity,
                                  adam_dsstne_step, divergence_brake)
        return [r[1] + r[2] for r in reports]

    @property
    def training_examples(self) -> int:
        """Examples of the bound training datasets (0 when they disagree or none is bound)."""
        return self._training_examples()

    def _training_examples(self) -> int:
        counts = {self.datasets[ly.dataset].examples for ly in self.descriptor.layers
                  if ly.kind in (LayerKind.Input, LayerKind.Output) and ly.dataset in self.datasets}
        return counts.pop() if len(counts) == 1 else 0

    # ------------------------------------------------------------------ inference
    def _inputs(self, data: Any) -> tuple[list[Any], int]:
        names = self.input_layers
        if isinstance(data, Mapping):
            sets = [as_dataset(data[n], self.descriptor.layer(n).dataset) for n in names]
        else:
            if len(names) != 1:
                raise DataError(f"the network has {len(names)} input layers: pass a dict layer name -> data")
            sets = [as_dataset(data, self.descriptor.layer(names[0]).dataset)]
        renamed = []
        for name, ds in zip(names, sets):
            wanted = self.descriptor.layer(name).dataset
            if ds.name != wanted:  # the engine binds by dataset name
                ds = DataSet(**{**ds.__dict__, "name": wanted, "_uploads": weakref.WeakKeyDictionary()})
            renamed.append(ds)
        examples = {d.examples for d in renamed}
        if len(examples) != 1:
            raise DataError("the input datasets differ in their number of examples")
        return [d._upload(self._context) for d in renamed], examples.pop()

    def predict(
        self, data: DataSet | np.ndarray | sp.spmatrix | Mapping[str, Any], layer: str | None = None
    ) -> np.ndarray:
        """Units of `layer` (default: the first output layer) for every example of `data`, [examples, units]."""
        inputs, examples = self._inputs(data)
        return self._net.predict(inputs, layer or self.output_layers[0], examples)

    def recommend(
        self,
        data: DataSet | np.ndarray | sp.spmatrix | Mapping[str, Any],
        k: int = 10,
        *,
        exclude: DataSet | sp.spmatrix | str | None = None,
        layer: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` units of `layer` per example: (indices int64 [examples, k], scores float32 [examples, k]).

        `exclude` lists units never to recommend per example (e.g. items already seen); ``"input"``
        excludes each example's own input units. Rows with fewer than k candidates are padded with
        index -1 and score -inf. k may exceed the layer width: every unit is then returned, ranked.
        """
        if not isinstance(k, (int, np.integer)) or k <= 0:
            raise DataError(f"k must be a positive integer, not {k!r}")
        inputs, examples = self._inputs(data)
        if isinstance(exclude, str):
            if exclude != "input":
                raise DataError(f"exclude must be a DataSet, a sparse matrix, 'input' or None, not {exclude!r}")
            exclude = data if not isinstance(data, Mapping) else data[self.input_layers[0]]
        ex = None
        if exclude is not None:
            ex_ds = as_dataset(exclude, "exclude")
            if not ex_ds.is_sparse:
                ex_ds = DataSet.from_scipy(sp.csr_matrix(ex_ds.to_numpy()), "exclude")
            ex = ex_ds._upload(self._context)
        index, scores = self._net.recommend(inputs, layer or self.output_layers[0], int(k), examples, ex)
        # Padding is 0xFFFFFFFF, read as int32 -1; real indices are below 2**31 (one row of 2**31 scores
        # alone would take 8 GiB).
        return index.view(np.int32).astype(np.int64), scores

    # ------------------------------------------------------------------ inspection
    def weights(self, source: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """(W [source units, layer units], bias [layer units]) of the connection source -> layer."""
        return self._net.get_weights(source, layer)

    def set_weights(self, source: str, layer: str, w: np.ndarray, b: np.ndarray) -> None:
        """Replace the weights and bias of the connection source -> layer."""
        self._net.set_weights(source, layer, w, b)

    def lock_weights(self, source: str, layer: str, locked: bool = True) -> None:
        """Freeze (or free) the connection source -> layer: no gradient, no update, for weights and bias.

        As the original's ``LockWeights``; saved in model files (``bLocked``). A shared connection's matrix
        follows its owner's lock; its own bias follows its own.
        """
        self._net.lock_weights(source, layer, bool(locked))

    def weights_locked(self, source: str, layer: str) -> bool:
        """Whether the connection source -> layer is locked."""
        return bool(self._net.weights_locked(source, layer))

    @property
    def locked_connections(self) -> set[tuple[str, str]]:
        """Connections frozen with :meth:`lock_weights`."""
        return {(w.input_layer, w.output_layer) for w in self.descriptor.weights
                if self._net.weights_locked(w.input_layer, w.output_layer)}

    def gradients(self, position: int = 0) -> tuple[float, dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]]:
        """Loss and gradients of one minibatch, without training.

        Runs the minibatch starting at example `position` (stored order) forward in training mode, then
        backward. Returns (summed loss E, {(source, layer): (dE/dW, dE/db)}). Regularisation is not
        included; dropout and denoising masks are the ones the next training step would draw.
        """
        error = self._net.batch_gradients(position)
        rows = min(self.batch, self._training_examples() - position)
        grads = {}
        try:
            for w in self.descriptor.weights:
                gw, gb = self._net.get_gradients(w.input_layer, w.output_layer)
                grads[(w.input_layer, w.output_layer)] = (-rows * gw, -rows * gb)
        finally:
            self._net.clear_gradients()
        return error, grads

    def batch_norm_gradients(self, position: int = 0) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Loss and BatchNormalization gradients of one minibatch, without training.

        As :meth:`gradients` (same minibatch, same masks): returns (summed loss E, {layer: (dE/dgamma,
        dE/dbeta)}) for every BatchNormalization layer. Running statistics are left unchanged.
        """
        error = self._net.batch_gradients(position)
        rows = min(self.batch, self._training_examples() - position)
        grads = {}
        try:
            for layer in self.batch_norm_layers:
                gs, gb = self._net.get_batch_norm_gradients(layer)
                grads[layer] = (-rows * gs, -rows * gb)
        finally:
            self._net.clear_gradients()
        return error, grads

    def validate(
        self,
        *,
        probes: int = 16,
        eps: float = 1e-2,
        rtol: float = 5e-2,
        atol: float = 5e-3,
        position: int = 0,
        seed: int = 0,
        echo: Callable[[str], None] | None = None,
    ) -> ValidationResult:
        """Check the engine's gradients against finite differences of its loss (DSSTNE's Validate).

        See :func:`dsstne.validation.validate_network`; `echo` receives a progress line per connection.
        """
        return validate_network(self, probes=probes, eps=eps, rtol=rtol, atol=atol, position=position,
                                seed=seed, echo=echo)

    def units(self, layer: str) -> np.ndarray:
        """Activations of `layer` for the last minibatch run, [batch, units]."""
        return self._net.units(layer)

    def deltas(self, layer: str) -> np.ndarray:
        """Deltas (dE/dz) of `layer` for the last training minibatch, [batch, units]."""
        return self._net.deltas(layer)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the network as a DSSTNE model NetCDF file (atomically); :func:`load` resumes it exactly."""
        from .formats.model_netcdf import save_network

        save_network(self, path)


def load(
    path: str | os.PathLike[str],
    datasets: Iterable[DataSet] | Mapping[str, DataSet] = (),
    *,
    batch: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    math: str = "fp32",
    batch_norm_momentum: float = 1.0,
) -> Network:
    """Load a model NetCDF file (saved here or by the original's ``train``) bound to `datasets`.

    The network definition comes from the file; `batch` and `seed` default to the saved ones, and the
    epoch and minibatch counters are restored, so training continues exactly where it stopped.
    `math` and `batch_norm_momentum` are :class:`Network`'s (not stored in the file).
    """
    from .formats.model_netcdf import load_network

    return load_network(path, datasets, batch=batch, device=device, seed=seed, math=math,
                        batch_norm_momentum=batch_norm_momentum)


def _training_mode(optimizer: str | TrainingMode) -> TrainingMode:
    if isinstance(optimizer, TrainingMode):
        return optimizer
    for mode in TrainingMode:
        if mode.name.lower() == str(optimizer).lower():
            return mode
    raise ConfigError(f"unknown optimizer '{optimizer}' (one of {', '.join(m.name for m in TrainingMode)})")


_STATE_NAMES = ("velocity", "velocity2")  # the two optimiser buffers a mode may keep

def _check_supported(d: NetworkDescriptor) -> None:
    """Raise NotSupportedError for valid DSSTNE features this engine cannot execute yet."""

    def fail(feature: str, layer: str | None = None) -> None:
        where = f" (layer '{layer}')" if layer else ""
        raise NotSupportedError(f"not supported yet: {feature}{where}")

    for ly in d.layers:
        if ly.type != LayerType.FullyConnected:
            fail(f"{ly.type.name} layers", ly.name)


def _spec(d: NetworkDescriptor, batch: int, tanh_dropout_scale: bool = True) -> dict[str, Any]:
    layers = []
    for ly in d.layers:
        p = ly.sparseness_penalty_p if ly.sparseness_penalty_p > 0 else d.sparseness_penalty_p
        beta = ly.sparseness_penalty_beta if ly.sparseness_penalty_beta > 0 else d.sparseness_penalty_beta
        penalised = ly.sparse and ly.kind == LayerKind.Hidden and beta > 0
        layers.append({
            "name": ly.name,
            "kind": int(ly.kind),
            "dims": (ly.nx, ly.ny, ly.nz, ly.nw),
            "sparse": bool(ly.sparse),
            "denoising": bool(ly.denoising),
            "sources": list(ly.sources),
            "skips": list(ly.skips),
            "delta_norm": ly.delta_norm,
            "dataset": ly.dataset,
            "activation": int(ly.activation),
            "activation_params": (ly.relu_slope, ly.elu_alpha, ly.selu_lambda),
            "p_dropout": ly.p_dropout,
            "sparseness": (p, beta) if penalised else (0.0, 0.0),
            "batch_norm": bool(ly.batch_normalization),
        })
    weights = []
    for w in d.weights:
        target = d.layer(w.output_layer)
        weights.append({
            "input": w.input_layer,
            "output": w.output_layer,
            "init": int(target.weight_init.scheme),
            "scale": target.weight_init.scale,
            "bias": target.weight_init.bias,
            "norm": w.norm,
            "shared": w.shared,
            "transposed": w.transposed,
            "source_input": w.source_input_layer,
            "source_output": w.source_output_layer,
        })
    return {
        "name": d.name,
        "layers": layers,
        "weights": weights,
        "error_function": int(d.error_function),
        "smce": (d.smce_one_target, d.smce_zero_target, d.smce_one_scale, d.smce_zero_scale),
        "delta_boost": (d.delta_boost_one, d.delta_boost_zero),
        "denoising_p": d.denoising_p,
        "decay": d.decay,
        "shuffle": bool(d.shuffle_indices),
        "batch": batch,
        "tanh_dropout_scale": bool(tanh_dropout_scale),
    }


__all__ = ["DEFAULT_SEED", "EpochReport", "Network", "load"]
