r"""Write the top-k recommendations of a trained network for text-format samples, as the original ``predict``.

Usage: predict -d <dataset_name> -n <network.nc> -i <input_feature_index> -o <output_feature_index>
-r <input_text> -s <recs_file> [-f <filter>] [-b 1024] [-k 100] [-p 4.3f] [-l Output] [--multiply-filter]
[--device auto] [--math fp32]

Output, one line per sample of -r, in input order: ``<sample>\t<feature>,<score>:<feature>,<score>:...:``.
Differences from the original (deliberate): any k (k above the number of items returns every item, ranked);
-l picks the ranked layer; the -f filter excludes the items it lists (--multiply-filter restores the original's
score x value); -f is optional. Exit codes: 0 success, 1 usage error, 2 runtime error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import FormatError
from ..recommendations import DEFAULT_PRECISION, generate_recommendations, score_format
from .common import UsageError, add_math_flag, console_main, echo, guarded, remember, require, say

__all__ = ["add_parser", "main", "run"]

_REQUIRED = (
    ("dataset", "-d", "dataset_name is not specified."),
    ("network", "-n", "network file is not specified."),
    ("input_index", "-i", "input features index file is not specified."),
    ("output_index", "-o", "output features index file is not specified."),
    ("input", "-r", "input_text_file is not specified."),
    ("recs", "-s", "filename to put the output recs to."),
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``predict`` / ``dsstne predict`` (the original's flags, then the new ones)."""
    remember(parser, parser.prog)
    g = parser.add_argument_group("the original's flags")
    g.add_argument("-d", dest="dataset", metavar="dataset_name",
                   help="(required) dataset base name; '_input' is appended (e.g. gl -> gl_input)")
    g.add_argument("-n", dest="network", metavar="network_file", help="(required) trained network NetCDF")
    g.add_argument("-i", dest="input_index", metavar="input_feature_index",
                   help="(required) feature index of the network input (as used for training)")
    g.add_argument("-o", dest="output_index", metavar="output_feature_index",
                   help="(required) feature index of the network output (unit -> feature label)")
    g.add_argument("-r", dest="input", metavar="input_text_file",
                   help="(required) text-format samples (file or directory) to predict for")
    g.add_argument("-s", dest="recs", metavar="recs_file", help="(required) recommendations file to write")
    g.add_argument("-f", dest="filter", metavar="filter_file",
                   help="sample filter (text format, file or directory): listed items are not recommended")
    g.add_argument("-b", dest="batch", type=int, default=1024, metavar="batch_size", help="minibatch size (1024)")
    g.add_argument("-k", dest="k", type=int, default=100, metavar="num_recs",
                   help="recommendations per sample (100); any k >= 1")
    g.add_argument("-p", dest="precision", default=DEFAULT_PRECISION, metavar="score_precision",
                   help="printf format of the scores (4.3f)")
    g.add_argument("-l", dest="layer", metavar="layer", help="layer to rank (default Output)")
    n = parser.add_argument_group("additions")
    n.add_argument("--multiply-filter", dest="multiply", action="store_true",
                   help="apply -f as the original: score x listed value (a missing value is 0)")
    n.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_math_flag(n)


def run(args: argparse.Namespace) -> int:
    """Run ``predict``; returns the exit code."""
    return guarded(args, _run)


def _run(args: argparse.Namespace) -> int:
    require(args, _REQUIRED)
    if args.k < 1:
        raise UsageError(f"-k must be a positive integer, not {args.k}")
    if args.batch < 1:
        raise UsageError(f"-b must be a positive integer, not {args.batch}")
    try:
        score_format(args.precision)
    except ValueError as exc:
        raise UsageError(f"-p: {exc}") from None
    for flag, path, what in (("-n", args.network, "network file"), ("-i", args.input_index, "input feature index"),
                             ("-o", args.output_index, "output feature index"), ("-r", args.input, "input_text_file"),
                             ("-f", args.filter, "filter file")):
        if path is not None and not os.path.exists(path):
            raise FormatError(f"Cannot read {what} ({flag}): {path}")
    summary = generate_recommendations(
        args.network,
        args.input,
        args.input_index,
        args.output_index,
        args.recs,
        k=args.k,
        filter_path=args.filter,
        multiply_filter=args.multiply,
        precision=args.precision,
        layer=args.layer,
        dataset=f"{args.dataset}_input",
        batch=args.batch,
        device=args.device,
        math=args.math,
        echo=echo,
    )
    say(f"Wrote {summary.samples} samples, {summary.items_written} recommendations, to {summary.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``predict`` console script: the original's flags and exit codes (see the module docstring)."""
    return console_main("predict", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
