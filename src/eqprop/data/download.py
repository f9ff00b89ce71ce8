"""Fetch the standard dataset files from their public hosts (for users with internet access).

Files are written atomically (temp file + ``os.replace``) and checked against the published MD5s.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

_IDX = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
# name -> (folder under root, [(url, md5)], whether the one file is a tarball to extract into root)
SOURCES = {
    "mnist": ("mnist", list(zip([MNIST_URL + f for f in _IDX], [
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"])), False),
    "fashion-mnist": ("fashion-mnist", list(zip([FASHION_MNIST_URL + f for f in _IDX], [
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"])), False),
    "cifar10": ("cifar-10-batches-py", [(CIFAR10_URL, "c58f30108f718f92721af3b95e74349a")], True),
    "cifar100": ("cifar-100-python", [(CIFAR100_URL, "eb9058c3a382ffc7106e4002c42a8d85")], True),
}

urlopen = urllib.request.urlopen  # replaced in tests


def download(name: str, root: str | os.PathLike) -> Path:
    """Download dataset ``name`` into ``root`` (the data root, i.e. what EQPROP_DATA points at).

    Returns the dataset folder (``root/mnist``, ``root/cifar-10-batches-py``, ...). Files already
    present are kept. Raises ValueError for an unknown name or a checksum mismatch.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(SOURCES))}")
    folder, files, is_tarball = SOURCES[name]
    root = Path(root).expanduser()
    target = root / folder
    if is_tarball:
        if not target.is_dir():
            url, md5 = files[0]
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{folder}-") as tmp:
                archive = Path(tmp) / url.rsplit("/", 1)[1]
                _fetch(url, md5, archive)
                with tarfile.open(archive) as tar:
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe members
                        tar.extractall(tmp, filter="data")
                    else:
                        tar.extractall(tmp)
                os.replace(Path(tmp) / folder, target)
        return target
    target.mkdir(parents=True, exist_ok=True)
    for url, md5 in files:
        dest = target / url.rsplit("/", 1)[1]
        if not dest.exists():
            _fetch(url, md5, dest)
    return target


def _fetch(url: str, md5: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` atomically, checking its MD5."""
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(f"{url}: MD5 {digest.hexdigest()} != expected {md5}; download corrupted?")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


__all__ = ["download", "SOURCES", "MNIST_URL", "FASHION_MNIST_URL", "CIFAR10_URL", "CIFAR100_URL"]
