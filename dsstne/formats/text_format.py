r"""DSSTNE's text data format, its index files, and the ``generateNetCDF`` conversion.

Text format (one sample per line, read by the original's ``generateNetCDF``)::

    <sample label>\t<feature>[,<value>]:<feature>[,<value>]:...

Index files map labels to indices, one ``<label>\t<index>`` per line. The rules follow the original
(``utils/NetCDFhelper.cpp``; reference inventory sections 2.5, 2.6, 4.1):

* empty lines are skipped; a line without a TAB is skipped with a warning naming the line;
* empty feature tokens are skipped; a token with more than one value keeps the first, with a warning;
  a missing value is 0;
* a new sample label gets the next sample index; a repeated label *replaces* the earlier line's features;
* a new feature gets the next feature index only when the index may grow (``-c``/``-m``), otherwise the
  datapoint is dropped;
* examples are emitted in ascending sample-index order; within an example, features keep line order;
* the width is the number of features rounded up to a multiple of 128.

Differences, all on input the original mishandles: a trailing ``\r`` (Windows line ends) is removed; a
value that is not a number is an error naming file and line (the original dies with an uncaught
exception); an index file with a non-numeric index is an error (the original reads it as 0); index files
are written sorted by index (the original writes hash-map order) and atomically.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..dataset import DataSet
from ..errors import DataError, FormatError
from .atomic import atomic_path, write_text_atomic
from .dataset_netcdf import write_datasets

__all__ = [
    "GenerateResult",
    "ParsedSamples",
    "generate_netcdf",
    "list_input_files",
    "load_index",
    "parse_samples",
    "read_samples",
    "round_up_width",
    "save_index",
    "write_samples",
]

log = logging.getLogger("dsstne")

_FLOAT_PREFIX = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE
)


def round_up_width(features: int) -> int:
    """Round a feature count up to a multiple of 128 (the original's ``roundUpMaxIndex``)."""
    return ((int(features) + 127) >> 7) << 7


def _split(s: str, sep: str) -> list[str]:
    """Split as the original's ``split`` (``std::getline`` loop): a trailing empty item is dropped."""
    parts = s.split(sep)
    if parts and parts[-1] == "":
        parts.pop()
    return parts


# ----------------------------------------------------------------------------------------------------------
# index files
# ----------------------------------------------------------------------------------------------------------


def text_lines(path: str, what: str) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its end) of a UTF-8 text file.

    An unreadable file or a bad encoding raises FormatError naming the file and `what` it was read as.
    """
    try:
        f = open(path, encoding="utf-8", newline="\n")
    except OSError as e:
        raise FormatError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                yield lineno, line.rstrip("\n").rstrip("\r")
        except UnicodeDecodeError as e:
            raise FormatError(f"{path}: not a UTF-8 text {what} ({e})") from e


def load_index(path: str | os.PathLike[str], into: dict[str, int] | None = None) -> dict[str, int]:
    """Read an index file (``label<TAB>index`` lines) into `into` (a new dict by default).

    Raises:
        FormatError: the file cannot be read, a line does not hold exactly a non-empty label and an
            integer index, or a label appears twice (the message names the file, line and label).

    """
    path = os.fspath(path)
    index: dict[str, int] = {} if into is None else into
    first_line: dict[str, int] = {}
    for lineno, line in text_lines(path, "index file"):
        parts = _split(line, "\t")
        if len(parts) != 2 or not parts[0]:
            raise FormatError(
                f"{path}: line {lineno} contains invalid data (expected 'label<TAB>index')"
            )
        label, text = parts
        try:
            value = int(text)
        except ValueError:
            raise FormatError(
                f"{path}: line {lineno}: index {text!r} of label {label!r} is not an integer"
            ) from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise FormatError(
                f"{path}: line {lineno}: index {value} of label {label!r} is out of range"
            )
        if label in first_line or (into is not None and label in index):
            where = f"line {first_line[label]}" if label in first_line else "an index loaded before"
            raise FormatError(
                f"{path}: line {lineno}: duplicate label {label!r} (already on {where})"
            )
        first_line[label] = lineno
        index[label] = value
    return index


def save_index(path: str | os.PathLike[str], index: Mapping[str, int]) -> None:
    """Write an index file atomically, one ``label<TAB>index`` per line, sorted by index."""
    for label in index:
        if not label or "\t" in label or "\n" in label:
            raise DataError(f"{os.fspath(path)}: label {label!r} cannot be written to an index file")
    items = sorted(index.items(), key=lambda kv: kv[1])
    write_text_atomic(path, "".join(f"{label}\t{value}\n" for label, value in items))


# ----------------------------------------------------------------------------------------------------------
# samples
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ParsedSamples:
    """Samples read from text: per sample index, the feature indices and values of its (last) line."""

    rows: dict[int, tuple[Sequence[int], Sequence[float]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    features_updated: bool = False
    samples_updated: bool = False

    def to_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """(start, end, index, values, sample indices) with examples in ascending sample-index order."""
        keys = sorted(self.rows)
        lengths = np.fromiter((len(self.rows[k][0]) for k in keys), dtype=np.int64, count=len(keys))
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.uint64)
        total = int(offsets[-1])
        index = np.empty(total, dtype=np.int64)
        values = np.empty(total, dtype=np.float32)
        pos = 0
        for k in keys:
            feats, vals = self.rows[k]
            index[pos : pos + len(feats)] = feats
            values[pos : pos + len(vals)] = vals
            pos += len(feats)
        return offsets[:-1].copy(), offsets[1:].copy(), index, values, keys


def _parse_value(text: str, source: str, lineno: int, feature: str) -> float:
    try:
        if "_" in text:  # Python accepts 1_000, std::stof does not
            raise ValueError(text)
        return float(text)
    except ValueError:
        m = _FLOAT_PREFIX.match(text)  # std::stof accepts a numeric prefix ("5abc" -> 5)
        if m is None:
            raise FormatError(
                f"{source}: line {lineno}: value {text!r} of feature {feature!r} is not a number"
            ) from None
        return float(m.group(0))


def parse_samples(
    lines: Iterable[str],
    features: dict[str, int],
    samples: dict[str, int],
    *,
    update_features: bool,
    source: str = "<input>",
    into: ParsedSamples | None = None,
) -> ParsedSamples:
    """Parse text-format lines, growing `samples` (always) and `features` (when `update_features`)."""
    out = ParsedSamples() if into is None else into
    rows = out.rows
    fget = features.get
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line:
            continue
        tab = line.find("\t")
        if tab < 0:
            out.warnings.append(f"{source}: Warning: Skipping over malformed line ({line}) at line {lineno}")
            continue
        label, data = line[:tab], line[tab + 1 :]
        sample = samples.get(label)
        if sample is None:
            sample = len(samples)
            samples[label] = sample
            out.samples_updated = True
        feats: list[int] = []
        texts: list[str] = []
        for token in data.split(":"):
            name, comma, text = token.partition(",")
            if not name:
                continue  # empty token, or no feature name
            if comma and "," in text:
                parts = _split(token, ",")
                if len(parts) > 2:
                    out.warnings.append(
                        f"{source}: Warning: Data point [{token}] at line {lineno} has more than 1 value for "
                        f"feature (actual value: {len(parts)}). Keeping the first value and ignoring "
                        "subsequent values."
                    )
                text = parts[1] if len(parts) > 1 else ""
            index = fget(name)
            if index is None:
                if not update_features:
                    continue
                index = len(features)
                features[name] = index
                out.features_updated = True
            feats.append(index)
            texts.append(text or "0")
        try:
            if any("_" in t for t in texts):
                raise ValueError("underscore")
            vals = list(map(float, texts))
        except ValueError:
            names = {v: k for k, v in features.items()}
            vals = [
                _parse_value(t, source, lineno, names.get(f, str(f)))
                for f, t in zip(feats, texts, strict=True)
            ]
        rows[sample] = (feats, vals)
    return out


def list_input_files(path: str | os.PathLike[str]) -> list[str]:
    """List the files an input path names: the file itself, or a directory's regular files by name."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        return [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
    raise FormatError(f"{path}: not found")


def read_samples(
    path: str | os.PathLike[str],
    features: dict[str, int],
    samples: dict[str, int],
    *,
    update_features: bool,
    fast: bool = True,
) -> ParsedSamples:
    """Parse every file of `path` (a file or a directory) in the text format.

    Well-formed files take a vectorised path (`fast`); others, or ``fast=False``, are parsed line by line
    with the same result.
    """
    out = ParsedSamples()
    for file in list_input_files(path):
        try:
            with open(file, encoding="utf-8", newline="") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise FormatError(f"{file}: not a UTF-8 text file ({e})") from e
        except OSError as e:
            raise FormatError(f"{file}: cannot read: {e.strerror or e}") from e
        if not (fast and _parse_fast(text, features, samples, update_features, out)):
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            parse_samples(lines, features, samples, update_features=update_features, source=file, into=out)
    return out


_NAME = r"[^,:\t\r\n]+"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FAST_PAIRS = re.compile(f"{_NAME},{_NUMBER}(?::{_NAME},{_NUMBER})*")
_FAST_NAMES = re.compile(f"{_NAME}(?::{_NAME})*")
_FAST_CHUNK = 1 << 21  # datapoints per chunk (bounds the temporary Python strings)


def _parse_fast(
    text: str, features: dict[str, int], samples: dict[str, int], update_features: bool, out: ParsedSamples
) -> bool:
    """Parse a well-formed file with whole-string operations; False (nothing changed) when not well-formed.

    Well-formed: every line has a label, a TAB and at least one token; either every token is
    ``name,number`` or no token has a value; no CR characters. Anything else (warnings, empty tokens,
    odd values) takes :func:`parse_samples`, line by line. Both give identical results.
    """
    if "\r" in text:
        return False
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    labels: list[str] = []
    datas: list[str] = []
    for line in lines:
        label, tab, data = line.partition("\t")
        if not tab or not data:
            return False
        labels.append(label)
        datas.append(data)
    if all(map(_FAST_PAIRS.fullmatch, datas)):
        with_values = True
    elif all(map(_FAST_NAMES.fullmatch, datas)):
        with_values = False
    else:
        return False
    counts = [d.count(":") + 1 for d in datas]
    first = 0
    while first < len(datas):  # nothing below can fail: commit chunk by chunk
        last, total = first, 0
        while last < len(datas) and (total < _FAST_CHUNK or last == first):
            total += counts[last]
            last += 1
        _commit_fast(
            labels[first:last],
            datas[first:last],
            counts[first:last],
            with_values,
            features,
            samples,
            update_features,
            out,
        )
        first = last
    return True


def _commit_fast(
    labels: list[str],
    datas: list[str],
    counts: list[int],
    with_values: bool,
    features: dict[str, int],
    samples: dict[str, int],
    update_features: bool,
    out: ParsedSamples,
) -> None:
    big = ":".join(datas)
    if with_values:
        flat = big.replace(",", ":").split(":")
        names = flat[0::2]
        values = np.array(list(map(float, flat[1::2])), dtype=np.float32)
    else:
        names = big.split(":")
        values = np.zeros(len(names), dtype=np.float32)
    if update_features:
        for name in dict.fromkeys(names):  # new features numbered in order of first appearance
            if name not in features:
                features[name] = len(features)
                out.features_updated = True
    index = np.array(list(map(features.get, names, itertools.repeat(-1))), dtype=np.int64)
    per_line = np.asarray(counts, dtype=np.int64)
    if index.size and index.min() < 0:  # features not in the index are dropped
        keep = index >= 0
        owner = np.repeat(np.arange(per_line.shape[0]), per_line)
        per_line = np.bincount(owner[keep], minlength=per_line.shape[0])
        index, values = index[keep], values[keep]
    offsets = np.concatenate(([0], np.cumsum(per_line))).tolist()
    rows = out.rows
    for k, label in enumerate(labels):
        sample = samples.get(label)
        if sample is None:
            sample = len(samples)
            samples[label] = sample
            out.samples_updated = True
        rows[sample] = (index[offsets[k] : offsets[k + 1]], values[offsets[k] : offsets[k + 1]])


# ----------------------------------------------------------------------------------------------------------
# generateNetCDF
# ----------------------------------------------------------------------------------------------------------


@dataclass
class GenerateResult:
    """What :func:`generate_netcdf` produced."""

    dataset: DataSet
    features: dict[str, int]
    samples: dict[str, int]
    sample_rows: list[int]  # sample index of each example (row) of the dataset
    warnings: list[str]
    features_written: bool
    samples_written: bool


def generate_netcdf(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    dataset_name: str,
    feature_index: str | os.PathLike[str],
    sample_index: str | os.PathLike[str],
    *,
    create: bool = False,
    merge: bool = False,
    kind: str = "indicator",
    echo: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Convert text-format samples into a dataset NetCDF file, as the original ``generateNetCDF`` does.

    Args:
        input_path: a text file, or a directory whose regular files are read in name order (``-i``).
        output_path: the NetCDF file to write (``-o``); None returns the dataset without writing it.
        dataset_name: the dataset's name (``-d``), matched to a layer's ``DataSet``.
        feature_index: feature index file (``-f``): read unless `create`, rewritten when it grew.
        sample_index: sample index file (``-s``): read if it exists, rewritten when it grew.
        create: start a new feature index (``-c``); the file need not exist.
        merge: add unseen features to the existing index (``-m``); without `create` or `merge`, unseen
            features are dropped.
        kind: ``"indicator"`` (Sparse|Boolean, UInt) or ``"analog"`` (Sparse, Float values) (``-t``).
        echo: receives progress and warning lines (None: warnings go to the ``dsstne`` logger).

    Raises:
        FormatError: a missing feature index without `create`, a malformed index file, unreadable input,
            or input without any datapoint.
        DataError: `create` with `merge`, or an unknown `kind`.

    """
    say = echo if echo is not None else (lambda line: log.info("%s", line))
    if create and merge:
        raise DataError("Cannot create (-c) and update existing (-m) feature index. Please select only one.")
    if kind not in ("indicator", "analog"):
        raise DataError(f"Unknown dataset type [{kind}]. Please select one of {{indicator,analog}}")
    feature_index, sample_index = os.fspath(feature_index), os.fspath(sample_index)
    samples: dict[str, int] = {}
    if os.path.exists(sample_index):
        say(f"Loading sample index from: {sample_index}")
        load_index(sample_index, samples)
    else:
        say(f"Will create a new samples index file: {sample_index}")
    features: dict[str, int] = {}
    if create:
        say(f"Will create a new features index file: {feature_index}")
    elif not os.path.exists(feature_index):
        raise FormatError(
            f"{feature_index}: Cannot find a valid feature index file (pass -c to create a new one)"
        )
    else:
        say(f"Loading feature index from: {feature_index}")
        load_index(feature_index, features)

    parsed = read_samples(input_path, features, samples, update_features=create or merge)
    for w in parsed.warnings:
        if echo is not None:
            echo(w)
        else:
            log.warning("%s", w)
    start, end, index, values, rows = parsed.to_csr()
    if index.shape[0] == 0:
        raise FormatError(
            f"{os.fspath(input_path)}: no datapoints found (a sparse data set needs at least one)"
        )
    count = max(len(features), int(index.max()) + 1)
    width = round_up_width(count)
    say(f"Raw max index is: {len(features)}")
    say(f"Rounded up max index to: {width}")
    if width > 0xFFFFFFFF:
        raise FormatError(f"{feature_index}: feature indices exceed 2^32")
    ds = DataSet(
        name=dataset_name,
        dims=(width, 1, 1),
        examples=len(rows),
        start=start,
        end=end,
        index=index.astype(np.uint32),
        value=values if kind == "analog" else None,
    )
    if parsed.features_updated:
        save_index(feature_index, features)
        say(f"Exported {feature_index} with {len(features)} entries.")
    if parsed.samples_updated:
        save_index(sample_index, samples)
        say(f"Exported {sample_index} with {len(samples)} entries.")
    if output_path is not None:
        write_datasets(output_path, [ds])
        say(f"Created NetCDF file {os.fspath(output_path)} for dataset {dataset_name}")
    return GenerateResult(
        ds, features, samples, rows, parsed.warnings, parsed.features_updated, parsed.samples_updated
    )


# ----------------------------------------------------------------------------------------------------------
# writing text
# ----------------------------------------------------------------------------------------------------------


def write_samples(
    path: str | os.PathLike[str],
    dataset: DataSet,
    *,
    sample_labels: Sequence[str] | None = None,
    feature_labels: Sequence[str] | None = None,
    values: bool | None = None,
) -> None:
    """Write a sparse dataset in the text format (atomically), one example per line.

    Labels default to the row number and the unit index. `values` (default: the set is not Boolean)
    writes ``feature,value`` tokens.
    """
    if not dataset.is_sparse:
        raise DataError(f"dataset '{dataset.name}' is dense; the text format holds sparse data")
    if sample_labels is not None and len(sample_labels) != dataset.examples:
        raise DataError(f"{len(sample_labels)} sample labels for {dataset.examples} examples")
    csr = dataset.to_scipy()
    if (
        feature_labels is not None
        and len(feature_labels) < csr.shape[1]
        and csr.nnz
        and int(csr.indices.max()) >= len(feature_labels)
    ):
        raise DataError(f"{len(feature_labels)} feature labels for units up to {int(csr.indices.max())}")
    with_values = (not dataset.is_boolean) if values is None else values
    names = (
        np.asarray(feature_labels, dtype=object)
        if feature_labels is not None
        else np.arange(csr.shape[1]).astype(str).astype(object)
    )
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for r in range(csr.shape[0]):
            lo, hi = csr.indptr[r], csr.indptr[r + 1]
            label = sample_labels[r] if sample_labels is not None else str(r)
            feats = names[csr.indices[lo:hi]]
            if with_values:
                tokens = [f"{n},{float(v)!r}" for n, v in zip(feats, csr.data[lo:hi], strict=True)]
            else:
                tokens = list(feats)
            f.write(f"{label}\t{':'.join(tokens)}\n")
