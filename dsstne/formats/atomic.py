"""Atomic file writes: write to a temporary file beside the target, then rename it over the target.

A reader never sees a half-written file, and a write that fails (an exception, a full disk, a killed
process) leaves any previous file at the target untouched. The rename is atomic on POSIX file systems
(``os.replace``); the temporary file lives in the target's directory so the rename never crosses devices.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_path", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces `path`, on any exception it is removed.

    The temporary file is created (empty) in the target's directory; writers may open it for writing,
    or delete and re-create it (NetCDF libraries do). Permissions follow the process umask.
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory or ".")
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _fsync(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
