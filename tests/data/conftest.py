"""Fixtures for the data-layer tests: tiny-file writers, and the real CIFAR-10 splits (for tests
marked ``requires_data("cifar10")``; see tests/conftest.py)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eqprop.data import load_dataset

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file (big-endian), gzipped if ``gz``."""
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python-2 ``str`` (SHORT_BINSTRING/BINSTRING), as cPickle did for CIFAR."""

    def _save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def write_pickle(path: Path, obj: dict, py2: bool = True) -> None:
    """Pickle like the real CIFAR files (Python 2, protocol 2, numpy.core globals) or, with
    ``py2=False``, as Python 3 would (protocol 2, bytes via _codecs.encode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not py2:
        path.write_bytes(pickle.dumps(obj, protocol=2))
        return
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _fake_cifar10(directory, per_batch=4, seed=0):
    """Tiny cifar-10-batches-py; returns {split: (data (N, 3072), labels)}."""
    rng = np.random.default_rng(seed)
    truth = {"train": ([], []), "test": ([], [])}
    for name, split in [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        write_pickle(directory / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                        b"filenames": [b"f.png"] * per_batch})
        truth[split][0].append(data)
        truth[split][1].extend(labels)
    write_pickle(directory / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": per_batch})
    return {s: (np.concatenate(d), np.array(y)) for s, (d, y) in truth.items()}


def _fake_cifar100(directory, n=6, seed=1):
    """Tiny cifar-100-python; returns {split: (data, fine, coarse)}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for split in ("train", "test"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        write_pickle(directory / split, {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse})
        truth[split] = (data, np.array(fine), np.array(coarse))
    write_pickle(directory / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                      b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return truth


@pytest.fixture
def write_idx_file():
    return write_idx


@pytest.fixture(name="write_pickle")
def write_pickle_fixture():
    return write_pickle


@pytest.fixture
def fake_cifar10():
    return _fake_cifar10


@pytest.fixture
def fake_cifar100():
    return _fake_cifar100


def write_image_tar(path: Path, images: dict[str, np.ndarray], extra: dict[str, bytes] | None = None) -> Path:
    """Write a tar(.gz) whose members are lossless PNGs: {"train/cat/0.png": (H, W, 3) or (H, W) uint8}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, array in {**images, **(extra or {})}.items():
            if isinstance(array, np.ndarray):
                buffer = io.BytesIO()
                Image.fromarray(array).save(buffer, format="PNG")
                data = buffer.getvalue()
            else:
                data = array
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(name="write_image_tar")
def write_image_tar_fixture():
    return write_image_tar


@pytest.fixture(scope="session")
def cifar10_train():
    """CIFAR-10 train split, decoded once per session (cached under $EQPROP_CACHE or ~/.cache/eqprop).
    Use it only in tests marked ``requires_data("cifar10")``."""
    return load_dataset("cifar10", "train")


@pytest.fixture(scope="session")
def cifar10_test():
    return load_dataset("cifar10", "test")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """cwd in an empty folder, no EQPROP_DATA, an empty per-user folder, a private cache, no system
    Fashion-MNIST: only a ``root`` given explicitly is searched."""
    from eqprop.data import registry

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EQPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-such-system-dir")
    return tmp_path
