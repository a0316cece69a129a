r"""Convert a text dataset (file or directory) into a DSSTNE NetCDF file, as the original generateNetCDF.

Usage: generateNetCDF -d <dataset_name> -i <input_text_file> -o <output_netcdf_file> -f <features_index>
-s <samples_index> [-c] [-m] [-t indicator|analog]

Input lines are ``<sample>\t<feature>[,<value>]:<feature>[,<value>]:...``. Without -c the feature index
file must exist; features it does not list are dropped unless -m merges them in. The sample index is read
if it exists and rewritten when new samples appear.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ..errors import DsstneError
from ..formats.text_format import generate_netcdf

_USAGE = """NetCDFGenerator: Converts a text dataset file into a more compressed NetCDF file.
Usage: generateNetCDF -d <dataset_name> -i <input_text_file> -o <output_netcdf_file> -f <features_index> \
-s <samples_index> [-c] [-m]
    -d dataset_name: (required) name for the dataset within the netcdf file.
    -i input_text_file: (required) path to the input text file with records in data format.
    -o output_netcdf_file: (required) path to the output netcdf file that we generate.
    -f features_index: (required) path to the features index file to read-from/write-to.
    -s samples_index: (required) path to the samples index file to read-from/write-to.
    -m : if set, we'll merge the feature index with new features found in the input_text_file. \
(Cannot be used with -c).
    -c : if set, we'll create a new feature index from scratch. (Cannot be used with -m).
    -t type: (default = 'indicator') the type of dataset to generate. Valid values are: \
['indicator', 'analog'].
"""

_REQUIRED = (
    ("-i", "input text file to convert."),
    ("-o", "output netcdf file to generate."),
    ("-d", "dataset name for the netcdf metadata."),
    ("-f", "feature index file."),
    ("-s", "samples index file."),
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``dsstne generate-netcdf`` (the original's flags)."""
    parser.add_argument("-d", dest="name", required=True, help="dataset name stored in the file")
    parser.add_argument("-i", dest="input", required=True, help="input text file or directory")
    parser.add_argument("-o", dest="output", required=True, help="output NetCDF file")
    parser.add_argument("-f", dest="features", required=True, help="feature index file")
    parser.add_argument("-s", dest="samples", required=True, help="sample index file")
    parser.add_argument("-c", dest="create", action="store_true", help="create a new feature index")
    parser.add_argument("-m", dest="merge", action="store_true", help="merge new features into the index")
    parser.add_argument(
        "-t",
        dest="type",
        default="indicator",
        choices=("indicator", "analog"),
        help="indicator (Boolean) or analog (with values); default indicator",
    )


def run(args: argparse.Namespace) -> int:
    """Run the conversion; returns 0, or 1 for usage errors (errors of the data raise DsstneError)."""
    if args.create and args.merge:
        print(
            "Error: Cannot create (-c) and update existing (-m) feature index. Please select only one.",
            file=sys.stderr,
        )
        return 1
    if args.create:
        print(f"Flag -c is set. Will create a new feature file and overwrite: {args.features}")
    if args.merge:
        print(f"Flag -m is set. Will merge with existing feature file and overwrite: {args.features}")
    print(f"Generating dataset of type: {args.type}")
    t0 = time.perf_counter()

    def echo(line: str) -> None:
        print(line, file=sys.stderr if "Warning" in line else sys.stdout, flush=True)

    generate_netcdf(
        args.input,
        args.output,
        args.name,
        args.features,
        args.samples,
        create=args.create,
        merge=args.merge,
        kind=args.type,
        echo=echo,
    )
    print(f"Total time for generating NetCDF: {time.perf_counter() - t0:.6f} secs. ")
    return 0


def _value(argv: Sequence[str], flag: str) -> str | None:
    """Return the token after `flag`, as the original's getRequiredArgValue / getOptionalArgValue."""
    for k, token in enumerate(argv):
        if token == flag and k + 1 < len(argv):
            return argv[k + 1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``generateNetCDF`` console script: the original's argument handling and exit codes (1 on error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv:
        print(_USAGE)
        return 1
    values = {}
    for flag, what in _REQUIRED:
        value = _value(argv, flag)
        if value is None:
            print(f"Error: Missing required argument: {flag}: {what}")
            print(_USAGE)
            return 1
        values[flag] = value
    kind = _value(argv, "-t") or "indicator"
    if kind not in ("indicator", "analog"):
        print(f"Error: Unknown dataset type [{kind}]. Please select one of {{indicator,analog}}")
        return 1
    args = argparse.Namespace(
        name=values["-d"],
        input=values["-i"],
        output=values["-o"],
        features=values["-f"],
        samples=values["-s"],
        create="-c" in argv,
        merge="-m" in argv,
        type=kind,
    )
    if args.create and args.merge:
        print(_USAGE)
    try:
        return run(args)
    except DsstneError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
