"""Shared fixtures: small networks and data, and the `cuda` marker's skip rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import dsstne


def pytest_collection_modifyitems(config, items):
    if dsstne.cuda_available():
        return
    why = dsstne.build_info()["cuda_unavailable_reason"] or "no CUDA device"
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {why}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def random_csr(rows: int, cols: int, density: float, seed: int, values: bool = False) -> sp.csr_matrix:
    """Random sparse rows, every row non-empty; Boolean (ones) unless values."""
    rng = np.random.default_rng(seed)
    m = sp.random(rows, cols, density=density, format="lil", random_state=rng)
    for r in range(rows):
        if m.rows[r] == []:
            m[r, int(rng.integers(cols))] = 1.0
    m = m.tocsr()
    m.data[:] = rng.uniform(0.2, 1.0, m.nnz) if values else 1.0
    return m


def network_config(
    n_in: int | str = "auto",
    hidden: list[tuple[int, str]] | tuple = ((16, "Sigmoid"),),
    output_activation: str = "Sigmoid",
    error: str = "ScaledMarginalCrossEntropy",
    sparse_input: bool = True,
    **extra,
) -> dict:
    """A DSSTNE JSON network: Input -> hidden layers -> Output, datasets 'input' and 'output'."""
    layers = [{"Name": "Input", "Kind": "Input", "N": n_in, "DataSet": "input", "Sparse": sparse_input}]
    for i, (n, act) in enumerate(hidden):
        layers.append({"Name": f"Hidden{i + 1}", "Kind": "Hidden", "N": n, "Activation": act})
    layers.append({"Name": "Output", "Kind": "Output", "N": "auto", "DataSet": "output",
                   "Activation": output_activation})
    cfg = {"Version": 0.8, "Name": "test", "Kind": "FeedForward", "ShuffleIndices": False,
           "ErrorFunction": error, "Layers": layers}
    cfg.update(extra)
    return cfg


@pytest.fixture
def small_sparse():
    """200 examples x 60 sparse Boolean inputs, as input and autoencoder target."""
    x = random_csr(200, 60, 0.08, seed=3)
    return x
