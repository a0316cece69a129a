"""The build reports its targets, a machine with nvcc gets the CUDA target, and bench's CUDA tools compile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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


def _cublas_include() -> list[str]:
    """cuBLAS's headers from the nvidia-cublas wheel, as the build finds them (none: the toolkit's own)."""
    try:
        import nvidia
    except ImportError:
        return []
    include = Path(list(nvidia.__path__)[0]) / "cu13" / "include"
    return [f"-I{include}"] if (include / "cublas_v2.h").exists() else []


@pytest.mark.parametrize("tool", ["update_bandwidth.cu", "gemm_shapes.cu", "step_beside_gemm.cu", "tensor_rate.cu"])
def test_bench_cuda_tools_compile_against_the_engine_sources(tool, tmp_path):
    # bench's CUDA tools time the engine's own code (math::update, the tensor-core GEMM) and share
    # bench/cuda_timing.cuh; a change there must not leave them behind. Compiled only: no GPU needed.
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("needs nvcc")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([nvcc, "-std=c++17", "-arch=sm_90a", f"-I{root / 'include'}", f"-I{root / 'cuda'}",
                             *_cublas_include(), "-c", "-o", str(tmp_path / "tool.o"), str(root / "bench" / tool)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
