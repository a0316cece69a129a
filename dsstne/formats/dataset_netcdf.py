"""DSSTNE's dataset NetCDF files: read every layout the original reads, write the ``generateNetCDF`` layout.

One file holds ``datasets`` data sets; every per-set name carries the set's index as a suffix (``name0``,
``sparseStart1``). All metadata are global attributes (see ``docs/formats.md`` and the reference inventory,
section 2.2). Reading is vectorised: arrays come straight from the NetCDF library into numpy and are checked
with whole-array operations, so a 20M-datapoint file loads in well under a second.

The engine computes in float32. Values of the other element types are converted on load the way the
original's kernels convert them when they read the set:

* ``UChar``/``RGB8``: dense *input* data ``x/256 - 0.5``; sparse values and *targets* ``x/256``;
* ``Char``: ``x/128``;
* ``UInt``, ``Int``, ``Double``: plain conversion to float32.

``role="target"`` asks for the target conversion, ``role="raw"`` for none. The element type, the role, the
offset width and the attribute bits without behaviour are remembered per :class:`~dsstne.DataSet` (see
:func:`stored_as`), so :func:`write_datasets` writes a loaded file back in its own types, bit for bit when
the arrays were not changed.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dataset import DataSet
from ..enums import DataSetAttributes, DataType
from ..errors import DataError, FormatError
from .atomic import atomic_path

__all__ = [
    "READABLE_TYPES",
    "StoredAs",
    "read_datasets",
    "read_dataset",
    "renormalized",
    "stored_as",
    "write_datasets",
]

#: Element types the original's loader accepts (LLInt, ULLInt and RGB16 abort with "invalid dataset type").
READABLE_TYPES = frozenset(
    {
        DataType.UInt,
        DataType.Int,
        DataType.Float,
        DataType.Double,
        DataType.RGB8,
        DataType.UChar,
        DataType.Char,
    }
)

# In-memory element type of each readable DataType (the original's template argument; Int is C `long`).
_NUMPY: dict[DataType, type[np.generic]] = {
    DataType.UInt: np.uint32,
    DataType.Int: np.int64,
    DataType.Float: np.float32,
    DataType.Double: np.float64,
    DataType.RGB8: np.uint8,
    DataType.UChar: np.uint8,
    DataType.Char: np.int8,
}

# NetCDF type written for each DataType ("S1" is NC_CHAR: the original reads char data with nc_get_var_text).
_NC_TYPE: dict[DataType, str] = {
    DataType.UInt: "u4",
    DataType.Int: "i4",
    DataType.Float: "f4",
    DataType.Double: "f8",
    DataType.RGB8: "u1",
    DataType.UChar: "u1",
    DataType.Char: "S1",
}

_ROLES = ("input", "target", "raw")
_NAMED_BITS = (
    DataSetAttributes.Sparse
    | DataSetAttributes.Boolean
    | DataSetAttributes.SparseIgnoreZero
    | DataSetAttributes.Indexed
    | DataSetAttributes.Weighted
)
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class StoredAs:
    """How a dataset was (or will be) stored in a NetCDF file, beyond what :class:`DataSet` holds.

    ``data_type`` is the element type, ``role`` the conversion applied on load ("input", "target" or
    "raw"), ``kind`` the Kind attribute (0 Numeric, 1 Image, 2 Audio), ``extra_attributes`` the attribute
    bits without behaviour (Compressed, Recurrent, Mutable), ``boolean_dense`` marks a dense Boolean set
    (one column index per example on disk), ``offsets`` the integer type of ``sparseStart``/``sparseEnd``,
    ``dimensions`` the file's ``dimensions`` attribute.
    """

    data_type: DataType = DataType.Float
    role: str = "input"
    kind: int = 0
    extra_attributes: int = 0
    boolean_dense: bool = False
    offsets: str = "u4"
    dimensions: int = 1
    # the stored values, kept when float32 cannot hold them exactly (large integers, doubles)
    exact: np.ndarray | None = None


_STORED: weakref.WeakKeyDictionary[DataSet, StoredAs] = weakref.WeakKeyDictionary()


def stored_as(dataset: DataSet) -> StoredAs | None:
    """How `dataset` was stored in the NetCDF file it was read from (None for sets not read from a file)."""
    return _STORED.get(dataset)


# ----------------------------------------------------------------------------------------------------------
# value conversion
# ----------------------------------------------------------------------------------------------------------


def _to_float(raw: np.ndarray, data_type: DataType, role: str, dense: bool) -> np.ndarray:
    """Convert stored values to the float32 values the engine sees (the original's kernel conversions)."""
    x = raw.astype(np.float32)
    if role == "raw":
        return x
    if data_type in (DataType.UChar, DataType.RGB8):
        x *= np.float32(1.0 / 256.0)
        if dense and role == "input":
            x -= np.float32(0.5)
    elif data_type == DataType.Char:
        x *= np.float32(1.0 / 128.0)
    return x


def _from_float(x: np.ndarray, data_type: DataType, role: str, dense: bool, what: str) -> np.ndarray:
    """Float32 values -> stored values of `data_type`; raise DataError unless the round trip is exact."""
    x = np.asarray(x, dtype=np.float32)
    np_type = np.int32 if data_type == DataType.Int else _NUMPY[data_type]
    if data_type in (DataType.Float, DataType.Double):
        return x.astype(np_type)
    y = x.astype(np.float64)
    if role != "raw":
        if data_type in (DataType.UChar, DataType.RGB8):
            y = (y + 0.5) * 256.0 if dense and role == "input" else y * 256.0
        elif data_type == DataType.Char:
            y = y * 128.0
    y = np.rint(y)
    info = np.iinfo(np_type)
    if data_type == DataType.Int and y.size and (y.min() < info.min or y.max() > info.max):
        np_type, info = np.int64, np.iinfo(np.int64)
    if y.size and (not np.all(np.isfinite(y)) or y.min() < info.min or y.max() > info.max):
        raise DataError(f"{what}: values outside the range of {data_type.name}")
    raw = y.astype(np_type)
    back = _to_float(raw, data_type, role, dense)
    if not np.array_equal(back, x):
        bad = int(np.flatnonzero(back != x)[0])
        raise DataError(
            f"{what}: value {float(x.reshape(-1)[bad])!r} at position {bad} cannot be stored exactly as "
            f"{data_type.name} (role {role!r})"
        )
    return raw


# ----------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------


def _open(path: str) -> Any:
    import netCDF4

    if not os.path.exists(path):
        raise FormatError(f"{path}: no such file")
    try:
        nc = netCDF4.Dataset(path, "r")
    except Exception as e:  # netCDF4 raises OSError or RuntimeError subclasses for unreadable files
        raise FormatError(f"{path}: not a readable NetCDF file ({e})") from e
    nc.set_auto_maskandscale(False)
    nc.set_auto_chartostring(False)
    return nc


class _Reader:
    """Typed access to the global attributes, dimensions and variables of one open file."""

    def __init__(self, nc: Any, path: str) -> None:
        self.nc = nc
        self.path = path
        self.attrs = set(nc.ncattrs())

    def fail(self, message: str) -> FormatError:
        return FormatError(f"{self.path}: {message}")

    def has(self, name: str) -> bool:
        return name in self.attrs

    def raw_att(self, name: str, what: str) -> Any:
        if name not in self.attrs:
            raise self.fail(f"missing attribute '{name}' ({what})")
        return self.nc.getncattr(name)

    def int_att(self, name: str, what: str, default: int | None = None) -> int:
        if default is not None and name not in self.attrs:
            return default
        value = self.raw_att(name, what)
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf" or arr.size != 1:
            raise self.fail(f"attribute '{name}' ({what}) must be one integer, not {value!r}")
        v = arr.reshape(-1)[0]
        if arr.dtype.kind == "f" and (not np.isfinite(v) or float(v) != int(v)):
            raise self.fail(f"attribute '{name}' ({what}) must be an integer, not {value!r}")
        return int(v)

    def float_att(self, name: str, what: str, default: float | None = None) -> float:
        if default is not None and name not in self.attrs:
            return default
        value = self.raw_att(name, what)
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf" or arr.size != 1:
            raise self.fail(f"attribute '{name}' ({what}) must be one number, not {value!r}")
        v = arr.reshape(-1)[0]
        if arr.dtype == np.float32:
            return float(str(v))  # the shortest decimal that rounds to this float32 (0.1, not 0.100000001)
        return float(v)

    def str_att(self, name: str, what: str, default: str | None = None) -> str:
        if default is not None and name not in self.attrs:
            return default
        value = self.raw_att(name, what)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, str):
            return value
        arr = np.asarray(value)
        if arr.dtype.kind in "SU":
            return "".join(x.decode() if isinstance(x, bytes) else str(x) for x in arr.reshape(-1))
        raise self.fail(f"attribute '{name}' ({what}) must be a string, not {value!r}")

    def dim(self, name: str, what: str, required: bool = True) -> int | None:
        d = self.nc.dimensions.get(name)
        if d is None:
            if required:
                raise self.fail(f"missing dimension '{name}' ({what})")
            return None
        return len(d)

    def var(self, name: str, what: str, length: int | None = None) -> np.ndarray:
        v = self.nc.variables.get(name)
        if v is None:
            raise self.fail(f"missing variable '{name}' ({what})")
        if v.dtype is str or getattr(v.dtype, "kind", "O") == "O":
            raise self.fail(f"variable '{name}' ({what}) holds strings, not numbers")
        try:
            data = np.asarray(v[...]).reshape(-1)
        except Exception as e:  # truncated file, HDF5 errors
            raise self.fail(f"cannot read variable '{name}' ({what}): {e}") from e
        if data.dtype.kind == "S":
            data = data.view(np.int8)
        if length is not None and data.shape[0] != length:
            raise self.fail(f"variable '{name}' ({what}) has {data.shape[0]} values, expected {length}")
        return data

    def int_var(self, name: str, what: str, length: int | None, limit: int) -> np.ndarray:
        data = self.var(name, what, length)
        if data.dtype.kind not in "iu":
            if data.dtype.kind != "f" or not np.all(np.isfinite(data)) or np.any(data != np.rint(data)):
                raise self.fail(f"variable '{name}' ({what}) must hold integers, not {data.dtype}")
        if data.size and (data.min() < 0 or data.max() > limit):
            bad = int(np.flatnonzero((data < 0) | (data > limit))[0])
            raise self.fail(
                f"variable '{name}' ({what}): value {data[bad]} at position {bad} is out of range"
            )
        return data


def read_datasets(path: str | os.PathLike[str], *, role: str = "input") -> list[DataSet]:
    """Read every data set of a DSSTNE dataset NetCDF file, in file order.

    Args:
        path: the file (``generateNetCDF`` output, a file written by :func:`write_datasets`, or any file in
            the original's multi-dataset layout).
        role: how Char/UChar values are converted to float32: ``"input"`` (the original's input-layer
            rules), ``"target"`` (its loss-target rules) or ``"raw"`` (no scaling).

    Raises:
        FormatError: the file is missing, not NetCDF, or breaks a rule of the original's reader; the
            message names the file and the attribute, dimension or variable.

    """
    if role not in _ROLES:
        raise DataError(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
    path = os.fspath(path)
    nc = _open(path)
    try:
        r = _Reader(nc, path)
        count = r.int_att("datasets", "number of datasets in the file")
        if count < 1:
            raise r.fail(f"attribute 'datasets' is {count}: the file holds no dataset")
        return [_read_one(r, n, role) for n in range(count)]
    finally:
        nc.close()


def read_dataset(path: str | os.PathLike[str], name: str | None = None, *, role: str = "input") -> DataSet:
    """Read one data set of a file: the one called `name`, or the only one when `name` is None."""
    sets = read_datasets(path, role=role)
    if name is None:
        if len(sets) != 1:
            names = ", ".join(repr(s.name) for s in sets)
            raise FormatError(
                f"{os.fspath(path)}: holds {len(sets)} datasets ({names}); name the one to read"
            )
        return sets[0]
    for s in sets:
        if s.name == name:
            return s
    names = ", ".join(repr(s.name) for s in sets)
    raise FormatError(f"{os.fspath(path)}: no dataset named {name!r} (the file holds {names})")


def _read_one(r: _Reader, n: int, role: str) -> DataSet:
    s = str(n)
    name = r.str_att("name" + s, f"name of dataset {n}")
    label = f"dataset {n} ('{name}')"

    def fail(message: str) -> FormatError:
        return r.fail(f"{label}: {message}")

    # The original's loader spells it dataType; its own engine writer wrote datatype (never readable).
    code = r.int_att("dataType" + s, f"element type of {label}")
    try:
        data_type = DataType(code)
    except ValueError:
        raise fail(f"invalid data type {code} in attribute 'dataType{n}'") from None
    if data_type not in READABLE_TYPES:
        raise fail(
            f"data type {data_type.name} ({code}) in attribute 'dataType{n}' is not supported "
            "(the original aborts with 'invalid dataset type'; use UInt, Int, Float, Double, Char or UChar)"
        )
    attributes = r.int_att("attributes" + s, f"attribute bits of {label}")
    if attributes < 0:
        raise fail(f"attribute 'attributes{n}' is negative ({attributes})")
    kind = r.int_att("kind" + s, f"kind of {label}", default=0)
    examples = r.dim("examplesDim" + s, f"number of examples of {label}")
    assert examples is not None
    if examples == 0:
        raise fail(f"dimension 'examplesDim{n}' is zero: no examples")
    unique = r.dim("uniqueExamplesDim" + s, "unique examples", required=False)
    unique = examples if unique is None else unique
    if unique == 0:
        raise fail(f"dimension 'uniqueExamplesDim{n}' is zero")
    dimensions = r.int_att("dimensions" + s, f"number of axes of {label}")
    if not 1 <= dimensions <= 3:
        raise fail(f"attribute 'dimensions{n}' is {dimensions}; it must be 1, 2 or 3")
    width = r.int_att("width" + s, f"width of {label}")
    height = r.int_att("height" + s, f"height of {label}") if dimensions > 1 else 1
    length = r.int_att("length" + s, f"length of {label}") if dimensions > 2 else 1
    for axis, size in (("width", width), ("height", height), ("length", length)):
        if not 1 <= size <= _U32_MAX:
            raise fail(f"attribute '{axis}{n}' is {size}; every size must be in [1, 2^32)")
    stride = width * height * length
    if stride > _U32_MAX:
        raise fail(f"{width} x {height} x {length} units per example exceed 2^32")

    sparse = bool(attributes & DataSetAttributes.Sparse)
    boolean = bool(attributes & DataSetAttributes.Boolean)
    indexed = bool(attributes & DataSetAttributes.Indexed)
    weighted = bool(attributes & DataSetAttributes.Weighted)
    offsets = "u4"
    exact: np.ndarray | None = None
    start = end = index = value = data = None

    if sparse:
        nnz = r.dim("sparseDataDim" + s, f"number of datapoints of sparse {label}")
        assert nnz is not None
        if nnz == 0:
            raise fail(f"dimension 'sparseDataDim{n}' is zero: a sparse data set without datapoints")
        start_raw = r.int_var("sparseStart" + s, f"start offsets of {label}", unique, nnz)
        end_raw = r.int_var("sparseEnd" + s, f"end offsets of {label}", unique, nnz)
        offsets = "u4" if start_raw.dtype == np.uint32 and end_raw.dtype == np.uint32 else "u8"
        start = start_raw.astype(np.uint64)
        end = end_raw.astype(np.uint64)
        bad = np.flatnonzero(start > end)
        if bad.size:
            e = int(bad[0])
            raise fail(
                f"inconsistent sparse offsets: example {e} starts at {start[e]} but ends at {end[e]} "
                f"(variables 'sparseStart{n}', 'sparseEnd{n}')"
            )
        index = r.int_var("sparseIndex" + s, f"feature indices of {label}", nnz, _U32_MAX).astype(np.uint32)
        _check_sparse_index(fail, n, start, end, index, stride)
        if not boolean:
            raw = r.var("sparseData" + s, f"values of analog sparse {label}", nnz)
            value, exact = _convert(raw, data_type, role, False, fail, f"sparseData{n}")
    else:
        size = r.dim("dataDim" + s, f"number of values of dense {label}")
        assert size is not None
        raw = r.var("data" + s, f"values of dense {label}", size)
        if boolean:
            # one column index per stored example, expanded to one-hot rows (value 1 in the element type)
            if size != unique:
                raise fail(f"dense Boolean data 'data{n}' has {size} entries for {unique} examples")
            cols = raw.astype(np.float64) if raw.dtype.kind == "f" else raw.astype(np.int64)
            bad = np.flatnonzero((cols < 0) | (cols >= stride) | (cols != np.floor(cols)))
            if bad.size:
                e = int(bad[0])
                raise fail(
                    f"dense Boolean data 'data{n}': column {raw[e]} of example {e} is not in [0, {stride})"
                )
            one = _to_float(np.ones(1, _NUMPY[data_type]), data_type, role, True)[0]
            zero = _to_float(np.zeros(1, _NUMPY[data_type]), data_type, role, True)[0]
            data = np.full((unique, stride), zero, dtype=np.float32)
            data[np.arange(unique), cols.astype(np.int64)] = one
        else:
            if size != unique * stride:
                raise fail(
                    f"dense data 'data{n}' has {size} values; {unique} examples x {stride} units "
                    f"need {unique * stride}"
                )
            flat, exact = _convert(raw, data_type, role, True, fail, f"data{n}")
            data = flat.reshape(unique, stride)

    weights = None
    if weighted:
        w = r.var("dataWeight" + s, f"example weights of Weighted {label}", examples)
        weights = w.astype(np.float32)
        if not np.all(np.isfinite(weights)):
            raise fail(f"variable 'dataWeight{n}' holds a weight that is not finite")
    rows = None
    if indexed:
        rows = r.int_var("index" + s, f"example rows of Indexed {label}", examples, _U32_MAX)
        if rows.size and int(rows.max()) >= unique:
            e = int(np.flatnonzero(rows >= unique)[0])
            raise fail(f"variable 'index{n}': example {e} points at row {rows[e]} of {unique} stored rows")
        rows = rows.astype(np.uint32)
    elif unique != examples:
        raise fail(f"{unique} unique examples for {examples} examples, but the set is not Indexed")

    ds = DataSet(
        name=name,
        dims=(width, height, length),
        examples=examples,
        start=start,
        end=end,
        index=index,
        value=value,
        data=data,
        weights=weights,
        indexed=rows,
        ignore_zero=bool(attributes & DataSetAttributes.SparseIgnoreZero),
    )
    _STORED[ds] = StoredAs(
        data_type=data_type,
        role=role,
        kind=kind,
        extra_attributes=attributes & ~int(_NAMED_BITS),
        boolean_dense=boolean and not sparse,
        offsets=offsets,
        dimensions=dimensions,
        exact=exact,
    )
    return ds


def _check_sparse_index(
    fail: Any, n: int, start: np.ndarray, end: np.ndarray, index: np.ndarray, stride: int
) -> None:
    """Every datapoint an example lists must be a unit of the set (index < width*height*length)."""
    over = index >= stride
    if not over.any():
        return
    # Only datapoints inside some example's [start, end) matter; report the first such one.
    lengths = (end - start).astype(np.int64)
    owners = np.repeat(np.arange(start.shape[0]), lengths)
    positions = np.repeat(start.astype(np.int64) - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    positions += np.arange(positions.shape[0])
    hit = np.flatnonzero(over[positions])
    if hit.size:
        k = int(hit[0])
        p = int(positions[k])
        raise fail(
            f"variable 'sparseIndex{n}': example {int(owners[k])} lists unit {int(index[p])} "
            f"(datapoint {p}), but the set has only {stride} units"
        )


def _convert(
    raw: np.ndarray, data_type: DataType, role: str, dense: bool, fail: Any, var: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert stored values (any NetCDF type) to float32; also return them when float32 cannot hold them."""
    typed = _cast(raw, data_type, fail, var)
    values = _to_float(typed, data_type, role, dense)
    if data_type == DataType.Float and not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise fail(f"variable '{var}': value at position {bad} is not finite")
    if data_type == DataType.Double:
        if not np.all(np.isfinite(typed)):
            bad = int(np.flatnonzero(~np.isfinite(typed))[0])
            raise fail(f"variable '{var}': value at position {bad} is not finite")
        if not np.all(np.isfinite(values)):
            raise fail(f"variable '{var}': values exceed the float32 range")
    lossy = data_type in (DataType.Double, DataType.Int, DataType.UInt) and not np.array_equal(
        values.astype(typed.dtype), typed
    )
    return values, (typed if lossy else None)


def _cast(raw: np.ndarray, data_type: DataType, fail: Any, var: str) -> np.ndarray:
    """Convert what the file holds to the element type, as the NetCDF library does for the original."""
    target = np.dtype(_NUMPY[data_type])
    if raw.dtype == target:
        return raw
    if target.kind in "iu":
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)):
                raise fail(f"variable '{var}' holds values that are not finite for {data_type.name}")
            raw = np.trunc(raw)
        info = np.iinfo(target)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise fail(f"variable '{var}' holds values outside the range of {data_type.name}")
    return raw.astype(target)


def renormalized(dataset: DataSet, role: str) -> DataSet:
    """Return the data set with its Char/UChar values converted for another `role`.

    `role` is "input", "target" or "raw".

    Sets of other element types, and sets not read from a file, are returned unchanged.
    """
    if role not in _ROLES:
        raise DataError(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
    st = _STORED.get(dataset)
    if st is None or st.role == role or st.data_type not in (DataType.UChar, DataType.RGB8, DataType.Char):
        return dataset
    what = f"dataset '{dataset.name}'"
    fields = {k: v for k, v in dataset.__dict__.items() if k != "_uploads"}
    if dataset.is_sparse:
        if dataset.value is not None:
            raw = _from_float(dataset.value, st.data_type, st.role, False, what)
            fields["value"] = _to_float(raw, st.data_type, role, False)
    else:
        raw = _from_float(dataset.data, st.data_type, st.role, True, what)
        fields["data"] = _to_float(raw, st.data_type, role, True).reshape(dataset.data.shape)
    out = DataSet(**fields)
    _STORED[out] = StoredAs(**{**st.__dict__, "role": role, "exact": None})
    return out


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------

_LIBNETCDF: list[Any] = []


def _libnetcdf() -> Any:
    """Find the NetCDF C library netCDF4 uses (among the process's mapped files); None if not found."""
    if not _LIBNETCDF:
        lib = None
        try:
            import ctypes

            with open("/proc/self/maps", encoding="utf-8") as f:
                paths = [line.split()[-1] for line in f if "libnetcdf" in line and "/" in line]
            if paths:
                lib = ctypes.CDLL(paths[0])
        except (OSError, ImportError):
            lib = None
        _LIBNETCDF.append(lib)
    return _LIBNETCDF[0]


def put_text(nc: Any, name: str, value: str) -> None:
    """Write a text (NC_CHAR) global attribute; "" gets length 0, as the original writes it.

    netCDF4 writes "" as one NUL character, which C++ readers see as a 1-character string; the C library
    call writes the zero-length attribute the original's ``putAtt(name, "")`` writes.
    """
    if value == "":
        lib = _libnetcdf()
        if lib is not None:
            import ctypes

            rc = lib.nc_put_att_text(
                ctypes.c_int(nc._grpid), ctypes.c_int(-1), name.encode(), ctypes.c_size_t(0), None
            )
            if rc == 0:
                return
    nc.setncattr(name, value)


def write_datasets(
    path: str | os.PathLike[str],
    datasets: DataSet | Sequence[DataSet],
    *,
    data_types: Sequence[DataType | str | None] | None = None,
) -> None:
    """Write data sets to one NetCDF file in the ``generateNetCDF`` layout (index-suffixed, NetCDF-4).

    The write is atomic: the file appears complete or not at all, and a failure leaves any previous file
    at `path` intact. Element types: ``data_types[i]`` when given, else the type the set was read with,
    else UInt for Boolean sparse sets and Float otherwise. Values must be exactly representable in the
    chosen type (e.g. UChar input data must be ``k/256 - 0.5``); otherwise :class:`DataError` is raised.
    Sparse start/end offsets are written as uint32 (as ``generateNetCDF`` does) unless the set was read
    with uint64 offsets or holds 2^32 datapoints or more.
    """
    if isinstance(datasets, DataSet):
        datasets = [datasets]
    datasets = list(datasets)
    if not datasets:
        raise DataError("write_datasets needs at least one dataset")
    if data_types is not None and len(data_types) != len(datasets):
        raise DataError(f"{len(data_types)} data types for {len(datasets)} datasets")
    plans = [_plan(ds, None if data_types is None else data_types[i]) for i, ds in enumerate(datasets)]
    import netCDF4

    with atomic_path(path, suffix=".nc.tmp") as tmp:
        nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            nc.set_fill_off()
            nc.setncattr("datasets", np.uint32(len(datasets)))
            for n, plan in enumerate(plans):
                _write_one(nc, n, plan)
        finally:
            nc.close()


@dataclass
class _Plan:
    ds: DataSet
    data_type: DataType
    attributes: int
    kind: int
    dimensions: int
    offsets: str
    values: np.ndarray | None  # typed values to store (sparseData or data)
    unique: int


def _plan(ds: DataSet, requested: DataType | str | None) -> _Plan:
    """Check a set against the original reader's rules and compute what to store (before opening the file)."""
    what = f"dataset '{ds.name}'"
    if not isinstance(ds, DataSet):
        raise DataError(f"expected a DataSet, got {type(ds).__name__}")
    st = _STORED.get(ds)
    if requested is not None:
        data_type = _data_type(requested, what)
    elif st is not None:
        data_type = st.data_type
    else:
        data_type = DataType.UInt if ds.is_boolean else DataType.Float
    if data_type not in READABLE_TYPES:
        raise DataError(f"{what}: data type {data_type.name} cannot be read by the original; not written")
    role = st.role if st is not None else "input"
    if ds.examples <= 0:
        raise DataError(f"{what} has no examples")
    attributes = int(ds.attributes) | (st.extra_attributes if st is not None else 0)
    boolean_dense = st is not None and st.boolean_dense and not ds.is_sparse
    values: np.ndarray | None
    if ds.is_sparse:
        unique = int(ds.start.shape[0])
        nnz = int(ds.index.shape[0])
        if nnz == 0:
            raise DataError(f"{what}: a sparse data set without datapoints cannot be read by the original")
        if ds.value is None:
            values = None
        else:
            values = _typed(ds.value, data_type, role, False, st, what)
        offsets = st.offsets if st is not None else "u4"
        if max(nnz, int(ds.end.max()) if unique else 0) > _U32_MAX:
            offsets = "u8"
    else:
        data = np.asarray(ds.data, dtype=np.float32).reshape(-1, ds.stride)
        unique = int(data.shape[0])
        offsets = "u4"
        if boolean_dense:
            raw = _from_float(data, data_type, role, True, what)
            nonzero = raw != 0
            if not (np.all(nonzero.sum(axis=1) == 1) and np.all(raw[nonzero] == 1)):
                raise DataError(f"{what}: dense Boolean rows must hold exactly one 1 (one-hot) to be written")
            values = np.argmax(nonzero, axis=1).astype(
                _NUMPY[data_type] if data_type != DataType.Int else np.int32
            )
            attributes |= int(DataSetAttributes.Boolean)
        else:
            values = _typed(data.reshape(-1), data_type, role, True, st, what)
    dims = ds.dimensions
    if st is not None and dims <= st.dimensions <= 3:
        dims = st.dimensions
    return _Plan(ds, data_type, attributes, st.kind if st is not None else 0, dims, offsets, values, unique)


def _typed(
    x: np.ndarray, data_type: DataType, role: str, dense: bool, st: StoredAs | None, what: str
) -> np.ndarray:
    if st is not None and st.exact is not None and st.data_type == data_type:
        # float32 cannot hold the stored values exactly: keep them while the set's values are unchanged
        exact = st.exact
        if exact.size == x.size and np.array_equal(
            exact.astype(np.float32).reshape(-1), np.asarray(x, np.float32).reshape(-1)
        ):
            out = exact.reshape(-1)
            if out.dtype == np.int64 and (not out.size or (out.min() >= -(2**31) and out.max() < 2**31)):
                out = out.astype(np.int32)  # the original writes Int as NetCDF int
            return out
    return _from_float(x, data_type, role, dense, what)


def _data_type(value: DataType | str, what: str) -> DataType:
    if isinstance(value, DataType):
        return value
    if isinstance(value, str):
        for t in DataType:
            if t.name.lower() == value.lower():
                return t
    try:
        return DataType(int(value))
    except (TypeError, ValueError):
        raise DataError(f"{what}: unknown data type {value!r}") from None


def _write_one(nc: Any, n: int, plan: _Plan) -> None:
    ds, s = plan.ds, str(n)
    put_text(nc, "name" + s, ds.name)
    nc.setncattr("attributes" + s, np.uint32(plan.attributes))
    nc.setncattr("kind" + s, np.uint32(plan.kind))
    nc.setncattr("dataType" + s, np.uint32(int(plan.data_type)))
    nc.setncattr("dimensions" + s, np.uint32(plan.dimensions))
    nc.setncattr("width" + s, np.uint32(ds.dims[0]))
    if plan.dimensions > 1:
        nc.setncattr("height" + s, np.uint32(ds.dims[1]))
    if plan.dimensions > 2:
        nc.setncattr("length" + s, np.uint32(ds.dims[2]))
    examples_dim = "examplesDim" + s
    nc.createDimension(examples_dim, ds.examples)
    rows_dim = examples_dim
    if ds.indexed is not None:
        rows_dim = "uniqueExamplesDim" + s
        nc.createDimension(rows_dim, plan.unique)
    nc_type = _NC_TYPE[plan.data_type]
    if plan.data_type == DataType.Int and plan.values is not None and plan.values.dtype == np.int64:
        nc_type = "i8"

    def put(name: str, nctype: str, dim: str, values: np.ndarray) -> None:
        var = nc.createVariable(name, nctype, (dim,), fill_value=False)
        if nctype == "S1":
            values = np.ascontiguousarray(values, dtype=np.int8).view("S1")
        var[:] = values

    if ds.is_sparse:
        data_dim = "sparseDataDim" + s
        nc.createDimension(data_dim, int(ds.index.shape[0]))
        off_type = np.uint32 if plan.offsets == "u4" else np.uint64
        put("sparseStart" + s, plan.offsets, rows_dim, ds.start.astype(off_type))
        put("sparseEnd" + s, plan.offsets, rows_dim, ds.end.astype(off_type))
        put("sparseIndex" + s, "u4", data_dim, ds.index.astype(np.uint32))
        if plan.values is not None:
            put("sparseData" + s, nc_type, data_dim, plan.values)
    else:
        assert plan.values is not None
        data_dim = "dataDim" + s
        nc.createDimension(data_dim, int(plan.values.shape[0]))
        put("data" + s, nc_type, data_dim, plan.values)
    if ds.weights is not None:
        put("dataWeight" + s, "f4", examples_dim, ds.weights.astype(np.float32))
    if ds.indexed is not None:
        put("index" + s, "u4", examples_dim, ds.indexed.astype(np.uint32))
