"""MovieLens rating files -> DSSTNE's text format, or straight to a :class:`~dsstne.DataSet`.

Three layouts are read (detected from the file name, or given as ``layout``):

* ``ratings.csv`` (ML-20M, ML-25M, ml-latest): a header, then ``userId,movieId,rating,timestamp``;
* ``u.data`` (ML-100K): ``user<TAB>item<TAB>rating<TAB>timestamp``;
* ``ratings.dat`` (ML-1M, ML-10M): ``UserID::MovieID::Rating::Timestamp``.

:func:`ratings_to_text` writes what the original's ``samples/movielens/convert_ratings.awk`` writes for
``ratings.csv``: one line per run of consecutive ratings of a user,
``user<TAB>movie,timestamp:movie,timestamp:...`` (``value="rating"`` puts the rating there instead,
``value=None`` writes the movie alone). :func:`ratings_to_dataset` builds the dataset ``generateNetCDF -c``
would build from that text: users and movies numbered in order of first appearance, a user's movies in
file order, the width rounded up to a multiple of 128. Parsing is vectorised (about a second per 10M
ratings).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..dataset import DataSet
from ..errors import DataError, FormatError
from .atomic import atomic_path
from .text_format import round_up_width, save_index

__all__ = ["MovieLensData", "Ratings", "ratings_to_dataset", "ratings_to_text", "read_ratings"]

_LAYOUTS = ("csv", "udata", "dat")


@dataclass(frozen=True)
class Ratings:
    """Ratings in file order: user id, movie id, rating and unix timestamp per row."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.users.shape[0])


@dataclass(frozen=True)
class MovieLensData:
    """A dataset built from ratings, with the MovieLens ids of its rows and units."""

    dataset: DataSet
    users: np.ndarray  # MovieLens user id of each example (row)
    items: np.ndarray  # MovieLens movie id of each unit (feature index)

    def save_indexes(
        self, feature_index: str | os.PathLike[str], sample_index: str | os.PathLike[str]
    ) -> None:
        """Write the feature (movie) and sample (user) index files ``generateNetCDF`` would write."""
        save_index(feature_index, {str(m): i for i, m in enumerate(self.items.tolist())})
        save_index(sample_index, {str(u): i for i, u in enumerate(self.users.tolist())})


def _layout(path: str, layout: str | None) -> str:
    if layout is not None:
        if layout not in _LAYOUTS:
            raise DataError(f"layout must be one of {', '.join(_LAYOUTS)}, not {layout!r}")
        return layout
    base = os.path.basename(path).lower()
    if base.endswith(".csv"):
        return "csv"
    if base.endswith(".dat"):
        return "dat"
    if base.endswith(".data") or base.startswith("u"):
        return "udata"
    raise FormatError(
        f"{path}: cannot tell the MovieLens layout from the name (pass layout='csv', 'udata' or 'dat')"
    )


def read_ratings(path: str | os.PathLike[str], *, layout: str | None = None) -> Ratings:
    """Read a MovieLens ratings file (``ratings.csv``, ``u.data`` or ``ratings.dat``) in file order.

    Raises:
        FormatError: the file cannot be read, or a line does not hold four numbers (names file and line).

    """
    path = os.fspath(path)
    kind = _layout(path, layout)
    try:
        with open(path, "rb") as f:
            head = f.readline()
            raw = f.read() if kind == "dat" else b""
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from e
    header = any(c.isalpha() for c in head.decode("utf-8", "replace"))
    first_line = 2 if header else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
        warnings.simplefilter("error", DeprecationWarning)
        try:
            if kind == "dat":
                # "::" separators: translate to blanks, then numpy's C parser (fromstring)
                body = raw if header else head + raw
                text = body.translate(bytes.maketrans(b":\r", b"  "))
                lines = text.count(b"\n") + (0 if text.endswith(b"\n") or not text.strip() else 1)
                numbers = np.fromstring(text, dtype=np.float64, sep=" ")
                if numbers.shape[0] != 4 * lines:
                    raise ValueError("field count")
                table = numbers.reshape(-1, 4)
            else:
                table = np.loadtxt(
                    path,
                    delimiter="," if kind == "csv" else None,
                    skiprows=first_line - 1,
                    dtype=np.float64,
                    ndmin=2,
                    comments=None,
                    encoding="utf-8",
                )
                if table.size and table.shape[1] != 4:
                    raise ValueError("field count")
        except (ValueError, DeprecationWarning):
            _find_bad_line(path, first_line)
            raise FormatError(f"{path}: cannot parse the ratings") from None
    table = table.reshape(-1, 4)
    ids = table[:, :2]
    if table.size and (np.any(ids < 0) or np.any(ids != np.floor(ids))):
        row = int(np.flatnonzero(np.any((ids < 0) | (ids != np.floor(ids)), axis=1))[0])
        raise FormatError(
            f"{path}: line {row + first_line}: user and movie ids must be non-negative integers"
        )
    return Ratings(
        users=table[:, 0].astype(np.int64),
        items=table[:, 1].astype(np.int64),
        ratings=table[:, 2].astype(np.float32),
        timestamps=table[:, 3].astype(np.int64),
    )


def _find_bad_line(path: str, first_line: int) -> None:
    """Raise for the first line that is not four numbers (slow path, only after the fast parse failed)."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for k, line in enumerate(lines[first_line - 1 :]):
        lineno = k + first_line
        fields = line.strip(b"\r").replace(b"::", b",").replace(b"\t", b",").split(b",")
        if fields == [b""]:
            if lineno == len(lines):  # the end of the last line
                continue
            raise FormatError(f"{path}: line {lineno} is empty")
        if len(fields) != 4:
            raise FormatError(f"{path}: line {lineno}: expected 4 fields, found {len(fields)}")
        for item in fields:
            try:
                float(item)
            except ValueError:
                text = item.decode(errors="replace")
                raise FormatError(f"{path}: line {lineno}: {text!r} is not a number") from None


def _value_column(r: Ratings, value: str | None) -> np.ndarray | None:
    if value is None:
        return None
    if value == "timestamp":
        return r.timestamps
    if value == "rating":
        return r.ratings
    raise DataError(f"value must be 'timestamp', 'rating' or None, not {value!r}")


def ratings_to_text(
    source: str | os.PathLike[str] | Ratings,
    output: str | os.PathLike[str],
    *,
    value: str | None = "timestamp",
    layout: str | None = None,
) -> int:
    """Write ratings in DSSTNE's text format (as ``convert_ratings.awk``); returns the number of lines.

    A new line starts whenever the user changes from one rating to the next (MovieLens files are sorted by
    user, so that is one line per user).
    """
    r = source if isinstance(source, Ratings) else read_ratings(source, layout=layout)
    vals = _value_column(r, value)
    n = len(r)
    if n == 0:
        raise FormatError(
            f"{os.fspath(source) if not isinstance(source, Ratings) else '<ratings>'}: no ratings"
        )
    breaks = np.flatnonzero(r.users[1:] != r.users[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [n]))
    items = r.items.tolist()
    if vals is None:
        tok = list(map(str, items))
    else:
        # integers print as integers; ratings with repr (3.5, 4.0), the shortest exact decimal
        text_vals = (
            map(str, vals.tolist()) if vals.dtype.kind in "iu" else map(repr, vals.astype(float).tolist())
        )
        tok = [f"{i},{v}" for i, v in zip(items, text_vals, strict=True)]
    users = r.users[starts].tolist()
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(
            f"{u}\t{':'.join(tok[a:b])}\n"
            for u, a, b in zip(users, starts.tolist(), ends.tolist(), strict=True)
        )
    return int(starts.shape[0])


def _first_appearance(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label of each new index, index of each element) numbering ids in order of first appearance."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = np.arange(order.shape[0])
    return uniq[order], rank[inverse.reshape(-1)]


def ratings_to_dataset(
    source: str | os.PathLike[str] | Ratings,
    name: str,
    *,
    value: str | None = None,
    layout: str | None = None,
) -> MovieLensData:
    """Build the dataset ``generateNetCDF -c`` makes from the converted ratings, without the text step.

    `value` None gives an indicator (Boolean) set; ``"rating"`` or ``"timestamp"`` an analog set of those
    values (float32). Examples are users and units movies, both numbered in order of first appearance; a
    user's movies keep file order (all of a user's ratings are gathered even when not consecutive).
    """
    r = source if isinstance(source, Ratings) else read_ratings(source, layout=layout)
    if len(r) == 0:
        raise FormatError("no ratings to convert")
    vals = _value_column(r, value)
    user_labels, rows = _first_appearance(r.users)
    item_labels, cols = _first_appearance(r.items)
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=user_labels.shape[0])
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.uint64)
    ds = DataSet(
        name=name,
        dims=(round_up_width(item_labels.shape[0]), 1, 1),
        examples=int(user_labels.shape[0]),
        start=offsets[:-1].copy(),
        end=offsets[1:].copy(),
        index=cols[order].astype(np.uint32),
        value=None if vals is None else vals[order].astype(np.float32),
    )
    return MovieLensData(ds, user_labels, item_labels)
