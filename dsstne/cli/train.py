"""Train a network from a JSON config and dataset NetCDF files, as the original ``train`` tool.

Usage: train -c <config.json> -i <input.nc> -o <output.nc> -n <network.nc> [-b 1024] [-e 40]
[-alpha 0.025] [-lambda 0.0001] [-lambda1 0] [-mu 0.5] [-mu1 0] [--optimizer sgd] [--device auto]
[--math fp32] [--seed 12134] [--checkpoint-interval 10] [--resume [FILE]] [--force] [--initial-network FILE]

Every dataset of -i and -o is bound to the layer whose DataSet names it. A checkpoint <network><epoch>.nc
(e.g. gl.nc10.nc) is written every --checkpoint-interval epochs; the trained network goes to -n, which must
not exist unless --force. --resume continues from a checkpoint (default: the newest one of -n) up to -e
epochs in total. Exit codes: 0 success, 1 usage error, 2 runtime error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import time
from collections.abc import Callable, Sequence

from ..config import parse_network
from ..dataset import DataSet
from ..enums import TrainingMode
from ..errors import FormatError, NotSupportedError
from ..formats.dataset_netcdf import read_datasets
from ..formats.model_netcdf import Checkpointer
from ..network import DEFAULT_SEED, EpochReport, Network, load
from .common import UsageError, add_math_flag, console_main, guarded, remember, require, say, warn

__all__ = ["OPTIMIZERS", "add_parser", "latest_checkpoint", "main", "run"]

OPTIMIZERS = tuple(m.name for m in TrainingMode)

_REQUIRED = (
    ("input", "-i", "input data file is not specified."),
    ("output", "-o", "output data file is not specified."),
    ("network", "-n", "the output network file path is not specified."),
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``train`` / ``dsstne train`` (the original's flags, then the new ones)."""
    remember(parser, parser.prog)
    g = parser.add_argument_group("the original's flags")
    g.add_argument("-c", dest="config", metavar="config_file", help="(required) JSON network config")
    g.add_argument("-i", dest="input", metavar="input_netcdf", help="(required) dataset NetCDF for the input layers")
    g.add_argument("-o", dest="output", metavar="output_netcdf",
                   help="(required) dataset NetCDF for the expected output")
    g.add_argument("-n", dest="network", metavar="network_file",
                   help="(required) trained network NetCDF to write; must not exist (see --force)")
    g.add_argument("-b", dest="batch", type=int, default=1024, metavar="batch_size", help="minibatch size (1024)")
    g.add_argument("-e", dest="epochs", type=int, default=40, metavar="num_epochs", help="epochs (40)")
    g.add_argument("-alpha", dest="alpha", type=float, default=0.025, metavar="alpha", help="learning rate (0.025)")
    g.add_argument("-lambda", dest="lambda_", type=float, default=0.0001, metavar="lambda",
                   help="L2 weight decay (0.0001)")
    g.add_argument("-lambda1", dest="lambda1", type=float, default=0.0, metavar="lambda1", help="L1 weight decay (0)")
    g.add_argument("-mu", dest="mu", type=float, default=0.5, metavar="mu", help="momentum, Adam beta1 (0.5)")
    g.add_argument("-mu1", dest="mu1", type=float, default=0.0, metavar="mu1", help="Adam beta2 (0)")
    g.add_argument("-d", dest="dataset", metavar="dataset_name", help="accepted and ignored, as in the original")
    n = parser.add_argument_group("additions")
    n.add_argument("--optimizer", default="SGD", type=_optimizer, metavar="NAME",
                   help=f"one of {', '.join(OPTIMIZERS)} (case-insensitive; default SGD, the original's)")
    n.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_math_flag(n)
    n.add_argument("--seed", type=int, default=None,
                   help=f"random seed (default {DEFAULT_SEED}, the original's; a resumed model keeps its own)")
    n.add_argument("--checkpoint-interval", dest="checkpoint_interval", type=int, default=10, metavar="EPOCHS",
                   help="write <network><epoch>.nc every EPOCHS epochs (default 10, as the original; 0 = never)")
    n.add_argument("--resume", nargs="?", const="", default=None, metavar="FILE",
                   help="continue from FILE (default: the newest checkpoint of -n) until -e epochs in total")
    n.add_argument("--force", action="store_true", help="overwrite an existing -n file")
    n.add_argument("--initial-network", dest="initial", metavar="FILE",
                   help="also save the untrained network to FILE (the original always wrote initial_network.nc)")
    n.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def _optimizer(text: str) -> str:
    for name in OPTIMIZERS:
        if name.lower() == text.lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown optimizer '{text}' (one of {', '.join(OPTIMIZERS)})")


def latest_checkpoint(network: str) -> str | None:
    """Return the newest checkpoint ``<network><epoch>.nc`` on disk, or None."""
    pattern = re.compile(re.escape(os.path.basename(network)) + r"(\d+)\.nc$")
    best: tuple[int, str] | None = None
    for path in glob.glob(glob.escape(network) + "*.nc"):
        m = pattern.fullmatch(os.path.basename(path))
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    return best[1] if best else None


def _read(path: str, flag: str, role: str) -> list[DataSet]:
    if not os.path.isfile(path):
        raise FormatError(f"{path}: cannot read the {flag} data file (not found)")
    return read_datasets(path, role=role)


def _merge(inputs: list[DataSet], outputs: list[DataSet]) -> list[DataSet]:
    merged: dict[str, DataSet] = {}
    for ds in inputs + outputs:
        if ds.name in merged:
            if merged[ds.name] is not ds:
                warn(f"dataset '{ds.name}' is in both -i and -o; using the one from -i")
            continue
        merged[ds.name] = ds
    return list(merged.values())


def run(args: argparse.Namespace) -> int:
    """Run ``train``; returns the exit code."""
    return guarded(args, _run)


def _run(args: argparse.Namespace) -> int:
    require(args, (() if args.resume is not None else (("config", "-c", "config file was not specified."),))
            + _REQUIRED)
    if args.batch is not None and args.batch <= 0:
        raise UsageError(f"-b must be a positive integer, not {args.batch}")
    if args.epochs < 0:
        raise UsageError(f"-e must be a non-negative integer, not {args.epochs}")
    if args.checkpoint_interval < 0:
        raise UsageError(f"--checkpoint-interval must be >= 0, not {args.checkpoint_interval}")
    if args.config is not None and not os.path.isfile(args.config):
        raise FormatError(f"Cannot read config file: {args.config}")
    for flag, path in (("-i", args.input), ("-o", args.output)):
        if not os.path.isfile(path):
            raise FormatError(f"Cannot read {flag} data file: {path}")
    if os.path.exists(args.network) and not args.force:
        raise FormatError(f"Network file already exists: {args.network} (pass --force to overwrite it)")
    resume = None
    if args.resume is not None:
        resume = args.resume or latest_checkpoint(args.network)
        if not resume:
            raise FormatError(f"--resume: no checkpoint named {args.network}<epoch>.nc found")
        if not os.path.isfile(resume):
            raise FormatError(f"--resume: cannot read {resume}")
    if args.config:
        say(f"Train will use configuration file: {args.config}")
    say(f"Train will use input data file: {args.input}")
    say(f"Train will use output data file: {args.output}")
    say(f"Train will produce networkFileName: {args.network}")
    say(f"Train will use batchSize: {args.batch}")
    say(f"Train will use number of epochs: {args.epochs}")
    say(f"Train alpha {args.alpha:g}, lambda {args.lambda_:g}, lambda1 {args.lambda1:g}, mu {args.mu:g}, "
        f"mu1 {args.mu1:g}, optimizer {args.optimizer}")

    inputs = _read(args.input, "-i", "input")
    same = os.path.samefile(args.input, args.output)  # an autoencoder's one file
    datasets = inputs if same else _merge(inputs, _read(args.output, "-o", "target"))
    if resume is not None:
        net = load(resume, datasets, batch=args.batch, device=args.device, seed=args.seed, math=args.math)
        say(f"Resuming from {resume} after epoch {net.epochs_done}")
    else:
        descriptor = parse_network(args.config)
        net = Network(descriptor, datasets, batch=args.batch, device=args.device,
                      seed=DEFAULT_SEED if args.seed is None else args.seed, math=args.math)
    say(f"Network: {net}")
    say(f"Device: {net.device} ({net.device_description}), GEMMs {net.math}")
    if args.initial:
        net.save(args.initial)
        say(f"Saved the initial network to {args.initial}")

    remaining = max(0, args.epochs - net.epochs_done) if resume is not None else args.epochs
    total = net.epochs_done + remaining
    callback = None if args.quiet else _progress(total)
    checkpointer = None
    if args.checkpoint_interval > 0 and remaining > 0:
        checkpointer = Checkpointer(net, args.network, args.checkpoint_interval, then=callback)
        checkpointer.epochs_since = net.epochs_done % args.checkpoint_interval
    t0 = time.perf_counter()
    try:
        net.train(remaining, args.alpha, args.lambda_, args.lambda1, args.mu, args.mu1,
                  optimizer=args.optimizer, callback=checkpointer or callback)
    except NotSupportedError as exc:
        raise NotSupportedError(
            f"optimizer {args.optimizer} cannot run on this engine build yet ({exc}); "
            f"choose another --optimizer (SGD always runs)"
        ) from None
    except KeyboardInterrupt:
        done = checkpointer.saved[-1] if checkpointer and checkpointer.saved else None
        print(f"Interrupted after epoch {net.epochs_done}; "
              + (f"last checkpoint {done} (continue with --resume)" if done else "no checkpoint was written"),
              file=sys.stderr)
        raise
    seconds = time.perf_counter() - t0
    if checkpointer is not None and checkpointer.saved:
        say(f"Checkpoints: {', '.join(checkpointer.saved)}")
    say(f"Total Training Time {seconds:.6f}")
    mem = net.memory()
    say(f"{'GPU' if net.device.startswith('cuda') else 'CPU'} Memory Usage: {mem['peak_bytes'] // 1024} KB (peak)")
    net.save(args.network)
    say(f"Saved the trained network to {args.network}")
    return 0


def _progress(total: int) -> Callable[[EpochReport], None]:
    def show(report: EpochReport) -> None:
        say(f"Epoch {report.epoch}/{total}: loss {report.total:.6f} (training {report.error:.6f}, "
            f"regularization {report.regularization:.6f}), {report.seconds:.3f} s, "
            f"{report.examples_per_second:,.0f} examples/s")

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """``train`` console script: the original's flags and exit codes (see the module docstring)."""
    return console_main("train", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
