"""Which targets this build has and which devices can run them."""

from __future__ import annotations

import functools
import os
from typing import Any

from . import _build_info
from ._engine import device_count
from .errors import DeviceError

_PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libdsstne_cuda.so")


def plugin_path() -> str:
    """Path of the CUDA target library (present only in builds with CUDA)."""
    return _PLUGIN


@functools.lru_cache(maxsize=1)
def _cuda_probe() -> tuple[int, str]:
    if not _build_info.CUDA_BUILT:
        return 0, f"dsstne was built without CUDA ({_build_info.CUDA_STATUS})"
    return device_count(_PLUGIN)


def cuda_available() -> bool:
    """Return True when the CUDA target was built and at least one CUDA device can be used."""
    return _cuda_probe()[0] > 0


def cuda_device_count() -> int:
    """Return the number of usable CUDA devices (0 without a GPU or without the CUDA target)."""
    return _cuda_probe()[0]


def build_info() -> dict[str, Any]:
    """Describe the build: targets compiled, CUDA architectures, BLAS, compilers, and GPUs usable now."""
    n, why = _cuda_probe()
    return {
        "targets": ["cpu", "cuda"] if _build_info.CUDA_BUILT else ["cpu"],
        "cuda_built": _build_info.CUDA_BUILT,
        "cuda_status": _build_info.CUDA_STATUS,
        "cuda_architectures": _build_info.CUDA_ARCHITECTURES if _build_info.CUDA_BUILT else "",
        "cuda_devices": n,
        "cuda_unavailable_reason": "" if n else why,
        "blas": _build_info.BLAS,
        "cxx_compiler": _build_info.CXX_COMPILER,
        "cuda_compiler": _build_info.CUDA_COMPILER,
    }


def resolve_device(device: str) -> str:
    """Map "auto" / "cpu" / "cuda" / "cuda:N" to the engine's device name, or raise DeviceError saying why."""
    device = device.strip().lower()
    if device == "auto":
        return "cuda:0" if cuda_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        n, why = _cuda_probe()
        if n == 0:
            raise DeviceError(f"device '{device}' requested but no CUDA device can be used: {why}")
        ordinal = 0 if device == "cuda" else device[5:]
        try:
            ordinal = int(ordinal)
        except ValueError:
            raise DeviceError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
        if not 0 <= ordinal < n:
            raise DeviceError(f"device '{device}' does not exist: {n} CUDA device(s) found")
        return f"cuda:{ordinal}"
    raise DeviceError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)")
