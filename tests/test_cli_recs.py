"""Recommendation files, filters and file-based evaluation (dsstne.recommendations), on small hand-made files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import dsstne
from dsstne.cli.main import main as dsstne_main
from dsstne.recommendations import (
    evaluate_files,
    format_recommendations,
    generate_recommendations,
    read_filter,
    read_recommendations,
    score_format,
    text_to_dataset,
)


def test_format_is_the_originals():
    index = np.array([[2, 0, -1], [3, 1, 0]])
    scores = np.array([[0.91234, 0.5, -np.inf], [0.25, 0.125, 1e-4]], dtype=np.float32)
    labels = ["a", "b", "c"]  # unit 3 has no label: a padding unit, never written
    text = format_recommendations(["u1", "u2"], index, scores, labels)
    assert text == "u1\tc,0.912:a,0.500:\nu2\tb,0.125:a,0.000:\n"
    assert format_recommendations(["u"], index[:1], scores[:1], labels, precision="8.5e") == (
        "u\tc,9.12340e-01:a,5.00000e-01:\n")
    assert format_recommendations(["u"], np.full((1, 2), -1), np.zeros((1, 2)), labels) == "u\t\n"


@pytest.mark.parametrize("spec", ["4.3f", "%4.3f", ".2e", "g", "-10.4F", "08.3f"])
def test_score_format_accepts_printf_floats(spec):
    assert score_format(spec).startswith("%")


@pytest.mark.parametrize("spec", ["4.3d", "s", "", "4.3f%s", "1.2.3f"])
def test_score_format_rejects_others(spec):
    with pytest.raises(dsstne.DataError, match="printf"):
        score_format(spec)


def test_read_back_and_errors(tmp_path):
    p = tmp_path / "recs"
    p.write_text("u1\tc,0.912:a,0.500:\nu,2\tm,ovie,1.5:\n\nu3\t\n")
    r = read_recommendations(p)
    assert r.samples == ["u1", "u,2", "u3"]
    assert r.items == [["c", "a"], ["m,ovie"], []]
    assert r.scores == [[0.912, 0.5], [1.5], []]
    p.write_text("u1\tc,0.9:\nno tab here\n")
    with pytest.raises(dsstne.FormatError, match="line 2"):
        read_recommendations(p)
    p.write_text("u1\tc,zero:\n")
    with pytest.raises(dsstne.FormatError, match="line 1: score 'zero'"):
        read_recommendations(p)
    with pytest.raises(dsstne.FormatError, match="cannot read"):
        read_recommendations(tmp_path / "none")


def test_text_to_dataset_order_and_unknown_features(tmp_path):
    p = tmp_path / "in"
    p.write_text("z\ta:b:zz\ny\tc\nz\tc,2:a\nx\tnope\n")
    ds, labels = text_to_dataset(p, {"a": 5, "b": 0, "c": 1}, "gl_input")
    assert labels == ["z", "y", "x"]  # first appearance; a repeated label replaces its features
    assert ds.width == 128 and ds.is_boolean
    rows = ds.to_scipy()
    assert sorted(rows[0].indices.tolist()) == [1, 5] and rows[1].indices.tolist() == [1] and rows[2].nnz == 0


def test_filter_semantics(tmp_path):
    p = tmp_path / "flt"
    p.write_text("s1\ta,3:b\ns2\tq:a\nghost\ta\ns1\tb,7:c:b,9\n")
    f = read_filter(p, {"s1": 1, "s2": 0}, {"a": 10, "b": 2, "c": 4}, width=16)
    m = f.matrix.toarray()
    assert m.shape == (2, 16)
    assert m[1, 2] == 9 and m[1, 4] == 0 and m[1, 10] == 0  # later line replaces; last value wins
    assert f.matrix[1].nnz == 2 and f.matrix[0].nnz == 1 and m[0, 10] == 0
    assert (f.unknown_samples, f.unknown_features, f.unknown_feature_labels) == (1, 1, 1)
    assert "1 samples not in the input skipped" in f.describe()


def test_evaluate_files_exact(tmp_path, capsys):
    recs = tmp_path / "recs"
    recs.write_text("u1\ta,0.9:b,0.8:c,0.7:\nu2\tc,0.5:d,0.4:\n")
    truth = tmp_path / "truth"
    truth.write_text("u1\ta:c\nu2\tx\nu3\tb\n")
    r = evaluate_files(recs, truth, ks=(1, 3))
    assert r.users == 3 and r.users_without_recommendations == 1
    assert r.metrics["precision@1"] == pytest.approx(1 / 3)
    assert r.metrics["precision@3"] == pytest.approx((2 / 3) / 3)
    assert r.metrics["recall@3"] == pytest.approx(1 / 3)
    assert r.metrics["map@3"] == pytest.approx((1 + 2 / 3) / 2 / 3)
    # MovieLens ratings as the held-out file; --threshold keeps ratings >= 4
    ml = tmp_path / "ratings.csv"
    ml.write_text("userId,movieId,rating,timestamp\n1,10,5.0,0\n1,11,2.0,0\n2,12,4.5,0\n")
    recs.write_text("1\t10,0.9:11,0.8:\n2\t13,0.5:\n")
    assert evaluate_files(recs, ml, ks=(2,)).metrics["precision@2"] == pytest.approx(0.5)
    assert evaluate_files(recs, ml, ks=(2,), threshold=4).metrics["precision@2"] == pytest.approx(0.25)
    assert dsstne_main(["evaluate", str(recs), str(ml), "-k", "2", "--threshold", "4"]) == 0
    assert "0.2500" in capsys.readouterr().out
    assert dsstne_main(["evaluate", str(recs)]) == 1
    assert dsstne_main(["evaluate", str(recs), str(ml), "-k", "0"]) == 1
    assert dsstne_main(["evaluate", str(recs), str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("multiply", [False, True], ids=["exclude", "multiply"])
def test_units_the_index_does_not_name_never_take_a_slot(tmp_path, multiply):
    # 16 output units, 10 named by the output index (DSSTNE rounds layer widths up): the 6 unnamed ones score
    # highest (bias 5) yet must never be ranked, and the named ones tie (bias 0), so they come in unit
    # order. The filter drops o0 for u1 (its multiplied score is 0 with -m).
    layers = [{"Name": "Input", "Kind": "Input", "N": 8, "DataSet": "gl_input", "Sparse": True},
              {"Name": "Output", "Kind": "Output", "N": 16, "DataSet": "gl_output", "Activation": "Sigmoid"}]
    cfg = {"Version": 0.8, "Name": "pad", "ErrorFunction": "L2", "Layers": layers}
    blank = sp.csr_matrix((1, 8), dtype=np.float32)
    sets = [dsstne.DataSet.from_scipy(blank, "gl_input", width=8),
            dsstne.DataSet.from_scipy(sp.csr_matrix((1, 16), dtype=np.float32), "gl_output", width=16)]
    net = dsstne.Network.from_json(cfg, sets, batch=4, device="cpu", seed=1)
    bias = np.r_[np.zeros(10), np.full(6, 5.0)].astype(np.float32)
    net.set_weights("Input", "Output", np.zeros((8, 16), np.float32), bias)
    (tmp_path / "in").write_text("u1\ti0:i3\nu2\ti5\n")
    (tmp_path / "flt").write_text("u1\to0,0\n")
    generate_recommendations(net, tmp_path / "in", {f"i{j}": j for j in range(8)}, {f"o{j}": j for j in range(10)},
                             tmp_path / "recs", k=4, filter_path=tmp_path / "flt", multiply_filter=multiply)
    recs = read_recommendations(tmp_path / "recs")
    assert recs.samples == ["u1", "u2"]
    assert recs.items == [["o1", "o2", "o3", "o4"], ["o0", "o1", "o2", "o3"]]
