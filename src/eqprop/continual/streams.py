"""Task streams: sequences of training tasks, each with the test set it is scored on.

    permuted_mnist(n_tasks)      MNIST with a fixed random pixel permutation per task (all tasks
                                 permuted, as in Laborieux et al. 2021's code)
    mnist_fashion()              MNIST, then Fashion-MNIST (order="fashion-mnist" reverses it)
    fashion_stream(n_subsets)    Fashion-MNIST's training set in n disjoint sequential subsets,
                                 all scored on the one Fashion-MNIST test set (stream learning)

Images are float32 in [0, 1], shape (N, 1, 28, 28); labels int64. ``train_subset``/``test_subset``
keep the first N samples of a random draw (seeded) of each split, for quick runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import load_dataset
from ..data.transforms import to_float

__all__ = ["EvalSet", "Stream", "Task", "fashion_stream", "make_stream", "mnist_fashion", "permuted_mnist"]


@dataclass
class Task:
    name: str
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class EvalSet:
    name: str
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class Stream:
    """``tasks`` trained in order; ``evals`` scored after each task. ``task_of_eval[i]``: the index
    of the task eval set ``i`` belongs to (its per-task batch-norm state), or None (a shared set)."""

    name: str
    tasks: list[Task]
    evals: list[EvalSet]
    task_of_eval: list[int | None]


def _split(name: str, split: str, root, subset: int | None, seed: int):
    ds = load_dataset(name, split=split, root=root)
    x, y = to_float(ds.images), ds.labels.long()
    x = x.reshape(len(x), 1, 28, 28)
    if subset is not None:
        if subset < 1:
            raise ValueError(f"subset sizes must be >= 1, got {subset}")
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:subset].sort().values
        x, y = x[idx], y[idx]
    return x, y


def permuted_mnist(n_tasks: int = 6, seed: int = 0, root=None, train_subset=None, test_subset=None) -> Stream:
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    xtr, ytr = _split("mnist", "train", root, train_subset, seed)
    xte, yte = _split("mnist", "test", root, test_subset, seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    tasks, evals = [], []
    for t in range(n_tasks):
        perm = torch.randperm(784, generator=gen)
        tasks.append(Task(f"pMNIST-{t + 1}", xtr.reshape(-1, 784)[:, perm].reshape(xtr.shape), ytr))
        evals.append(EvalSet(f"pMNIST-{t + 1}", xte.reshape(-1, 784)[:, perm].reshape(xte.shape), yte))
    return Stream("permuted-mnist", tasks, evals, list(range(n_tasks)))


def mnist_fashion(order: str = "mnist-fashion", seed: int = 0, root=None, train_subset=None, test_subset=None) -> Stream:
    names = {"mnist-fashion": ["mnist", "fashion-mnist"], "fashion-mnist": ["fashion-mnist", "mnist"]}
    if order not in names:
        raise ValueError(f"order must be one of {', '.join(names)}, got {order!r}")
    tasks, evals = [], []
    for n in names[order]:
        tasks.append(Task(n, *_split(n, "train", root, train_subset, seed)))
        evals.append(EvalSet(n, *_split(n, "test", root, test_subset, seed)))
    return Stream(order, tasks, evals, [0, 1])


def fashion_stream(n_subsets: int = 60, seed: int = 0, root=None, train_subset=None, test_subset=None) -> Stream:
    x, y = _split("fashion-mnist", "train", root, train_subset, seed)
    if not 1 <= n_subsets <= len(x):
        raise ValueError(f"n_subsets must lie in 1..{len(x)} (the training samples), got {n_subsets}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(20_000 + seed))
    tasks = [Task(f"subset-{i + 1}", x[idx], y[idx]) for i, idx in enumerate(order.tensor_split(n_subsets))]
    return Stream("fashion-stream", tasks, [EvalSet("fashion-mnist", *_split("fashion-mnist", "test", root, test_subset, seed))],
                  [None])


def make_stream(name: str, n_tasks: int = 6, seed: int = 0, root=None, train_subset=None, test_subset=None) -> Stream:
    """By name: ``permuted-mnist`` (n_tasks), ``mnist-fashion``, ``fashion-mnist`` (the reverse order),
    ``fashion-stream`` (n_tasks subsets)."""
    kw = dict(seed=seed, root=root, train_subset=train_subset, test_subset=test_subset)
    if name == "permuted-mnist":
        return permuted_mnist(n_tasks, **kw)
    if name in ("mnist-fashion", "fashion-mnist"):
        return mnist_fashion(name, **kw)
    if name == "fashion-stream":
        return fashion_stream(n_tasks, **kw)
    raise ValueError(f"unknown stream {name!r}; valid: permuted-mnist, mnist-fashion, fashion-mnist, fashion-stream")
