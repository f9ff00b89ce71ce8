"""Reader for the CIFAR-10 / CIFAR-100 "python version" pickle batches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .dataset import DataFileError
from .files import REFETCH, read_file

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


class _Refused(Exception):
    pass


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def _load(path: Path) -> dict[str, object]:
    """Unpickle one batch (Python-2 pickles: latin1/bytes keys) into a dict with str keys.

    Only numpy arrays and plain containers are accepted; anything else, and any damage, raises
    DataFileError naming the file.
    """
    import io

    raw = read_file(path)
    try:
        d = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise DataFileError(f"{path}: refusing to load {e} from a CIFAR batch (only numpy arrays, numbers, "
                            f"strings, lists and dicts are allowed): not a genuine CIFAR file; {REFETCH}") from None
    except Exception as e:  # truncated or garbage pickles raise many types (EOFError, UnpicklingError, ...)
        cut = "truncated" if isinstance(e, EOFError) or "truncated" in str(e) else "corrupt"
        raise DataFileError(f"{path}: {cut} CIFAR batch, cannot be unpickled ({type(e).__name__}: {e}); "
                            f"{REFETCH}") from None
    if not isinstance(d, dict):
        raise DataFileError(f"{path}: not a CIFAR batch (holds a {type(d).__name__}, expected a dict); {REFETCH}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _get(batch: dict, key: str, path: Path):
    if key not in batch:
        raise DataFileError(f"{path}: not a CIFAR batch of this kind (no {key!r} entry; has "
                            f"{', '.join(map(str, batch)) or 'nothing'}); {REFETCH}")
    return batch[key]


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
    for name in [*files, meta]:
        if not (directory / name).is_file():
            raise DataFileError(f"{directory}: {name} is missing (the folder needs {', '.join([*files, meta])}); "
                                f"{REFETCH}")
    images, labels = [], []
    for name in files:
        path = directory / name
        batch = _load(path)
        data, label = _get(batch, "data", path), _get(batch, label_key, path)
        try:
            data = np.asarray(data)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f"'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
            label = np.asarray(label).astype(np.int64, casting="same_kind")
            if label.shape != (len(data),):
                raise ValueError(f"{label.shape[0] if label.ndim else 'no'} labels for {len(data)} images")
        except (ValueError, TypeError) as e:
            raise DataFileError(f"{path}: malformed CIFAR batch ({e}); {REFETCH}") from None
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(label)
    meta_path = directory / meta
    classes = _names(_get(_load(meta_path), names_key, meta_path))
    return np.concatenate(images), np.concatenate(labels), classes
