"""Dataset NetCDF files: the original's layouts (built here directly with netCDF4), round trips, bad input."""

from __future__ import annotations

import itertools
import os

import netCDF4
import numpy as np
import pytest
import scipy.sparse as sp

import dsstne
from dsstne.enums import DataSetAttributes as A
from dsstne.enums import DataType as T
from dsstne.formats import (
    dataset_netcdf,
    read_dataset,
    read_datasets,
    renormalized,
    stored_as,
    write_datasets,
)

NC_TYPE = {
    T.UInt: "u4",
    T.Int: "i4",
    T.Float: "f4",
    T.Double: "f8",
    T.Char: "S1",
    T.UChar: "u1",
    T.RGB8: "u1",
}
NP_TYPE = {
    T.UInt: np.uint32,
    T.Int: np.int32,
    T.Float: np.float32,
    T.Double: np.float64,
    T.Char: np.int8,
    T.UChar: np.uint8,
    T.RGB8: np.uint8,
}


# ---------------------------------------------------------------------------------------------------------
# a writer that follows the inventory's description of the original's layout (§2.2), independent of ours
# ---------------------------------------------------------------------------------------------------------


def put_var(nc, name, nctype, dim, values):
    var = nc.createVariable(name, nctype, (dim,))
    if nctype == "S1":
        values = np.asarray(values, dtype=np.int8).view("S1")
    var[:] = values


def build_set(
    nc,
    n,
    *,
    name,
    data_type,
    attributes,
    dims=(1, 1, 1),
    examples,
    kind=0,
    dimensions=None,
    start=None,
    end=None,
    index=None,
    values=None,
    data=None,
    weights=None,
    rows=None,
    offsets="u4",
    unique=None,
):
    s = str(n)
    dimensions = dimensions or (3 if dims[2] > 1 else 2 if dims[1] > 1 else 1)
    nc.setncattr("name" + s, name)
    nc.setncattr("attributes" + s, np.uint32(attributes))
    nc.setncattr("kind" + s, np.uint32(kind))
    nc.setncattr("dataType" + s, np.uint32(data_type))
    nc.setncattr("dimensions" + s, np.uint32(dimensions))
    nc.setncattr("width" + s, np.uint32(dims[0]))
    if dimensions > 1:
        nc.setncattr("height" + s, np.uint32(dims[1]))
    if dimensions > 2:
        nc.setncattr("length" + s, np.uint32(dims[2]))
    nc.createDimension("examplesDim" + s, examples)
    rows_dim = "examplesDim" + s
    if rows is not None:
        rows_dim = "uniqueExamplesDim" + s
        nc.createDimension(rows_dim, unique)
    nctype = NC_TYPE.get(data_type, "u4")
    if attributes & A.Sparse:
        nc.createDimension("sparseDataDim" + s, len(index))
        put_var(nc, "sparseStart" + s, offsets, rows_dim, start)
        put_var(nc, "sparseEnd" + s, offsets, rows_dim, end)
        put_var(nc, "sparseIndex" + s, "u4", "sparseDataDim" + s, index)
        if not attributes & A.Boolean:
            put_var(nc, "sparseData" + s, nctype, "sparseDataDim" + s, values)
    else:
        nc.createDimension("dataDim" + s, len(data))
        put_var(nc, "data" + s, nctype, "dataDim" + s, data)
    if weights is not None:
        put_var(nc, "dataWeight" + s, "f4", "examplesDim" + s, weights)
    if rows is not None:
        put_var(nc, "index" + s, "u4", "examplesDim" + s, rows)


def new_file(path, count=1):
    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    nc.setncattr("datasets", np.uint32(count))
    return nc


def file_contents(path):
    """Every attribute (value and type), dimension and variable (values and type) of a file."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        attrs = {
            k: (np.asarray(nc.getncattr(k)).dtype.str, np.asarray(nc.getncattr(k)).tolist())
            for k in nc.ncattrs()
        }
        dims = {k: len(v) for k, v in nc.dimensions.items()}
        var = {k: (v.dtype.str, v.dimensions, np.asarray(v[:]).tobytes()) for k, v in nc.variables.items()}
    return attrs, dims, var


def raw_values(rng, data_type, size):
    if data_type in (T.Float, T.Double):
        return rng.normal(0, 3, size).astype(NP_TYPE[data_type])
    if data_type == T.Char:
        return rng.integers(-128, 128, size).astype(np.int8)
    if data_type in (T.UChar, T.RGB8):
        return rng.integers(0, 256, size).astype(np.uint8)
    if data_type == T.Int:
        return rng.integers(-(2**31), 2**31, size).astype(np.int32)  # most do not fit float32 exactly
    return rng.integers(0, 2**32, size, dtype=np.uint64).astype(np.uint32)


def expected_float(raw, data_type, dense):
    """The original's kernel conversions, as the inventory states them (input role)."""
    x = raw.astype(np.float32)
    if data_type in (T.UChar, T.RGB8):
        return x * np.float32(1 / 256) - (np.float32(0.5) if dense else np.float32(0))
    if data_type == T.Char:
        return x * np.float32(1 / 128)
    return x


# ---------------------------------------------------------------------------------------------------------
# every data type x attribute combination: file in the original's layout -> read -> write -> same file
# ---------------------------------------------------------------------------------------------------------

TYPES = [T.UInt, T.Int, T.Float, T.Double, T.Char, T.UChar, T.RGB8]
SPARSE_COMBOS = list(itertools.product([False, True], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("data_type", TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize(
    "boolean,ignore_zero,indexed,weighted", SPARSE_COMBOS, ids=lambda v: "1" if v else "0"
)
def test_sparse_roundtrip_every_type_and_attribute(
    tmp_path, data_type, boolean, ignore_zero, indexed, weighted
):
    rng = np.random.default_rng(int(data_type) * 16 + boolean * 8 + ignore_zero * 4 + indexed * 2 + weighted)
    examples, unique, width = 12, (7 if indexed else 12), 40
    lengths = rng.integers(1, 6, unique)
    end = np.cumsum(lengths).astype(np.uint32)
    start = (end - lengths).astype(np.uint32)
    index = rng.integers(0, width, int(end[-1])).astype(np.uint32)
    values = None if boolean else raw_values(rng, data_type, int(end[-1]))
    attributes = (
        A.Sparse
        | (A.Boolean if boolean else 0)
        | (A.SparseIgnoreZero if ignore_zero else 0)
        | (A.Indexed if indexed else 0)
        | (A.Weighted if weighted else 0)
    )
    weights = rng.uniform(0.5, 2, examples).astype(np.float32) if weighted else None
    rows = rng.integers(0, unique, examples).astype(np.uint32) if indexed else None
    src = tmp_path / "src.nc"
    with new_file(src) as nc:
        build_set(
            nc,
            0,
            name="set",
            data_type=data_type,
            attributes=attributes,
            dims=(width, 1, 1),
            examples=examples,
            start=start,
            end=end,
            index=index,
            values=values,
            weights=weights,
            rows=rows,
            unique=unique,
        )
    (ds,) = read_datasets(src)
    assert ds.name == "set" and ds.examples == examples and ds.dims == (width, 1, 1)
    assert int(ds.attributes) == int(attributes)
    assert stored_as(ds).data_type == data_type
    np.testing.assert_array_equal(ds.start, start)
    np.testing.assert_array_equal(ds.end, end)
    np.testing.assert_array_equal(ds.index, index)
    if boolean:
        assert ds.value is None
    else:
        np.testing.assert_array_equal(ds.value, expected_float(values, data_type, dense=False))
    if weighted:
        np.testing.assert_array_equal(ds.weights, weights)
    if indexed:
        np.testing.assert_array_equal(ds.indexed, rows)
    out = tmp_path / "out.nc"
    write_datasets(out, [ds])
    assert file_contents(out) == file_contents(src)  # the file written back is the original file
    (again,) = read_datasets(out)
    np.testing.assert_array_equal(again.to_numpy(), ds.to_numpy())


@pytest.mark.parametrize("data_type", TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize(
    "boolean,indexed,weighted",
    list(itertools.product([False, True], repeat=3)),
    ids=lambda v: "1" if v else "0",
)
def test_dense_roundtrip_every_type_and_attribute(tmp_path, data_type, boolean, indexed, weighted):
    rng = np.random.default_rng(100 + int(data_type) * 8 + boolean * 4 + indexed * 2 + weighted)
    dims = (4, 3, 2)
    stride = 24
    examples, unique = 9, (5 if indexed else 9)
    if boolean:
        data = rng.integers(0, stride, unique).astype(NP_TYPE[data_type])  # one column per example
    else:
        data = raw_values(rng, data_type, unique * stride)
    attributes = (
        (A.Boolean if boolean else 0) | (A.Indexed if indexed else 0) | (A.Weighted if weighted else 0)
    )
    weights = rng.uniform(0.5, 2, examples).astype(np.float32) if weighted else None
    rows = rng.integers(0, unique, examples).astype(np.uint32) if indexed else None
    src = tmp_path / "src.nc"
    with new_file(src) as nc:
        build_set(
            nc,
            0,
            name="img",
            data_type=data_type,
            attributes=attributes,
            dims=dims,
            examples=examples,
            kind=1,
            data=data,
            weights=weights,
            rows=rows,
            unique=unique,
        )
    (ds,) = read_datasets(src)
    assert ds.dims == dims and not ds.is_sparse and ds.data.shape == (unique, stride)
    if boolean:
        one, zero = expected_float(np.array([1, 0], NP_TYPE[data_type]), data_type, dense=True)
        want = np.full((unique, stride), zero, np.float32)
        want[np.arange(unique), data.astype(np.int64)] = one
    else:
        want = expected_float(data, data_type, dense=True).reshape(unique, stride)
    np.testing.assert_array_equal(ds.data, want)
    out = tmp_path / "out.nc"
    write_datasets(out, [ds])
    assert file_contents(out) == file_contents(src)


def test_dataset_to_file_and_back_from_scipy_and_numpy(tmp_path):
    rng = np.random.default_rng(0)
    x = sp.random(50, 300, 0.05, format="csr", random_state=1, dtype=np.float32)
    analog = dsstne.DataSet.from_scipy(x, "analog", weights=rng.uniform(0, 1, 50), ignore_zero=True)
    boolean = dsstne.DataSet.from_scipy((x > 0).astype(np.float32), "boolean")
    dense = dsstne.DataSet.from_numpy(rng.normal(size=(20, 2, 3, 5)).astype(np.float32), "dense")
    path = tmp_path / "three.nc"
    write_datasets(path, [analog, boolean, dense])
    back = read_datasets(path)
    assert [d.name for d in back] == ["analog", "boolean", "dense"]
    for a, b in zip([analog, boolean, dense], back, strict=True):
        assert a.dims == b.dims and a.examples == b.examples and a.attributes == b.attributes
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    np.testing.assert_array_equal(back[0].weights, analog.weights)
    assert [stored_as(d).data_type for d in back] == [T.Float, T.UInt, T.Float]
    # index-suffixed names, generateNetCDF attribute set
    attrs, dims, variables = file_contents(path)
    assert attrs["datasets"] == ("<u4", 3) and attrs["name2"][1] == "dense" and attrs["dimensions2"][1] == 3
    assert {"sparseStart0", "sparseData0", "dataWeight0", "sparseIndex1", "data2"} <= set(variables)
    assert "sparseData1" not in variables and dims["dataDim2"] == 20 * 30
    assert read_dataset(path, "boolean").attributes == boolean.attributes


def test_uint64_offsets_are_read_and_kept(tmp_path):
    path = tmp_path / "u64.nc"
    with new_file(path) as nc:
        build_set(
            nc,
            0,
            name="s",
            data_type=T.UInt,
            attributes=A.Sparse | A.Boolean,
            dims=(8, 1, 1),
            examples=2,
            start=np.array([0, 2], np.uint64),
            end=np.array([2, 3], np.uint64),
            index=np.array([1, 7, 0], np.uint32),
            offsets="u8",
        )
    (ds,) = read_datasets(path)
    np.testing.assert_array_equal(ds.to_numpy(), [[0, 1, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0]])
    assert stored_as(ds).offsets == "u8"
    write_datasets(tmp_path / "again.nc", ds)
    assert file_contents(tmp_path / "again.nc") == file_contents(path)


def test_uchar_roles_and_renormalized(tmp_path):
    path = tmp_path / "u8.nc"
    raw = np.array([0, 128, 255, 64], np.uint8)
    with new_file(path) as nc:
        build_set(nc, 0, name="px", data_type=T.UChar, attributes=0, dims=(2, 1, 1), examples=2, data=raw)
    inp = read_dataset(path)
    np.testing.assert_array_equal(inp.data.reshape(-1), [-0.5, 0.0, 255 / 256 - 0.5, 0.25 - 0.5])
    tgt = read_dataset(path, role="target")
    np.testing.assert_array_equal(tgt.data.reshape(-1), raw / np.float32(256))
    np.testing.assert_array_equal(renormalized(inp, "target").data, tgt.data)
    np.testing.assert_array_equal(read_dataset(path, role="raw").data.reshape(-1), raw)
    write_datasets(tmp_path / "t.nc", renormalized(inp, "target"))
    assert file_contents(tmp_path / "t.nc") == file_contents(path)


def test_large_integers_and_doubles_are_written_back_exactly(tmp_path):
    path = tmp_path / "exact.nc"
    vals = np.array([16777217, 2**32 - 1, 3], np.uint32)  # not float32-exact
    with new_file(path, 2) as nc:
        build_set(
            nc,
            0,
            name="u",
            data_type=T.UInt,
            attributes=A.Sparse,
            dims=(4, 1, 1),
            examples=1,
            start=[0],
            end=[3],
            index=[0, 1, 2],
            values=vals,
        )
        build_set(
            nc,
            1,
            name="d",
            data_type=T.Double,
            attributes=0,
            dims=(3, 1, 1),
            examples=1,
            data=np.array([0.1, 1 / 3, 1e-300], np.float64),
        )
    u, d = read_datasets(path)
    assert u.value.dtype == np.float32 and d.data.dtype == np.float32
    write_datasets(tmp_path / "b.nc", [u, d])
    assert file_contents(tmp_path / "b.nc") == file_contents(path)
    u.value = u.value * 0 + 2  # changed values: written from the float32 values
    write_datasets(tmp_path / "c.nc", [u, d])
    np.testing.assert_array_equal(read_datasets(tmp_path / "c.nc")[0].value, [2, 2, 2])


def test_values_that_do_not_fit_the_type_are_refused(tmp_path):
    ds = dsstne.DataSet.from_scipy(sp.csr_matrix(np.array([[0.5, 0, 2.0]], np.float32)), "x")
    with pytest.raises(dsstne.DataError, match="cannot be stored exactly as UInt"):
        write_datasets(tmp_path / "x.nc", ds, data_types=["UInt"])
    with pytest.raises(dsstne.DataError, match="LLInt cannot be read by the original"):
        write_datasets(tmp_path / "x.nc", ds, data_types=[T.LLInt])
    assert not os.path.exists(tmp_path / "x.nc")


# ---------------------------------------------------------------------------------------------------------
# bad input: the message names the file and the item
# ---------------------------------------------------------------------------------------------------------


def _indicator(path, **over):
    spec = dict(
        name="gl_input",
        data_type=T.UInt,
        attributes=A.Sparse | A.Boolean,
        dims=(128, 1, 1),
        examples=3,
        start=np.array([0, 2, 3], np.uint32),
        end=np.array([2, 3, 5], np.uint32),
        index=np.array([0, 5, 9, 1, 2], np.uint32),
    )
    spec.update(over)
    with new_file(path) as nc:
        build_set(nc, 0, **spec)
    return path


def test_truncated_and_non_netcdf_files(tmp_path):
    good = _indicator(tmp_path / "good.nc")
    data = good.read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(dsstne.FormatError, match=r"cut\.nc"):
        read_datasets(tmp_path / "cut.nc")
    (tmp_path / "text.nc").write_text("this is not netcdf\n")
    with pytest.raises(dsstne.FormatError, match=r"text\.nc: not a readable NetCDF file"):
        read_datasets(tmp_path / "text.nc")
    with pytest.raises(dsstne.FormatError, match=r"missing\.nc: no such file"):
        read_datasets(tmp_path / "missing.nc")


@pytest.mark.parametrize(
    "drop,item",
    [
        ("width0", "width0"),
        ("dataType0", "dataType0"),
        ("name0", "name0"),
        ("attributes0", "attributes0"),
        ("dimensions0", "dimensions0"),
    ],
)
def test_missing_required_attribute(tmp_path, drop, item):
    path = _indicator(tmp_path / "a.nc")
    with netCDF4.Dataset(path, "a") as nc:
        nc.delncattr(drop)
    with pytest.raises(dsstne.FormatError, match=rf"a\.nc: .*'{item}'"):
        read_datasets(path)


def test_missing_datasets_count_and_required_variable(tmp_path):
    path = _indicator(tmp_path / "a.nc")
    with netCDF4.Dataset(path, "a") as nc:
        nc.delncattr("datasets")
    with pytest.raises(dsstne.FormatError, match=r"a\.nc: missing attribute 'datasets'"):
        read_datasets(path)
    path = tmp_path / "b.nc"
    with new_file(path) as nc:
        nc.setncattr("name0", "x")
        for k, v in (("attributes0", 3), ("kind0", 0), ("dataType0", 0), ("dimensions0", 1), ("width0", 8)):
            nc.setncattr(k, np.uint32(v))
        nc.createDimension("examplesDim0", 2)
        nc.createDimension("sparseDataDim0", 2)
        put_var(nc, "sparseStart0", "u4", "examplesDim0", [0, 1])
        put_var(nc, "sparseEnd0", "u4", "examplesDim0", [1, 2])
    with pytest.raises(
        dsstne.FormatError,
        match=r"b\.nc: missing variable 'sparseIndex0' \(feature indices of dataset 0 \('x'\)\)",
    ):
        read_datasets(path)


def test_analog_set_without_values(tmp_path):
    path = _indicator(tmp_path / "a.nc")
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncattr("attributes0", np.uint32(A.Sparse))  # analog, but no sparseData0
    with pytest.raises(dsstne.FormatError, match="missing variable 'sparseData0'"):
        read_datasets(path)


def test_inconsistent_sparse_offsets(tmp_path):
    path = _indicator(
        tmp_path / "a.nc", start=np.array([0, 3, 3], np.uint32), end=np.array([2, 2, 5], np.uint32)
    )
    with pytest.raises(
        dsstne.FormatError, match=r"a\.nc: .*inconsistent sparse offsets: example 1 starts at 3"
    ):
        read_datasets(path)
    path = _indicator(tmp_path / "b.nc", end=np.array([2, 3, 9], np.uint32))
    with pytest.raises(
        dsstne.FormatError, match=r"b\.nc: .*'sparseEnd0'.*value 9 at position 2 is out of range"
    ):
        read_datasets(path)


def test_index_not_below_width(tmp_path):
    path = _indicator(tmp_path / "a.nc", index=np.array([0, 5, 9, 128, 2], np.uint32))
    with pytest.raises(
        dsstne.FormatError, match=r"a\.nc: .*'sparseIndex0': example 2 lists unit 128 .*only 128"
    ):
        read_datasets(path)


@pytest.mark.parametrize("code", [T.LLInt, T.ULLInt, T.RGB16, 10, 99])
def test_unsupported_data_type(tmp_path, code):
    path = _indicator(tmp_path / "a.nc", data_type=int(code))
    with pytest.raises(
        dsstne.FormatError, match=r"a\.nc: dataset 0 \('gl_input'\): .*data type .*'dataType0'"
    ):
        read_datasets(path)


def test_other_structural_errors(tmp_path):
    with pytest.raises(dsstne.FormatError, match="'dimensions0' is 4"):
        read_datasets(_indicator(tmp_path / "a.nc", dimensions=4))
    with pytest.raises(
        dsstne.FormatError, match="dense data 'data0' has 5 values; 2 examples x 3 units need 6"
    ):
        p = tmp_path / "d.nc"
        with new_file(p) as nc:
            build_set(
                nc,
                0,
                name="d",
                data_type=T.Float,
                attributes=0,
                dims=(3, 1, 1),
                examples=2,
                data=np.zeros(5, np.float32),
            )
        read_datasets(p)
    p = tmp_path / "i.nc"
    with new_file(p) as nc:
        build_set(
            nc,
            0,
            name="d",
            data_type=T.Float,
            attributes=A.Indexed,
            dims=(2, 1, 1),
            examples=3,
            data=np.zeros(4, np.float32),
            rows=np.array([0, 1, 2], np.uint32),
            unique=2,
        )
    with pytest.raises(dsstne.FormatError, match="'index0': example 2 points at row 2 of 2"):
        read_datasets(p)


# ---------------------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------------------


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "keep.nc"
    first = dsstne.DataSet.from_scipy(sp.eye(4, format="csr", dtype=np.float32), "first")
    write_datasets(path, first)
    before = path.read_bytes()
    real = dataset_netcdf._write_one

    def explode(nc, n, plan):
        real(nc, n, plan)  # the first set is written, then the write fails
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(dataset_netcdf, "_write_one", explode)
    second = dsstne.DataSet.from_scipy(sp.eye(6, format="csr", dtype=np.float32), "second")
    with pytest.raises(OSError, match="simulated"):
        write_datasets(path, [second, second])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.nc"]  # no temporary file left behind
    assert read_dataset(path).name == "first"
