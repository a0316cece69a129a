"""PyTorch peer of DSSTNE's two benchmark workloads (the MovieLens ``sample`` net and the ``benchmark`` net).

Everything DSSTNE's maths fixes is reproduced (inventory §1.8-1.11):

* sparse input layer = ``nn.EmbeddingBag(mode="sum")`` over each example's item list; its weight is DSSTNE's
  row-major ``W[input unit][hidden unit]``; denoising multiplies ``per_sample_weights`` (a stored datapoint
  survives iff its per-epoch U(0,1) draw is >= p, survivors are scaled by 1/(1-p); one draw per datapoint per
  epoch, as DSSTNE);
* dense layers = ``nn.Linear``;
* loss = ScaledMarginalCrossEntropy {oneTarget 1, zeroTarget 0, oneScale 1, zeroScale 1} on sparse Boolean
  targets, written as DSSTNE's two passes (:class:`SparseSMCE`): a "raw" pass over every unit assuming t = 0
  (error -ln(1-a), delta a) and a "non-zero" pass over the example's items correcting to t = 1
  (error += ln(1-a) - ln a, delta += -1). Computed from the logits z: -ln(1-a) = softplus(z) and
  -ln a + ln(1-a) = -z, so value and gradient equal DSSTNE's (= BCE on sigmoid outputs) for every a in (0, 1);
  at float saturation (a == 0 or 1 exactly) DSSTNE's error term is 0 and ours < 1e-7 per unit, deltas equal;
* sparseness penalty on the sample's hidden layer: DSSTNE adds beta * (-p/rho + (1-p)/(1-rho)) (rho = batch
  mean activation of the unit, clamped to [1e-6, 1-1e-6]) to every example's delta before the activation
  derivative. That is the gradient of beta * rows * sum_j KL(p || rho_j); we add the surrogate
  ``beta * sum(a * c.detach())`` whose gradient is exactly that delta (the penalty is not part of the reported
  error, as in DSSTNE);
* dropout on Sigmoid units (benchmark): a unit is dropped iff U(0,1) < p and set to 0.5, kept units are not
  rescaled; the backward pass multiplies by a(1-a) of the *post-dropout* activation and does not mask
  (:class:`DsstneDropoutSigmoid`, DSSTNE's quirk);
* SGD: ``w -= alpha * (dE/dw / rows + lambda * w)``, biases without lambda; RMSProp:
  ``g = dE/dw / rows + lambda * w; v = mu v + (1-mu) g^2; w -= alpha * g / sqrt(max(1e-9, v))``;
  rows = the minibatch's own size (last batch may be partial); examples in stored order (no shuffling);
* reported epoch error = (sum of minibatch losses + sum of rows * 0.5 * lambda * sum w^2) / examples
  (DSSTNE's loss + regularisation, weights read before each update);
* init: Xavier as DSSTNE (U(-S/2, S/2), S = sqrt(6 / (n_in + n_out)), biases 0) for the sample; Gaussian
  sigma 0.01 with output bias -10.2 for the benchmark.

Not reproduced: DSSTNE's divergence brake (skip + 0.1 x alpha when a minibatch error doubles its moving
average) and its random number streams.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

# ------------------------------------------------------------------------------------------------ workloads


@dataclass(frozen=True)
class Workload:
    """One network shape + training recipe, shared by DSSTNE's JSON and the torch peer."""

    name: str
    hidden: tuple[int, ...]
    p_dropout: float  # on every hidden layer (Sigmoid: dropped -> 0.5, kept not rescaled)
    denoising_p: float  # on the sparse input
    penalty: tuple[float, float] | None  # sparseness penalty (p, beta) on the first hidden layer
    init: str  # "xavier" (DSSTNE default) or "gaussian"
    gaussian_sigma: float
    output_bias: float
    optimizer: str  # "sgd" or "rmsprop"
    alpha: float
    lambda_: float
    mu: float


SAMPLE = Workload("sample", (128,), 0.0, 0.2, (0.5, 2.0), "xavier", 0.0, 0.0, "sgd",
                  alpha=0.025, lambda_=1e-4, mu=0.5)  # DSSTNE `train` tool defaults
BENCHMARK = Workload("benchmark", (1024, 1024, 1024), 0.5, 0.0, None, "gaussian", 0.01, -10.2, "rmsprop",
                     alpha=1e-3, lambda_=1e-4, mu=0.9)
WORKLOADS = {w.name: w for w in (SAMPLE, BENCHMARK)}

# DSSTNE's time-per-epoch floors on one H100, FP32 (limits-and-packaging.md §D1/§D2)
FLOOR_EPOCH_S = {"sample": 0.044, "benchmark": 0.374}

_SMCE = {"oneTarget": 1.0, "zeroTarget": 0.0, "oneScale": 1.0, "zeroScale": 1.0}


def dsstne_config(workload: Workload) -> dict[str, Any]:
    """DSSTNE JSON of a workload (samples/movielens/config.json and benchmarks/dsstne/config.json)."""
    if workload.name == "sample":
        return {
            "Version": 0.7, "Name": "AE", "Kind": "FeedForward",
            "SparsenessPenalty": {"p": 0.5, "beta": 2.0},
            "ShuffleIndices": False,
            "Denoising": {"p": 0.2},
            "ScaledMarginalCrossEntropy": dict(_SMCE),
            "Layers": [
                {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "gl_input", "Sparse": True},
                {"Name": "Hidden", "Kind": "Hidden", "Type": "FullyConnected", "N": 128,
                 "Activation": "Sigmoid", "Sparse": True},
                {"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "DataSet": "gl_output",
                 "N": "auto", "Activation": "Sigmoid", "Sparse": True},
            ],
            "ErrorFunction": "ScaledMarginalCrossEntropy",
        }
    gauss = {"Scheme": "Gaussian", "Scale": workload.gaussian_sigma}
    layers: list[dict[str, Any]] = [
        {"Name": "Input", "Kind": "Input", "N": "auto", "DataSet": "gl_input", "Sparse": True}]
    prev = "Input"
    for i, n in enumerate(workload.hidden, 1):
        layers.append({"Name": f"Hidden{i}", "Kind": "Hidden", "Type": "FullyConnected", "Source": prev,
                       "N": n, "Activation": "Sigmoid", "Sparse": False, "pDropout": workload.p_dropout,
                       "WeightInit": dict(gauss)})
        prev = f"Hidden{i}"
    layers.append({"Name": "Output", "Kind": "Output", "Type": "FullyConnected", "DataSet": "gl_output",
                   "N": "auto", "Activation": "Sigmoid", "Sparse": True,
                   "WeightInit": {**gauss, "Bias": workload.output_bias}})
    return {"Version": 0.8, "Name": "AIV NNC", "Kind": "FeedForward", "ShuffleIndices": False,
            "ScaledMarginalCrossEntropy": dict(_SMCE), "Layers": layers,
            "ErrorFunction": "ScaledMarginalCrossEntropy"}


def layer_names(workload: Workload) -> list[str]:
    """DSSTNE layer names in order (Input, hidden..., Output) of dsstne_config(workload)."""
    if workload.name == "sample":
        return ["Input", "Hidden", "Output"]
    return ["Input"] + [f"Hidden{i}" for i in range(1, len(workload.hidden) + 1)] + ["Output"]


# -------------------------------------------------------------------------------------------- autograd ops


class SparseSMCE(torch.autograd.Function):
    """Summed SMCE {1,0,1,1} of logits z [rows, units] against Boolean sparse targets (flat indices ``nz``).

    DSSTNE's raw pass (t = 0 everywhere) + non-zero pass (t = 1 at the listed units); see the module doc.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, nz: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, nz)
        return torch.nn.functional.softplus(z).sum() - z.reshape(-1).index_select(0, nz).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        z, nz = ctx.saved_tensors
        delta = torch.sigmoid(z) * grad  # raw pass: a - 0
        delta = delta.reshape(-1).index_add(0, nz, (-grad).expand(nz.shape[0]))  # non-zero pass: -1
        return delta.reshape(z.shape), None


class DsstneDropoutSigmoid(torch.autograd.Function):
    """Sigmoid + DSSTNE's Sigmoid dropout: dropped units = 0.5, no rescale; backward a(1-a), not masked."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        a = torch.where(drop, torch.full_like(z, 0.5), torch.sigmoid(z))
        ctx.save_for_backward(a)
        return a

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (a,) = ctx.saved_tensors
        return grad * a * (1.0 - a), None


# ------------------------------------------------------------------------------------------------ data


@dataclass
class PeerData:
    """A CSR users x items matrix on the device, pre-cut into minibatches (inputs = targets)."""

    users: int
    items: int
    nnz: int
    indices: torch.Tensor  # int64 [nnz], item of each datapoint
    target_flat: torch.Tensor  # int64 [nnz], (row within its minibatch) * items + item
    offsets: torch.Tensor  # int64, per-minibatch EmbeddingBag offsets, concatenated
    batches: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # (b0, b1, s0, s1, off0)

    @classmethod
    def from_csr(cls, csr: sp.csr_matrix, batch: int, device: torch.device) -> PeerData:
        csr = sp.csr_matrix(csr)
        csr.sort_indices()
        users, items = csr.shape
        indptr = csr.indptr.astype(np.int64)
        cols = csr.indices.astype(np.int64)
        rows = np.repeat(np.arange(users, dtype=np.int64), np.diff(indptr))
        local_row = rows % batch  # batches start at multiples of `batch`
        target_flat = local_row * items + cols
        batches, offs = [], []
        off0 = 0
        for b0 in range(0, users, batch):
            b1 = min(b0 + batch, users)
            s0, s1 = int(indptr[b0]), int(indptr[b1])
            batches.append((b0, b1, s0, s1, off0))
            offs.append(indptr[b0:b1] - s0)
            off0 += b1 - b0
        return cls(
            users=users, items=items, nnz=int(csr.nnz),
            indices=torch.from_numpy(cols).to(device),
            target_flat=torch.from_numpy(target_flat).to(device),
            offsets=torch.from_numpy(np.concatenate(offs)).to(device),
            batches=batches,
        )

    def batch(self, i: int) -> tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s0, s1, item indices, bag offsets, flat target indices) of minibatch i."""
        b0, b1, s0, s1, off0 = self.batches[i]
        return s0, s1, self.indices[s0:s1], self.offsets[off0:off0 + b1 - b0], self.target_flat[s0:s1]


# ------------------------------------------------------------------------------------------------ model


class PeerNet(nn.Module):
    """Sparse input (EmbeddingBag sum) -> Sigmoid hidden layers -> Linear output logits."""

    def __init__(self, items: int, workload: Workload, device: torch.device) -> None:
        super().__init__()
        self.workload = workload
        h = workload.hidden
        self.inp = nn.EmbeddingBag(items, h[0], mode="sum", device=device)  # weight [items, h0] = DSSTNE's W
        self.inp_bias = nn.Parameter(torch.zeros(h[0], device=device))
        self.hidden = nn.ModuleList(nn.Linear(h[i], h[i + 1], device=device) for i in range(len(h) - 1))
        self.out = nn.Linear(h[-1], items, device=device)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        wl = self.workload
        for w, b in self.layer_params():
            n_in, n_out = (w.shape[0], w.shape[1]) if w is self.inp.weight else (w.shape[1], w.shape[0])
            if wl.init == "xavier":
                s = math.sqrt(6.0 / (n_in + n_out))
                w.uniform_(-s / 2, s / 2)
            else:
                w.normal_(0.0, wl.gaussian_sigma)
            b.zero_()
        self.out.bias.fill_(wl.output_bias)

    def layer_params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) per connection, input side first (Linear weights are [out, in])."""
        return ([(self.inp.weight, self.inp_bias)] + [(m.weight, m.bias) for m in self.hidden]
                + [(self.out.weight, self.out.bias)])

    def _activate(self, z: torch.Tensor, training: bool) -> torch.Tensor:
        p = self.workload.p_dropout
        if training and p > 0:
            return DsstneDropoutSigmoid.apply(z, torch.rand_like(z) < p)
        return torch.sigmoid(z)

    def logits(self, idx: torch.Tensor, offsets: torch.Tensor, psw: torch.Tensor | None,
               training: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output logits, sparseness-penalty surrogate or None)."""
        wl = self.workload
        a = self._activate(self.inp(idx, offsets, per_sample_weights=psw) + self.inp_bias, training)
        pen = None
        if training and wl.penalty is not None:
            p, beta = wl.penalty
            rho = a.detach().mean(0).clamp(1e-6, 0.999999)
            pen = (a * (beta * ((1.0 - p) / (1.0 - rho) - p / rho))).sum()
        for lin in self.hidden:
            a = self._activate(lin(a), training)
        return self.out(a), pen


# ------------------------------------------------------------------------------------------------ trainer


def set_tf32(enabled: bool) -> None:
    """TF32 for matmuls and cuDNN on (``--mode tf32``) or off (FP32)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeerTrainer:
    """Trains a PeerNet on PeerData, eager or torch.compile'd (falling back to eager on failure)."""

    def __init__(self, data: PeerData, workload: Workload, device: torch.device | str, *, batch: int = 256,
                 seed: int = 1, compile: bool = False, compile_mode: str | None = None,
                 alpha: float | None = None, lambda_: float | None = None, mu: float | None = None) -> None:
        self.device = torch.device(device)
        self.data, self.workload, self.batch = data, workload, batch
        self.alpha = workload.alpha if alpha is None else alpha
        self.lambda_ = workload.lambda_ if lambda_ is None else lambda_
        self.mu = workload.mu if mu is None else mu
        torch.manual_seed(seed)
        self.model = PeerNet(data.items, workload, self.device)
        pairs = self.model.layer_params()
        self.weights = [w for w, _ in pairs]
        self.biases = [b for _, b in pairs]
        self.params = self.weights + self.biases
        self.state = [torch.zeros_like(p) for p in self.params] if workload.optimizer == "rmsprop" else []
        self.psw: torch.Tensor | None = None
        self.history: list[tuple[float, float]] = []  # (mean error per example, seconds)
        self.compile_requested = compile
        self.compile_error: str | None = None
        self._fwd, self._upd, self._rec = self._forward_loss, self._update, self._predict_topk
        if compile:
            kw = {"mode": compile_mode} if compile_mode else {}
            self._fwd = torch.compile(self._forward_loss, **kw)
            self._upd = torch.compile(self._update, **kw)
            self._rec = torch.compile(self._predict_topk, **kw)

    @property
    def compiled(self) -> bool:
        return self.compile_requested and self.compile_error is None

    def _fallback(self, exc: BaseException) -> None:
        self.compile_error = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
        self._fwd, self._upd, self._rec = self._forward_loss, self._update, self._predict_topk

    # -------------------------------------------------------------- pieces (compiled when asked)
    def _forward_loss(self, idx: torch.Tensor, offsets: torch.Tensor, psw: torch.Tensor | None,
                      nz: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        z, pen = self.model.logits(idx, offsets, psw, training=True)
        err = SparseSMCE.apply(z, nz)
        obj = err if pen is None else err + pen
        return obj / rows, err.detach()

    def _update(self, grads: list[torch.Tensor], rows: int) -> torch.Tensor:
        """Optimizer step (in place); returns rows * regularisation error read before the step."""
        nw = len(self.weights)
        gw, gb = grads[:nw], grads[nw:]
        alpha, lam, mu = self.alpha, self.lambda_, self.mu
        if lam > 0:
            reg = torch.stack(torch._foreach_norm(self.weights)).square().sum() * (0.5 * lam * rows)
        else:
            reg = torch.zeros((), device=self.device)
        if self.workload.optimizer == "sgd":
            if lam > 0:
                torch._foreach_mul_(self.weights, 1.0 - alpha * lam)
            torch._foreach_add_(self.weights, gw, alpha=-alpha)
            torch._foreach_add_(self.biases, gb, alpha=-alpha)
        else:  # rmsprop
            g = list(torch._foreach_add(gw, self.weights, alpha=lam) if lam > 0 else gw) + list(gb)
            torch._foreach_mul_(self.state, mu)
            torch._foreach_addcmul_(self.state, g, g, value=1.0 - mu)
            den = torch._foreach_clamp_min(self.state, 1e-9)
            torch._foreach_sqrt_(den)
            torch._foreach_addcdiv_(self.params, g, den, value=-alpha)
        return reg

    def _step(self, i: int, err_acc: torch.Tensor) -> torch.Tensor:
        b0, b1 = self.data.batches[i][:2]
        rows = b1 - b0
        s0, s1, idx, offsets, nz = self.data.batch(i)
        psw = None if self.psw is None else self.psw[s0:s1]
        obj, err = self._fwd(idx, offsets, psw, nz, rows)
        grads = torch.autograd.grad(obj, self.params)
        with torch.no_grad():
            reg = self._upd(list(grads), rows)
        return err_acc + err.double() + reg.double()

    # -------------------------------------------------------------- public
    def train_epoch(self) -> tuple[float, float]:
        """One epoch in stored order; returns (mean error per example, seconds), device synchronised."""
        sync(self.device)
        t0 = time.perf_counter()
        if self.workload.denoising_p > 0:
            p = self.workload.denoising_p
            keep = torch.rand(self.data.nnz, device=self.device) >= p
            self.psw = keep.to(torch.float32).mul_(1.0 / (1.0 - p))
        acc = torch.zeros((), dtype=torch.float64, device=self.device)
        for i in range(len(self.data.batches)):
            if self.compiled:
                try:
                    acc = self._step(i, acc)
                    continue
                except Exception as exc:  # noqa: BLE001 - any compile failure falls back to eager
                    self._fallback(exc)
            acc = self._step(i, acc)
        error = float(acc.item()) / self.data.users  # .item() synchronises
        sync(self.device)
        seconds = time.perf_counter() - t0
        self.history.append((error, seconds))
        return error, seconds

    def train(self, epochs: int) -> list[float]:
        return [self.train_epoch()[0] for _ in range(epochs)]

    def _predict_topk(self, idx: torch.Tensor, offsets: torch.Tensor, nz: torch.Tensor,
                      k: int) -> tuple[torch.Tensor, torch.Tensor]:
        z, _ = self.model.logits(idx, offsets, None, training=False)
        a = torch.sigmoid(z).reshape(-1).index_fill(0, nz, float("-inf")).reshape(z.shape)
        scores, index = torch.topk(a, k, dim=1)
        return index, scores

    @torch.no_grad()
    def recommend(self, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items of every user, own (training) items excluded: (int64 index, float32 score)."""
        out_i, out_s = [], []
        for i in range(len(self.data.batches)):
            _, _, idx, offsets, nz = self.data.batch(i)
            if self.compiled:
                try:
                    index, scores = self._rec(idx, offsets, nz, k)
                    out_i.append(index)
                    out_s.append(scores)
                    continue
                except Exception as exc:  # noqa: BLE001
                    self._fallback(exc)
            index, scores = self._rec(idx, offsets, nz, k)
            out_i.append(index)
            out_s.append(scores)
        return torch.cat(out_i).cpu().numpy(), torch.cat(out_s).cpu().numpy()

    @torch.no_grad()
    def load_dsstne_weights(self, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Copy (W [in, out], b) per connection, input side first, as ``Network.weights`` returns them."""
        for (w, b), (tw, tb) in zip(weights, self.model.layer_params(), strict=True):
            src = torch.from_numpy(np.asarray(w, dtype=np.float32))
            tw.copy_(src if tw is self.model.inp.weight else src.T)
            tb.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
