"""Named datasets for configs, and the conversion of any user data into tensors the trainer uses.

The trainer accepts ``(x, y)`` tensor pairs, a ``TensorDataset``, an ``eqprop.data.Dataset``
(uint8 images are scaled to [0, 1] floats), any map-style ``torch.utils.data.Dataset`` (its
samples are stacked into tensors once) or a ``DataLoader`` (used as it is, batch by batch).
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..data import Dataset, available_datasets, load_dataset
from ..data.transforms import channel_stats, normalize, to_float
from ..registry import DATASETS, ConfigError, register_dataset


def _builtin(name: str):
    def load(split: str, root: str | None = None, download: bool = False):
        return load_dataset(name, split=split, root=root, download=download)

    load.__doc__ = f"The {name} dataset from the data roots (eqprop.data.load_dataset)."
    return load


for _name in available_datasets():
    if _name not in DATASETS:
        register_dataset(_name, _builtin(_name))


def subset_generator() -> torch.Generator:
    """``train_subset``/``test_subset`` draw a random subset (kept in file order) with this fixed
    seed, the same for every run, since some files are sorted by class (the CIFAR-10 JPEG copy)."""
    return torch.Generator().manual_seed(0)


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` float inputs and targets from in-memory data; None for a DataLoader.

    x: (N, ...) float32 (uint8 images scaled to [0, 1]); y: (N,) int64 classes or (N, k) targets.
    """
    if isinstance(data, DataLoader):
        return None
    if isinstance(data, Dataset):
        return to_float(data.images), data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise ValueError(f"a TensorDataset for training holds (inputs, targets); this one has {len(data.tensors)} tensors")
        x, y = data.tensors
    elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        samples = [data[i] for i in range(len(data))]
        if not samples:
            raise ValueError("the dataset is empty")
        x = torch.stack([torch.as_tensor(s[0]) for s in samples])
        y = torch.as_tensor([int(s[1]) for s in samples]) if torch.as_tensor(samples[0][1]).dim() == 0 \
            else torch.stack([torch.as_tensor(s[1]) for s in samples])
    else:
        raise TypeError(f"training data must be (x, y) tensors, a TensorDataset, an eqprop.data.Dataset, a "
                        f"torch Dataset or a DataLoader; got {type(data).__name__}")
    if len(x) != len(y):
        raise ValueError(f"inputs and targets differ in length: {len(x)} vs {len(y)}")
    if x.dtype == torch.uint8:
        x = to_float(x)
    if not x.is_floating_point():
        raise TypeError(f"inputs must be floating point (or uint8 images), got {x.dtype}")
    if y.is_floating_point() and y.dim() == 1:
        raise TypeError("class targets must be integers (N,); float targets must be (N, num_outputs)")
    return x, y


def num_classes_of(y: torch.Tensor) -> int:
    return int(y.max()) + 1 if y.dim() == 1 else int(y.shape[-1])


def load_split(data_cfg: dict, split: str):
    """One split of the dataset a resolved ``data`` section names, as the registered loader returns it."""
    from dataclasses import fields

    from ..config import DataConfig
    from ..registry import Entry

    entry: Entry = DATASETS.get(data_cfg["name"])
    own = {f.name for f in fields(DataConfig)}  # the section's own settings; the rest go to the loader
    settings = {k: v for k, v in data_cfg.items() if k not in own}
    kw = {"split": split, "root": data_cfg.get("root"), "download": data_cfg.get("download", False)}
    return entry.build(settings, **kw)


def split_validation(x, y, n: int):
    """``((x, y) kept for training, (x, y) of n held-out samples)``; the split depends on n and the
    data only (a fixed generator), so every run and trial of a study holds out the same samples."""
    if n >= len(y):
        raise ConfigError(f"data.validation={n} holds out every training sample ({len(y)}); lower it")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(20231)).to(y.device)
    keep, held = perm[n:].sort().values, perm[:n].sort().values
    return (x[keep], y[keep]), (x[held], y[held])


def load_data(data_cfg: dict):
    """``(train, test, num_classes)`` from a resolved ``data`` section: in-memory (x, y) pairs with
    the section's subsets and normalisation applied (statistics from the training split).

    With ``validation: N`` the second pair is N samples held out of the training split (the
    same ones for every seed), and the test split is not read at all.
    """
    for key in ("train_subset", "test_subset", "validation"):  # before any file is read
        if data_cfg.get(key) is not None and data_cfg[key] < 1:
            raise ConfigError(f"data.{key} must be >= 1 (or null for the whole split), got {data_cfg[key]}")
    held_out = data_cfg.get("validation")
    splits = ("train",) if held_out else ("train", "test")
    raw = {s: load_split(data_cfg, s) for s in splits}
    classes = raw["train"].num_classes if isinstance(raw["train"], Dataset) else None
    out = {}
    for split, key in (("train", "train_subset"), ("test", "test_subset"))[:len(splits)]:
        n = data_cfg.get(key)
        if isinstance(raw[split], Dataset):
            raw[split] = raw[split].subset(n, subset_generator())
            n = None
        pair = as_tensors(raw[split])
        if pair is None:
            raise ConfigError(f"dataset {data_cfg['name']!r}: a loader for configs must return in-memory data "
                              f"(an eqprop.data.Dataset, a TensorDataset or (x, y)), not a DataLoader")
        x, y = pair
        if n is not None:
            idx = torch.randperm(len(y), generator=subset_generator())[:n].sort().values
            x, y = x[idx], y[idx]
        out[split] = (x, y)
    if held_out:
        out["train"], out["test"] = split_validation(*out["train"], held_out)
    if data_cfg.get("normalize"):
        if out["train"][0].dim() != 4:
            raise ConfigError(f"data.normalize=true standardises image channels; {data_cfg['name']} is not an image dataset")
        stats = channel_stats(out["train"][0])
        out = {k: (normalize(x, *stats), y) for k, (x, y) in out.items()}
    if classes is None:
        classes = max(num_classes_of(out["train"][1]), num_classes_of(out["test"][1]))
    return out["train"], out["test"], classes
