"""The original's MovieLens sample flow, end to end through the command-line tools, on synthetic MovieLens data.

samples/movielens/run_movielens_sample.sh, with a small ratings file instead of ML-20M: convert the ratings to
the text format, generateNetCDF for input and output, `train -b 256 -e 10`, `predict -k 10` with the training
history as the filter, then `dsstne evaluate` against the held-out ratings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import network_config, random_csr

import dsstne
import dsstne.samples
from dsstne.cli import generate_netcdf, predict, train
from dsstne.cli.main import main as dsstne_main
from dsstne.datasets import synthetic_ratings
from dsstne.formats import load_index, ratings_to_text, read_datasets, write_datasets
from dsstne.recommendations import evaluate_files, read_recommendations

USERS, ITEMS = 1500, 200
LINE = re.compile(r"[^\t\n]+\t(?:[^,:\t\n]+,-?\d+\.\d{3}:)*\n")


def _write_ratings(matrix, stamps, path, movie_id):
    """A MovieLens ratings.csv: userId (1-based), movieId, rating, timestamp; by user, then time."""
    m, ts = matrix.tocsr(), stamps.tocsr()
    users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((ts.data, users))
    rows = np.stack([users[order] + 1, movie_id[m.indices[order]], ts.data[order]], axis=1)
    body = "".join(f"{u},{i},4.0,{t}\n" for u, i, t in rows.tolist())
    with open(path, "w") as f:
        f.write("userId,movieId,rating,timestamp\n" + body)


def _history(path):
    out = {}
    with open(path) as f:
        for line in f:
            user, _, rest = line.rstrip("\n").partition("\t")
            out[user] = {tok.split(",")[0] for tok in rest.split(":") if tok}
    return out


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    d = tmp_path_factory.mktemp("movielens")
    names = {"ratings": "ratings.csv", "heldout": "heldout.csv", "text": "ml-20m_ratings", "config": "config.json",
             "gl_input": "gl_input.nc", "gl_output": "gl_output.nc", "features_input": "features_input",
             "features_output": "features_output", "samples_input": "samples_input", "model": "gl.nc",
             "recs": "recs"}
    p = SimpleNamespace(dir=d, **{k: str(d / v) for k, v in names.items()})
    data = synthetic_ratings(USERS, ITEMS, ratings_per_user=30, seed=1, latent_dim=8, min_ratings=10)
    movie_id = np.random.default_rng(0).permutation(np.arange(ITEMS) * 7 + 3)  # sparse, shuffled MovieLens ids
    _write_ratings(data.train, data.train_timestamps, p.ratings, movie_id)
    _write_ratings(data.test, data.test_timestamps, p.heldout, movie_id)
    ratings_to_text(p.ratings, p.text)  # samples/movielens/convert_ratings.awk
    shutil.copy(dsstne.samples.path("movielens"), p.config)
    for name, features in (("gl_input", p.features_input), ("gl_output", p.features_output)):
        rc = generate_netcdf.main(["-d", name, "-i", p.text, "-o", getattr(p, name), "-f", features,
                                   "-s", p.samples_input, "-c"])
        assert rc == 0
    # the sample's command line, plus the learning rate a 6-minibatch epoch needs, and the CPU target
    p.train_rc = train.main(["-c", p.config, "-i", p.gl_input, "-o", p.gl_output, "-n", p.model,
                             "-b", "256", "-e", "10", "-alpha", "0.5", "--device", "cpu"])
    p.predict_args = ["-b", "256", "-d", "gl", "-i", p.features_input, "-o", p.features_output, "-k", "10",
                      "-n", p.model, "-f", p.text, "-s", p.recs, "-r", p.text, "--device", "cpu"]
    p.predict_rc = predict.main(p.predict_args)
    p.history = _history(p.text)
    p.data = data
    return p


def run_predict(flow, out, *extra, replace=None):
    args = list(flow.predict_args)
    args[args.index("-s") + 1] = str(out)
    for flag, value in (replace or {}).items():
        if value is None:
            i = args.index(flag)
            del args[i:i + 2]
        elif flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return predict.main(args + list(extra))


def test_sample_flow_end_to_end(flow, capsys):
    assert flow.train_rc == 0 and flow.predict_rc == 0
    recs = read_recommendations(flow.recs)
    with open(flow.text) as f:
        users_in_order = [line.split("\t", 1)[0] for line in f]
    assert recs.samples == users_in_order  # samples in input order
    items = set(load_index(flow.features_output))
    for user, row, scores in zip(recs.samples, recs.items, recs.scores):
        assert len(row) == 10 and len(set(row)) == 10
        assert not set(row) & flow.history[user], user  # the history filter removed every seen item
        assert set(row) <= items
        assert scores == sorted(scores, reverse=True)
    capsys.readouterr()
    assert dsstne_main(["evaluate", flow.recs, flow.heldout, "--train", flow.text, "-k", "1,5,10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ours, popular = report["metrics"], report["popularity"]
    assert report["users"] == USERS and report["users_without_recommendations"] == 0
    for metric in ("precision@10", "recall@10", "ndcg@10", "map@10"):
        assert ours[metric] > 1.15 * popular[metric], (metric, ours[metric], popular[metric])
    py = evaluate_files(flow.recs, flow.heldout, ks=(1, 5, 10), train=flow.text)
    assert py.metrics == pytest.approx(ours) and py.baseline == pytest.approx(popular)
    # the table form
    assert dsstne_main(["evaluate", flow.recs, flow.heldout, "--train", flow.text]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "popularity baseline" in out


def test_checkpoints_and_model(flow):
    assert os.path.exists(str(flow.dir / "gl.nc10.nc"))  # <model><epoch>.nc, as the original
    assert not os.path.exists(str(flow.dir / "initial_network.nc"))
    net = dsstne.load(flow.model, device="cpu")
    assert net.epochs_done == 10 and net.batch == 256


def test_predict_output_bytes(flow):
    with open(flow.recs, "rb") as f:
        raw = f.read().decode()
    lines = raw.splitlines(keepends=True)
    assert len(lines) == USERS
    for line in lines:
        assert LINE.fullmatch(line), line
        assert line.endswith(":\n")  # a ':' after every item, the last one too
    # the same items and "%4.3f" scores as the Python API, with padding units (200..255) never emitted
    features = load_index(flow.features_output)
    label = {i: f for f, i in features.items()}
    inputs = load_index(flow.features_input)
    net = dsstne.load(flow.model, device="cpu")
    hist = flow.history
    users = [ln.split("\t", 1)[0] for ln in lines[:50]]
    x = sp.lil_matrix((len(users), 256), dtype=np.float32)
    for r, u in enumerate(users):
        for item in hist[u]:
            x[r, inputs[item]] = 1.0
    seen = sp.lil_matrix((len(users), 256), dtype=np.float32)
    for r, u in enumerate(users):
        for item in hist[u]:
            seen[r, features[item]] = 1.0
        seen[r, 200:] = 1.0  # padding
    idx, sc = net.recommend(x.tocsr(), 10, exclude=seen.tocsr())
    for r, line in enumerate(lines[:50]):
        expected = users[r] + "\t" + "".join(f"{label[i]},{s:4.3f}:" for i, s in zip(idx[r], sc[r])) + "\n"
        assert line == expected


@pytest.mark.parametrize("k", [1, 500, 10**6])
def test_any_k(flow, tmp_path, k):
    out = tmp_path / "recs"
    assert run_predict(flow, out, replace={"-k": str(k)}) == 0
    recs = read_recommendations(out)
    for user, row in zip(recs.samples, recs.items):
        unseen = ITEMS - len(flow.history[user])
        assert len(row) == min(k, unseen)  # k above the number of items: every unseen item, ranked
        assert not set(row) & flow.history[user]


def test_score_precision_flag(flow, tmp_path):
    out = tmp_path / "recs"
    assert run_predict(flow, out, replace={"-p": "6.4f", "-k": "3"}) == 0
    first = out.read_text().splitlines()[0]
    assert re.fullmatch(r"[^\t]+\t(?:[^,:]+, ?\d\.\d{4}:){3}", first), first
    assert run_predict(flow, out, replace={"-p": "4.3d"}) == 1


def test_multiply_filter_is_the_original(flow, tmp_path, capsys):
    # timestamp-valued history, multiplied as the original does: seen items come first
    out = tmp_path / "recs"
    assert run_predict(flow, out, "--multiply-filter", replace={"-k": "5"}) == 0
    recs = read_recommendations(out)
    for user, row in zip(recs.samples, recs.items):
        assert set(row) <= flow.history[user]
    # an indicator history (no values: 0) multiplied removes the seen items: same items as the default
    indicator = tmp_path / "history"
    with open(flow.text) as f, open(indicator, "w") as g:
        for line in f:
            user, _, rest = line.rstrip("\n").partition("\t")
            g.write(user + "\t" + ":".join(tok.split(",")[0] for tok in rest.split(":")) + "\n")
    out2 = tmp_path / "recs2"
    assert run_predict(flow, out2, "--multiply-filter", replace={"-f": str(indicator)}) == 0
    assert read_recommendations(out2).items == read_recommendations(flow.recs).items
    # and excluded by default whatever the listed value (0 here)
    assert run_predict(flow, out2, replace={"-f": str(indicator)}) == 0
    assert read_recommendations(out2).items == read_recommendations(flow.recs).items


def test_filter_entries_unknown_are_counted(flow, tmp_path, capsys):
    flt = tmp_path / "filter"
    first_user, first_item = next(iter(flow.history.items()))
    item = sorted(first_item)[0]
    flt.write_text(f"nobody\t{item}:x\n{first_user}\tno-such-movie,5:{item}\nnot a filter line\n")
    out = tmp_path / "recs"
    capsys.readouterr()
    assert run_predict(flow, out, replace={"-f": str(flt)}) == 0
    err = capsys.readouterr().err
    assert "1 unknown samples" in err and "1 entries of unknown features" in err and "malformed" in err
    recs = read_recommendations(out).as_dict()
    assert item not in recs[first_user]
    assert len(recs[first_user]) == 10


def test_dataset_name_mismatch_warns(flow, tmp_path, capsys):
    out = tmp_path / "recs"
    assert run_predict(flow, out, replace={"-d": "other", "-f": None}) == 0
    assert "other_input" in capsys.readouterr().err


def test_dsstne_subcommands_match_console_scripts(flow, tmp_path):
    out = tmp_path / "recs"
    args = list(flow.predict_args)
    args[args.index("-s") + 1] = str(out)
    assert dsstne_main(["predict", *args]) == 0
    assert out.read_bytes() == open(flow.recs, "rb").read()


def test_bad_inputs(flow, tmp_path, capsys):
    capsys.readouterr()
    # a missing required flag: the original's message, the usage, exit 1 (both entry points)
    args = list(flow.predict_args)
    i = args.index("-n")
    assert predict.main(args[:i] + args[i + 2:]) == 1
    err = capsys.readouterr().err
    assert "Missing required argument: -n" in err and "usage:" in err
    assert dsstne_main(["train", "-i", flow.gl_input]) == 1
    assert "Missing required argument: -c" in capsys.readouterr().err
    assert train.main(["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-n", "x.nc", "-b", "many"]) == 1
    assert train.main(["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-n", "x.nc",
                       "--optimizer", "lbfgs"]) == 1
    capsys.readouterr()
    # unreadable files: exit 2 naming the file
    assert run_predict(flow, tmp_path / "r", replace={"-r": str(tmp_path / "missing.txt")}) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert train.main(["-c", str(tmp_path / "nope.json"), "-i", flow.gl_input, "-o", flow.gl_output,
                       "-n", str(tmp_path / "m.nc")]) == 2
    assert "nope.json" in capsys.readouterr().err
    garbage = tmp_path / "garbage.nc"
    garbage.write_text("not netcdf")
    assert run_predict(flow, tmp_path / "r", replace={"-n": str(garbage)}) == 2
    assert "garbage.nc" in capsys.readouterr().err
    # index files that do not match the model's layer widths
    big = tmp_path / "big_index"
    big.write_text("".join(f"m{i}\t{i}\n" for i in range(300)))
    assert run_predict(flow, tmp_path / "r", replace={"-o": str(big)}) == 2
    err = capsys.readouterr().err
    assert "big_index" in err and "256 units" in err
    assert run_predict(flow, tmp_path / "r", replace={"-l": "Hidden"}) == 2
    assert "128 units" in capsys.readouterr().err
    assert run_predict(flow, tmp_path / "r", replace={"-l": "Nope"}) == 2
    assert "no layer 'Nope'" in capsys.readouterr().err
    # an existing -n model is never overwritten without --force
    before = os.path.getmtime(flow.model)
    assert train.main(["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-n", flow.model]) == 2
    assert "already exists" in capsys.readouterr().err and os.path.getmtime(flow.model) == before


def test_force_resume_and_optimizers(flow, tmp_path, capsys):
    base = ["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-b", "256", "--device", "cpu"]
    model = str(tmp_path / "m.nc")
    open(model, "w").close()
    assert train.main([*base, "-n", model, "-e", "1", "--force", "--checkpoint-interval", "0",
                       "--initial-network", str(tmp_path / "init.nc")]) == 0
    assert dsstne.load(model, device="cpu").epochs_done == 1
    assert dsstne.load(str(tmp_path / "init.nc"), device="cpu").epochs_done == 0
    out = capsys.readouterr().out
    assert re.search(r"Epoch 1/1: loss [\d.]+ .* [\d,]+ examples/s", out)
    # resume from the flow's checkpoint up to 12 epochs in total
    resumed = str(tmp_path / "resumed.nc")
    assert train.main([*base, "-n", resumed, "-e", "12", "-alpha", "0.5",
                       "--resume", str(flow.dir / "gl.nc10.nc")]) == 0
    assert dsstne.load(resumed, device="cpu").epochs_done == 12
    assert "Epoch 11/12" in capsys.readouterr().out
    # --math reaches the network (the CPU computes in FP32 whatever it says: the same model bytes)
    fp32, tf32x3 = str(tmp_path / "fp32.nc"), str(tmp_path / "tf32x3.nc")
    for path, math in ((fp32, "fp32"), (tf32x3, "tf32x3")):
        assert train.main([*base, "-n", path, "-e", "1", "--checkpoint-interval", "0", "--math", math]) == 0
        assert f"GEMMs {math}" in capsys.readouterr().out
    for src, dst in (("Input", "Hidden"), ("Hidden", "Output")):
        for a, b in zip(dsstne.load(fp32, device="cpu").weights(src, dst),
                        dsstne.load(tf32x3, device="cpu").weights(src, dst)):
            assert a.tobytes() == b.tobytes()
    assert train.main([*base, "-n", str(tmp_path / "bad.nc"), "--math", "fp16"]) == 1
    recs = str(tmp_path / "recs_tf32x3")
    assert predict.main([*flow.predict_args, "-s", recs, "--math", "tf32x3"]) == 0
    with open(recs, "rb") as f, open(flow.recs, "rb") as g:
        assert f.read() == g.read()
    # --resume without a file: the newest checkpoint of -n
    assert train.main([*base, "-n", str(tmp_path / "none.nc"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    # every optimiser name is accepted; one the engine cannot execute yet is a clear error, not a crash
    rc = train.main([*base, "-n", str(tmp_path / "adam.nc"), "-e", "1", "--optimizer", "adam",
                     "--checkpoint-interval", "0"])
    if rc != 0:
        err = capsys.readouterr().err
        assert rc == 2 and "Adam" in err and "--optimizer" in err and "Traceback" not in err


def test_train_flags_reach_the_optimizer(flow, tmp_path):
    # -alpha, -lambda, -lambda1, -mu and -mu1 (each a different value) and --optimizer: the CLI's model is
    # the one the Python API trains from the same initial network with the same values, to the bit.
    flags = {"-alpha": 0.02, "-lambda": 0.003, "-lambda1": 0.0004, "-mu": 0.85, "-mu1": 0.97}
    init, model = str(tmp_path / "init.nc"), str(tmp_path / "adam.nc")
    args = ["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-n", model, "-b", "256", "-e", "1",
            "--device", "cpu", "--checkpoint-interval", "0", "--optimizer", "adam", "--initial-network", init]
    for flag, value in flags.items():
        args += [flag, str(value)]
    assert train.main(args) == 0
    datasets = read_datasets(flow.gl_input, role="input") + read_datasets(flow.gl_output, role="target")
    net = dsstne.load(init, datasets, batch=256, device="cpu")
    net.train(1, *flags.values(), optimizer="Adam")
    trained = dsstne.load(model, device="cpu")
    for src, dst in (("Input", "Hidden"), ("Hidden", "Output")):
        for a, b in zip(trained.weights(src, dst), net.weights(src, dst)):
            assert a.tobytes() == b.tobytes()


def test_console_scripts_exit_codes(flow):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cwd = flow.dir  # the installed package, not a source tree in the working directory
    r = subprocess.run([sys.executable, "-m", "dsstne.cli.train", "-h"], capture_output=True, text=True, env=env,
                       cwd=cwd)
    assert r.returncode == 1 and "-alpha" in r.stdout and "-lambda1" in r.stdout
    r = subprocess.run([sys.executable, "-m", "dsstne.cli.predict"], capture_output=True, text=True, env=env,
                       cwd=cwd)
    assert r.returncode == 1 and "Missing required argument: -d" in r.stderr


def test_train_autoencoder_one_file(tmp_path, capsys):
    x = random_csr(100, 40, 0.1, seed=2)
    write_datasets(tmp_path / "ae.nc", [dsstne.DataSet.from_scipy(x, "input", width=128)])
    cfg = network_config()
    cfg["Layers"][-1]["DataSet"] = "input"
    (tmp_path / "ae.json").write_text(json.dumps(cfg))
    f = str(tmp_path / "ae.nc")
    assert train.main(["-c", str(tmp_path / "ae.json"), "-i", f, "-o", f, "-n", str(tmp_path / "ae_net.nc"),
                       "-e", "2", "-b", "32", "--device", "cpu", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "Warning" not in captured.err and "Epoch" not in captured.out
    assert dsstne.load(tmp_path / "ae_net.nc", device="cpu").epochs_done == 2


def test_interrupt_exit_code(flow, tmp_path, monkeypatch, capsys):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dsstne.Network, "train", interrupted)
    model = tmp_path / "m.nc"
    assert train.main(["-c", flow.config, "-i", flow.gl_input, "-o", flow.gl_output, "-n", str(model),
                       "--device", "cpu"]) == 130
    assert "Interrupted after epoch 0" in capsys.readouterr().err and not model.exists()
