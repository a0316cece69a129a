"""Gradient checks: the engine's analytic gradients against finite differences of its own loss.

DSSTNE's ``Validate`` idea: move single weights and biases by a small step, measure the change of one
minibatch's loss, and compare with the gradient the engine computes for that minibatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .network import Network

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """Discard a progress line."""


@dataclass(frozen=True)
class ValidationCheck:
    """One probed parameter: analytic gradient vs central finite difference of the minibatch loss."""

    connection: tuple[str, str]
    parameter: str  # "weight" or "bias"
    index: tuple[int, ...]
    analytic: float
    numeric: float
    ok: bool


@dataclass
class ValidationResult:
    """Outcome of a gradient check."""

    passed: bool
    checks: list[ValidationCheck] = field(default_factory=list)
    loss: float = float("nan")
    method: str = "central finite differences"

    def failures(self) -> list[ValidationCheck]:
        """Return the checks that failed."""
        return [c for c in self.checks if not c.ok]




def validate_network(
    net: Network,
    *,
    probes: int = 16,
    eps: float = 1e-2,
    rtol: float = 5e-2,
    atol: float = 5e-3,
    position: int = 0,
    seed: int = 0,
    echo: Echo | None = None,
) -> ValidationResult:
    """Compare the engine's gradients with central differences of the loss of one minibatch.

    For every connection, `probes` weights (half the largest gradients, half at random) and a quarter as many
    biases are moved by ``+-eps``; the check passes when ``|numeric - analytic| <= atol·rows + rtol·|analytic|``
    (``rows`` = examples in the minibatch, the loss being their sum). The loss includes the sparseness penalty
    of penalised hidden layers (``beta·rows·sum KL(p || mean activation)``), whose gradient the engine's
    contain. Weights are restored afterwards.
    """
    say = echo or _quiet
    rows = max(1, min(net.batch, net.training_examples - position))

    def loss_at() -> tuple[float, Any]:
        return net.gradients(position)

    loss, grads = loss_at()
    rng = np.random.default_rng(seed)
    result = ValidationResult(passed=True, loss=float(loss))

    def probe(src: str, dst: str, w: np.ndarray, b: np.ndarray, which: str, idx: tuple[int, ...],
              analytic: float) -> None:
        losses = []
        for sign in (1.0, -1.0):
            w2, b2 = w.copy(), b.copy()
            target = w2 if which == "weight" else b2
            target[idx] += sign * eps
            net.set_weights(src, dst, w2, b2)
            losses.append(loss_at()[0])
        net.set_weights(src, dst, w, b)
        numeric = (losses[0] - losses[1]) / (2 * eps)
        ok = bool(abs(numeric - analytic) <= atol * rows + rtol * abs(analytic))
        result.checks.append(ValidationCheck((src, dst), which, idx, float(analytic), float(numeric), ok))
        result.passed &= ok

    for (src, dst), (gw, gb) in grads.items():
        w, b = net.weights(src, dst)
        flat = np.abs(gw).ravel()
        n_top = min(probes // 2 + probes % 2, flat.size)
        top = np.argpartition(-flat, n_top - 1)[:n_top] if n_top else np.zeros(0, np.int64)
        rand = rng.integers(0, flat.size, size=max(0, probes - n_top)) if flat.size else np.zeros(0, np.int64)
        before = len(result.checks)
        for f in np.concatenate((top, rand)).tolist():
            idx = tuple(int(i) for i in np.unravel_index(f, gw.shape))
            probe(src, dst, w, b, "weight", idx, float(gw[idx]))
        for j in rng.integers(0, gb.size, size=max(1, probes // 4)).tolist():
            probe(src, dst, w, b, "bias", (int(j),), float(gb[j]))
        mine = result.checks[before:]
        bad = [c for c in mine if not c.ok]
        worst = max((abs(c.numeric - c.analytic) for c in mine), default=0.0)
        say(f"Validating weights between layer {src} and {dst}: {len(mine)} parameters, "
            f"{'OK' if not bad else f'{len(bad)} FAILED'} (largest difference {worst:.3g})")
        for c in bad:
            say(f"Failed {c.parameter} {list(c.index)}: numeric {c.numeric:.6g} vs analytic {c.analytic:.6g}")
    return result
