#!/usr/bin/env bash
# Per-kernel GPU time of our engine's training steps (Nsight Compute), after bench/run_gpu.sh installed the
# package: trains the sample workload (WORKLOAD) for one epoch and profiles `COUNT` kernels after skipping
# `SKIP` (past set-up and the first batches). SCRIPT=profile_recommend ARGS="--users 20000" profiles
# recommendations instead. Caches are not flushed between kernels (a training step's small buffers stay
# in L2 from one kernel to the next), and the clocks are the card's own. Output: $1/profile.csv and a
# summary table on stdout.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-/tmp/dsstne-gpu}}
mkdir -p "$out"
cd /tmp
ncu --clock-control none --cache-control none --target-processes all --launch-skip "${SKIP:-400}" --launch-count "${COUNT:-200}" \
    --metrics gpu__time_duration.sum --csv --page raw \
    python3 "$repo/bench/${SCRIPT:-bench_train}.py" ${ARGS:---workload ${WORKLOAD:-sample} --device cuda --epochs 1 --peer none} \
    >"$out/profile.csv" 2>"$out/profile.err"
python3 - "$out/profile.csv" <<'PY'
import csv, collections, sys
rows = list(csv.reader(open(sys.argv[1])))  # the program's own output lines come first
first = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
head = rows[first]
name, dur = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
total = collections.defaultdict(float); count = collections.Counter()
for r in rows[first + 2:]:  # after the units row
    try:
        t = float(r[dur].replace(",", ""))
    except (ValueError, IndexError):
        continue
    k = r[name].split("(")[0][:70]
    total[k] += t; count[k] += 1
all_t = sum(total.values())
for k, t in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"{t / 1e3:10.1f} us  {100 * t / all_t:5.1f}%  x{count[k]:4d}  {k}")
print(f"total {all_t / 1e3:.1f} us over {sum(count.values())} kernels")
PY
