"""The main job: `dsstne demo` learns user tastes a popularity ranking cannot."""

from __future__ import annotations

from dsstne.cli.demo import demo
from dsstne.cli.main import main


def test_demo_beats_popularity_on_a_small_instance():
    result = demo(users=2000, items=1000, epochs=15, device="cpu", verbose=False)
    assert result["precision@10"] > 1.3 * result["popularity_precision@10"]


def test_demo_command_prints_progress_and_recommendations(capsys):
    assert main(["demo", "--users", "400", "--items", "300", "--epochs", "2", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "device: cpu" in out and "precision@10" in out and out.count("top 10 =") == 3
    assert err.count("epoch ") == 2


def test_cli_without_command_prints_usage(capsys):
    assert main([]) == 1
    assert "demo" in capsys.readouterr().out


def test_info_command(capsys):
    assert main(["info"]) == 0
    assert "cuda_built" in capsys.readouterr().out
