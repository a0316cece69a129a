"""Shared plumbing of the original-style commands (train, predict, encoder, evaluate): entry points and exit codes.

Exit codes (the same for the console scripts and for ``dsstne <command>``):

* 0 — success;
* 1 — usage error: a missing required flag, an unknown flag, a bad flag value (the usage is printed); the
  console scripts also return 1 after ``-h``, as the original's tools do;
* 2 — runtime error: unreadable or malformed files, index files that do not fit the model, an existing
  output model without ``--force``, a feature the engine cannot execute yet;
* 3 — ``encoder`` with a Validate command whose gradient check failed;
* 130 — interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from ..errors import DsstneError

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_ERROR = 2
EXIT_CHECK_FAILED = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line: reported with the usage text, exit code 1."""


def say(line: str = "") -> None:
    """Print a progress line to stdout (flushed, so it interleaves correctly with the engine's output)."""
    print(line, flush=True)


def warn(line: str) -> None:
    """Print a warning line to stderr."""
    print(line if line.startswith("Warning") else f"Warning: {line}", file=sys.stderr, flush=True)


def echo(line: str) -> None:
    """Route a library progress line: warnings to stderr, the rest to stdout."""
    if line.startswith("Warning") or ": Warning:" in line:
        warn(line)
    else:
        say(line)


def add_math_flag(group: argparse._ArgumentGroup) -> None:
    """``--math``: how a GPU's GEMMs multiply (:class:`~dsstne.Network`'s `math`; no effect on the CPU)."""
    from ..network import MATH_MODES

    group.add_argument("--math", choices=MATH_MODES, default="fp32",
                       help="GPU GEMMs: fp32 (cuBLAS, default), tf32 (cuBLAS TF32) or tf32x3 (our tensor-core "
                            "GEMM, FP32-class accuracy, faster on Hopper)")


def require(args: argparse.Namespace, required: Sequence[tuple[str, str, str]]) -> None:
    """Raise UsageError for the first missing (dest, flag, message), worded as the original's tools."""
    for dest, flag, message in required:
        if getattr(args, dest, None) is None:
            raise UsageError(f"Missing required argument: {flag}: {message}")


def guarded(args: argparse.Namespace, body: Callable[[argparse.Namespace], int | None]) -> int:
    """Run a command body, turning errors into messages and exit codes (see the module docstring)."""
    prog = getattr(args, "_prog", "dsstne")
    parser: argparse.ArgumentParser | None = getattr(args, "_parser", None)
    try:
        return body(args) or EXIT_OK
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        if parser is not None:
            parser.print_usage(sys.stderr)
            print(f"Run '{prog} -h' for the options.", file=sys.stderr)
        return EXIT_USAGE
    except DsstneError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{prog}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def remember(parser: argparse.ArgumentParser, prog: str) -> None:
    """Store the parser and program name in the parsed namespace (for usage messages)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's line breaks
    parser.set_defaults(_parser=parser, _prog=prog)


def console_main(prog: str, module: ModuleType, argv: Sequence[str] | None) -> int:
    """Entry point of a console script (``train``, ``predict``, ``encoder``): original flag handling.

    ``-h`` prints the usage and returns 1, as the original's tools; argparse errors return 1.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        add_help=False,
        allow_abbrev=False,
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_parser(parser)
    remember(parser, prog)
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args_list or "--help" in args_list:
        parser.print_help()
        return EXIT_USAGE
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return EXIT_OK if not exc.code else EXIT_USAGE
    return module.run(args)
