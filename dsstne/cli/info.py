"""Show how dsstne was built and which devices it can use."""

from __future__ import annotations

import argparse

from ..device import build_info


def add_parser(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print the build facts, one per line."""
    for key, value in build_info().items():
        print(f"{key:24s} {value}")
    return 0
