"""Few-shot linear probe: multinomial logistic regression on k labelled images per class.

For each shot count ``k`` and draw ``r`` (seeded), ``k`` train items of every class are drawn; the
features are standardised with that subset's own per-dimension mean and std (dimensions constant
on the subset are set to 0), and a multinomial logistic regression ``p(c | x) = softmax(W x + b)_c``
is fitted full-batch by minimising

    J(W, b) = (1 / n) sum_i -log p(y_i | x_i) + (l2 / 2) ||W||_F^2          (bias not penalised)

with L-BFGS (strong Wolfe line search) in float64 from ``W = 0, b = 0`` until the gradient's
largest entry is below ``tol`` (or ``max_iter`` iterations). ``J`` is strictly convex in ``W``, so
the solution does not depend on an initialisation or a learning rate: there is nothing to tune.

``l2`` is fixed and documented (``DEFAULT_L2 = 1e-2``) rather than tuned: without it a 1-shot
problem is linearly separable and the loss has no minimiser (the weights grow without bound); on
z-scored features the value keeps every shot count well posed and is small next to the data term.
Test accuracy is top-1 (%) of ``argmax_c (W x + b)_c`` on the test features standardised with the
same subset statistics.

When ``D > n`` the fit runs in ``n`` coordinates: every gradient of ``J`` with respect to ``W``
lies in the row space of the standardised train matrix, so from ``W = 0`` the iterates and the
minimiser do too, and L-BFGS is invariant to an orthonormal change of basis ``x -> V^T x`` (``V``
from the reduced QR of the train matrix's transpose; ``||W||`` is preserved). The result is the
same fit at a fraction of the cost (a 100-shot fit on 3072 raw pixels: 1000 instead of 3072 columns).

The draws of one ``seed`` are nested across ``k`` (the 1-shot items of draw ``r`` are among its
10-shot items), so the shot counts differ only by the added labels.
"""
from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from gandistill.evaluation.features import EvalDataError, check_labels

DEFAULT_SHOTS = (1, 10, 100)
DEFAULT_DRAWS = 5
DEFAULT_L2 = 1e-2          # weight decay on W of the mean cross-entropy, z-scored features
DEFAULT_TOL = 1e-6         # L-BFGS stop: max |dJ/dtheta| <= tol
DEFAULT_MAX_ITER = 1000
DEFAULT_HISTORY = 100      # L-BFGS memory: 100 pairs take ~5x fewer evaluations than torch's 20 here
HISTORY_BYTES = 2 ** 30    # ... capped so the stored pairs stay under 1 GiB for huge W (e.g. 1000 x 2048)


def history_size(num_params: int, wanted: int = DEFAULT_HISTORY) -> int:
    """L-BFGS history length: ``wanted`` pairs, fewer (>= 10) when 2 float64 vectors per pair exceed 1 GiB."""
    return max(10, min(wanted, HISTORY_BYTES // (16 * max(1, num_params))))


def zscore(train: Tensor, *others: Tensor) -> Tuple[Tensor, ...]:
    """Standardise every tensor with the per-dimension mean/std of ``train`` (biased std, as a
    standard scaler); dimensions constant on ``train`` (std at most 1e-8) become 0 everywhere."""
    mu = train.mean(0, keepdim=True)
    sd = train.std(0, unbiased=False, keepdim=True)
    inv = torch.where(sd > 1e-8, 1.0 / sd.clamp_min(1e-8), torch.zeros_like(sd))
    return tuple((t - mu) * inv for t in (train, *others))


def logreg_objective(W: Tensor, b: Tensor, x: Tensor, y: Tensor, l2: float) -> Tensor:
    """``J(W, b)`` above: mean cross-entropy of ``x W^T + b`` plus ``l2 / 2 ||W||^2``."""
    return F.cross_entropy(x @ W.T + b, y) + 0.5 * l2 * (W * W).sum()


def fit_logreg(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    l2: float = DEFAULT_L2,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
) -> Tuple[Tensor, Tensor, Dict[str, float]]:
    """Minimise ``J`` full-batch with L-BFGS (strong Wolfe, :func:`history_size` pairs), float64, from
    zero, until ``max |grad| <= tol`` (or no progress is possible: the step no longer changes ``W``).

    Returns ``(W [C, D], b [C], info)`` with ``info = dict(loss, grad_max, iters, converged)``.
    """
    if l2 < 0 or not math.isfinite(l2):
        raise ValueError(f"l2 must be a finite value >= 0, got {l2}")
    if max_iter < 1 or tol <= 0:
        raise ValueError(f"need max_iter >= 1 and tol > 0, got {max_iter}, {tol}")
    x, y = x.double(), y.long().to(x.device)
    W = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                            tolerance_change=0.0, history_size=history_size(W.numel() + b.numel()),
                            line_search_fn="strong_wolfe")
    evals = [0]

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=False)
        loss = logreg_objective(W, b, x, y, l2)
        loss.backward()
        evals[0] += 1
        return loss

    opt.step(closure)
    loss = closure()
    grad_max = max(float(W.grad.abs().max()), float(b.grad.abs().max()))
    iters = int(opt.state[opt._params[0]].get("n_iter", 0))
    info = dict(loss=float(loss.detach()), grad_max=grad_max, iters=iters, evals=evals[0], converged=grad_max <= tol)
    return W.detach(), b.detach(), info


def span_basis(x: Tensor) -> Optional[Tensor]:
    """Orthonormal ``V [D, n]`` whose span holds the rows of ``x [n, D]`` when ``n < D``, else None.

    The reduced QR of ``x^T`` (any orthonormal basis of a space containing the rows will do: the
    fit in ``V`` coordinates is the same fit, see the module docstring; QR is ~7x cheaper than SVD).
    """
    if x.shape[0] >= x.shape[1]:
        return None
    q, _ = torch.linalg.qr(x.T, mode="reduced")
    return q


def sample_shots(labels: Tensor, k: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """Indices of ``k`` items per class (classes in order), drawn without replacement by ``generator``."""
    idx = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if members.numel() < k:
            raise EvalDataError(f"class {c} has {members.numel()} train items, fewer than k={k}")
        idx.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.cat(idx)


def _draw_generator(seed: int, draw: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + draw)


def fewshot_probe(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    shots: Sequence[int] = DEFAULT_SHOTS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    l2: float = DEFAULT_L2,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    *,
    num_classes: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    reduce: bool = True,
) -> dict:
    """Few-shot linear probe of frozen features: see the module docstring for the protocol.

    Returns ``dict(shots={k: dict(mean, std, top1=[per draw], iters=[...], converged)}, skipped={k:
    reason}, notes=[...], draws, seed, l2, tol, max_iter, num_classes, feature_dim, num_train, num_test,
    time_s)``; ``std`` is the sample std over draws (0 for one draw). A ``k`` above the smallest class's
    train count is skipped with a note. ``reduce=False`` fits in the full feature space even when
    ``D > n`` (same result, slower; for checking).
    """
    t0 = time.perf_counter()
    for what, f, yy in (("train set", train_feats, train_labels), ("test set", test_feats, test_labels)):
        if f.dim() != 2 or yy.dim() != 1 or f.shape[0] != yy.shape[0]:
            raise EvalDataError(f"{what}: expected features [N, D] and labels [N], got {tuple(f.shape)} / "
                                f"{tuple(yy.shape)}")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise EvalDataError(f"train/test feature dims differ: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1:
        raise ValueError(f"shots must be positive integers, got {shots}")
    ytr, yte = train_labels.long().cpu(), test_labels.long().cpu()
    num_classes = check_labels(ytr, num_classes, "train set")
    num_classes = check_labels(yte, num_classes, "test set")
    counts = torch.bincount(ytr, minlength=num_classes)
    smallest = int(counts.min())
    fte = test_feats.to(device=device, dtype=torch.float64)     # the train set is indexed first, then cast
    yte_d = yte.to(device)

    results: Dict[int, dict] = {}
    skipped: Dict[int, str] = {}
    notes: List[str] = []
    for k in shots:
        if k > smallest:
            c = int(counts.argmin())
            skipped[k] = f"k={k} skipped: class {c} has only {smallest} train items"
            notes.append(skipped[k])
            continue
        top1, iters, conv, losses = [], [], True, []
        for r in range(draws):
            idx = sample_shots(ytr, k, num_classes, _draw_generator(seed, r))
            xs, xt = zscore(train_feats[idx.to(train_feats.device)].to(device=device, dtype=torch.float64), fte)
            basis = span_basis(xs) if reduce else None
            if basis is not None:                     # exact: see the module docstring
                xs, xt = xs @ basis, xt @ basis
            W, b, info = fit_logreg(xs, ytr[idx].to(device), num_classes, l2=l2, max_iter=max_iter, tol=tol)
            pred = (xt @ W.T + b).argmax(1)
            top1.append(100.0 * float((pred == yte_d).double().mean()))
            iters.append(info["iters"])
            losses.append(info["loss"])
            conv = conv and bool(info["converged"])
        t = torch.tensor(top1, dtype=torch.float64)
        results[k] = dict(mean=float(t.mean()), std=float(t.std()) if draws > 1 else 0.0, top1=top1,
                          iters=iters, train_loss=losses, converged=conv, num_labelled=k * num_classes)
        if not conv:
            notes.append(f"k={k}: L-BFGS stopped at max_iter={max_iter} before max|grad| <= {tol} in some draw")
    return dict(shots=results, skipped=skipped, notes=notes, draws=draws, seed=seed, l2=l2, tol=tol,
                max_iter=max_iter, num_classes=num_classes, feature_dim=int(train_feats.shape[1]),
                num_train=int(train_feats.shape[0]), num_test=int(test_feats.shape[0]),
                time_s=time.perf_counter() - t0)
