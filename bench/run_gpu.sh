#!/usr/bin/env bash
# One GPU session: build the package on the GPU machine (offline), run the whole test suite (the `cuda`
# tests included), then the benchmarks. Results go to $1 (default $OUT or /tmp/dsstne-gpu).
# Wheels the machine lacks (scipy-openblas32, netCDF4, cftime) may be placed in .whl/ beforehand.
# Env: ARCH (CUDA architectures, default 90), BENCH (workloads, default "sample"), EPOCHS (default 3),
#      MODES (--mode values, default "fp32"; e.g. "fp32 tf32x3"), TESTS (pytest selection, default all).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-/tmp/dsstne-gpu}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# The system compilers: a toolchain that links libstdc++ statically into the extension (seen with a
# custom /opt/gcc) breaks iostreams and exceptions once a second libstdc++ is in the process.
export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++
if ls "$repo"/.whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site "$repo"/.whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
echo "== build"
t0=$(date +%s)
(cd "$repo" && rm -rf build && DSSTNE_CUDA=ON DSSTNE_CUDA_ARCHITECTURES=${ARCH:-90a} \
  python3 -m pip install --no-build-isolation --no-deps -q . >"$out/build.log" 2>&1) || { tail -40 "$out/build.log"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
cd /tmp  # import the installed package, not the source tree
python3 -c "import dsstne, json; print(json.dumps(dsstne.build_info()))" | tee "$out/build_info.json"
echo "== tests"
python3 -m pytest "$repo/tests" ${TESTS:-} -q -p no:cacheprovider -rs >"$out/tests.log" 2>&1
echo "pytest exit $?"; tail -15 "$out/tests.log"
echo "== bench"
for w in ${BENCH:-sample}; do
  for m in ${MODES:-fp32}; do
    python3 "$repo/bench/bench_train.py" --workload "$w" --device cuda --epochs "${EPOCHS:-3}" --mode "$m" \
      2>>"$out/bench.err" | tee -a "$out/bench.jsonl"
  done
done
tail -5 "$out/bench.err"
