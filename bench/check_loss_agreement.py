"""Our engine vs the PyTorch peer from the SAME initial weights: per-epoch mean errors must agree.

Dropout, denoising and the sparseness penalty are switched off (their random streams differ), the optimizer
is SGD; the torch peer starts from our engine's initial weights
(``Network.weights``). Prints one JSON object. ``--against cpu`` compares with our own engine on the CPU
target instead (same maths, other summation orders), ``--against nudged`` with our own engine on the same
device from initial weights moved by one float step each: how far rounding alone moves a trajectory.

    PYTHONPATH=. python bench/check_loss_agreement.py --net sample --device cpu
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_torch as peer  # noqa: E402

import dsstne  # noqa: E402
from dsstne import datasets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=sorted(peer.WORKLOADS), default="sample",
                    help="topology/init of this workload, run plain (no dropout/denoising/penalty) with SGD")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--items", type=int, default=datasets.ML20M_ITEMS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--alpha", type=float, default=0.025)
    ap.add_argument("--lambda", dest="lambda_", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1e-3, help="max relative difference to pass")
    ap.add_argument("--against", choices=["torch", "cpu", "nudged"], default="torch",
                    help="the reference: the PyTorch peer, our engine on the CPU target, or our engine from "
                         "initial weights one float step away")
    ap.add_argument("--math", choices=list(dsstne.network.MATH_MODES), default="fp32",
                    help="our engine's GEMMs on the GPU (the references stay FP32)")
    args = ap.parse_args(argv)

    base = peer.WORKLOADS[args.net]
    wl = dataclasses.replace(base, p_dropout=0.0, denoising_p=0.0, penalty=None, optimizer="sgd",
                             alpha=args.alpha, lambda_=args.lambda_)
    cfg = copy.deepcopy(peer.dsstne_config(base))
    cfg.pop("Denoising", None)
    cfg.pop("SparsenessPenalty", None)
    for layer in cfg["Layers"]:
        layer.pop("pDropout", None)

    train = datasets.synthetic_ratings(args.users, args.items, test_fraction=0.0, seed=args.seed).train
    ds_in = dsstne.DataSet.from_scipy(train, "gl_input", boolean=True)
    ds_out = dsstne.DataSet.from_scipy(train, "gl_output", boolean=True)
    net = dsstne.Network.from_json(cfg, [ds_in, ds_out], batch=args.batch, device=args.device, seed=args.seed,
                                   math=args.math)
    names = peer.layer_names(base)
    pairs = list(zip(names[:-1], names[1:], strict=True))
    initial = [net.weights(src, dst) for src, dst in pairs]

    ours = net.train(args.epochs, alpha=args.alpha, lambda_=args.lambda_)
    if args.against in ("cpu", "nudged"):
        device = "cpu" if args.against == "cpu" else args.device
        ref = dsstne.Network.from_json(cfg, [ds_in, ds_out], batch=args.batch, device=device, seed=args.seed)
        for (src, dst), (w0, b0) in zip(pairs, initial, strict=True):
            if args.against == "nudged":
                w0 = np.nextafter(w0, np.float32(np.inf))
            ref.set_weights(src, dst, w0, b0)
        theirs = ref.train(args.epochs, alpha=args.alpha, lambda_=args.lambda_)
        final = [ref.weights(src, dst) for src, dst in pairs]
    else:
        dev = torch.device(args.device)
        peer.set_tf32(False)
        trainer = peer.PeerTrainer(peer.PeerData.from_csr(train, args.batch, dev), wl, dev, batch=args.batch,
                                   seed=args.seed)
        trainer.load_dsstne_weights(initial)
        theirs = trainer.train(args.epochs)
        final = []
        for tw, tb in trainer.model.layer_params():
            tw_np = tw.detach().cpu().numpy()
            final.append((tw_np if tw is trainer.model.inp.weight else tw_np.T, tb.detach().cpu().numpy()))
    rel = [abs(a - b) / max(abs(a), abs(b), 1e-30) for a, b in zip(ours, theirs, strict=True)]

    weight_diff = {}
    for (src, dst), (tw_np, tb_np) in zip(pairs, final, strict=True):
        w, b = net.weights(src, dst)
        scale = max(float(np.abs(w).max()), 1e-30)
        weight_diff[f"{src}->{dst}"] = {
            "w_max_abs_diff": float(np.abs(w - tw_np).max()), "w_max_abs": scale,
            "b_max_abs_diff": float(np.abs(b - tb_np).max()),
        }
    result = {
        "check": "loss_agreement", "against": args.against, "net": args.net, "device": args.device, "math": args.math,
        "users": train.shape[0],
        "items": train.shape[1], "ratings": int(train.nnz), "batch": args.batch, "alpha": args.alpha,
        "lambda": args.lambda_, "dsstne_epoch_errors": ours, "reference_epoch_errors": theirs,
        "rel_diff": rel, "max_rel_diff": max(rel) if rel else None, "tolerance": args.tolerance,
        "ok": bool(rel) and max(rel) <= args.tolerance, "final_weights": weight_diff,
    }
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
