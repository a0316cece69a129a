"""Train DSSTNE's MovieLens sample network on embedded synthetic ratings and print recommendations.

The network is the original's samples/movielens/config.json (sparse input -> 128 Sigmoid -> sparse output,
ScaledMarginalCrossEntropy, denoising 0.2, sparseness penalty p 0.5 beta 2). Data: MovieLens-shaped
implicit feedback generated with a fixed seed; 20% of each user's items are held out for evaluation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import metrics, samples
from ..dataset import DataSet
from ..datasets import synthetic_ratings
from ..network import Network


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``dsstne demo``."""
    parser.add_argument("--users", type=int, default=6040, help="synthetic users (default: MovieLens-1M's 6040)")
    parser.add_argument("--items", type=int, default=3706, help="synthetic items (default 3706)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--batch", type=int, default=256, help="minibatch size (default 256, as the sample)")
    parser.add_argument("--alpha", type=float, default=0.5, help="learning rate (default 0.5)")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.0, help="L2 weight decay (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--seed", type=int, default=12134, help="random seed (default 12134)")
    parser.add_argument("--show", type=int, default=3, help="users whose recommendations are printed")


def run(args: argparse.Namespace) -> int:
    """Run the demo with the command line's options."""
    demo(users=args.users, items=args.items, epochs=args.epochs, batch=args.batch, alpha=args.alpha,
         lambda_=args.lambda_, device=args.device, seed=args.seed, show=args.show)
    return 0


def demo(*, users: int = 6040, items: int = 3706, epochs: int = 12, batch: int = 256, alpha: float = 0.5,
         lambda_: float = 0.0, device: str = "auto", seed: int = 12134, show: int = 3,
         verbose: bool = True) -> dict[str, float]:
    """Generate data, train, evaluate against popularity, print a few users' top 10.

    Returns the held-out precision@10 of the network and of the popularity baseline.
    """
    say = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    data = synthetic_ratings(users, items, seed=seed)
    train, test = data.train, data.test
    say(f"data: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} training and {test.nnz} "
        f"held-out ratings ({time.perf_counter() - t0:.1f} s)")

    inputs = DataSet.from_scipy(train, "gl_input", boolean=True)
    targets = DataSet.from_scipy(train, "gl_output", boolean=True)
    net = Network.from_json(samples.path("movielens"), [inputs, targets], batch=batch, device=device, seed=seed)
    say(f"network: {net}")
    say(f"device: {net.device} ({net.device_description})")
    net.train(epochs, alpha=alpha, lambda_=lambda_, verbose=verbose)

    k = 10
    recs, scores = net.recommend(inputs, k, exclude="input")
    ours = metrics.precision_at_k(recs, test, k)
    baseline = metrics.precision_at_k(metrics.popularity_recommend(train, k), test, k)
    say(f"held-out precision@{k}: dsstne {ours:.4f}   popularity baseline {baseline:.4f}")
    rng = np.random.default_rng(seed)
    for user in sorted(rng.choice(train.shape[0], size=min(show, train.shape[0]), replace=False)):
        items_str = ", ".join(f"{i}:{s:.3f}" for i, s in zip(recs[user], scores[user]))
        say(f"user {user}: top {k} = {items_str}")
    say(f"total {time.perf_counter() - t0:.1f} s")
    return {"precision@10": ours, "popularity_precision@10": baseline}
