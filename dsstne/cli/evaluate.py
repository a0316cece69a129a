"""Score a recommendations file against held-out interactions: precision, recall, NDCG and MAP at k.

Usage: dsstne evaluate <recs_file> <held_out> [-k 1,5,10] [--threshold T] [--train FILE] [--json]

<recs_file> is predict's output. <held_out> is a text-format file (user<TAB>item[,value]:...) or a MovieLens
ratings file (ratings.csv, u.data, ratings.dat; value = rating). With --threshold only held-out items whose
value is >= T are relevant. --train adds a popularity baseline (most popular unseen training items).
Exit codes: 0 success, 1 usage error, 2 runtime error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from ..recommendations import TRUTH_FORMATS, evaluate_files
from .common import UsageError, console_main, guarded, remember, require, say

__all__ = ["add_parser", "main", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``dsstne evaluate``."""
    remember(parser, parser.prog)
    parser.add_argument("recs", nargs="?", help="recommendations file (predict -s)")
    parser.add_argument("truth", nargs="?", help="held-out interactions: text format or MovieLens ratings")
    parser.add_argument("-k", dest="ks", default="1,5,10", help="cutoffs, comma-separated (default 1,5,10)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="relevant = held-out value >= THRESHOLD (default: every listed item)")
    parser.add_argument("--truth-format", dest="truth_format", default="auto", choices=TRUTH_FORMATS,
                        help="format of the held-out file (default: from its name and first line)")
    parser.add_argument("--train", help="training interactions: adds the popularity baseline")
    parser.add_argument("--train-format", dest="train_format", default="auto", choices=TRUTH_FORMATS)
    parser.add_argument("--idcg", default="min", choices=("min", "all"),
                        help="NDCG ideal: min(|relevant|, k) items (default) or all relevant items (the "
                             "original encoder's)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _ks(text: str) -> list[int]:
    try:
        ks = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"-k must be comma-separated positive integers, not {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise UsageError(f"-k must be comma-separated positive integers, not {text!r}")
    return ks


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``; returns the exit code."""
    return guarded(args, _run)


def _run(args: argparse.Namespace) -> int:
    require(args, (("recs", "<recs_file>", "the recommendations file is not specified."),
                   ("truth", "<held_out>", "the held-out interactions file is not specified.")))
    report = evaluate_files(args.recs, args.truth, ks=_ks(args.ks), threshold=args.threshold,
                            truth_format=args.truth_format, train=args.train, train_format=args.train_format,
                            idcg=args.idcg)
    if args.json:
        def clean(d: dict[str, float] | None) -> dict[str, float | None] | None:
            return None if d is None else {k: (None if math.isnan(v) else v) for k, v in d.items()}

        print(json.dumps({"metrics": clean(report.metrics), "popularity": clean(report.baseline),
                          "users": report.users, "users_without_recommendations":
                              report.users_without_recommendations,
                          "recommended_users": report.recommended_users}, indent=2))
        return 0
    say(f"users with held-out items: {report.users} (without recommendations, counted as misses: "
        f"{report.users_without_recommendations}); recommendation lines: {report.recommended_users}")
    say(report.table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dsstne.cli.evaluate``: same as ``dsstne evaluate``."""
    return console_main("evaluate", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
