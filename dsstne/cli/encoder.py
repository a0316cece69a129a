"""Run a CDL command file (Train, Predict or Validate), as the original ``encoder`` tool.

Usage: encoder <file.cdl> [--device auto] [--probes 16]

Train builds the network of the JSON config on the Data files and trains it with the alpha schedule
(AlphaInterval, AlphaMultiplier), writing checkpoints and then Results. Predict loads a trained model and
prints k,precision,recall,NDCG for k = 1..10. Validate checks the engine's gradients against finite
differences. See docs/cli.md for the keys. Exit codes: 0 success, 1 usage error, 2 runtime error,
3 Validate found wrong gradients.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import cdl as cdl_module
from ..network import EpochReport
from .common import EXIT_CHECK_FAILED, UsageError, console_main, guarded, remember, say

__all__ = ["add_parser", "main", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``encoder`` / ``dsstne encoder``."""
    remember(parser, parser.prog)
    parser.add_argument("cdl", nargs="?", metavar="file.cdl", help="the CDL command file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--probes", type=int, default=16,
                        help="Validate: weights probed per connection (default 16; biases: a quarter as many)")


def run(args: argparse.Namespace) -> int:
    """Run ``encoder``; returns the exit code."""
    return guarded(args, _run)


def _progress(report: EpochReport) -> None:
    say(f"Epoch {report.epoch}: loss {report.total:.6f} (training {report.error:.6f}, regularization "
        f"{report.regularization:.6f}), {report.seconds:.3f} s, {report.examples_per_second:,.0f} examples/s")


def _run(args: argparse.Namespace) -> int:
    if args.cdl is None:
        raise UsageError("Missing required argument: <file.cdl>: the CDL command file is not specified.")
    if args.probes < 1:
        raise UsageError(f"--probes must be >= 1, not {args.probes}")
    cdl = cdl_module.parse_cdl(args.cdl)
    say(f"CDL::Load_JSON: {args.cdl} successfully parsed ({cdl.command.capitalize()})")
    if cdl.command == "train":
        cdl_module.train(cdl, device=args.device, echo=say, callback=_progress)
        return 0
    if cdl.command == "predict":
        for k, precision, recall, ndcg in cdl_module.predict_report(cdl, device=args.device):
            say("%d,%6.4f,%6.4f,%6.4f" % (k, precision, recall, ndcg))  # noqa: UP031 (the original's printf)
        return 0
    result = cdl_module.validate(cdl, device=args.device, probes=args.probes, echo=say)
    failures = result.failures()
    say(f"Validation {'passed' if result.passed else 'FAILED'}: {len(result.checks) - len(failures)} of "
        f"{len(result.checks)} probed parameters agree ({result.method})")
    return 0 if result.passed else EXIT_CHECK_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``encoder`` console script (see the module docstring)."""
    return console_main("encoder", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
