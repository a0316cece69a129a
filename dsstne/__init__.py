"""dsstne: Amazon DSSTNE's deep-learning engine for large sparse data, as a Python package.

One C++ engine runs on two targets: the CPU (always built) and CUDA GPUs (when built with nvcc). Start with
:class:`Network` and :class:`DataSet`; ``dsstne demo`` trains the MovieLens sample network.
"""

import os as _os

# OpenMP threads that spin while OpenBLAS threads compute starve each other on small machines (measured
# 100x slower on 2 cores); passive waiting must be set before the engine loads the OpenMP runtime.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_blas() -> None:
    # The engine links the scipy-openblas32 wheel's library, and its run path finds it only where pip put
    # that wheel beside dsstne. Loaded first from wherever the wheel is (a venv's system site packages, a
    # user site), the library is already there when the engine asks for it by name. (On Windows the wheel
    # adds its folder to the DLL search path itself.)
    import sys

    from ._build_info import BLAS

    if BLAS == "scipy-openblas32" and sys.platform != "win32":
        import ctypes

        import scipy_openblas32

        name = f"lib{scipy_openblas32.get_library()}{'.dylib' if sys.platform == 'darwin' else '.so'}"
        ctypes.CDLL(_os.path.join(scipy_openblas32.get_lib_dir(), name), mode=ctypes.RTLD_GLOBAL)


_load_blas()

from . import cdl, convert, datasets, formats, metrics, recommendations
from .config import parse_network
from .dataset import DataSet
from .device import build_info, cuda_available, cuda_device_count
from .errors import ConfigError, DataError, DeviceError, DsstneError, FormatError, NotSupportedError
from .network import EpochReport, Network, load

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DataSet",
    "DeviceError",
    "DsstneError",
    "EpochReport",
    "FormatError",
    "Network",
    "NotSupportedError",
    "build_info",
    "cdl",
    "convert",
    "cuda_available",
    "cuda_device_count",
    "datasets",
    "formats",
    "load",
    "metrics",
    "parse_network",
    "recommendations",
]
