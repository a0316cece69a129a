"""Speed must not change the maths: from the same initial weights, our engine and the PyTorch peer of the
benchmarks (bench/peer_torch.py) report the same per-epoch errors (3 epochs, within 1e-3 relative)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import check_loss_agreement  # noqa: E402


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("net", ["sample", "benchmark"])
def test_loss_curves_agree_with_the_peer(net, device, capsys):
    args = ["--net", net, "--device", device, "--users", "300", "--items", "1500", "--epochs", "3", "--batch", "64"]
    assert check_loss_agreement.main(args) == 0, capsys.readouterr().out
