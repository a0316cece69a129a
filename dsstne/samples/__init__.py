"""Network definitions shipped with dsstne (the original's sample configurations)."""

from __future__ import annotations

import json
import os
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """Path of a shipped sample, e.g. ``path("movielens")``."""
    return os.path.join(_HERE, f"{name}.json")


def load(name: str) -> dict[str, Any]:
    """Return a shipped sample network definition as a dict."""
    with open(path(name), encoding="utf-8") as f:
        return json.load(f)
