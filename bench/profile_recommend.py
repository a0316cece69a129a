"""Recommendations alone, for a per-kernel profile (bench/profile_gpu.sh with SCRIPT=recommend): the sample
network, untrained (or trained `--epochs` first), ranks the top 10 for `--users` users with their history
excluded, `--repeat` times.

    python bench/profile_recommend.py --users 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_torch as peer  # noqa: E402

import dsstne  # noqa: E402
from dsstne import datasets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=0, help="training epochs before ranking")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    wl = peer.WORKLOADS["sample"]
    train = datasets.synthetic_ratings(args.users, 27278, test_fraction=0.0, seed=1).train
    ds_in = dsstne.DataSet.from_scipy(train, "gl_input", boolean=True)
    ds_out = dsstne.DataSet.from_scipy(train, "gl_output", boolean=True)
    net = dsstne.Network.from_json(peer.dsstne_config(wl), [ds_in, ds_out], batch=256, device=args.device, seed=1)
    if args.epochs:
        net.train(args.epochs, alpha=wl.alpha, lambda_=wl.lambda_, mu=wl.mu, optimizer=wl.optimizer)
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        net.recommend(ds_in, 10, exclude=ds_in)
        print(f"recommend {args.users} users: {time.perf_counter() - t0:.4f} s", flush=True)


if __name__ == "__main__":
    main()
