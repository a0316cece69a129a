"""Exception types raised by dsstne.

Every error a user can cause (bad JSON, bad data, a feature not built yet) is a subclass of
:class:`DsstneError`, so ``except dsstne.DsstneError`` catches all of them; each also derives from the
closest built-in type so generic handlers keep working.
"""

from __future__ import annotations


class DsstneError(Exception):
    """Base class of every exception dsstne raises on purpose."""


class ConfigError(DsstneError, ValueError):
    """A network definition (JSON) is malformed or holds an invalid value; the message names the key and layer."""


class DataError(DsstneError, ValueError):
    """A dataset is malformed or does not fit the network (shape, index range, NaN, attributes)."""


class FormatError(DataError):
    """A file on disk (NetCDF, index, text) is missing, truncated or inconsistent; the message names the file."""


class NotSupportedError(DsstneError, NotImplementedError):
    """The definition is valid DSSTNE, but this feature cannot be executed yet."""


class DeviceError(DsstneError, RuntimeError):
    """The requested device cannot be used (no GPU, built without CUDA, out of memory)."""
