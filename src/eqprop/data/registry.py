"""The named datasets: where their files live under a data root and how to read them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .cifar import CIFAR10_FILES, CIFAR100_FILES, read_cifar_batches
from .dataset import Dataset, DatasetNotFoundError
from .download import CIFAR10_URL, CIFAR100_URL, FASHION_MNIST_URL, MNIST_URL
from .idx import read_idx
from .image_folder import read_image_folder_tar
from .paths import data_root
from .svhn import SVHN_CLASSES, SVHN_FILES, read_svhn_mat
from .timeseries import read_ts, sequential_mnist, standardize

SPLITS = ("train", "test")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_SET_ROOT = "set EQPROP_DATA=DIR (or pass root=DIR to load_dataset)"


def _missing(name: str, wanted: str, looked: list[Path], how: str) -> DatasetNotFoundError:
    where = ", ".join(str(p) for p in looked)
    return DatasetNotFoundError(f"{name}: could not find {wanted}; looked in {where}. {how}")


def _with_gz(directory: Path, filename: str) -> Path | None:
    for candidate in (directory / filename, directory / f"{filename}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_dataset(name: str, split: str, dirs: list[Path], classes: list[str], how: str) -> Dataset:
    image_file, label_file = _IDX_FILES[split]
    for d in dirs:
        images, labels = _with_gz(d, image_file), _with_gz(d, label_file)
        if images and labels:
            x, y = read_idx(images), read_idx(labels)
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise ValueError(f"{name}: {images} {x.shape} and {labels} {y.shape} do not pair up")
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).unsqueeze(1)
            return Dataset(name, split, x, torch.from_numpy(y.astype(np.int64)), list(classes), str(d))
    raise _missing(name, f"{image_file}(.gz) and {label_file}(.gz)", dirs, how)


def _mnist(split: str, roots: list[Path]) -> Dataset:
    dirs = [p for r in roots for p in (r / "mnist", r / "MNIST" / "raw")]
    how = (f"Download the four IDX files from {MNIST_URL} into DIR/mnist/ and {_SET_ROOT}, "
           "or run eqprop.data.download.download('mnist', DIR).")
    return _idx_dataset("mnist", split, dirs, MNIST_CLASSES, how)


def _fashion_mnist(split: str, roots: list[Path]) -> Dataset:
    dirs = [p for r in roots for p in (r / "fashion-mnist", r / "FashionMNIST" / "raw")] + [FASHION_MNIST_SYSTEM_DIR]
    how = (f"On Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (installs {FASHION_MNIST_SYSTEM_DIR}/), "
           f"or download the four IDX files from {FASHION_MNIST_URL} into DIR/fashion-mnist/ and {_SET_ROOT}, "
           "or run eqprop.data.download.download('fashion-mnist', DIR).")
    return _idx_dataset("fashion-mnist", split, dirs, FASHION_MNIST_CLASSES, how)


def _cifar(name: str, folder: str, files: dict[str, list[str]], meta: str, url: str, jpeg: str | None):
    def load(split: str, roots: list[Path]) -> Dataset:
        looked: list[Path] = []
        for r in roots:
            d = r / folder
            looked.append(d)
            if all((d / f).is_file() for f in [*files[split], meta]):
                x, y, classes = read_cifar_batches(d, split)
                return Dataset(name, split, torch.from_numpy(x), torch.from_numpy(y), classes, str(d))
            if jpeg is not None:
                for tar in (r / jpeg / f"{split}.tar.gz", r / jpeg / f"{split}.tar"):
                    looked.append(tar)
                    if tar.is_file():
                        x, y, classes = read_image_folder_tar(tar)
                        return Dataset(name, split, torch.from_numpy(x), torch.from_numpy(y), classes, str(tar))
        wanted = f"{folder}/{{{', '.join([*files[split], meta])}}}"
        if jpeg is not None:
            wanted += f" or {jpeg}/{split}.tar(.gz)"
        how = (f"Download {url} and extract it in DIR (giving DIR/{folder}/), then {_SET_ROOT}; "
               f"eqprop.data.download.download('{name}', DIR) does both.")
        raise _missing(name, wanted, looked, how)
    return load


def _sequential_mnist(name: str, permute: bool):
    def load(split: str, roots: list[Path]) -> Dataset:
        ds = _mnist(split, roots)
        return Dataset(name, split, sequential_mnist(ds.images, permute), ds.labels, ds.classes, ds.source)
    return load


def _uea(name: str, problem: str):
    """A UEA/UCR set from ``timeseries/{problem}_{TRAIN,TEST}.ts(.gz)``, standardised per channel
    with the training split's mean and std (both splits), NaN padding kept."""
    def find(split: str, roots: list[Path]) -> Path:
        looked = [r / "timeseries" for r in roots]
        for d in looked:
            found = _with_gz(d, f"{problem}_{split.upper()}.ts")
            if found:
                return found
        how = (f"Download {problem}.zip from https://timeseriesclassification.com (the .ts files) into "
               f"DIR/timeseries/ and {_SET_ROOT}.")
        raise _missing(name, f"{problem}_{split.upper()}.ts(.gz)", looked, how)

    def load(split: str, roots: list[Path]) -> Dataset:
        path = find(split, roots)
        data = read_ts(path)
        train = data if split == "train" else read_ts(find("train", roots))
        x = standardize(train.x, data.x)[1]
        return Dataset(name, split, x, data.labels, data.classes, str(path))
    return load


def _svhn(split: str, roots: list[Path]) -> Dataset:
    dirs = [r / "svhn" for r in roots]
    for d in dirs:
        path = d / SVHN_FILES[split]
        if path.is_file():
            x, y = read_svhn_mat(path)
            return Dataset("svhn", split, torch.from_numpy(x), torch.from_numpy(y), list(SVHN_CLASSES), str(path))
    how = (f"Download {SVHN_FILES[split]} from http://ufldl.stanford.edu/housenumbers/ into DIR/svhn/ "
           f"and {_SET_ROOT}.")
    raise _missing("svhn", SVHN_FILES[split], dirs, how)


_LOADERS = {
    "acsf1": _uea("acsf1", "ACSF1"),
    "basicmotions": _uea("basicmotions", "BasicMotions"),
    "japanesevowels": _uea("japanesevowels", "JapaneseVowels_eq"),
    "psmnist": _sequential_mnist("psmnist", permute=True),
    "smnist": _sequential_mnist("smnist", permute=False),
    "cifar10": _cifar("cifar10", "cifar-10-batches-py", CIFAR10_FILES, "batches.meta", CIFAR10_URL, "cifar10-jpeg"),
    "svhn": _svhn,
    "cifar100": _cifar("cifar100", "cifar-100-python", CIFAR100_FILES, "meta", CIFAR100_URL, None),
    "fashion-mnist": _fashion_mnist,
    "mnist": _mnist,
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_LOADERS)


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None) -> Dataset:
    """Load a whole split of a named dataset into memory, searching :func:`data_root` (``root`` first).

    Raises ValueError for an unknown name or split, DatasetNotFoundError if no root has the files.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(available_datasets())}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return _LOADERS[name](split, data_root(root))
