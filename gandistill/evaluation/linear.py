"""Linear evaluation of a frozen backbone (the paper's protocol, reference §1.7) and a fast path.

Paper protocol (``fast=False``): the whole model stays in ``eval()`` (BN uses its running stats);
features are the backbone output before the projector; a new ``Linear(D, C)`` head, weights
N(0, 0.01) and zero bias, is the only trainable; SGD with lr ``30 * batch / 256``, momentum 0.9,
weight decay 0, cosine decay per epoch without warm-up, 90 epochs, batch 256. Train images get
``RandomResizedCrop(scale 0.08-1) + horizontal flip`` (the ``linear`` augmentation preset), test
images are only resized/centred and normalised (the ``none`` preset). Because the backbone is
frozen and the test transform is deterministic, the test features are computed once.

Fast path (``fast=True``): train and test features are extracted once, without augmentation,
and the same head/optimiser/schedule is trained on the cached features (90 epochs take seconds).
The cached features are standardised with the train mean/std per dimension and divided by
``sqrt(D)`` so every feature vector has norm about 1; at that scale the paper's lr of 30 is
stable (tested on separable data and on real features), so the fast path keeps the paper's
hyper-parameters. Without augmentation it usually reads a little lower than the full protocol
on strong features and is meant for monitoring and quick comparisons.

Optimiser (``optimizer``): ``"sgd"`` (above; the CIFAR protocol) or ``"lars"``, SnS's STL-10
protocol: :class:`~gandistill.evaluation.lars.LARS` at batch 4096, lr 0.1 scaled to 1.6, trust
coefficient 0.001, 90 epochs (reference §1.7), with the same cosine schedule, momentum 0.9 and weight
decay 0 (not stated by the reference for STL-10: the CIFAR probe's settings, and SnS's defaults).
Biases are not adapted by default (``exclude_1d``; see :mod:`gandistill.evaluation.lars`). ``lr=None``
picks the paper's base rate of the optimiser: 30 for SGD, 0.1 for LARS (both at batch 256, scaled by
``batch / 256``); pass ``batch=4096`` for the STL-10 protocol.

Test accuracy is measured after epoch 0, every ``eval_every`` epochs and after the last epoch;
``top1`` is the last value and ``best_top1`` the best of those (SnS tracks both; which one the
paper reports is not known).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gandistill.augment import build_augment
from gandistill.evaluation.features import (
    DataLike,
    EvalDataError,
    FeatureFn,
    as_dataset,
    check_labels,
    dataset_stats,
    extract_features,
    frozen_eval,
    infer_num_classes,
    iterate,
    require_labelled,
    resolve_feature_fn,
)
from gandistill.evaluation.lars import LARS, check_lars_hparams

PAPER_LR = 30.0  # SnS eval_linear: lr 30 at batch 256 (scaled lr * batch / 256)
LARS_LR = 0.1    # SnS STL-10 probe: lr 0.1 at batch 256 (1.6 at its batch 4096), with LARS
LARS_TRUST = 0.001   # SnS STL-10 probe: LARS trust coefficient
OPTIMIZERS = ("sgd", "lars")
DEFAULT_LR = {"sgd": PAPER_LR, "lars": LARS_LR}


def check_optimizer(name: str) -> str:
    """The canonical (lower-case) optimiser name, or a ValueError listing the choices."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown probe optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return key


def build_optimizer(params, optimizer: str, lr: float, momentum: float, wd: float,
                    trust_coefficient: float = LARS_TRUST, exclude_1d: bool = True) -> torch.optim.Optimizer:
    """The probe's optimiser: ``torch.optim.SGD`` or :class:`LARS` with the given settings."""
    if check_optimizer(optimizer) == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=trust_coefficient,
                    exclude_1d=exclude_1d)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)


def new_head(dim: int, num_classes: int, generator: torch.Generator) -> nn.Linear:
    """``Linear(dim, num_classes)`` with weights N(0, 0.01) and zero bias (the SnS probe init)."""
    head = torch.nn.utils.skip_init(nn.Linear, dim, num_classes)   # no draw from the global RNG
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
        head.bias.zero_()
    return head


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Per-epoch cosine decay without warm-up: ``base * 0.5 * (1 + cos(pi * epoch / epochs))``."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def standardise(train: Tensor, *others: Tensor) -> Tuple[Tensor, ...]:
    """Per-dimension standardisation with the train statistics, scaled by ``1/sqrt(D)``.

    Dimensions that are constant on the train set (unbiased std at most 1e-6) are set to 0 (not blown
    up on the test set).
    """
    mu = train.mean(0, keepdim=True)
    sd = train.std(0, keepdim=True) if train.shape[0] > 1 else torch.ones_like(mu)
    inv = torch.where(sd > 1e-6, 1.0 / sd.clamp_min(1e-6), torch.zeros_like(sd)) / math.sqrt(train.shape[1])
    return tuple((t - mu) * inv for t in (train, *others))


@torch.no_grad()
def accuracy(head: nn.Module, feats: Tensor, labels: Tensor, chunk: int = 4096) -> float:
    """Top-1 (%) of ``head`` on cached features."""
    correct = 0
    for s in range(0, feats.shape[0], chunk):
        correct += int((head(feats[s:s + chunk]).argmax(1) == labels[s:s + chunk]).sum())
    return 100.0 * correct / feats.shape[0]


#: the paper protocol's training views per dataset: RandomResizedCrop(0.08-1) + flip (``linear``) is SnS's,
#: but a flipped 2 or a 10 % crop of a 7 is another digit or none, so digits get label-preserving views
LINEAR_VIEWS = {"digits": "linear-digits"}


def probe_views(train) -> str:
    """The augmentation preset of the paper protocol's training views for dataset ``train``."""
    return LINEAR_VIEWS.get(getattr(train, "name", None) or "", "linear")


def _image_transforms(train, size, mean, std, augment: bool):
    """(train transform, test transform) from the augmentation presets: :func:`probe_views` / ``none``."""
    dmean, dstd = dataset_stats(train)
    mean = tuple(mean if mean is not None else (dmean if dmean is not None else (0.0, 0.0, 0.0)))
    std = tuple(std if std is not None else (dstd if dstd is not None else (1.0, 1.0, 1.0)))
    if size is None:
        size = getattr(train, "resolution", None) or int(train[0][0].shape[-1])
    test_tf = build_augment("none", size, mean, std, input_range="unit")
    train_tf = build_augment(probe_views(train) if augment else "none", size, mean, std, input_range="unit")
    return train_tf, test_tf


def _check_hparams(epochs: int, batch: int, lr: Optional[float], eval_every: int, optimizer: str = "sgd",
                   momentum: float = 0.9, wd: float = 0.0, trust_coefficient: float = LARS_TRUST) -> Tuple[str, float]:
    """Validate the probe settings; returns ``(optimizer, lr)`` with the name canonical and ``lr``
    resolved (None: the optimiser's paper rate)."""
    opt = check_optimizer(optimizer)
    lr = DEFAULT_LR[opt] if lr is None else lr
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch < 1 or not lr > 0 or eval_every < 1:
        raise ValueError(f"need batch >= 1, lr > 0 and eval_every >= 1 (got {batch}, {lr}, {eval_every})")
    if opt == "lars":
        check_lars_hparams(lr, momentum, wd, trust_coefficient)
    elif not 0.0 <= momentum < 1.0 or not wd >= 0:
        raise ValueError(f"need 0 <= momentum < 1 and wd >= 0 (got {momentum}, {wd})")
    return opt, lr


def _train_head(
    batches: Callable[[torch.Generator], Iterable[Tuple[Tensor, Tensor]]],
    fte: Tensor,
    yte: Tensor,
    num_classes: int,
    *,
    epochs: int,
    batch: int,
    lr: float,
    momentum: float,
    wd: float,
    device: Union[str, torch.device],
    seed: int,
    eval_every: int,
    progress: Optional[Callable[[dict], None]],
    optimizer: str = "sgd",
    trust_coefficient: float = LARS_TRUST,
    exclude_1d: bool = True,
) -> dict:
    """The probe's optimisation, shared by both paths: ``batches(g)`` yields one epoch of
    ``(features, labels)``; test accuracy of the cached test features at the evaluation points."""
    dim = fte.shape[1]
    g = torch.Generator().manual_seed(seed)
    head = new_head(dim, num_classes, g).to(device)
    base_lr = lr * batch / 256.0
    opt = build_optimizer(head.parameters(), optimizer, base_lr, momentum, wd, trust_coefficient, exclude_1d)
    fte, yte = fte.to(device), yte.to(device)
    history, best, best_epoch, last, loss_avg = [], -1.0, -1, 0.0, float("nan")
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # augmentation draws; the caller's global RNG is left untouched
        for epoch in range(epochs):
            cur_lr = cosine_lr(base_lr, epoch, epochs)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            loss_sum, seen = 0.0, 0
            for f, y in batches(g):
                if f.shape[1] != dim:
                    raise EvalDataError(f"train features have dim {f.shape[1]} but test features {dim}")
                loss = F.cross_entropy(head(f), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * y.shape[0]
                seen += y.shape[0]
            loss_avg = loss_sum / max(seen, 1)
            if not math.isfinite(loss_avg):
                raise FloatingPointError(f"linear probe diverged at epoch {epoch} (loss {loss_avg}); lower lr")
            top1 = None
            if epoch % eval_every == 0 or epoch == epochs - 1:
                top1 = last = accuracy(head, fte, yte)
                history.append((epoch, last))
                if last > best:
                    best, best_epoch = last, epoch
            if progress is not None:
                progress(dict(epoch=epoch, epochs=epochs, lr=cur_lr, loss=loss_avg, top1=top1))
    return dict(top1=last, best_top1=best, best_epoch=best_epoch, epochs=epochs, lr=base_lr, batch=batch,
                optimizer=optimizer, **({"trust_coefficient": trust_coefficient, "exclude_1d": exclude_1d}
                                        if optimizer == "lars" else {}),
                num_test=int(fte.shape[0]), feature_dim=dim, num_classes=num_classes, train_loss=loss_avg,
                history=history)


def probe_features(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    epochs: int = 90,
    batch: int = 256,
    lr: Optional[float] = None,
    momentum: float = 0.9,
    wd: float = 0.0,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    progress: Optional[Callable[[dict], None]] = None,
    num_classes: Optional[int] = None,
    eval_every: int = 5,
    standardize: bool = True,
    optimizer: str = "sgd",
    trust_coefficient: float = LARS_TRUST,
    exclude_1d: bool = True,
) -> dict:
    """The fast path on already-extracted features ``[N, D]`` (what ``linear_probe(fast=True)`` runs).

    With ``standardize`` the features are standardised with the train statistics and scaled by
    ``1/sqrt(D)`` (see :func:`standardise`) before the paper's head/optimiser/schedule.
    ``optimizer``: ``"sgd"`` or ``"lars"`` (with ``trust_coefficient`` and ``exclude_1d``); ``lr``
    (at batch 256, None: 30 for SGD, 0.1 for LARS) is scaled by ``batch / 256``.
    """
    t0 = time.perf_counter()
    optimizer, lr = _check_hparams(epochs, batch, lr, eval_every, optimizer, momentum, wd, trust_coefficient)
    for what, f, y in (("train set", train_feats, train_labels), ("test set", test_feats, test_labels)):
        if f.dim() != 2 or f.shape[0] != y.shape[0]:
            raise EvalDataError(f"{what}: expected features [N, D] and labels [N], got {tuple(f.shape)} / "
                                f"{tuple(y.shape)}")
        if f.shape[0] == 0:
            raise EvalDataError(f"{what} is empty")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise EvalDataError(f"train/test feature dims differ: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    num_classes = check_labels(train_labels.long(), num_classes, "train set")
    num_classes = check_labels(test_labels.long(), num_classes, "test set")
    ftr, fte = train_feats.float(), test_feats.float()
    if standardize:
        ftr, fte = standardise(ftr, fte)
    ftr, ytr = ftr.to(device), train_labels.long().to(device)

    def batches(g: torch.Generator):
        order = torch.randperm(ftr.shape[0], generator=g).to(device)
        return ((ftr[idx], ytr[idx]) for idx in order.split(batch))

    res = _train_head(batches, fte, test_labels.long(), num_classes, epochs=epochs, batch=batch, lr=lr,
                      momentum=momentum, wd=wd, device=device, seed=seed, eval_every=eval_every, progress=progress,
                      optimizer=optimizer, trust_coefficient=trust_coefficient, exclude_1d=exclude_1d)
    res.update(protocol="linear-fast", num_train=int(ftr.shape[0]), time_s=time.perf_counter() - t0)
    return res


def linear_probe(
    student_or_feature_fn: FeatureFn,
    train_ds: DataLike,
    test_ds: DataLike,
    *,
    epochs: int = 90,
    batch: int = 256,
    lr: Optional[float] = None,
    momentum: float = 0.9,
    wd: float = 0.0,
    augment: bool = True,
    fast: bool = False,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    progress: Optional[Callable[[dict], None]] = None,
    num_classes: Optional[int] = None,
    eval_every: int = 5,
    size: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    optimizer: str = "sgd",
    trust_coefficient: float = LARS_TRUST,
    exclude_1d: bool = True,
) -> dict:
    """Train a linear classifier on frozen features and report test top-1 (%).

    ``student_or_feature_fn``: a ``Student`` (``.features``, before the projector), an
    ``nn.Module`` or a callable on normalised batches. Datasets yield ``(x in [0,1], y)`` (or are
    ``(x, y)`` tensor pairs). ``lr`` is the rate at batch 256 and is scaled by ``batch / 256``
    (None: the paper's rate for ``optimizer``, 30 for ``"sgd"``, 0.1 for ``"lars"``). ``optimizer="lars"``
    trains with :class:`~gandistill.evaluation.lars.LARS` (``trust_coefficient``, ``exclude_1d``); SnS's
    STL-10 protocol is ``optimizer="lars", batch=4096``.
    ``progress(dict(epoch, epochs, lr, loss, top1))`` is called after every epoch (``top1`` is
    None between evaluation points). ``size``/``mean``/``std`` override the dataset's
    ``resolution``/``mean``/``std``. ``augment=False`` (full path) trains on un-augmented views.

    Returns ``dict(top1, best_top1, best_epoch, epochs, protocol, lr, batch, num_train, num_test,
    feature_dim, num_classes, train_loss, optimizer, history=[(epoch, top1)], time_s)`` (LARS runs add
    ``trust_coefficient`` and ``exclude_1d``).
    """
    t0 = time.perf_counter()
    optimizer, lr = _check_hparams(epochs, batch, lr, eval_every, optimizer, momentum, wd, trust_coefficient)
    train = as_dataset(train_ds, "train set")
    test = as_dataset(test_ds, "test set")
    require_labelled(train, "train set")
    require_labelled(test, "test set")
    num_classes = num_classes or infer_num_classes(train, test)
    kw = dict(epochs=epochs, batch=batch, lr=lr, momentum=momentum, wd=wd, device=device, seed=seed,
              eval_every=eval_every, progress=progress, optimizer=optimizer, trust_coefficient=trust_coefficient,
              exclude_1d=exclude_1d)
    if fast:
        ftr, ytr = extract_features(student_or_feature_fn, train, batch, device, mean, std)
        fte, yte = extract_features(student_or_feature_fn, test, batch, device, mean, std)
        res = probe_features(ftr, ytr, fte, yte, num_classes=num_classes, **kw)
        res["time_s"] = time.perf_counter() - t0
        return res

    fn, module = resolve_feature_fn(student_or_feature_fn)
    train_tf, test_tf = _image_transforms(train, size, mean, std, augment)
    fte, yte = extract_features(student_or_feature_fn, test, batch, device, transform=test_tf)
    num_classes = check_labels(yte, num_classes, "test set")

    def batches(g: torch.Generator):
        return _augmented_batches(fn, train, train_tf, batch, g, device, num_classes)

    with frozen_eval(module):
        res = _train_head(batches, fte, yte, num_classes, **kw)
    res.update(protocol="linear", num_train=len(train), time_s=time.perf_counter() - t0)
    return res


def _augmented_batches(fn, train, train_tf, batch, g, device, num_classes):
    """Shuffled train batches -> (frozen features of augmented views, labels)."""
    for x, y in iterate(train, batch, shuffle=True, generator=g):
        y = torch.as_tensor(y).long().view(-1).to(device)
        if (y < 0).any() or (y >= num_classes).any():
            raise EvalDataError(f"train labels must lie in [0, {num_classes}); got {int(y.min())}..{int(y.max())}")
        with torch.no_grad():
            f = fn(train_tf(x.to(device).float()))
        yield f.flatten(1).float(), y
