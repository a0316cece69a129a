"""Per-stream timeline of one training epoch on the GPU: kernel busy time and launch gaps.

Trains the workload for one warm-up epoch, then traces one more with the PyTorch profiler's CUDA activity
(CUPTI records every kernel of the process, ours included) and prints one JSON object: for each stream
its kernels, busy time, the span, and the gaps under 20 µs between consecutive kernels (launch latency),
plus the per-step time of the busiest kernels. On compute capability 9.0 and up our kernels are dependent
launches: one is scheduled while the kernel before it runs and waits at its start (`griddepcontrol.wait`),
and that wait counts in its recorded duration, so per-kernel times there overstate (one stream's busy time
can exceed its span). The spans stay right, and a gap of 0 there is real: the next kernel was resident
before the one it waits for ended. Nsight Compute (bench/profile_gpu.sh) gives the kernels' own times.
With ``--step K`` it also lists step K's kernels on every stream (a step begins at the sparse input's
gather kernel), each with its stream, start and end in µs from that kernel's start. With ``--host`` it also
records the host's CUDA API calls and reports how far the host runs ahead of the device: each kernel's start
after its launch call returned (a few µs: the device waits for the host's launches) and the calls' host
time per step (the profiler's own overhead included).
Usage, after the package is installed with CUDA:
``python bench/trace_gpu.py --workload sample --mode tf32x3 [--users 40000 --step 100]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_torch as peer  # noqa: E402

import dsstne  # noqa: E402
from dsstne import datasets  # noqa: E402


def kernel_name(name: str) -> str:
    """A kernel's demangled name without its return type, anonymous namespaces and parameter list."""
    name = name.replace("(anonymous namespace)::", "").removeprefix("void ")
    if name.endswith(")"):  # cut the parameter list: the last top-level parenthesised group
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return name


def stream_summary(kernels: list[tuple[float, float, str]], steps: int) -> dict[str, object]:
    """Busy time, span and short gaps (µs) of one stream's (start, duration, name) kernel records."""
    kernels.sort()
    gaps = [max(0.0, b[0] - (a[0] + a[1])) for a, b in zip(kernels, kernels[1:])]
    short = sorted(g for g in gaps if g < 20.0)
    per_name: collections.Counter[str] = collections.Counter()
    for _, duration, name in kernels:
        per_name[kernel_name(name)] += duration
    return {
        "kernels": len(kernels),
        "span_ms": (kernels[-1][0] + kernels[-1][1] - kernels[0][0]) / 1e3,
        "busy_ms": sum(d for _, d, _ in kernels) / 1e3,
        "short_gaps": len(short),
        "short_gaps_ms": sum(short) / 1e3,
        "short_gap_median_us": short[len(short) // 2] if short else 0.0,
        "top_us_per_step": {n: round(d / steps, 1) for n, d in per_name.most_common(12)},
    }


def step_timeline(streams: dict[str, list[tuple[float, float, str]]], step: int) -> list[list[object]]:
    """[stream, start, end, name] (µs from the step's first gather) of every kernel that ends in step `step`."""
    starts = sorted(t for k in streams.values() for t, _, name in k if "sparse_forward_kernel" in name)
    if not 0 <= step < len(starts) - 1:
        raise SystemExit(f"--step {step}: the trace has {max(0, len(starts) - 1)} whole steps")
    begin, end = starts[step], starts[step + 1]
    rows = [[s, round(t - begin, 1), round(t + d - begin, 1), kernel_name(name)]
            for s, k in streams.items() for t, d, name in k if begin < t + d <= end]
    return sorted(rows, key=lambda r: r[1])


def host_summary(events: list[dict], steps: int) -> dict[str, object]:
    """How far the host's launches run ahead of the device, from Chrome-trace events with CUDA API calls.

    A kernel's slack is its start less the end of the API call that launched it (matched by correlation
    id); the API time per step sums every runtime and driver call by name.
    """
    calls = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver") and "dur" in e]
    by_id = {e["args"]["correlation"]: e for e in calls if "correlation" in e.get("args", {})}
    slack = sorted(k["ts"] - (by_id[c]["ts"] + by_id[c]["dur"]) for k in events
                   if k.get("cat") == "kernel" and (c := k.get("args", {}).get("correlation")) in by_id)
    per_name: collections.Counter[str] = collections.Counter()
    for e in calls:
        per_name[e["name"]] += e["dur"]
    n = len(slack)
    return {
        "launched_kernels": n,
        "slack_us_p10_p50_p90": [round(slack[min(n - 1, int(n * q))], 1) for q in (0.1, 0.5, 0.9)] if n else [],
        "slack_under_5us": round(sum(x < 5.0 for x in slack) / n, 3) if n else 0.0,
        "api_us_per_step": round(sum(per_name.values()) / steps, 1),
        "top_api_us_per_step": {name: round(d / steps, 1) for name, d in per_name.most_common(6)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(peer.WORKLOADS), default="sample")
    ap.add_argument("--mode", choices=list(dsstne.network.MATH_MODES), default="tf32x3")
    ap.add_argument("--users", type=int, default=datasets.ML20M_USERS)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--step", type=int, default=None, help="list this step's kernels on every stream")
    ap.add_argument("--host", action="store_true", help="also record the host's API calls (host_summary)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU")
    wl = peer.WORKLOADS[args.workload]
    train = datasets.synthetic_ratings(args.users, datasets.ML20M_ITEMS, test_fraction=0.0, seed=1).train
    ds_in = dsstne.DataSet.from_scipy(train, "gl_input", boolean=True)
    ds_out = dsstne.DataSet.from_scipy(train, "gl_output", boolean=True)
    net = dsstne.Network.from_json(peer.dsstne_config(wl), [ds_in, ds_out], batch=args.batch, device="cuda",
                                   seed=1, math=args.mode)
    options = dict(alpha=wl.alpha, lambda_=wl.lambda_, mu=wl.mu, optimizer=wl.optimizer)
    net.train(1, **options)
    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if args.host else [])
    with profile(activities=activities) as prof:
        net.train(1, **options)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    streams: dict[str, list[tuple[float, float, str]]] = collections.defaultdict(list)
    for e in (e for e in events if e.get("cat") == "kernel"):
        streams[str(e["args"].get("stream", e.get("tid")))].append((e["ts"], e["dur"], e["name"]))
    steps = -(-train.shape[0] // args.batch)
    report = {"workload": wl.name, "mode": args.mode, "card": torch.cuda.get_device_name(0), "steps": steps,
              "streams": {s: stream_summary(k, steps) for s, k in streams.items()}}
    if args.step is not None:
        report["step"] = step_timeline(streams, args.step)
    if args.host:
        report["host"] = host_summary(events, steps)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
