"""CDL files and the encoder tool: parsing (with the keys the original's documentation promises), Train with
the alpha schedule, the Predict report, Validate by finite differences."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import network_config, random_csr

import dsstne
from dsstne import cdl, metrics
from dsstne.cli import encoder
from dsstne.cli.main import main as dsstne_main
from dsstne.enums import TrainingMode
from dsstne.formats import write_datasets


def test_parse_keys_case_insensitive_and_documented_ones():
    c = cdl.parse_cdl({
        "version": 0.2, "NETWORK": "config.json", "command": "train", "RandomSeed": 7,
        "data": ["a.nc", "b.nc"],
        "TrainingParameters": {"epochs": 5, "MiniBatch": 0, "Alpha": 0.5, "alphaInterval": 2, "AlphaMultiplier": 0.8,
                               "Optimizer": "RMSPROP", "ShuffleIndices": True, "Lambda": 0.01, "mu": 0.7,
                               "CheckpointName": "ck", "CheckpointInterval": 2, "Results": "r.nc"},
        "PredictionParameters": {"MiniBatch": 500},
    })
    assert c.command == "train" and c.data == ("a.nc", "b.nc") and c.random_seed == 7
    t = c.training
    assert (t.epochs, t.minibatch, t.optimizer, t.shuffle_indices) == (5, 0, TrainingMode.RMSProp, True)
    assert (t.lambda_, t.mu, t.checkpoint_name, t.checkpoint_interval, t.results) == (0.01, 0.7, "ck", 2, "r.nc")
    assert c.prediction.minibatch == 500
    assert [(n, round(a, 6)) for n, a in t.schedule()] == [(2, 0.5), (2, 0.4), (1, 0.32)]
    for name in ("SGD", "Momentum", "AdaGrad", "Nesterov", "RMSProp", "AdaDelta", "Adam"):
        opt = cdl.parse_cdl({"Network": "n", "Command": "Validate", "Data": "d",
                             "TrainingParameters": {"Optimizer": name.lower()}}).training.optimizer
        assert opt.name == name


def test_parse_defaults_are_the_originals():
    c = cdl.parse_cdl('{"Network": "network.nc", "Command": "Predict", "Data": "test.nc"}')
    t = c.training
    assert (t.alpha, t.lambda_, t.mu, t.minibatch, t.checkpoint_name, t.checkpoint_interval, t.results) == (
        0.1, 0.001, 0.9, 1024, "check", 1, "network.nc")
    assert t.optimizer == TrainingMode.SGD and c.random_seed is None and t.shuffle_indices is None
    # AlphaInterval 0 (the default) means a constant alpha
    const = cdl.parse_cdl({"Network": "n", "Command": "Train", "Data": "d",
                           "TrainingParameters": {"Epochs": 45, "Alpha": 0.2, "AlphaMultiplier": 0.1}})
    assert const.training.schedule() == [(20, 0.2), (20, 0.2), (5, 0.2)]


@pytest.mark.parametrize("doc,message", [
    ({"Network": "n", "Command": "Train", "Data": "d"}, "requires TrainingParameters.Epochs"),
    ({"Network": "n", "Command": "Fly", "Data": "d"}, "Command 'Fly'"),
    ({"Command": "Predict", "Data": "d"}, "Network is required"),
    ({"Network": "n", "Command": "Predict", "Data": "d", "Netwrok": 1}, "did you mean 'network'"),
    ({"Network": "n", "Command": "Predict", "Data": "d", "TrainingParameters": {"Epoch": 3}},
     "did you mean 'epochs'"),
    ({"Network": "n", "Command": "Predict", "Data": []}, "Data must be"),
    ({"Network": "n", "Command": "Train", "Data": "d", "TrainingParameters": {"Epochs": 2.5}}, "whole number"),
    ({"Network": "n", "Command": "Train", "Data": "d", "TrainingParameters": {"Epochs": 2, "Optimizer": "LBFGS"}},
     "Optimizer 'LBFGS'"),
    ({"Network": "n", "Command": "Predict", "Data": "d", "PredictionParameters": {"Epochs": 1}},
     "unknown PredictionParameter"),
])
def test_parse_errors_name_the_key(doc, message):
    with pytest.raises(dsstne.ConfigError, match=re.escape(message)):
        cdl.parse_cdl(doc)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cdl")
    x = random_csr(300, 90, 0.06, seed=5)
    y = random_csr(300, 90, 0.05, seed=6)
    write_datasets(d / "data.nc", [dsstne.DataSet.from_scipy(x, "input", width=128),
                                   dsstne.DataSet.from_scipy(y, "output", width=128)])
    cfg = network_config(hidden=((24, "Sigmoid"),), SparsenessPenalty={"p": 0.3, "beta": 0.5})
    cfg["Layers"][1]["Sparse"] = True
    (d / "config.json").write_text(json.dumps(cfg))
    return d, x, y


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return str(path)


def test_encoder_train_predict_validate(files, monkeypatch, capsys):
    d, x, y = files
    monkeypatch.chdir(d)
    train_cdl = _write(d / "train.cdl", {
        "Version": 0.2, "Network": "config.json", "Command": "Train", "RandomSeed": 12345, "Data": "data.nc",
        "TrainingParameters": {"Epochs": 5, "Alpha": 0.5, "AlphaInterval": 2, "AlphaMultiplier": 0.8,
                               "MiniBatch": 64, "mu": 0.5, "lambda": 0.0001, "CheckpointInterval": 2,
                               "CheckpointName": "ck", "Results": "net.nc"}})
    assert encoder.main([train_cdl, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "alpha 0.5 " in out and "alpha 0.4 " in out and "alpha 0.32 " in out and "Epoch 5:" in out
    assert (d / "ck2.nc").exists() and (d / "ck4.nc").exists() and not (d / "ck5.nc").exists()
    net = dsstne.load(d / "net.nc", device="cpu")
    assert net.epochs_done == 5 and net.batch == 64

    predict_cdl = _write(d / "predict.cdl", {"Network": "net.nc", "Command": "Predict", "Data": "data.nc",
                                             "PredictionParameters": {"MiniBatch": 100}})
    assert dsstne_main(["encoder", predict_cdl, "--device", "cpu"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if re.fullmatch(r"\d+,[\d.]+,[\d.]+,[\d.]+", ln)]
    assert [int(ln.split(",")[0]) for ln in lines] == list(range(1, 11))
    recs, _ = dsstne.load(d / "net.nc", device="cpu").recommend(dsstne.DataSet.from_scipy(x, "input", width=128), 10)
    truth = y.copy()
    truth.resize((300, 128))
    want = metrics.evaluate(recs, truth, range(1, 11), idcg="all")
    for ln in lines:
        k, p, r, n = ln.split(",")
        assert float(p) == pytest.approx(want[f"precision@{k}"], abs=1e-4)
        assert float(r) == pytest.approx(want[f"recall@{k}"], abs=1e-4)
        assert float(n) == pytest.approx(want[f"ndcg@{k}"], abs=1e-4)

    validate_cdl = _write(d / "validate.cdl", {"Network": "config.json", "Command": "Validate", "Data": ["data.nc"],
                                               "TrainingParameters": {"MiniBatch": 50}})
    assert encoder.main([validate_cdl, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Validating weights between layer Input and Hidden1" in out and "Validation passed" in out


def test_validate_catches_wrong_gradients(files):
    d, x, y = files
    net = dsstne.Network.from_json(d / "config.json", [dsstne.DataSet.from_scipy(x, "input", width=128),
                                                        dsstne.DataSet.from_scipy(y, "output", width=128)],
                                   batch=50, device="cpu")
    assert net.validate(probes=6).passed
    real = net.gradients

    def wrong(position=0):
        loss, grads = real(position)
        return loss, {key: (1.5 * gw, gb) for key, (gw, gb) in grads.items()}

    net.gradients = wrong
    result = net.validate(probes=6)
    assert not result.passed and result.failures()
    assert all(c.parameter == "weight" for c in result.failures())


def test_encoder_errors(files, monkeypatch, capsys):
    d, _, _ = files
    monkeypatch.chdir(d)
    assert encoder.main([]) == 1
    assert "Missing required argument" in capsys.readouterr().err
    assert encoder.main(["-h"]) == 1
    assert encoder.main([_write(d / "bad.cdl", {"Network": "config.json", "Command": "Train", "Data": "data.nc",
                                                "TrainingParameters": {"Epochs": 1, "Speed": 3}})]) == 2
    assert "TrainingParameter 'Speed'" in capsys.readouterr().err
    assert encoder.main([_write(d / "nodata.cdl", {"Network": "config.json", "Command": "Validate",
                                                   "Data": "missing.nc"})]) == 2
    assert "missing.nc" in capsys.readouterr().err
    (d / "broken.cdl").write_text("{ not json")
    assert encoder.main([str(d / "broken.cdl")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    rc = encoder.main([_write(d / "adam.cdl", {
        "Network": "config.json", "Command": "Train", "Data": "data.nc",
        "TrainingParameters": {"Epochs": 1, "Optimizer": "Adam", "CheckpointInterval": 0, "Results": "adam.nc"}}),
        "--device", "cpu"])
    if rc != 0:
        err = capsys.readouterr().err
        assert rc == 2 and "Optimizer Adam" in err and "Traceback" not in err
    np.testing.assert_equal(rc in (0, 2), True)
