"""Reader for the CIFAR-10 / CIFAR-100 "python version" pickle batches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR100_FILES = {"train": ["train"], "test": ["test"]}

# The only globals a genuine CIFAR batch refers to (numpy arrays, and bytes under protocol 2).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _load(path: Path) -> dict[str, object]:
    """Unpickle one batch (Python-2 pickles: latin1/bytes keys) into a dict with str keys."""
    with open(path, "rb") as f:
        d = _SafeUnpickler(f, encoding="bytes").load()
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_cifar_batches(directory: str | os.PathLike, split: str, coarse: bool = False):
    """Read ``cifar-10-batches-py/`` or ``cifar-100-python/`` (detected from the files present).

    Returns (images uint8 (N, 3, 32, 32), labels int64 (N,), classes list[str]). Each row of
    b'data' is 3072 bytes: the 32x32 R plane, then G, then B, each row-major.
    CIFAR-100 gives fine labels (100) by default, coarse ones (20) with ``coarse=True``.
    """
    directory = Path(directory)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if (directory / "batches.meta").exists() or (directory / "test_batch").exists():
        if coarse:
            raise ValueError("CIFAR-10 has no coarse labels")
        files, meta, label_key, names_key = CIFAR10_FILES[split], "batches.meta", "labels", "label_names"
    elif (directory / "meta").exists():
        kind = "coarse" if coarse else "fine"
        files, meta, label_key, names_key = CIFAR100_FILES[split], "meta", f"{kind}_labels", f"{kind}_label_names"
    else:
        raise FileNotFoundError(f"{directory}: no batches.meta (CIFAR-10) or meta (CIFAR-100) file")
    images, labels = [], []
    for name in files:
        batch = _load(directory / name)
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    classes = _names(_load(directory / meta)[names_key])
    return np.concatenate(images), np.concatenate(labels), classes
