"""The build reports its targets, and a machine with nvcc gets the CUDA target."""

from __future__ import annotations

import shutil

import dsstne


def test_build_info_lists_targets():
    info = dsstne.build_info()
    assert "cpu" in info["targets"]
    assert info["blas"]
    assert isinstance(dsstne.cuda_available(), bool)
    if not dsstne.cuda_available():
        assert info["cuda_unavailable_reason"]


def test_cuda_target_built_where_nvcc_exists():
    info = dsstne.build_info()
    if shutil.which("nvcc") is None or "DSSTNE_CUDA=OFF" in info["cuda_status"]:
        return  # no compiler, or the CUDA target was switched off on purpose
    assert info["cuda_built"], info["cuda_status"]
    assert "cuda" in info["targets"]
