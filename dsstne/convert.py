"""Conversions between the formats a DSSTNE user meets, one call each (the Python side of the tools).

| from | to | call |
| --- | --- | --- |
| MovieLens ratings (``ratings.csv``, ``u.data``, ``ratings.dat``) | DSSTNE text format | :func:`ratings_to_text` |
| MovieLens ratings | :class:`~dsstne.DataSet` (+ index maps) | :func:`ratings_to_dataset` |
| DSSTNE text format | dataset NetCDF + index files (``generateNetCDF``) | :func:`text_to_netcdf` |
| dataset NetCDF | :class:`~dsstne.DataSet` list | :func:`netcdf_to_datasets` |
| :class:`~dsstne.DataSet` list | dataset NetCDF | :func:`datasets_to_netcdf` |
| scipy / numpy | :class:`~dsstne.DataSet` | ``DataSet.from_scipy`` / ``DataSet.from_numpy`` |
| :class:`~dsstne.DataSet` | scipy / numpy | ``DataSet.to_scipy`` / ``DataSet.to_numpy`` |

The implementations live in :mod:`dsstne.formats`; these are the task-named entry points.
"""

from __future__ import annotations

from .formats.dataset_netcdf import read_datasets as netcdf_to_datasets
from .formats.dataset_netcdf import write_datasets as datasets_to_netcdf
from .formats.movielens import ratings_to_dataset, ratings_to_text
from .formats.text_format import generate_netcdf as text_to_netcdf

__all__ = ["datasets_to_netcdf", "netcdf_to_datasets", "ratings_to_dataset", "ratings_to_text", "text_to_netcdf"]
