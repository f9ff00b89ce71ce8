"""Fetch the standard dataset files from their public hosts (for users with internet access).

``download(name, root)`` puts a registry dataset's files where :func:`eqprop.data.load_dataset`
looks for them (``root/mnist/``, ``root/cifar-10-batches-py/``, ...). Every file is checked
against its published MD5 and written atomically (a temp file in the same folder, then
``os.replace``); a tarball is extracted safely (:func:`eqprop.data.archive.safe_extract`) into a
temporary folder that is renamed into place only when complete. Tests never reach the network:
they replace :data:`urlopen`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .archive import safe_extract
from .dataset import DownloadError
from .paths import download_root

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"

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
    "svhn": ("svhn", [(SVHN_URL + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
                      (SVHN_URL + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")], False),
}
# Registry names whose files are another dataset's.
ALIASES = {"smnist": "mnist", "psmnist": "mnist"}

urlopen = urllib.request.urlopen  # replaced in tests


def downloadable() -> list[str]:
    """Registry names :func:`download` can fetch, sorted."""
    return sorted([*SOURCES, *ALIASES])


def download(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download dataset ``name`` into the data root ``root`` (default :func:`~eqprop.data.paths.download_root`:
    the first ``$EQPROP_DATA`` entry, else the per-user data folder).

    Returns the dataset folder (``root/mnist``, ``root/cifar-10-batches-py``, ...). Files already
    present are kept as they are. Raises ValueError for a name with no public source (the UEA
    sets: fetch them by hand, see docs/data.md) and :class:`~eqprop.data.DownloadError` (a
    ValueError) when there is no network, the host answers with an error, a checksum does not
    match or ``root`` cannot be written; nothing partial is left behind.
    """
    key = ALIASES.get(name, name)
    if key not in SOURCES:
        raise ValueError(f"no download source for {name!r}; datasets that can be downloaded: "
                         f"{', '.join(downloadable())} (the UEA time series come from "
                         f"https://timeseriesclassification.com by hand, see docs/data.md)")
    folder, files, is_tarball = SOURCES[key]
    root = Path(root).expanduser() if root is not None else download_root()
    target = root / folder
    try:
        root.mkdir(parents=True, exist_ok=True)
        if is_tarball:
            if not target.is_dir():
                url, md5 = files[0]
                with tempfile.TemporaryDirectory(dir=root, prefix=f".{folder}-") as tmp:
                    archive = Path(tmp) / url.rsplit("/", 1)[1]
                    _fetch(url, md5, archive)
                    safe_extract(archive, Path(tmp) / "x")
                    if not (Path(tmp) / "x" / folder).is_dir():
                        raise DownloadError(f"{url}: the archive holds no {folder}/ folder; the source changed?")
                    os.replace(Path(tmp) / "x" / folder, target)
            return target
        target.mkdir(parents=True, exist_ok=True)
        for url, md5 in files:
            dest = target / url.rsplit("/", 1)[1]
            if not dest.exists():
                _fetch(url, md5, dest)
    except OSError as e:  # not writable, a file in the way, disk full
        raise DownloadError(f"cannot write {name} into {root}: {e.strerror or e} ({e.filename}); choose a writable "
                            f"folder (root=DIR, or EQPROP_DATA=DIR)") from None
    return target


def _fetch(url: str, md5: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` atomically, checking its MD5."""
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=60) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}; the file may have moved: "
                                f"fetch it by hand into {dest.parent}/ (see docs/data.md)") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # DNS, refused, TLS, cut off
            reason = getattr(e, "reason", e)
            raise DownloadError(f"{url}: cannot download ({reason}); no network here? Copy the file into "
                                f"{dest.parent}/ by hand, or point EQPROP_DATA at a folder that has it") from None
        if digest.hexdigest() != md5:
            raise DownloadError(f"{url}: MD5 {digest.hexdigest()} != expected {md5}; download corrupted "
                                f"(or the file changed upstream): nothing was kept, try again")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


__all__ = ["download", "downloadable", "SOURCES", "ALIASES", "MNIST_URL", "FASHION_MNIST_URL", "CIFAR10_URL",
           "CIFAR100_URL", "SVHN_URL"]
