"""``dsstne`` command: one entry point for every tool (demo, info, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import DsstneError
from . import demo, encoder, evaluate, generate_netcdf, info, predict, train

COMMANDS = {
    "demo": demo,
    "info": info,
    "generate-netcdf": generate_netcdf,
    "train": train,
    "predict": predict,
    "encoder": encoder,
    "evaluate": evaluate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a dsstne command; returns the process exit code (0 success, 1 usage, 2 error)."""
    parser = argparse.ArgumentParser(prog="dsstne", description="DSSTNE: deep learning for large sparse data")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub.add_parser(name, help=module.__doc__.strip().splitlines()[0],
                                         description=module.__doc__))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help, 2 for a bad command line (reported as 1: usage error)
        return 0 if not exc.code else 1
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return COMMANDS[args.command].run(args) or 0
    except DsstneError as exc:
        print(f"dsstne {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
