"""DataSet: the examples a network reads, dense (numpy) or sparse (scipy CSR), with DSSTNE's attributes."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .enums import DataSetAttributes
from .errors import DataError


@dataclass(eq=False)
class DataSet:
    """A named set of examples, resident on the host until a network uploads it to its target.

    Sparse data is compressed sparse rows: example ``e`` holds ``index[start[e]:end[e]]`` with values
    ``value[start[e]:end[e]]`` (``value is None`` for Boolean data, every value 1). Dense data is a
    row-major ``[unique examples, width*height*length]`` float array. ``weights`` (one per example) make it
    Weighted; ``indexed`` (example -> stored row) makes it Indexed.
    """

    name: str
    dims: tuple[int, int, int]
    examples: int
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    index: np.ndarray | None = None
    value: np.ndarray | None = None
    data: np.ndarray | None = None
    weights: np.ndarray | None = None
    indexed: np.ndarray | None = None
    ignore_zero: bool = False
    # Engine copies per context; weak keys, so a network's device memory goes with the network.
    _uploads: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_scipy(
        cls,
        matrix: sp.spmatrix | sp.sparray,
        name: str,
        *,
        boolean: bool | None = None,
        width: int | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        ignore_zero: bool = False,
    ) -> DataSet:
        """Build a sparse dataset from a scipy sparse matrix (rows = examples, columns = units).

        ``boolean=None`` stores values only when some stored value differs from 1. ``width`` may widen
        the dataset beyond the matrix's columns (e.g. DSSTNE's round-up to a multiple of 128).
        """
        csr = sp.csr_matrix(matrix)
        csr.sort_indices()
        n_rows, n_cols = csr.shape
        width = n_cols if width is None else int(width)
        if width < n_cols:
            raise DataError(f"dataset '{name}': width {width} is smaller than the matrix's {n_cols} columns")
        values = np.asarray(csr.data, dtype=np.float32)
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            row = int(np.searchsorted(csr.indptr, bad, side="right") - 1)
            raise DataError(f"dataset '{name}': value of example {row} unit {csr.indices[bad]} is not finite")
        if boolean is None:
            boolean = bool(np.all(values == 1.0))
        indptr = csr.indptr.astype(np.uint64)
        return cls(
            name=name,
            dims=(width, 1, 1),
            examples=n_rows,
            start=indptr[:-1].copy(),
            end=indptr[1:].copy(),
            index=csr.indices.astype(np.uint32),
            value=None if boolean else values,
            weights=_weights(name, weights, n_rows),
            ignore_zero=ignore_zero,
        )

    @classmethod
    def from_numpy(
        cls, array: np.ndarray, name: str, *, weights: Sequence[float] | np.ndarray | None = None
    ) -> DataSet:
        """Build a dense dataset from a 2-D array [examples, units] (3-D/4-D: [examples, length, height, width])."""
        a = np.asarray(array, dtype=np.float32)
        if a.ndim < 2 or a.ndim > 4:
            raise DataError(f"dataset '{name}': dense data must have 2 to 4 dimensions, not {a.ndim}")
        if a.shape[0] == 0:
            raise DataError(f"dataset '{name}' has no examples")
        if not np.all(np.isfinite(a)):
            where = np.argwhere(~np.isfinite(a))[0]
            raise DataError(f"dataset '{name}': value at {tuple(int(i) for i in where)} is not finite")
        shape = a.shape[1:][::-1] + (1,) * (4 - a.ndim)
        return cls(
            name=name,
            dims=(int(shape[0]), int(shape[1]), int(shape[2])),
            examples=a.shape[0],
            data=np.ascontiguousarray(a.reshape(a.shape[0], -1)),
            weights=_weights(name, weights, a.shape[0]),
        )

    # ------------------------------------------------------------------ properties
    @property
    def is_sparse(self) -> bool:
        """True for sparse (CSR) data."""
        return self.index is not None

    @property
    def is_boolean(self) -> bool:
        """True for sparse data without stored values (every listed unit is 1)."""
        return self.is_sparse and self.value is None

    @property
    def width(self) -> int:
        """Units along x."""
        return self.dims[0]

    @property
    def stride(self) -> int:
        """Units of one example (width x height x length)."""
        return self.dims[0] * self.dims[1] * self.dims[2]

    @property
    def dimensions(self) -> int:
        """Number of axes (1 to 3)."""
        return 3 if self.dims[2] > 1 else (2 if self.dims[1] > 1 else 1)

    @property
    def attributes(self) -> DataSetAttributes:
        """DSSTNE attribute flags of this dataset."""
        a = DataSetAttributes.NONE
        if self.is_sparse:
            a |= DataSetAttributes.Sparse
        if self.is_boolean:
            a |= DataSetAttributes.Boolean
        if self.ignore_zero:
            a |= DataSetAttributes.SparseIgnoreZero
        if self.indexed is not None:
            a |= DataSetAttributes.Indexed
        if self.weights is not None:
            a |= DataSetAttributes.Weighted
        return a

    @property
    def nnz(self) -> int:
        """Stored datapoints (sparse) or values (dense)."""
        return int(self.index.shape[0]) if self.is_sparse else int(self.data.size)

    def to_scipy(self) -> sp.csr_matrix:
        """Examples as a CSR matrix [examples, stride] (Indexed rows expanded)."""
        if not self.is_sparse:
            return sp.csr_matrix(self.to_numpy())
        rows = np.arange(self.examples) if self.indexed is None else self.indexed.astype(np.int64)
        starts, ends = self.start[rows].astype(np.int64), self.end[rows].astype(np.int64)
        lengths = ends - starts
        take = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        values = np.ones(len(take), np.float32) if self.value is None else self.value[take]
        indptr = np.concatenate(([0], np.cumsum(lengths)))
        return sp.csr_matrix((values, self.index[take].astype(np.int64), indptr), shape=(self.examples, self.stride))

    def to_numpy(self) -> np.ndarray:
        """Examples as a dense float32 array [examples, stride]."""
        if self.is_sparse:
            return self.to_scipy().toarray().astype(np.float32)
        return self.data if self.indexed is None else self.data[self.indexed]

    def __len__(self) -> int:
        return self.examples

    def __repr__(self) -> str:
        kind = ("Boolean sparse" if self.is_boolean else "sparse") if self.is_sparse else "dense"
        return f"DataSet({self.name!r}, {kind}, examples={self.examples}, units={self.stride}, nnz={self.nnz})"

    # ------------------------------------------------------------------ engine side
    def _upload(self, context: Any) -> Any:
        """Return the engine copy of this dataset on `context` (uploaded once per context)."""
        from ._engine import EngineDataSet

        cached = self._uploads.get(context)
        if cached is not None:
            return cached
        attrs = int(self.attributes)
        if self.is_sparse:
            eng = EngineDataSet.sparse(context, self.name, attrs, self.dims, self.examples, self.start, self.end,
                                       self.index, self.value, self.weights, self.indexed)
        else:
            eng = EngineDataSet.dense(context, self.name, attrs, self.dims, self.examples, self.data,
                                      self.weights, self.indexed)
        self._uploads[context] = eng
        return eng


def _weights(name: str, weights: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    if w.shape[0] != n:
        raise DataError(f"dataset '{name}': {w.shape[0]} weights for {n} examples")
    if not np.all(np.isfinite(w)):
        raise DataError(f"dataset '{name}': weights must be finite")
    return w


def as_dataset(data: DataSet | np.ndarray | sp.spmatrix | sp.sparray, name: str) -> DataSet:
    """Accept a DataSet, a numpy array or a scipy sparse matrix wherever examples are expected."""
    if isinstance(data, DataSet):
        return data
    if sp.issparse(data):
        return DataSet.from_scipy(data, name)
    if isinstance(data, np.ndarray):
        return DataSet.from_numpy(data, name)
    raise DataError(f"expected a DataSet, numpy array or scipy sparse matrix for '{name}', got {type(data).__name__}")
