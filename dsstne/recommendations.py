r"""Recommendation files, sample filters, and evaluation from files: the machinery behind ``predict``/``evaluate``.

A recommendation file (the original ``predict`` output, ``utils/NNRecsGenerator.cpp``) has one line per sample::

    <sample>\t<feature>,<score>:<feature>,<score>:...:\n

scores printf-formatted (default ``%4.3f``), a ``:`` after *every* item (the last one too). Samples keep the
order of the input text; output units without a label in the output feature index (the padding from the
round-up of the width to a multiple of 128) are never written.

A filter file uses the text format of ``generateNetCDF`` (``<sample>\t<feature>[,<value>]:...``); by default
every listed (sample, feature) is excluded from that sample's recommendations. ``multiply=True`` restores the
original's rule, ``score *= value`` with a missing value read as 0 (so timestamp-valued histories, as the
MovieLens sample uses, *raise* the scores of seen items instead of removing them).

Everything the ``predict`` and ``evaluate`` commands do is one call here: :func:`generate_recommendations`,
:func:`read_recommendations`, :func:`read_filter`, :func:`evaluate_files`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import scipy.sparse as sp

from . import metrics
from .dataset import DataSet
from .errors import DataError, FormatError
from .formats.atomic import atomic_path
from .formats.movielens import read_ratings
from .formats.text_format import list_input_files, load_index, read_samples, round_up_width, text_lines

if TYPE_CHECKING:
    from .network import Network

__all__ = [
    "DEFAULT_PRECISION",
    "EvaluationReport",
    "FilterResult",
    "PredictSummary",
    "RecommendationWriter",
    "Recommendations",
    "evaluate_files",
    "format_recommendations",
    "generate_recommendations",
    "read_filter",
    "read_recommendations",
    "read_truth",
    "score_format",
    "text_to_dataset",
]

DEFAULT_PRECISION = "4.3f"  # NNRecsGenerator::DEFAULT_SCORE_PRECISION

_PRINTF_FLOAT = re.compile(r"[-+ #0]*\d{0,3}(?:\.\d{1,3})?[fFeEgG]")

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


def score_format(precision: str = DEFAULT_PRECISION) -> str:
    """Return the printf format of one score (``"%4.3f"``) for a ``-p`` value such as ``"4.3f"``.

    Raises:
        DataError: `precision` is not a printf floating-point conversion (``[flags][width][.precision]f|e|g``).

    """
    p = precision[1:] if precision.startswith("%") else precision
    if not _PRINTF_FLOAT.fullmatch(p):
        raise DataError(
            f"score precision {precision!r} is not a printf floating-point format such as '4.3f', '.5g' or '8.2e'"
        )
    return "%" + p


# ----------------------------------------------------------------------------------------------------------
# writing and reading recommendation files
# ----------------------------------------------------------------------------------------------------------


def format_recommendations(
    samples: Sequence[str],
    index: np.ndarray,
    scores: np.ndarray,
    feature_labels: Sequence[str],
    *,
    precision: str = DEFAULT_PRECISION,
) -> str:
    """Format rows of top-k results as recommendation-file lines (see the module docstring).

    `index` and `scores` are ``[rows, k]`` (as :meth:`Network.recommend` returns them); entries ``< 0`` (no
    item) or without a label (``index >= len(feature_labels)``, the padding units) are skipped, as the original
    skips units beyond its output index.
    """
    fmt = "%s," + score_format(precision) + ":"
    index = np.asarray(index)
    scores = np.asarray(scores)
    if index.shape != scores.shape or index.ndim != 2 or index.shape[0] != len(samples):
        raise DataError(f"{len(samples)} samples, index {index.shape} and scores {scores.shape} do not match")
    n_labels = len(feature_labels)
    out = []
    for label, idx, sc in zip(samples, index.tolist(), scores.tolist()):
        items = "".join([fmt % (feature_labels[i], s) for i, s in zip(idx, sc) if 0 <= i < n_labels])
        out.append(f"{label}\t{items}\n")
    return "".join(out)


class RecommendationWriter:
    """Write a recommendation file chunk by chunk, atomically (the file appears complete or not at all).

    Use as a context manager: ``with RecommendationWriter(path, labels) as w: w.write(samples, index, scores)``.
    """

    def __init__(
        self, path: str | os.PathLike[str], feature_labels: Sequence[str], *, precision: str = DEFAULT_PRECISION
    ) -> None:
        """Prepare to write `path`; `feature_labels[i]` names output unit i."""
        score_format(precision)
        self.path = os.fspath(path)
        self.feature_labels = feature_labels
        self.precision = precision
        self.lines = 0
        self.items = 0
        self._ctx: Any = None
        self._file: TextIO | None = None

    def __enter__(self) -> RecommendationWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._file = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed in __exit__)
        return self

    def write(self, samples: Sequence[str], index: np.ndarray, scores: np.ndarray) -> None:
        """Append one line per sample."""
        if self._file is None:
            raise DataError("RecommendationWriter.write outside its 'with' block")
        text = format_recommendations(samples, index, scores, self.feature_labels, precision=self.precision)
        self._file.write(text)
        self.lines += len(samples)
        self.items += text.count(":")

    def __exit__(self, *exc: Any) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        self._ctx.__exit__(*exc)


@dataclass
class Recommendations:
    """A parsed recommendation file: per line, the sample label, its items in rank order and their scores."""

    samples: list[str] = field(default_factory=list)
    items: list[list[str]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def as_dict(self) -> dict[str, list[str]]:
        """Sample label -> its items in rank order (a repeated sample keeps its last line)."""
        return dict(zip(self.samples, self.items))

    def to_matrix(
        self, samples: Sequence[str], items: dict[str, int], *, width: int | None = None, grow: bool = True
    ) -> np.ndarray:
        """Item ids ``[len(samples), width]`` in rank order, ``-1`` padded, for :mod:`dsstne.metrics`.

        `items` maps item labels to column ids; labels it lacks get new ids when `grow` (they can never be
        hits), else ``-1``. Samples without a line get a row of ``-1``.
        """
        by_sample = self.as_dict()
        width = max((len(v) for v in self.items), default=0) if width is None else width
        out = np.full((len(samples), max(width, 1)), -1, dtype=np.int64)
        for r, s in enumerate(samples):
            row = by_sample.get(s)
            if not row:
                continue
            ids = []
            for label in row[:width]:
                i = items.get(label)
                if i is None and grow:
                    i = items[label] = len(items)
                ids.append(-1 if i is None else i)
            out[r, : len(ids)] = ids
        return out


def read_recommendations(path: str | os.PathLike[str]) -> Recommendations:
    """Read a recommendation file (``predict`` output, or the original's).

    Raises:
        FormatError: the file cannot be read, or a line is not ``sample<TAB>feature,score:...`` (names the line).

    """
    path = os.fspath(path)
    out = Recommendations()
    for lineno, line in text_lines(path, "recommendations file"):
        if not line:
            continue
        label, tab, rest = line.partition("\t")
        if not tab:
            raise FormatError(f"{path}: line {lineno}: no TAB after the sample label")
        items: list[str] = []
        scores: list[float] = []
        for token in rest.split(":"):
            if not token:
                continue
            name, comma, score = token.rpartition(",")
            if not comma or not name:
                raise FormatError(f"{path}: line {lineno}: item {token!r} is not 'feature,score'")
            try:
                scores.append(float(score))
            except ValueError:
                raise FormatError(f"{path}: line {lineno}: score {score!r} is not a number") from None
            items.append(name)
        out.samples.append(label)
        out.items.append(items)
        out.scores.append(scores)
    return out


# ----------------------------------------------------------------------------------------------------------
# text input and filters
# ----------------------------------------------------------------------------------------------------------


def _remapped(index: Mapping[str, int]) -> tuple[dict[str, int], np.ndarray]:
    """(label -> dense id 0..n-1, dense id -> real index): new labels then get ids >= n, never colliding."""
    labels = list(index)
    return {label: i for i, label in enumerate(labels)}, np.fromiter(
        (index[label] for label in labels), dtype=np.int64, count=len(labels)
    )


def text_to_dataset(
    path: str | os.PathLike[str],
    features: Mapping[str, int],
    name: str,
    *,
    width: int | None = None,
    analog: bool = False,
) -> tuple[DataSet, list[str]]:
    """Read text-format samples into a sparse dataset (predict's on-the-fly ``generateNetCDF``).

    Features missing from `features` are dropped (the index never grows), as the original does. Samples
    keep their order of first appearance (a repeated label replaces the earlier line). Returns the dataset
    (Boolean unless `analog`) and the sample labels of its rows. `width` defaults to the index's width
    rounded up to a multiple of 128.
    """
    dense_ids, real = _remapped(features)
    samples: dict[str, int] = {}
    parsed = read_samples(path, dense_ids, samples, update_features=False)
    start, end, index, values, rows = parsed.to_csr()
    if not rows:
        raise FormatError(f"{os.fspath(path)}: no samples found")
    labels_by_row = {v: k for k, v in samples.items()}
    real_index = real[index] if index.size else index
    needed = int(real_index.max()) + 1 if real_index.size else 0
    w = round_up_width(max(len(features), needed)) if width is None else int(width)
    if needed > w:
        raise DataError(f"feature index {needed - 1} does not fit the {w} units of dataset '{name}'")
    ds = DataSet(
        name=name,
        dims=(max(w, 1), 1, 1),
        examples=len(rows),
        start=start,
        end=end,
        index=real_index.astype(np.uint32),
        value=values.astype(np.float32) if analog else None,
    )
    return ds, [labels_by_row[r] for r in rows]


@dataclass
class FilterResult:
    """A parsed sample filter: ``matrix[sample, unit]`` holds the filter value of each listed item.

    Unknown samples and features are skipped and counted, not fatal.
    """

    matrix: sp.csr_matrix
    lines: int  # samples (lines, after repeats were merged) read
    unknown_samples: int  # distinct sample labels not among the samples being predicted
    unknown_features: int  # datapoints whose feature is not in the output index
    unknown_feature_labels: int  # distinct such features
    files: list[str]
    warnings: list[str]

    def describe(self) -> str:
        """One line summarising what was applied and what was skipped."""
        applied = self.matrix.nnz
        parts = [f"{applied} items for {int((np.diff(self.matrix.indptr) > 0).sum())} samples"]
        if self.unknown_samples:
            parts.append(f"{self.unknown_samples} samples not in the input skipped")
        if self.unknown_features:
            parts.append(
                f"{self.unknown_features} entries of {self.unknown_feature_labels} features not in the output "
                "index skipped"
            )
        return "; ".join(parts)


def read_filter(
    path: str | os.PathLike[str],
    samples: Mapping[str, int],
    features: Mapping[str, int],
    *,
    width: int | None = None,
) -> FilterResult:
    """Read a sample filter (file or directory, text format) against the samples being predicted.

    `samples` maps sample labels to rows, `features` output-feature labels to units. A later line for the
    same sample replaces the earlier one (as the original); a feature listed twice on a line keeps its last
    value; a missing value is 0.
    """
    files = list_input_files(path)
    s_ids, s_real = _remapped(samples)
    f_ids, f_real = _remapped(features)
    n_s, n_f = len(s_ids), len(f_ids)
    parsed = read_samples(path, f_ids, s_ids, update_features=True)
    start, end, index, values, rows = parsed.to_csr()
    lengths = (end - start).astype(np.int64)
    row_ids = np.repeat(np.asarray(rows, dtype=np.int64), lengths)
    known_row = row_ids < n_s
    known_feature = index < n_f
    keep = known_row & known_feature
    unknown_features = int((known_row & ~known_feature).sum())
    unknown_feature_labels = int(np.unique(index[known_row & ~known_feature]).size)
    r = s_real[row_ids[keep]] if n_s else row_ids[keep]
    c = f_real[index[keep]] if n_f else index[keep]
    v = values[keep].astype(np.float32)
    n_rows = int(s_real.max()) + 1 if n_s else 0
    n_cols = int(width) if width is not None else (int(f_real.max()) + 1 if n_f else 0)
    if c.size and int(c.max()) >= n_cols:
        raise DataError(f"filter feature index {int(c.max())} does not fit {n_cols} output units")
    # keep the last value of a (sample, feature) listed twice
    order = np.lexsort((np.arange(r.size), c, r))
    r, c, v = r[order], c[order], v[order]
    last = np.ones(r.size, dtype=bool)
    if r.size > 1:
        last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    matrix = sp.csr_matrix((v[last], (r[last], c[last])), shape=(n_rows, n_cols), dtype=np.float32)
    return FilterResult(
        matrix=matrix,
        lines=int(np.sum(np.asarray(rows) < n_s)),
        unknown_samples=len(s_ids) - n_s,
        unknown_features=unknown_features,
        unknown_feature_labels=unknown_feature_labels,
        files=files,
        warnings=list(parsed.warnings),
    )


# ----------------------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PredictSummary:
    """What :func:`generate_recommendations` did."""

    output: str
    samples: int
    items_written: int
    k: int
    layer: str
    empty_inputs: int  # samples none of whose features is in the input index
    filter: FilterResult | None
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _labels_by_unit(index: Mapping[str, int], width: int, what: str, path: str) -> list[str]:
    top = max(index.values(), default=-1)
    if top >= width:
        raise DataError(
            f"{path}: the {what} index maps a feature to unit {top}, but the model's layer has only {width} units "
            f"(an index of {len(index)} features needs {round_up_width(top + 1)}): is this the index the model "
            "was trained with?"
        )
    labels: list[str | None] = [None] * (top + 1)
    for label, i in index.items():
        labels[i] = label
    return [lb if lb is not None else "" for lb in labels]


def _unlabeled_units(labels: Sequence[str], width: int) -> np.ndarray:
    named = np.zeros(width, dtype=bool)
    named[: len(labels)] = [bool(lb) for lb in labels]
    return np.flatnonzero(~named)


def generate_recommendations(
    network: Network | str | os.PathLike[str],
    input_text: str | os.PathLike[str],
    input_index: str | os.PathLike[str] | Mapping[str, int],
    output_index: str | os.PathLike[str] | Mapping[str, int],
    output: str | os.PathLike[str],
    *,
    k: int = 100,
    filter_path: str | os.PathLike[str] | None = None,
    multiply_filter: bool = False,
    precision: str = DEFAULT_PRECISION,
    layer: str | None = None,
    dataset: str | None = None,
    batch: int = 1024,
    device: str = "auto",
    math: str = "fp32",
    chunk: int = 16384,
    echo: Echo | None = None,
) -> PredictSummary:
    """Score text-format samples with a trained network and write the top `k` items per sample (``predict``).

    Args:
        network: a :class:`~dsstne.Network`, or the path of a model file (loaded with `batch`, `device` and
            `math`).
        input_text: text-format samples to score (file or directory, ``-r``), converted on the fly; features
            missing from the input index are dropped.
        input_index: the input feature index (``-i``): a file or a mapping label -> unit.
        output_index: the output feature index (``-o``); units it does not name (the round-up padding) are
            never recommended.
        output: the recommendation file to write (``-s``), atomically.
        k: items per sample (``-k``); any k >= 1, a k above the number of items returns every item.
        filter_path: sample filter (``-f``), text format; listed items are excluded.
        multiply_filter: apply the filter as the original does instead: scores of listed items are multiplied
            by the listed value (a missing value is 0), then ranked with the others.
        precision: printf score format (``-p``), default ``4.3f``.
        layer: the layer ranked (``-l``), default ``Output`` (else the first output layer).
        dataset: the input dataset name (``-d`` + ``_input``); checked against the model's input layer.
        batch: minibatch size when `network` is a path (``-b``).
        device: target when `network` is a path.
        math: how a GPU's GEMMs multiply when `network` is a path (:class:`~dsstne.Network`'s `math`).
        chunk: samples scored (and written) per call to the engine.
        echo: receives progress and warning lines.

    Raises:
        DataError, FormatError: unreadable or mismatched files (the message names the file).

    """
    from .network import Network, load

    say = echo or _quiet
    t0 = time.perf_counter()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, not {k!r}")
    score_format(precision)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        say(f"Warning: {message}")

    in_index = dict(input_index) if isinstance(input_index, Mapping) else _load_index(input_index, "input")
    out_index = dict(output_index) if isinstance(output_index, Mapping) else _load_index(output_index, "output")
    in_path = "<input index>" if isinstance(input_index, Mapping) else os.fspath(input_index)
    out_path = "<output index>" if isinstance(output_index, Mapping) else os.fspath(output_index)

    net = network if isinstance(network, Network) else load(network, batch=batch, device=device, math=math)
    inputs = net.descriptor.input_layers
    if len(inputs) != 1:
        raise DataError(f"predict needs a network with one input layer; this one has {len(inputs)}")
    in_layer = inputs[0]
    if dataset is not None and dataset != in_layer.dataset:
        warn(
            f"dataset '{dataset}' is not the model's input dataset '{in_layer.dataset}'; "
            f"feeding the model's only input layer '{in_layer.name}'"
        )
    outputs = [ly.name for ly in net.descriptor.output_layers]
    if layer is None:
        layer = "Output" if "Output" in outputs else (outputs[0] if outputs else None)
        if layer is None:
            raise DataError("the network has no output layer to rank")
    try:
        target = net.descriptor.layer(layer)
    except KeyError:
        names = ", ".join(ly.name for ly in net.descriptor.layers)
        raise DataError(f"no layer '{layer}' in the network (its layers: {names})") from None
    width = target.stride

    _labels_by_unit(in_index, in_layer.stride, "input", in_path)  # checks the widths
    feature_labels = _labels_by_unit(out_index, width, "output", out_path)
    for what, index, stride, path in (("input", in_index, in_layer.stride, in_path),
                                      ("output", out_index, width, out_path)):
        if round_up_width(len(index)) != stride:
            warn(
                f"{path}: the {what} index has {len(index)} features (width {round_up_width(len(index))}) but "
                f"layer '{in_layer.name if what == 'input' else layer}' has {stride} units"
            )

    data, sample_labels = text_to_dataset(input_text, in_index, in_layer.dataset, width=in_layer.stride)
    empty = int(np.sum(data.end == data.start))
    if empty:
        warn(f"{empty} of {data.examples} samples have no feature in the input index (scored from biases alone)")
    say(f"Number of network input nodes: {len(in_index)}")
    say(f"Number of entries to generate predictions for: {data.examples}")

    flt = None
    if filter_path is not None:
        flt = read_filter(filter_path, {s: i for i, s in enumerate(sample_labels)}, out_index, width=width)
        for w in flt.warnings:
            warn(w)
        flt.matrix.resize((data.examples, width))
        say(f"Filter {os.fspath(filter_path)}: {flt.describe()}")
        if flt.unknown_samples or flt.unknown_features:
            warn(f"filter entries skipped: {flt.unknown_samples} unknown samples, {flt.unknown_features} entries "
                 f"of unknown features")

    padding = _unlabeled_units(feature_labels, width)
    k_eff = int(min(k, width - padding.size)) if width > padding.size else 1
    csr = data.to_scipy()
    rows_per_chunk = max(net.batch, (max(chunk, 1) // net.batch) * net.batch)
    with RecommendationWriter(output, feature_labels, precision=precision) as writer:
        for lo in range(0, data.examples, rows_per_chunk):
            hi = min(lo + rows_per_chunk, data.examples)
            part = DataSet.from_scipy(csr[lo:hi], data.name, boolean=True, width=data.width)
            if multiply_filter:
                index, scores = _topk_multiplied(net, part, layer, k_eff, flt, lo, hi, padding)
            else:
                ex = _exclusion(hi - lo, width, padding, flt.matrix[lo:hi] if flt is not None else None)
                index, scores = net.recommend(part, k_eff, exclude=ex, layer=layer)
            writer.write(sample_labels[lo:hi], index, scores)
    seconds = time.perf_counter() - t0
    say(f"Total time for generating recs for {data.examples} samples was {seconds:.3f} s")
    return PredictSummary(
        output=os.fspath(output),
        samples=data.examples,
        items_written=writer.items,
        k=int(k),
        layer=layer,
        empty_inputs=empty,
        filter=flt,
        seconds=seconds,
        warnings=warnings,
    )


def _load_index(path: str | os.PathLike[str], what: str) -> dict[str, int]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: cannot read the {what} feature index file (not found)")
    return load_index(path)


def _exclusion(rows: int, width: int, padding: np.ndarray, listed: sp.csr_matrix | None) -> sp.csr_matrix | None:
    """Units never to recommend per row: the padding units, plus the filter's items."""
    if padding.size == 0 and (listed is None or listed.nnz == 0):
        return None
    pad = sp.csr_matrix(
        (np.ones(rows * padding.size, np.float32), np.tile(padding, rows), np.arange(rows + 1) * padding.size),
        shape=(rows, width),
    )
    if listed is not None and listed.nnz:
        seen = listed.copy()
        seen.data[:] = 1.0
        pad = (pad + seen).tocsr()
        pad.data[:] = 1.0
    if pad.nnz == 0:
        return None
    return pad


def _topk_multiplied(
    net: Network,
    part: DataSet,
    layer: str,
    k: int,
    flt: FilterResult | None,
    lo: int,
    hi: int,
    padding: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the original's filter rule (score *= listed value), then take the top k on the host."""
    scores = net.predict(part, layer=layer).astype(np.float32, copy=True)
    if flt is not None:
        sub = flt.matrix[lo:hi].tocoo()
        scores[sub.row, sub.col] *= sub.data
    if padding.size:
        scores[:, padding] = -np.inf
    k = min(k, scores.shape[1])
    # rank by score descending, ties by unit ascending (stable)
    part_idx = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else (
        np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy())
    part_scores = np.take_along_axis(scores, part_idx, axis=1)
    order = np.lexsort((part_idx, -part_scores), axis=1)
    index = np.take_along_axis(part_idx, order, axis=1).astype(np.int64)
    top = np.take_along_axis(part_scores, order, axis=1)
    index[~np.isfinite(top) & (top < 0)] = -1
    return index, top


# ----------------------------------------------------------------------------------------------------------
# evaluation from files
# ----------------------------------------------------------------------------------------------------------

TRUTH_FORMATS = ("auto", "text", "movielens")


def _truth_kind(path: str, fmt: str) -> str:
    if fmt not in TRUTH_FORMATS:
        raise DataError(f"truth format must be one of {', '.join(TRUTH_FORMATS)}, not {fmt!r}")
    if fmt != "auto":
        return fmt
    base = os.path.basename(path).lower()
    if os.path.isfile(path) and (base.endswith((".csv", ".dat")) or base == "u.data"):
        return "movielens"
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
        if first.count("\t") == 3 and "," not in first and ":" not in first:
            return "movielens"  # u.data layout
    return "text"


def read_truth(
    path: str | os.PathLike[str],
    samples: dict[str, int],
    items: dict[str, int],
    *,
    fmt: str = "auto",
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read held-out (or training) interactions as (row, column, relevant) triples, growing the label maps.

    `path` is a text-format file/directory (``user<TAB>item[,value]:...``; a missing value is 0) or a
    MovieLens ratings file (``ratings.csv``, ``u.data``, ``ratings.dat``; the value is the rating). With
    `threshold` None every listed item is relevant; otherwise those whose value is ``>= threshold``.
    """
    path = os.fspath(path)
    kind = _truth_kind(path, fmt)
    if kind == "movielens":
        r = read_ratings(path)
        users = [str(u) for u in r.users.tolist()]
        labels = [str(i) for i in r.items.tolist()]
        vals = r.ratings.astype(np.float64)
        rows = np.fromiter((samples.setdefault(u, len(samples)) for u in users), dtype=np.int64, count=len(users))
        cols = np.fromiter((items.setdefault(i, len(items)) for i in labels), dtype=np.int64, count=len(labels))
    else:
        ids, real = _remapped(items)
        n_known = len(ids)
        local: dict[str, int] = {}
        parsed = read_samples(path, ids, local, update_features=True)
        new_labels = [lb for lb, i in sorted(ids.items(), key=lambda kv: kv[1]) if i >= n_known]
        for lb in new_labels:
            items[lb] = len(items)
        lookup = np.concatenate((real, np.array([items[lb] for lb in new_labels], dtype=np.int64)))
        sample_labels = {i: samples.setdefault(label, len(samples)) for label, i in local.items()}
        rows_l, cols_l, vals_l = [], [], []
        for i, (feats, values) in parsed.rows.items():
            f = np.asarray(feats, dtype=np.int64)
            rows_l.append(np.full(f.size, sample_labels[i], dtype=np.int64))
            cols_l.append(lookup[f] if f.size else f)
            vals_l.append(np.asarray(values, dtype=np.float64))
        rows = np.concatenate(rows_l) if rows_l else np.zeros(0, np.int64)
        cols = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
        vals = np.concatenate(vals_l) if vals_l else np.zeros(0)
    relevant = np.ones(rows.size, dtype=bool) if threshold is None else vals >= threshold
    return rows, cols, relevant


@dataclass
class EvaluationReport:
    """Metrics of a recommendation file against held-out interactions (and of a popularity baseline)."""

    metrics: dict[str, float]
    baseline: dict[str, float] | None
    ks: list[int]
    users: int  # users with at least one relevant held-out item (the ones averaged over)
    users_without_recommendations: int  # of those, users the recommendation file has no line for
    recommended_users: int

    def table(self) -> str:
        """Return the metrics (and the baseline's) as aligned text tables, one row per k."""
        names = ["precision", "recall", "ndcg", "map"]

        def rows(values: dict[str, float]) -> list[str]:
            out = ["k     " + "  ".join(f"{n:>9s}" for n in names)]
            out += [f"{k:<5d} " + "  ".join(f"{values[f'{n}@{k}']:9.4f}" for n in names) for k in self.ks]
            return out

        lines = rows(self.metrics)
        if self.baseline is not None:
            lines += ["popularity baseline (most popular unseen training items):", *rows(self.baseline)]
        return "\n".join(lines)


def evaluate_files(
    recommendations: str | os.PathLike[str] | Recommendations,
    truth: str | os.PathLike[str],
    *,
    ks: Sequence[int] = (1, 5, 10),
    threshold: float | None = None,
    truth_format: str = "auto",
    train: str | os.PathLike[str] | None = None,
    train_format: str = "auto",
    idcg: metrics.IdcgMode = "min",
) -> EvaluationReport:
    """Precision, recall, NDCG and MAP at each k of a recommendation file against held-out interactions.

    Averages run over the users with at least one relevant held-out item (see :mod:`dsstne.metrics`); such a
    user without a line in the recommendation file counts as all misses. `train` (same formats as `truth`)
    adds the popularity baseline: the most popular training items each user has not seen.
    """
    recs = recommendations if isinstance(recommendations, Recommendations) else read_recommendations(
        recommendations)
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise DataError(f"ks must be one or more integers >= 1, not {ks!r}")
    ks = [int(k) for k in ks]
    samples: dict[str, int] = {}
    items: dict[str, int] = {}
    t_rows, t_cols, t_rel = read_truth(truth, samples, items, fmt=truth_format, threshold=threshold)
    eval_users = len(samples)
    tr = None
    if train is not None:
        tr = read_truth(train, samples, items, fmt=train_format, threshold=None)
    labels = [None] * len(samples)
    for s, i in samples.items():
        labels[i] = s
    user_labels = [str(s) for s in labels[:eval_users]]
    rec_matrix = recs.to_matrix(user_labels, items, width=max(max(ks), max((len(v) for v in recs.items),
                                                                           default=0)))
    n_items = max(len(items), 1)
    truth_m = sp.csr_matrix(
        (np.ones(int(t_rel.sum()), np.float32), (t_rows[t_rel], t_cols[t_rel])), shape=(eval_users, n_items)
    )
    truth_m.sum_duplicates()
    truth_m.data[:] = 1.0
    result = metrics.evaluate(rec_matrix, truth_m, ks, idcg=idcg)
    has_truth = np.diff(truth_m.indptr) > 0
    no_recs = int(np.sum(has_truth & (rec_matrix[:, 0] < 0)))
    baseline = None
    if tr is not None:
        rows, cols, _ = tr
        train_m = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(len(samples), n_items))
        train_m.sum_duplicates()
        train_m.data[:] = 1.0
        pop = metrics.popularity_recommend(train_m, max(ks), users=np.arange(eval_users))
        baseline = metrics.evaluate(pop, truth_m, ks, idcg=idcg)
    return EvaluationReport(
        metrics=result,
        baseline=baseline,
        ks=ks,
        users=int(has_truth.sum()),
        users_without_recommendations=no_recs,
        recommended_users=len(recs),
    )

