"""generateNetCDF (text format, index files, CLI flags) and the MovieLens converters."""

from __future__ import annotations

import subprocess
import sys

import netCDF4
import numpy as np
import pytest

import dsstne
from dsstne.cli import generate_netcdf as cli
from dsstne.cli.main import main as dsstne_main
from dsstne.formats import (
    generate_netcdf,
    load_index,
    ratings_to_dataset,
    ratings_to_text,
    read_dataset,
    read_ratings,
    read_samples,
    round_up_width,
    save_index,
    write_samples,
)

RATINGS_CSV = """userId,movieId,rating,timestamp
1,2,3.5,1112486027
1,29,3.5,1112484676
1,32,3.5,1112484819
2,3,4.0,974820889
2,62,5.0,974820598
2,29,1.0,974820600
3,1,4.0,944919407
3,2,5.0,944919459
"""

TEXT = (
    "1\t2,1112486027:29,1112484676:32,1112484819\n2\t3,974820889:62,974820598:29,974820600\n"
    "3\t1,944919407:2,944919459\n"
)


@pytest.fixture
def ratings(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS_CSV)
    return path


def nc_summary(path):
    with netCDF4.Dataset(path) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        variables = {k: (v.dtype, np.asarray(v[:])) for k, v in nc.variables.items()}
        dims = {k: len(v) for k, v in nc.dimensions.items()}
    return attrs, dims, variables


# ---------------------------------------------------------------------------------------------------------
# MovieLens -> text (convert_ratings.awk) -> generateNetCDF
# ---------------------------------------------------------------------------------------------------------


def test_ratings_to_text_matches_the_awk_converter(ratings, tmp_path):
    assert ratings_to_text(ratings, tmp_path / "ml") == 3
    assert (tmp_path / "ml").read_text() == TEXT
    ratings_to_text(ratings, tmp_path / "r", value="rating")
    assert (tmp_path / "r").read_text().splitlines()[1] == "2\t3,4.0:62,5.0:29,1.0"
    ratings_to_text(ratings, tmp_path / "n", value=None)
    assert (tmp_path / "n").read_text().splitlines()[2] == "3\t1:2"


def test_generate_netcdf_cli_writes_the_documented_layout(ratings, tmp_path, capsys):
    ratings_to_text(ratings, tmp_path / "ml")
    rc = cli.main(
        [
            "-d",
            "gl_input",
            "-i",
            str(tmp_path / "ml"),
            "-o",
            str(tmp_path / "gl_input.nc"),
            "-f",
            str(tmp_path / "features_input"),
            "-s",
            str(tmp_path / "samples_input"),
            "-c",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Raw max index is: 6" in printed and "Rounded up max index to: 128" in printed
    attrs, dims, variables = nc_summary(tmp_path / "gl_input.nc")
    assert attrs == {
        "datasets": 1,
        "name0": "gl_input",
        "attributes0": 3,
        "kind0": 0,
        "dataType0": 0,
        "dimensions0": 1,
        "width0": 128,
    }
    assert all(isinstance(v, np.uint32) for k, v in attrs.items() if k != "name0")
    assert dims == {"examplesDim0": 3, "sparseDataDim0": 8}
    assert set(variables) == {"sparseStart0", "sparseEnd0", "sparseIndex0"}
    assert all(dtype == np.uint32 for dtype, _ in variables.values())
    np.testing.assert_array_equal(variables["sparseStart0"][1], [0, 3, 6])
    np.testing.assert_array_equal(variables["sparseEnd0"][1], [3, 6, 8])
    np.testing.assert_array_equal(variables["sparseIndex0"][1], [0, 1, 2, 3, 4, 1, 5, 0])
    assert load_index(tmp_path / "features_input") == {"2": 0, "29": 1, "32": 2, "3": 3, "62": 4, "1": 5}
    assert load_index(tmp_path / "samples_input") == {"1": 0, "2": 1, "3": 2}
    ds = read_dataset(tmp_path / "gl_input.nc")
    assert ds.is_boolean and ds.dims == (128, 1, 1)


def test_analog_type_and_dataset_from_ratings_agree(ratings, tmp_path):
    ratings_to_text(ratings, tmp_path / "ml")
    generate_netcdf(
        tmp_path / "ml", tmp_path / "a.nc", "gl", tmp_path / "f", tmp_path / "s", create=True, kind="analog"
    )
    attrs, _, variables = nc_summary(tmp_path / "a.nc")
    assert (attrs["attributes0"], attrs["dataType0"]) == (1, 4)
    assert variables["sparseData0"][0] == np.float32
    np.testing.assert_array_equal(
        variables["sparseData0"][1][:3], np.array([1112486027, 1112484676, 1112484819], np.float32)
    )
    direct = ratings_to_dataset(ratings, "gl", value="timestamp")
    from_file = read_dataset(tmp_path / "a.nc")
    for field in ("start", "end", "index", "value"):
        np.testing.assert_array_equal(getattr(direct.dataset, field), getattr(from_file, field))
    assert direct.dataset.dims == from_file.dims
    np.testing.assert_array_equal(direct.users, [1, 2, 3])
    np.testing.assert_array_equal(direct.items, [2, 29, 32, 3, 62, 1])
    direct.save_indexes(tmp_path / "f2", tmp_path / "s2")
    assert load_index(tmp_path / "f2") == load_index(tmp_path / "f")
    assert load_index(tmp_path / "s2") == load_index(tmp_path / "s")
    boolean = ratings_to_dataset(ratings, "gl").dataset
    assert boolean.is_boolean


def test_merge_adds_new_features_and_without_flags_drops_them(tmp_path):
    (tmp_path / "a").write_text("u1\tx:y\nu2\ty:z\n")
    generate_netcdf(tmp_path / "a", tmp_path / "a.nc", "d", tmp_path / "f", tmp_path / "s", create=True)
    assert load_index(tmp_path / "f") == {"x": 0, "y": 1, "z": 2}
    (tmp_path / "b").write_text("u3\tz:w:v\nu1\tv:x\n")
    plain = generate_netcdf(tmp_path / "b", tmp_path / "b.nc", "d", tmp_path / "f", tmp_path / "s")
    assert load_index(tmp_path / "f") == {"x": 0, "y": 1, "z": 2}  # unchanged, new features dropped
    assert plain.dataset.to_scipy().toarray()[:, :3].tolist() == [[1, 0, 0], [0, 0, 1]]  # rows u1, u3
    assert plain.sample_rows == [0, 2] and load_index(tmp_path / "s") == {"u1": 0, "u2": 1, "u3": 2}
    merged = generate_netcdf(
        tmp_path / "b", tmp_path / "m.nc", "d", tmp_path / "f", tmp_path / "s", merge=True
    )
    assert load_index(tmp_path / "f") == {"x": 0, "y": 1, "z": 2, "w": 3, "v": 4}
    assert merged.features_written and not merged.samples_written
    m = read_dataset(tmp_path / "m.nc")
    assert m.to_scipy().toarray()[:, :5].tolist() == [[1, 0, 0, 0, 1], [0, 0, 1, 1, 1]]


def test_missing_feature_index_without_c_fails_clearly(tmp_path, capsys):
    (tmp_path / "a").write_text("u1\tx\n")
    with pytest.raises(
        dsstne.FormatError, match=r"nofeatures: Cannot find a valid feature index file \(pass -c"
    ):
        generate_netcdf(tmp_path / "a", tmp_path / "a.nc", "d", tmp_path / "nofeatures", tmp_path / "s")
    rc = cli.main(
        [
            "-d",
            "d",
            "-i",
            str(tmp_path / "a"),
            "-o",
            str(tmp_path / "a.nc"),
            "-f",
            str(tmp_path / "nofeatures"),
            "-s",
            str(tmp_path / "s"),
        ]
    )
    assert rc == 1 and "Cannot find a valid feature index file" in capsys.readouterr().err
    assert not (tmp_path / "a.nc").exists()


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.main(["-h"]) == 1 and "Usage: generateNetCDF" in capsys.readouterr().out
    assert cli.main(["-d", "x", "-i", "y"]) == 1
    assert "Error: Missing required argument" in capsys.readouterr().out
    args = ["-d", "d", "-i", "i", "-o", "o", "-f", "f", "-s", "s"]
    assert cli.main(args + ["-c", "-m"]) == 1
    assert (
        cli.main(args + ["-t", "binary"]) == 1 and "Unknown dataset type [binary]" in capsys.readouterr().out
    )


def test_dsstne_subcommand_and_console_script(ratings, tmp_path):
    ratings_to_text(ratings, tmp_path / "ml")
    argv = [
        "generate-netcdf",
        "-d",
        "gl",
        "-i",
        str(tmp_path / "ml"),
        "-o",
        str(tmp_path / "x.nc"),
        "-f",
        str(tmp_path / "f"),
        "-s",
        str(tmp_path / "s"),
        "-c",
        "-t",
        "analog",
    ]
    assert dsstne_main(argv) == 0
    assert read_dataset(tmp_path / "x.nc").value is not None
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsstne.cli.generate_netcdf",
            "-d",
            "gl",
            "-i",
            str(tmp_path / "ml"),
            "-o",
            str(tmp_path / "y.nc"),
            "-f",
            str(tmp_path / "f"),
            "-s",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the installed package, not a source tree in the working directory
    )
    assert run.returncode == 0, run.stderr
    assert "Total time for generating NetCDF" in run.stdout


# ---------------------------------------------------------------------------------------------------------
# text-format rules
# ---------------------------------------------------------------------------------------------------------


def test_text_rules_warnings_and_replacement(tmp_path):
    (tmp_path / "in").write_text(
        "a\tf1,1.5:f2\n"  # value missing -> 0
        "no tab here\n"  # warning with line number
        "\n"  # empty line skipped
        "b\tf3,2:f1,7,8:::,9\n"  # empty tokens skipped; more than one value -> first kept, warning
        "a\tf2,4\n"  # repeated label replaces the first line
        "c\tf1,5abc\n"  # stof reads the numeric prefix
    )
    features, samples = {}, {}
    parsed = read_samples(tmp_path / "in", features, samples, update_features=True)
    assert samples == {"a": 0, "b": 1, "c": 2} and features == {"f1": 0, "f2": 1, "f3": 2}
    assert [list(map(int, parsed.rows[k][0])) for k in range(3)] == [[1], [2, 0], [0]]
    assert [list(map(float, parsed.rows[k][1])) for k in range(3)] == [[4.0], [2.0, 7.0], [5.0]]
    assert any("Skipping over malformed line (no tab here) at line 2" in w for w in parsed.warnings)
    assert any("Data point [f1,7,8] at line 4 has more than 1 value" in w for w in parsed.warnings)
    (tmp_path / "bad").write_text("a\tf1,xyz\n")
    with pytest.raises(dsstne.FormatError, match=r"bad: line 1: value 'xyz' of feature 'f1' is not a number"):
        read_samples(tmp_path / "bad", {}, {}, update_features=True)


def test_fast_and_line_by_line_parsers_agree(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for u in rng.permutation(300):
        items = rng.choice(1000, rng.integers(1, 30), replace=False)
        lines.append(f"user{u}\t" + ":".join(f"m{i},{rng.integers(1, 6) / 2}" for i in items))
    lines += lines[:20]  # repeated samples replace their rows
    (tmp_path / "in").write_text("\n".join(lines) + "\n")
    known = {f"m{i}": i for i in range(0, 1000, 3)}
    for update in (True, False):
        results = []
        for fast in (True, False):
            f, s = dict(known), {"user5": 0}
            parsed = read_samples(tmp_path / "in", f, s, update_features=update, fast=fast)
            results.append(
                (
                    f,
                    s,
                    [list(map(int, parsed.rows[k][0])) for k in sorted(parsed.rows)],
                    [list(map(float, parsed.rows[k][1])) for k in sorted(parsed.rows)],
                    parsed.features_updated,
                    parsed.samples_updated,
                )
            )
        assert results[0] == results[1]


def test_directory_input_sorted_and_crlf(tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    (d / "b.txt").write_text("u2\tx\r\n")
    (d / "a.txt").write_text("u1\ty:x\n")
    (d / "sub").mkdir()
    res = generate_netcdf(d, None, "d", tmp_path / "f", tmp_path / "s", create=True)
    assert res.samples == {"u1": 0, "u2": 1} and res.features == {"y": 0, "x": 1}
    assert res.dataset.to_scipy().toarray()[:, :2].tolist() == [[1, 1], [0, 1]]


def test_index_files(tmp_path):
    save_index(tmp_path / "idx", {"b": 1, "a": 0, "c": 2})
    assert (tmp_path / "idx").read_text() == "a\t0\nb\t1\nc\t2\n"
    assert load_index(tmp_path / "idx") == {"a": 0, "b": 1, "c": 2}
    (tmp_path / "dup").write_text("a\t0\nb\t1\na\t2\n")
    with pytest.raises(dsstne.FormatError, match=r"dup: line 3: duplicate label 'a' \(already on line 1\)"):
        load_index(tmp_path / "dup")
    (tmp_path / "bad").write_text("a\t0\nb\n")
    with pytest.raises(dsstne.FormatError, match=r"bad: line 2 contains invalid data"):
        load_index(tmp_path / "bad")
    (tmp_path / "nan").write_text("a\tx\n")
    with pytest.raises(dsstne.FormatError, match=r"nan: line 1: index 'x' of label 'a' is not an integer"):
        load_index(tmp_path / "nan")
    (tmp_path / "in").write_text("u\ta\n")
    with pytest.raises(dsstne.FormatError, match=r"dup: line 3: duplicate label 'a'"):
        generate_netcdf(tmp_path / "in", tmp_path / "o.nc", "d", tmp_path / "dup", tmp_path / "s2")


def test_width_rounding_and_write_samples(tmp_path):
    assert [round_up_width(n) for n in (1, 8, 128, 129, 27278)] == [128, 128, 128, 256, 27392]
    (tmp_path / "in").write_text("u1\ta,0.5:b,2\nu2\tb,1.25\n")
    res = generate_netcdf(
        tmp_path / "in", None, "d", tmp_path / "f", tmp_path / "s", create=True, kind="analog"
    )
    labels = {v: k for k, v in res.features.items()}
    write_samples(
        tmp_path / "out",
        res.dataset,
        sample_labels=["u1", "u2"],
        feature_labels=[labels[i] for i in range(len(labels))],
    )
    assert (tmp_path / "out").read_text() == "u1\ta,0.5:b,2.0\nu2\tb,1.25\n"


# ---------------------------------------------------------------------------------------------------------
# MovieLens layouts
# ---------------------------------------------------------------------------------------------------------


def test_movielens_layouts(tmp_path):
    (tmp_path / "u.data").write_text(
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"
    )
    (tmp_path / "ratings.dat").write_text(
        "1::1193::5::978300760\r\n1::661::3::978302109\r\n2::1193::4::978298413\r\n"
    )
    u = read_ratings(tmp_path / "u.data")
    np.testing.assert_array_equal(u.users, [196, 186, 196])
    np.testing.assert_array_equal(u.ratings, [3, 3, 1])
    r = read_ratings(tmp_path / "ratings.dat")
    np.testing.assert_array_equal(r.items, [1193, 661, 1193])
    np.testing.assert_array_equal(r.timestamps, [978300760, 978302109, 978298413])
    m = ratings_to_dataset(tmp_path / "u.data", "ml100k", value="rating")
    assert m.dataset.examples == 2 and m.dataset.dims == (128, 1, 1)
    np.testing.assert_array_equal(m.users, [196, 186])
    assert m.dataset.to_scipy().toarray()[0, :3].tolist() == [3, 0, 1]  # user 196 gathered: movies 242, 377
    assert ratings_to_text(tmp_path / "u.data", tmp_path / "t") == 3  # a line per run of one user
    (tmp_path / "broken.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,x,3,4\n")
    with pytest.raises(dsstne.FormatError, match=r"broken\.csv: line 3: 'x' is not a number"):
        read_ratings(tmp_path / "broken.csv")
    (tmp_path / "short.csv").write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(dsstne.FormatError, match=r"short\.csv: line 2: expected 4 fields, found 3"):
        read_ratings(tmp_path / "short.csv")


def test_convert_module_round_trip(tmp_path):
    # dsstne.convert: the task-named entry points chain into the original's flow.
    import scipy.sparse as sp

    import dsstne

    m = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32))
    ds = dsstne.DataSet.from_scipy(m, "gl_input")
    dsstne.convert.datasets_to_netcdf(tmp_path / "x.nc", [ds])
    (back,) = dsstne.convert.netcdf_to_datasets(tmp_path / "x.nc")
    assert back.name == "gl_input" and (back.to_scipy() != m).nnz == 0
