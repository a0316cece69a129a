"""Time one epoch of DSSTNE's sample / benchmark networks: our engine vs a PyTorch peer, same data and device.

Prints one JSON object per engine on stdout, then a summary line; progress and data-generation time go to
stderr. See bench/README.md.

    PYTHONPATH=. python bench/bench_train.py --workload sample --device cuda
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_torch as peer  # noqa: E402

import dsstne  # noqa: E402
from dsstne import datasets  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class RssPeak:
    """Peak resident set size of this process above its value at start (sampled every 10 ms)."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def delta(self) -> int:
        return self.peak - self.start


def steady(epochs: list[float]) -> float | None:
    if not epochs:
        return None
    return statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]


def card_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({os.cpu_count()} cores)"


def run_dsstne(args: argparse.Namespace, wl: peer.Workload, train: Any,
               base: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": "dsstne", **base, "dsstne_version": dsstne.__version__}
    rss = RssPeak()
    with rss:
        try:
            t0 = time.perf_counter()
            ds_in = dsstne.DataSet.from_scipy(train, "gl_input", boolean=True)
            ds_out = dsstne.DataSet.from_scipy(train, "gl_output", boolean=True)
            net = dsstne.Network.from_json(peer.dsstne_config(wl), [ds_in, ds_out], batch=args.batch,
                                           device=args.device, seed=args.seed, math=args.mode)
            out["setup_s"] = time.perf_counter() - t0
            out["device_description"] = net.device_description
            out["engine_device"] = net.device
            log(f"dsstne: {net} on {net.device} ({net.device_description}), setup {out['setup_s']:.2f} s")
            stamps = [time.perf_counter()]

            def on_epoch(report: dsstne.EpochReport) -> None:
                stamps.append(time.perf_counter())
                log(f"dsstne: epoch {report.epoch} error {report.total:.6f} {report.seconds:.3f} s")

            errors = net.train(args.epochs, alpha=args.alpha, lambda_=args.lambda_, mu=args.mu,
                               optimizer=wl.optimizer, callback=on_epoch)
            out["epoch_s"] = [h.seconds for h in net.history]
            out["epoch_wall_s"] = list(np.diff(stamps))
            out["steady_epoch_s"] = steady(out["epoch_s"])
            out["epoch_errors"] = errors
            out["final_error"] = errors[-1] if errors else None
            t0 = time.perf_counter()
            rec, _ = net.recommend(ds_in, 10, exclude=ds_in)
            out["recommend_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            net.recommend(ds_in, 10, exclude=ds_in)
            out["recommend_warm_s"] = time.perf_counter() - t0
            out["recommend_shape"] = list(rec.shape)
            out["peak_mem_bytes"] = net.memory()["peak_bytes"]
            del net
        except dsstne.NotSupportedError as exc:
            out["error"] = str(exc)
        except dsstne.DsstneError as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
    out["peak_rss_delta_bytes"] = rss.delta
    gc.collect()
    return out


def run_peer(args: argparse.Namespace, wl: peer.Workload, train: Any, base: dict[str, Any],
             compiled: bool) -> dict[str, Any]:
    dev = torch.device(args.device)
    out: dict[str, Any] = {"engine": "torch-compile" if compiled else "torch-eager", **base,
                           "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
                           "loss_impl": "SMCE {1,0,1,1} as DSSTNE's raw + non-zero passes from logits: "
                                        "sum softplus(z) - sum z[targets]; grad sigmoid(z) - t (== BCE)"}
    peer.set_tf32(args.mode == "tf32" and dev.type == "cuda")
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        mem0 = torch.cuda.memory_allocated(dev)
    rss = RssPeak()
    with rss:
        t0 = time.perf_counter()
        data = peer.PeerData.from_csr(train, args.batch, dev)
        trainer = peer.PeerTrainer(data, wl, dev, batch=args.batch, seed=args.seed, compile=compiled,
                                   compile_mode=args.compile_mode, alpha=args.alpha, lambda_=args.lambda_,
                                   mu=args.mu)
        peer.sync(dev)
        out["setup_s"] = time.perf_counter() - t0
        for _ in range(args.epochs):
            err, sec = trainer.train_epoch()
            log(f"{out['engine']}: epoch {len(trainer.history)} error {err:.6f} {sec:.3f} s")
        out["epoch_s"] = [s for _, s in trainer.history]
        out["steady_epoch_s"] = steady(out["epoch_s"])
        out["epoch_errors"] = [e for e, _ in trainer.history]
        out["final_error"] = out["epoch_errors"][-1] if trainer.history else None
        peer.sync(dev)
        t0 = time.perf_counter()
        rec, _ = trainer.recommend(10)
        out["recommend_s"] = time.perf_counter() - t0
        # second call: the first one includes compilation for torch-compile
        t0 = time.perf_counter()
        trainer.recommend(10)
        out["recommend_warm_s"] = time.perf_counter() - t0
        out["recommend_shape"] = list(rec.shape)
    out["tf32_flags"] = {"cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                         "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}
    if compiled:
        out["compiled"] = trainer.compiled
        out["compile_mode"] = args.compile_mode or "default"
        if trainer.compile_error:
            out["compile_error"] = trainer.compile_error
    out["peak_rss_delta_bytes"] = rss.delta
    if dev.type == "cuda":
        out["peak_mem_bytes"] = torch.cuda.max_memory_allocated(dev) - mem0
    else:
        out["peak_mem_bytes"] = rss.delta
    del trainer, data
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(peer.WORKLOADS), default="sample")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N")
    ap.add_argument("--users", type=int, default=datasets.ML20M_USERS)
    ap.add_argument("--items", type=int, default=datasets.ML20M_ITEMS)
    ap.add_argument("--epochs", type=int, default=2, help="the first one counts as warm-up")
    ap.add_argument("--mode", choices=list(dsstne.network.MATH_MODES), default="fp32",
                    help="ours: Network's math; the peer: TF32 for tf32, FP32 otherwise")
    ap.add_argument("--peer", choices=["eager", "compile", "both", "none"], default=None,
                    help="default: both on cuda, eager on cpu")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: torch's default)")
    ap.add_argument("--no-dsstne", action="store_true", help="skip our engine")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--alpha", type=float, default=None, help="default: sample 0.025, benchmark 0.001")
    ap.add_argument("--lambda", dest="lambda_", type=float, default=None, help="default 1e-4")
    ap.add_argument("--mu", type=float, default=None, help="RMSProp decay (sample 0.5, benchmark 0.9)")
    args = ap.parse_args(argv)
    wl = peer.WORKLOADS[args.workload]
    args.alpha = wl.alpha if args.alpha is None else args.alpha
    args.lambda_ = wl.lambda_ if args.lambda_ is None else args.lambda_
    args.mu = wl.mu if args.mu is None else args.mu
    cuda = args.device.startswith("cuda")
    if args.peer is None:
        args.peer = "both" if cuda else "eager"
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no GPU")

    t0 = time.perf_counter()
    data = datasets.synthetic_ratings(args.users, args.items, test_fraction=0.0, seed=args.seed)
    train = data.train
    log(f"data: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} ratings, generated in "
        f"{time.perf_counter() - t0:.2f} s")

    base = {"workload": wl.name, "device": args.device, "card": card_name(args.device), "mode": args.mode,
            "users": int(train.shape[0]), "items": int(train.shape[1]), "ratings": int(train.nnz),
            "batch": args.batch, "optimizer": wl.optimizer, "alpha": args.alpha, "lambda": args.lambda_,
            "mu": args.mu, "seed": args.seed}
    results = []
    if not args.no_dsstne:
        results.append(run_dsstne(args, wl, train, base))
        print(json.dumps(results[-1]), flush=True)
    peers = {"eager": [False], "compile": [True], "both": [False, True], "none": []}[args.peer]
    for compiled in peers:
        results.append(run_peer(args, wl, train, base, compiled))
        print(json.dumps(results[-1]), flush=True)

    ours = next((r for r in results if r["engine"] == "dsstne" and "error" not in r), None)
    peer_rows = [r for r in results if r["engine"] != "dsstne" and r.get("steady_epoch_s")]
    best = min(peer_rows, key=lambda r: r["steady_epoch_s"], default=None)
    best_rec = min((r.get("recommend_warm_s", r["recommend_s"]) for r in peer_rows), default=None)
    parts = [f"{r['engine']} {r['steady_epoch_s']:.4g} s/epoch" if r.get("steady_epoch_s") is not None
             else f"{r['engine']} error" for r in results]
    summary = {
        "summary": f"{wl.name} on {base['card']} {args.mode}, {base['users']} users: " + ", ".join(parts),
        "workload": wl.name, "device": args.device, "card": base["card"], "mode": args.mode,
        "ours_steady_epoch_s": ours["steady_epoch_s"] if ours else None,
        "peer_best": best["engine"] if best else None,
        "peer_best_steady_epoch_s": best["steady_epoch_s"] if best else None,
        "ratio_train": best["steady_epoch_s"] / ours["steady_epoch_s"] if best and ours else None,
        "ratio_recommend": best_rec / ours["recommend_warm_s"] if best_rec and ours else None,
        "floor_epoch_s": peer.FLOOR_EPOCH_S[wl.name],
        "floor_note": "H100 FP32 floor at ML-20M size (138,493 users); scale by users/138493 otherwise",
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
