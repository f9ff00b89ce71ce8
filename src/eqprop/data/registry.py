"""The named datasets: where their files live under a data root and how to read them.

Each named dataset has a *locate* step (which files, under which root; cheap, reads nothing) and
a *read* step. :func:`locate_dataset` exposes the first (for listings and for tests that need a
real dataset), :func:`load_dataset` does both, :func:`dataset_status` reports every dataset
without letting one broken file stop the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .cifar import CIFAR10_FILES, CIFAR100_FILES, read_cifar_batches
from .dataset import DataError, DataFileError, Dataset, DatasetNotFoundError, DataRootError
from .download import ALIASES, CIFAR10_URL, CIFAR100_URL, FASHION_MNIST_URL, MNIST_URL, SOURCES, download
from .idx import read_idx
from .image_folder import read_image_folder_tar
from .paths import data_root
from .svhn import SVHN_CLASSES, SVHN_FILES, read_svhn_mat
from .timeseries import TsFormatError, align_classes, read_ts, sequential_mnist, standardize

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
    return DatasetNotFoundError(f"{name}: could not find {wanted}; looked in {where}. {how}",
                                dataset=name, wanted=wanted, looked=list(looked))


def _with_gz(directory: Path, filename: str) -> Path | None:
    for candidate in (directory / filename, directory / f"{filename}.gz"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class _Entry:
    locate: Callable[[str, list[Path]], list[Path]]   # (split, roots) -> the files to read
    read: Callable[[str, list[Path], list[Path]], Dataset]  # (split, files, roots) -> the split


# -- IDX (MNIST, Fashion-MNIST) -------------------------------------------------------------------

def _idx_locate(name: str, dirs: Callable[[list[Path]], list[Path]], how: str):
    def locate(split: str, roots: list[Path]) -> list[Path]:
        image_file, label_file = _IDX_FILES[split]
        looked = dirs(roots)
        for d in looked:
            images, labels = _with_gz(d, image_file), _with_gz(d, label_file)
            if images and labels:
                return [images, labels]
        raise _missing(name, f"{image_file}(.gz) and {label_file}(.gz)", looked, how)
    return locate


def _idx_read(name: str, classes: list[str]):
    def read(split: str, files: list[Path], roots: list[Path]) -> Dataset:
        images, labels = files
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataFileError(f"{name}: {images} {x.shape} and {labels} {y.shape} do not pair up (expected "
                                f"images (N, H, W) and labels (N,)); one of the two files is from another set?")
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise DataFileError(f"{name}: {images} holds {x.dtype}, {labels} {y.dtype}; both must be uint8 IDX")
        if len(y) and int(y.max()) >= len(classes):
            raise DataFileError(f"{labels}: label {int(y.max())} found, {name} has classes 0..{len(classes) - 1}; "
                                f"not a {name} label file?")
        xt = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)
        return Dataset(name, split, xt, torch.from_numpy(y.astype(np.int64)), list(classes), str(images.parent))
    return read


_MNIST_HOW = (f"Download the four IDX files from {MNIST_URL} into DIR/mnist/ and {_SET_ROOT}, "
              "or run `eqprop data download mnist` (or load_dataset(..., download=True)).")
_FASHION_HOW = (f"On Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (installs {FASHION_MNIST_SYSTEM_DIR}/), "
                f"or download the four IDX files from {FASHION_MNIST_URL} into DIR/fashion-mnist/ and {_SET_ROOT}, "
                "or run `eqprop data download fashion-mnist` (or load_dataset(..., download=True)).")
_mnist_locate = _idx_locate("mnist", lambda roots: [p for r in roots for p in (r / "mnist", r / "MNIST" / "raw")],
                            _MNIST_HOW)
_mnist_read = _idx_read("mnist", MNIST_CLASSES)


def _fashion_dirs(roots: list[Path]) -> list[Path]:
    # Looked up at call time so tests can point it elsewhere.
    return [p for r in roots for p in (r / "fashion-mnist", r / "FashionMNIST" / "raw")] + [FASHION_MNIST_SYSTEM_DIR]


_fashion_locate = _idx_locate("fashion-mnist", lambda roots: _fashion_dirs(roots), _FASHION_HOW)


def _sequential_mnist(name: str, permute: bool) -> _Entry:
    def read(split: str, files: list[Path], roots: list[Path]) -> Dataset:
        ds = _mnist_read(split, files, roots)
        return Dataset(name, split, sequential_mnist(ds.images, permute), ds.labels, ds.classes, ds.source)
    return _Entry(_mnist_locate, read)


# -- CIFAR ----------------------------------------------------------------------------------------

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar(name: str, folder: str, files: dict[str, list[str]], meta: str, url: str, jpeg: str | None,
           canonical: list[str] | None = None) -> _Entry:
    def locate(split: str, roots: list[Path]) -> list[Path]:
        looked: list[Path] = []
        for r in roots:
            d = r / folder
            looked.append(d)
            if all((d / f).is_file() for f in [*files[split], meta]):
                return [d]
            if jpeg is not None:
                for tar in (r / jpeg / f"{split}.tar.gz", r / jpeg / f"{split}.tar"):
                    looked.append(tar)
                    if tar.is_file():
                        return [tar]
        wanted = f"{folder}/{{{', '.join([*files[split], meta])}}}"
        if jpeg is not None:
            wanted += f" or {jpeg}/{split}.tar(.gz)"
        how = (f"Download {url} and extract it in DIR (giving DIR/{folder}/), then {_SET_ROOT}; "
               f"`eqprop data download {name}` (or load_dataset(..., download=True)) does both.")
        raise _missing(name, wanted, looked, how)

    def read(split: str, found: list[Path], roots: list[Path]) -> Dataset:
        (path,) = found
        if path.is_dir():
            x, y, classes = read_cifar_batches(path, split)
        else:
            x, y, classes = read_image_folder_tar(path)
            if canonical is not None:  # labels by class name, so a split missing a folder is not shifted
                y, classes = _by_name(y, classes, canonical, path), list(canonical)
        return Dataset(name, split, torch.from_numpy(x), torch.from_numpy(y), classes, str(path))
    return _Entry(locate, read)


def _by_name(labels: np.ndarray, folders: list[str], canonical: list[str], path: Path) -> np.ndarray:
    """Renumber image-folder labels (indices into the sorted folder names) as indices into ``canonical``."""
    unknown = [f for f in folders if f not in canonical]
    if unknown:
        raise DataFileError(f"{path}: class folder(s) {unknown} are not classes of this dataset "
                            f"({', '.join(canonical)}); the archive is from another dataset?")
    return np.array([canonical.index(f) for f in folders], dtype=np.int64)[labels]


# -- UEA/UCR time series --------------------------------------------------------------------------

def _uea(name: str, problem: str) -> _Entry:
    """A UEA/UCR set from ``timeseries/{problem}_{TRAIN,TEST}.ts(.gz)``, standardised per channel
    with the training split's mean and std (both splits), NaN padding kept. Labels index the
    training file's ``@classLabel`` list; the test file's labels are mapped to it by name."""
    def find(split: str, roots: list[Path]) -> Path:
        looked = [r / "timeseries" for r in roots]
        for d in looked:
            found = _with_gz(d, f"{problem}_{split.upper()}.ts")
            if found:
                return found
        how = (f"Download {problem}.zip from https://timeseriesclassification.com (the .ts files) into "
               f"DIR/timeseries/ and {_SET_ROOT}.")
        raise _missing(name, f"{problem}_{split.upper()}.ts(.gz)", looked, how)

    def locate(split: str, roots: list[Path]) -> list[Path]:
        # The test split needs the training file too (statistics and class order).
        return [find(split, roots)] if split == "train" else [find("test", roots), find("train", roots)]

    def read(split: str, files: list[Path], roots: list[Path]) -> Dataset:
        path = files[0]
        data = read_ts(path)
        if split == "train":
            train, train_path = data, path
            try:  # a class present in one split and not the other is an error, whichever split is loaded
                test_path = find("test", roots)
            except DatasetNotFoundError:
                test_path = None
            if test_path is not None:
                align_classes(train, read_ts(test_path), str(train_path), str(test_path))
        else:
            train_path = files[1]
            train = read_ts(train_path)
            data = align_classes(train, data, str(train_path), str(path))
        if not train.classes:
            raise TsFormatError(f"{train_path}: no @classLabel true line: {name} must be a classification file")
        if train.x.shape[-1] != data.x.shape[-1]:
            raise TsFormatError(f"{path}: {data.x.shape[-1]} channels but the training file {train_path} has "
                                f"{train.x.shape[-1]}; the two files are not of one problem")
        x = standardize(train.x, data.x)[1]
        return Dataset(name, split, x, data.labels, data.classes, str(path))
    return _Entry(locate, read)


# -- SVHN -----------------------------------------------------------------------------------------

def _svhn_locate(split: str, roots: list[Path]) -> list[Path]:
    dirs = [r / "svhn" for r in roots]
    for d in dirs:
        path = d / SVHN_FILES[split]
        if path.is_file():
            return [path]
    how = (f"Download {SVHN_FILES[split]} from http://ufldl.stanford.edu/housenumbers/ into DIR/svhn/ "
           f"and {_SET_ROOT}, or run `eqprop data download svhn`.")
    raise _missing("svhn", SVHN_FILES[split], dirs, how)


def _svhn_read(split: str, files: list[Path], roots: list[Path]) -> Dataset:
    x, y = read_svhn_mat(files[0])
    return Dataset("svhn", split, torch.from_numpy(x), torch.from_numpy(y), list(SVHN_CLASSES), str(files[0]))


_LOADERS: dict[str, _Entry] = {
    "acsf1": _uea("acsf1", "ACSF1"),
    "basicmotions": _uea("basicmotions", "BasicMotions"),
    "japanesevowels": _uea("japanesevowels", "JapaneseVowels_eq"),
    "psmnist": _sequential_mnist("psmnist", permute=True),
    "smnist": _sequential_mnist("smnist", permute=False),
    "cifar10": _cifar("cifar10", "cifar-10-batches-py", CIFAR10_FILES, "batches.meta", CIFAR10_URL, "cifar10-jpeg",
                      CIFAR10_CLASSES),
    "svhn": _Entry(_svhn_locate, _svhn_read),
    "cifar100": _cifar("cifar100", "cifar-100-python", CIFAR100_FILES, "meta", CIFAR100_URL, None),
    "fashion-mnist": _Entry(_fashion_locate, _idx_read("fashion-mnist", FASHION_MNIST_CLASSES)),
    "mnist": _Entry(_mnist_locate, _mnist_read),
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_LOADERS)


def _check_name(name: str, split: str) -> None:
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(available_datasets())}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def locate_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None) -> list[Path]:
    """The files :func:`load_dataset` would read for ``name``/``split`` (nothing is opened).

    Raises ValueError for an unknown name or split, :class:`DatasetNotFoundError` if no root has
    the files (its ``wanted`` and ``looked`` attributes say which and where), and
    :class:`~eqprop.data.DataRootError` for a ``root``/``$EQPROP_DATA`` entry that does not exist.
    """
    _check_name(name, split)
    return _LOADERS[name].locate(split, data_root(root))


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, *,
                 download: bool = False) -> Dataset:
    """Load a whole split of a named dataset into memory, searching :func:`data_root` (``root`` first).

    ``download=True`` (opt-in; needs internet): if the files are missing, fetch them first with
    :func:`eqprop.data.download.download` into ``root`` (created if needed), else into
    :func:`~eqprop.data.paths.download_root`, then load.

    Raises ValueError for an unknown name or split; DatasetNotFoundError if no root has the files;
    DataRootError (a DatasetNotFoundError) if ``root`` or an ``$EQPROP_DATA`` entry does not exist;
    DataFileError (a ValueError) naming the file if a file is corrupt, truncated or malformed.
    """
    _check_name(name, split)
    entry = _LOADERS[name]
    if download and root is not None:
        Path(root).expanduser().mkdir(parents=True, exist_ok=True)
    roots = data_root(root)
    try:
        files = entry.locate(split, roots)
    except DatasetNotFoundError as e:
        if not download or isinstance(e, DataRootError):
            raise
        if ALIASES.get(name, name) not in SOURCES:
            raise DatasetNotFoundError(f"{e} (download=True cannot help: {name} has no public download source)",
                                       dataset=e.dataset, wanted=e.wanted, looked=e.looked) from None
        target = Path(root).expanduser() if root is not None else None
        _download(name, target)
        roots = data_root(root)  # download_root() is among them: the first $EQPROP_DATA entry or the user folder
        files = entry.locate(split, roots)
    return entry.read(split, files, roots)


def _download(name: str, root: Path | None) -> Path:  # a seam for tests
    return download(name, root)


class DatasetStatus(NamedTuple):
    """One row of :func:`dataset_status`."""

    name: str
    split: str
    ok: bool
    message: str  # "60000 samples, shape (1, 28, 28), 10 classes", or "missing: ..." or "error: ..."


def dataset_status(root: str | os.PathLike | None = None, names: list[str] | None = None, *,
                   load: bool = True) -> list[DatasetStatus]:
    """The state of every named dataset and split, for ``eqprop data list``.

    One row per (name, split). A missing or broken dataset gives a row with ``ok=False`` and a
    one-line message (``missing: ...`` or ``error: ...`` naming the file and problem); it never
    stops the others from being listed. ``load=False`` only locates the files (fast; corrupt files
    then go unnoticed). A ``root`` or ``$EQPROP_DATA`` entry that does not exist raises
    DataRootError once, before any row, since every row would say the same.
    """
    unknown = [n for n in names or [] if n not in _LOADERS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; valid names: {', '.join(available_datasets())}")
    roots = data_root(root)
    rows: list[DatasetStatus] = []
    for name in names or available_datasets():
        for split in SPLITS:
            entry = _LOADERS[name]
            try:
                files = entry.locate(split, roots)
                if not load:
                    rows.append(DatasetStatus(name, split, True, "found: " + ", ".join(map(str, files))))
                    continue
                ds = entry.read(split, files, roots)
                rows.append(DatasetStatus(name, split, True, f"{len(ds)} samples, shape {ds.input_shape}, "
                                                             f"{ds.num_classes} classes"))
            except DatasetNotFoundError as e:
                wanted = e.wanted or str(e).split(";")[0]
                rows.append(DatasetStatus(name, split, False, f"missing: {wanted}"))
            except (DataError, ValueError, OSError) as e:
                rows.append(DatasetStatus(name, split, False, "error: " + " ".join(str(e).split())))
            except Exception as e:  # an unforeseen failure in one reader must not hide the other datasets
                rows.append(DatasetStatus(name, split, False, f"error: {type(e).__name__}: " + " ".join(str(e).split())))
    return rows
