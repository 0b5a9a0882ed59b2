"""Frozen-backbone feature extraction shared by the linear probe and the kNN monitor.

A *feature function* maps a dataset-normalised batch ``(x - mean) / std`` to features
``[N, D]``. It may be a :class:`gandistill.students.Student` (its ``.features``: the backbone
output *before* the projector, as the paper's linear protocol uses, reference §1.7), any
``nn.Module`` (its ``forward``) or a plain callable.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from gandistill.io.errors import GandistillError

FeatureFn = Union[nn.Module, Callable[[Tensor], Tensor]]
DataLike = Union[Dataset, Tuple[Tensor, Tensor]]


class EvalDataError(GandistillError):
    """A dataset cannot be used for a supervised evaluation (empty, unlabelled, bad shapes)."""


def as_dataset(data: DataLike, what: str = "dataset") -> Dataset:
    """Accept a ``Dataset`` or an ``(x, y)`` pair of tensors; reject empty ones."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise EvalDataError(f"{what}: x has {x.shape[0]} rows but y has {y.shape[0]}")
        data = TensorDataset(x, y.long())
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise EvalDataError(f"{what}: expected a Dataset or an (x, y) pair of tensors, got {type(data).__name__}")
    try:
        n = len(data)  # type: ignore[arg-type]
    except TypeError as e:
        raise EvalDataError(f"{what}: the dataset has no length (iterable datasets are not supported)") from e
    if n == 0:
        raise EvalDataError(f"{what} is empty: an evaluation needs at least one labelled item")
    return data  # type: ignore[return-value]


def dataset_stats(data: Dataset) -> Tuple[Optional[Sequence[float]], Optional[Sequence[float]]]:
    """The dataset's normalisation ``(mean, std)`` attributes, or ``(None, None)``."""
    return getattr(data, "mean", None), getattr(data, "std", None)


def resolve_feature_fn(model: FeatureFn) -> Tuple[Callable[[Tensor], Tensor], Optional[nn.Module]]:
    """Return ``(fn, module)``: the callable giving features and the module to put in eval mode."""
    feats = getattr(model, "features", None)
    if isinstance(model, nn.Module):
        fn = feats if callable(feats) and not isinstance(feats, nn.Module) else model
        return fn, model
    if callable(model):
        return model, None
    raise TypeError(f"expected a Student, an nn.Module or a callable giving features, got {type(model).__name__}")


@contextlib.contextmanager
def frozen_eval(module: Optional[nn.Module]) -> Iterator[None]:
    """Run ``module`` in ``eval()`` (BN uses its running stats) and restore its mode afterwards."""
    if module is None:
        yield
        return
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def normaliser(mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> Callable[[Tensor], Tensor]:
    """``x -> (x - mean) / std`` over the channel axis of ``[N, C, H, W]`` (identity if no stats)."""
    if mean is None or std is None:
        return lambda x: x
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    if (s <= 0).any():
        raise ValueError(f"std must be positive, got {tuple(std)}")

    def norm(x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != m.shape[1]:
            raise EvalDataError(f"expected images [N,{m.shape[1]},H,W] to normalise, got {tuple(x.shape)}")
        return (x - m.to(x.device)) / s.to(x.device)

    return norm


def iterate(data: Dataset, batch: int, *, shuffle: bool = False, generator: Optional[torch.Generator] = None,
            num_workers: int = 0) -> Iterator[Tuple[Tensor, Tensor]]:
    """Batches ``(x, y LongTensor)`` over every item (the last batch may be smaller).

    In-memory sets are sliced directly (``dataset.take(index)`` of :class:`gandistill.data.ArrayDataset`,
    or the tensors of a ``TensorDataset``); anything else goes through a ``DataLoader``.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n = len(data)  # type: ignore[arg-type]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    take = getattr(data, "take", None)
    if isinstance(data, TensorDataset):
        x_all, y_all = data.tensors[0], data.tensors[1]
        take = lambda idx: (x_all[idx], y_all[idx])  # noqa: E731
    if callable(take):
        for s in range(0, n, batch):
            idx = order[s:s + batch] if shuffle else slice(s, min(n, s + batch))
            x, y = take(idx)
            yield x, torch.as_tensor(y).long().view(-1)
        return
    # an explicit generator: the loader would otherwise draw its worker seed from the global RNG
    loader = DataLoader(data, batch_size=batch, sampler=order.tolist(), num_workers=num_workers, drop_last=False,
                        generator=torch.Generator().manual_seed(0))
    for x, y in loader:
        yield x, torch.as_tensor(y).long().view(-1)


@torch.no_grad()
def extract_features(
    model: FeatureFn,
    dataset: DataLike,
    batch: int = 256,
    device: Union[str, torch.device] = "cpu",
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    *,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    num_workers: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Features of every item of ``dataset`` through the frozen ``model``.

    Items are ``(x, y)`` with ``x`` in [0, 1]; each batch is normalised with ``mean``/``std``
    (default: the dataset's own ``mean``/``std`` attributes, none for a tensor pair) or passed
    through ``transform`` instead when given (e.g. a ``build_augment("none", ...)`` module).
    The model is moved to ``device`` and runs in ``eval()`` under ``no_grad`` (its mode is restored).

    Returns ``(features float32 [N, D] on CPU, labels LongTensor [N])``.
    """
    data = as_dataset(dataset)
    if transform is None:
        dmean, dstd = dataset_stats(data)
        transform = normaliser(mean if mean is not None else dmean, std if std is not None else dstd)
    fn, module = resolve_feature_fn(model)
    if module is not None:
        module.to(device)
    feats, labels = [], []
    with frozen_eval(module):
        for x, y in iterate(data, batch, num_workers=num_workers):
            f = fn(transform(x.to(device).float()))
            if f.dim() != 2:
                f = f.flatten(1)
            feats.append(f.float().cpu())
            labels.append(torch.as_tensor(y).long().view(-1))
    return torch.cat(feats), torch.cat(labels)


def check_labels(labels: Tensor, num_classes: Optional[int], what: str) -> int:
    """Validate labels for a supervised evaluation and return the number of classes."""
    if labels.numel() == 0:
        raise EvalDataError(f"{what} is empty")
    if (labels < 0).any():
        n_bad = int((labels < 0).sum())
        raise EvalDataError(
            f"{what} has {n_bad} unlabelled items (label -1): linear and kNN evaluation need a labelled "
            "split (e.g. stl10 'train'/'test', not 'unlabeled')"
        )
    top = int(labels.max()) + 1
    if num_classes is None or num_classes <= 0:
        return top
    if top > num_classes:
        raise EvalDataError(f"{what} has label {top - 1} but num_classes={num_classes}")
    return int(num_classes)


def infer_num_classes(*datasets: Dataset) -> Optional[int]:
    """``num_classes`` attribute of the first dataset that has a positive one."""
    for d in datasets:
        n = getattr(d, "num_classes", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def require_labelled(data: Dataset, what: str) -> None:
    """Fail early (before any forward pass) on a dataset that declares itself unlabelled."""
    n = getattr(data, "num_classes", None)
    if isinstance(n, int) and n == 0:
        name = getattr(data, "name", type(data).__name__)
        raise EvalDataError(
            f"{what} '{name}' has no labels (num_classes=0): linear and kNN evaluation need a labelled "
            "split (e.g. stl10 'train'/'test', not 'unlabeled'; imagefolder needs class sub-folders)"
        )
