"""DSSTNE's file formats, readable and writable in the original's exact layouts.

* dataset NetCDF files (:func:`read_datasets`, :func:`write_datasets`), as ``generateNetCDF`` writes them;
* model NetCDF files (:func:`read_model`, :func:`write_model`; ``Network.save`` and ``dsstne.load``);
* the text format and index files of ``generateNetCDF`` (:func:`generate_netcdf`, :func:`load_index`);
* MovieLens rating files (:func:`read_ratings`, :func:`ratings_to_text`, :func:`ratings_to_dataset`).

Every write is atomic (temporary file, then rename). See ``docs/formats.md``.
"""

from .atomic import atomic_path, write_text_atomic
from .dataset_netcdf import (
    READABLE_TYPES,
    StoredAs,
    read_dataset,
    read_datasets,
    renormalized,
    stored_as,
    write_datasets,
)
from .model_netcdf import (
    BatchNormState,
    Checkpointer,
    ModelFile,
    checkpoint_path,
    load_network,
    read_model,
    save_network,
    write_model,
)
from .movielens import MovieLensData, Ratings, ratings_to_dataset, ratings_to_text, read_ratings
from .text_format import (
    GenerateResult,
    generate_netcdf,
    load_index,
    parse_samples,
    read_samples,
    round_up_width,
    save_index,
    write_samples,
)

__all__ = [
    "READABLE_TYPES",
    "BatchNormState",
    "Checkpointer",
    "GenerateResult",
    "ModelFile",
    "MovieLensData",
    "Ratings",
    "StoredAs",
    "atomic_path",
    "checkpoint_path",
    "generate_netcdf",
    "load_index",
    "load_network",
    "parse_samples",
    "ratings_to_dataset",
    "ratings_to_text",
    "read_dataset",
    "read_datasets",
    "read_model",
    "read_ratings",
    "read_samples",
    "renormalized",
    "round_up_width",
    "save_index",
    "save_network",
    "stored_as",
    "write_datasets",
    "write_model",
    "write_samples",
    "write_text_atomic",
]
