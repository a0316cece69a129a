"""Bitwise reproducibility at full size: a workload trained twice from the same seed on one device must
give the same per-epoch errors and the same bytes in every weight and bias. Prints one JSON object and
exits 1 on any difference.

    PYTHONPATH=. python bench/check_determinism.py --workload sample --device cuda --epochs 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_torch as peer  # noqa: E402

import dsstne  # noqa: E402
from dsstne import datasets  # noqa: E402


def train_once(args: argparse.Namespace, train) -> tuple[list[float], list[bytes]]:
    wl = peer.WORKLOADS[args.workload]
    ds_in = dsstne.DataSet.from_scipy(train, "gl_input", boolean=True)
    ds_out = dsstne.DataSet.from_scipy(train, "gl_output", boolean=True)
    net = dsstne.Network.from_json(peer.dsstne_config(wl), [ds_in, ds_out], batch=256, device=args.device,
                                   seed=args.seed, math=args.math)
    errors = net.train(args.epochs, alpha=wl.alpha, lambda_=wl.lambda_, mu=wl.mu, optimizer=wl.optimizer)
    layers = [layer["Name"] for layer in peer.dsstne_config(wl)["Layers"]]
    blobs = []
    for src, dst in zip(layers, layers[1:]):
        w, b = net.weights(src, dst)
        blobs += [w.tobytes(), b.tobytes()]
    return errors, blobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(peer.WORKLOADS), default="sample")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--users", type=int, default=datasets.ML20M_USERS)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--math", choices=list(dsstne.network.MATH_MODES), default="fp32")
    args = ap.parse_args()
    train = datasets.synthetic_ratings(args.users, datasets.ML20M_ITEMS, test_fraction=0.0, seed=args.seed).train
    (e1, w1), (e2, w2) = train_once(args, train), train_once(args, train)
    same = e1 == e2 and w1 == w2
    print(json.dumps({"workload": args.workload, "device": args.device, "math": args.math, "users": args.users,
                      "epochs": args.epochs, "errors": [e1, e2], "weights_identical": w1 == w2,
                      "bitwise_reproducible": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
