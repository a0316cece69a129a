"""CDL, the Command Definition Language of the original ``encoder`` tool: parse a file, then Train, Predict or Validate.

A CDL file is JSON (keys case-insensitive, unknown keys rejected with the key named)::

    {
        "Version": 0.2,
        "Network": "config.json",          # JSON config (Train, Validate) or trained model .nc (Predict)
        "Command": "Train",                # Train | Predict | Validate
        "RandomSeed": 12345,               # default (or -1): from the time of day, printed
        "Data": "cifar10_training.nc",     # a dataset NetCDF file, or a list of them
        "TrainingParameters": {
            "Epochs": 60,                  # required for Train
            "MiniBatch": 1024,             # 0 = the whole dataset
            "Alpha": 0.1, "AlphaInterval": 0, "AlphaMultiplier": 0.5,
            "Lambda": 0.001, "Lambda1": 0, "mu": 0.9, "mu1": 0,
            "Optimizer": "SGD",            # SGD, Momentum, AdaGrad, Nesterov, RMSProp, AdaDelta, Adam
            "CheckpointName": "check", "CheckpointInterval": 1,
            "ShuffleIndices": false,       # overrides the network's ShuffleIndices when given
            "Results": "network.nc"
        },
        "PredictionParameters": {"MiniBatch": 1024}
    }

Defaults are the original parser's (``utils/cdl.cpp``). The alpha schedule is the original's: training runs in
rounds of ``AlphaInterval`` epochs, alpha is multiplied by ``AlphaMultiplier`` after each round, and
``AlphaInterval`` 0 means a constant alpha. Differences, all deliberate: the keys ``docs/getting_started/CDL.txt``
documents but the original's parser rejected are accepted (``MiniBatch``, ``ShuffleIndices``,
``PredictionParameters``, list-valued ``Data``, every optimiser); ``Lambda1`` and ``mu1`` are added (the ``train``
tool's ``-lambda1``/``-mu1``); the last round is shortened so exactly ``Epochs`` epochs run (the original
overshoots to a multiple of ``AlphaInterval``); relative paths are looked up in the working directory, then
beside the CDL file.

Predict prints, for k = 1..10, ``k,precision,recall,NDCG`` of the top 10 of the ``Output`` layer against the
dataset bound to it, as the original's encoder does (NDCG's ideal counts every relevant item; averages run over
the examples with at least one relevant item). Validate compares the engine's gradients with central finite
differences of the loss (the original's ``NNNetwork::Validate``, which used forward differences) and reports
pass or fail per connection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .config import parse_network
from .dataset import DataSet
from .enums import TrainingMode
from .errors import ConfigError, DataError, FormatError, NotSupportedError
from .formats.dataset_netcdf import read_datasets
from .formats.model_netcdf import Checkpointer
from .network import EpochReport, Network, load
from .validation import ValidationResult

__all__ = [
    "COMMANDS",
    "CommandDefinition",
    "PredictionParameters",
    "TrainingParameters",
    "ValidationResult",
    "load_data",
    "parse_cdl",
    "predict_report",
    "train",
    "validate",
]

COMMANDS = ("train", "predict", "validate")
Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


@dataclass(frozen=True)
class TrainingParameters:
    """``TrainingParameters`` of a CDL file (defaults: the original's parser)."""

    epochs: int | None = None
    minibatch: int = 1024
    alpha: float = 0.1
    lambda_: float = 0.001
    lambda1: float = 0.0
    mu: float = 0.9
    mu1: float = 0.0
    alpha_interval: int = 20  # after the original's rule: 0 in the file means constant (20, multiplier 1)
    alpha_multiplier: float = 1.0
    optimizer: TrainingMode = TrainingMode.SGD
    checkpoint_name: str = "check"
    checkpoint_interval: int = 1
    shuffle_indices: bool | None = None
    results: str = "network.nc"

    def schedule(self) -> list[tuple[int, float]]:
        """(epochs, alpha) of each training round: AlphaInterval epochs each, alpha x AlphaMultiplier after each."""
        rounds = []
        done, alpha = 0, self.alpha
        total = self.epochs or 0
        while done < total:
            n = min(self.alpha_interval, total - done)
            rounds.append((n, alpha))
            alpha *= self.alpha_multiplier
            done += n
        return rounds


@dataclass(frozen=True)
class PredictionParameters:
    """``PredictionParameters`` of a CDL file."""

    minibatch: int = 1024


@dataclass(frozen=True)
class CommandDefinition:
    """A parsed CDL file."""

    command: str  # "train", "predict" or "validate"
    network: str
    data: tuple[str, ...]
    random_seed: int | None = None  # None: from the time of day
    version: float | None = None
    training: TrainingParameters = field(default_factory=TrainingParameters)
    prediction: PredictionParameters = field(default_factory=PredictionParameters)
    path: str = ""

    def seed(self) -> int:
        """Return the seed to run with: RandomSeed, or the time of day (as the original) when absent or -1."""
        return self.random_seed if self.random_seed is not None else int(time.time())

    def resolve(self, path: str) -> str:
        """Return the path of a file, looked up in the working directory, then beside the CDL file."""
        if os.path.isabs(path) or os.path.exists(path) or not self.path:
            return path
        beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), path)
        return beside if os.path.exists(beside) else path


# ----------------------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------------------

_TOP = ("version", "network", "data", "randomseed", "command", "trainingparameters", "predictionparameters")
_TRAINING = ("epochs", "minibatch", "alpha", "lambda", "lambda1", "mu", "mu1", "alphainterval", "alphamultiplier",
             "optimizer", "checkpointname", "checkpointinterval", "shuffleindices", "results")


class _Fail:
    def __init__(self, where: str) -> None:
        self.where = where

    def __call__(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")


def _number(value: Any, key: str, fail: _Fail, *, minimum: float | None = None, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{key} must be a {'whole ' if integer else ''}number, not {json.dumps(value)}")
    if integer and value != int(value):
        raise fail(f"{key} must be a whole number, not {value}")
    if minimum is not None and value < minimum:
        raise fail(f"{key} must be >= {minimum:g}, not {value}")
    return int(value) if integer else float(value)


def _string(value: Any, key: str, fail: _Fail) -> str:
    if not isinstance(value, str) or not value:
        raise fail(f"{key} must be a non-empty string, not {json.dumps(value)}")
    return value


def _unknown(key: str, known: Sequence[str], fail: _Fail, what: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key.lower(), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return fail(f"unknown {what} '{key}'{hint}; known: {', '.join(known)}")


def _optimizer(value: Any, fail: _Fail) -> TrainingMode:
    text = _string(value, "TrainingParameters.Optimizer", fail)
    for mode in TrainingMode:
        if mode.name.lower() == text.lower():
            return mode
    raise fail(f"TrainingParameters.Optimizer '{text}' is not one of {', '.join(m.name for m in TrainingMode)}")


def parse_cdl(source: str | os.PathLike[str] | Mapping[str, Any]) -> CommandDefinition:
    """Parse a CDL file (a path, JSON text or a mapping) into a :class:`CommandDefinition`.

    Raises:
        ConfigError: malformed JSON, an unknown key, a missing required key (Network, Command, Data; Epochs
            for Train) or a bad value; the message names the file and the key.

    """
    path = ""
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        text = os.fspath(source)
        if text.lstrip().startswith("{"):
            body = text
        else:
            path = text
            try:
                with open(path, encoding="utf-8") as f:
                    body = f.read()
            except OSError as e:
                raise FormatError(f"{path}: cannot read the CDL file: {e.strerror or e}") from e
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path or '<CDL>'}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") \
                from None
    fail = _Fail(path or "<CDL>")
    if not isinstance(doc, Mapping):
        raise fail("a CDL file holds one JSON object")
    found: dict[str, Any] = {}
    for key, value in doc.items():
        low = str(key).lower()
        if low not in _TOP:
            raise _unknown(str(key), _TOP, fail, "keyword")
        found[low] = value
    for required in ("network", "command", "data"):
        if required not in found:
            raise fail(f"{required.capitalize()} is required, none found")
    command = _string(found["command"], "Command", fail).lower()
    if command not in COMMANDS:
        raise fail(f"Command '{found['command']}' is not one of Train, Predict, Validate")
    data = found["data"]
    files = (data,) if isinstance(data, str) else tuple(data) if isinstance(data, list) else None
    if not files or not all(isinstance(d, str) and d for d in files):
        raise fail("Data must be a file name or a non-empty list of file names")
    seed = None
    if "randomseed" in found:
        seed = _number(found["randomseed"], "RandomSeed", fail, integer=True, minimum=-1)
        seed = None if seed == -1 else seed
    version = _number(found["version"], "Version", fail) if "version" in found else None

    tp = found.get("trainingparameters", {})
    if not isinstance(tp, Mapping):
        raise fail("TrainingParameters must be an object")
    t: dict[str, Any] = {}
    for key, value in tp.items():
        low = str(key).lower()
        if low not in _TRAINING:
            raise _unknown(str(key), _TRAINING, fail, "TrainingParameter")
        t[low] = value
    tfail = fail
    kw: dict[str, Any] = {}
    if "epochs" in t:
        kw["epochs"] = _number(t["epochs"], "TrainingParameters.Epochs", tfail, integer=True, minimum=0)
    if "minibatch" in t:
        kw["minibatch"] = _number(t["minibatch"], "TrainingParameters.MiniBatch", tfail, integer=True, minimum=0)
    for low, name, attr in (("alpha", "Alpha", "alpha"), ("lambda", "Lambda", "lambda_"),
                            ("lambda1", "Lambda1", "lambda1"), ("mu", "mu", "mu"), ("mu1", "mu1", "mu1")):
        if low in t:
            kw[attr] = _number(t[low], f"TrainingParameters.{name}", tfail, minimum=0)
    interval = _number(t.get("alphainterval", 0), "TrainingParameters.AlphaInterval", tfail, integer=True,
                       minimum=0)
    multiplier = _number(t.get("alphamultiplier", 0.5), "TrainingParameters.AlphaMultiplier", tfail, minimum=0)
    if interval == 0:  # the original: 0 means a constant alpha
        interval, multiplier = 20, 1.0
    kw["alpha_interval"], kw["alpha_multiplier"] = interval, multiplier
    if "optimizer" in t:
        kw["optimizer"] = _optimizer(t["optimizer"], tfail)
    if "checkpointname" in t:
        kw["checkpoint_name"] = _string(t["checkpointname"], "TrainingParameters.CheckpointName", tfail)
    if "checkpointinterval" in t:
        kw["checkpoint_interval"] = _number(t["checkpointinterval"], "TrainingParameters.CheckpointInterval",
                                            tfail, integer=True, minimum=0)
    if "shuffleindices" in t:
        if not isinstance(t["shuffleindices"], bool):
            raise fail(f"TrainingParameters.ShuffleIndices must be true or false, not {t['shuffleindices']!r}")
        kw["shuffle_indices"] = t["shuffleindices"]
    if "results" in t:
        kw["results"] = _string(t["results"], "TrainingParameters.Results", tfail)
    training = TrainingParameters(**kw)
    if command == "train" and training.epochs is None:
        raise fail("Command Train requires TrainingParameters.Epochs")

    pp = found.get("predictionparameters", {})
    if not isinstance(pp, Mapping):
        raise fail("PredictionParameters must be an object")
    pkw: dict[str, Any] = {}
    for key, value in pp.items():
        if str(key).lower() != "minibatch":
            raise _unknown(str(key), ("minibatch",), fail, "PredictionParameter")
        pkw["minibatch"] = _number(value, "PredictionParameters.MiniBatch", fail, integer=True, minimum=0)
    return CommandDefinition(
        command=command,
        network=_string(found["network"], "Network", fail),
        data=files,
        random_seed=seed,
        version=version,
        training=training,
        prediction=PredictionParameters(**pkw),
        path=path,
    )


# ----------------------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------------------


def load_data(cdl: CommandDefinition) -> list[DataSet]:
    """Read every dataset of the CDL's Data files (all merged into one list, first name wins)."""
    sets: dict[str, DataSet] = {}
    for name in cdl.data:
        path = cdl.resolve(name)
        if not os.path.isfile(path):
            raise FormatError(f"{path}: cannot read the Data file (not found)")
        for ds in read_datasets(path):
            sets.setdefault(ds.name, ds)
    return list(sets.values())


def _batch(minibatch: int, datasets: Sequence[DataSet]) -> int:
    return minibatch if minibatch > 0 else max((d.examples for d in datasets), default=1)


def _is_netcdf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(b"CDF") or head.startswith(b"\x89HDF")


def build_network(cdl: CommandDefinition, datasets: Sequence[DataSet], *, batch: int, device: str = "auto",
                  seed: int | None = None) -> Network:
    """Build the CDL's network bound to `datasets`: a JSON config, or a model file (which resumes its training)."""
    path = cdl.resolve(cdl.network)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: cannot read the Network file (not found)")
    seed = cdl.seed() if seed is None else seed
    if _is_netcdf(path):
        return load(path, datasets, batch=batch, device=device, seed=seed)
    descriptor = parse_network(path)
    if cdl.training.shuffle_indices is not None:
        descriptor = dataclasses.replace(descriptor, shuffle_indices=cdl.training.shuffle_indices)
    return Network(descriptor, datasets, batch=batch, device=device, seed=seed)


def train(
    cdl: CommandDefinition,
    *,
    device: str = "auto",
    echo: Echo | None = None,
    callback: Callable[[EpochReport], Any] | None = None,
) -> Network:
    """Run a Train command: the alpha schedule, checkpoints, then save ``Results``; returns the network."""
    say = echo or _quiet
    tp = cdl.training
    datasets = load_data(cdl)
    seed = cdl.seed()
    net = build_network(cdl, datasets, batch=_batch(tp.minibatch, datasets), device=device, seed=seed)
    say(f"Network: {net} (seed {seed})")
    checkpointer = Checkpointer(net, tp.checkpoint_name, tp.checkpoint_interval, then=callback) \
        if tp.checkpoint_interval > 0 else None
    for epochs, alpha in tp.schedule():
        say(f"Training {epochs} epochs with alpha {alpha:g} ({tp.optimizer.name})")
        try:
            net.train(epochs, alpha, tp.lambda_, tp.lambda1, tp.mu, tp.mu1, optimizer=tp.optimizer,
                      callback=checkpointer or callback)
        except NotSupportedError as exc:
            raise NotSupportedError(
                f"TrainingParameters.Optimizer {tp.optimizer.name} cannot run on this engine build yet ({exc}); "
                "choose another Optimizer (SGD always runs)"
            ) from None
    net.save(tp.results)
    say(f"Saved the trained network to {tp.results}")
    return net


def predict_report(
    cdl: CommandDefinition, *, device: str = "auto", k: int = 10, layer: str | None = None
) -> list[tuple[int, float, float, float]]:
    """Run a Predict command: (k, precision, recall, NDCG) for k = 1..`k` of the top k of the output layer."""
    datasets = load_data(cdl)
    net = build_network(cdl, datasets, batch=_batch(cdl.prediction.minibatch, datasets), device=device)
    if layer is None:
        outputs = [ly.name for ly in net.descriptor.output_layers]
        if not outputs:
            raise DataError("the network has no output layer")
        layer = "Output" if "Output" in outputs else outputs[0]
    by_name = {d.name: d for d in datasets}
    truth_name = net.descriptor.layer(layer).dataset or "output"
    truth = by_name.get(truth_name) or by_name.get("output")
    if truth is None:
        raise DataError(f"no dataset '{truth_name}' (the ground truth of layer '{layer}') in {', '.join(cdl.data)}")
    inputs = {}
    for ly in net.descriptor.input_layers:
        if ly.dataset not in by_name:
            raise DataError(f"no dataset '{ly.dataset}' for input layer '{ly.name}' in {', '.join(cdl.data)}")
        inputs[ly.name] = by_name[ly.dataset]
    recs, _ = net.recommend(inputs if len(inputs) > 1 else next(iter(inputs.values())), k, layer=layer)
    y = truth.to_scipy()
    y.data[:] = 1.0
    y.eliminate_zeros()
    res = metrics.evaluate(recs, y, range(1, k + 1), idcg="all")
    return [(j, res[f"precision@{j}"], res[f"recall@{j}"], res[f"ndcg@{j}"]) for j in range(1, k + 1)]


def _examples(net: Network) -> int:
    counts = [d.examples for d in net.datasets.values()]
    return max(counts) if counts else net.batch


def validate(cdl: CommandDefinition, *, device: str = "auto", probes: int = 16, echo: Echo | None = None
             ) -> ValidationResult:
    """Run a Validate command: build the network on the Data and check its gradients."""
    datasets = load_data(cdl)
    net = build_network(cdl, datasets, batch=_batch(cdl.training.minibatch, datasets), device=device)
    return net.validate(probes=probes, echo=echo)
