"""download() against a fake opener: no network."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from eqprop.data import download as dl
from eqprop.data import load_dataset


@pytest.fixture
def served(monkeypatch):
    """Serve {url: bytes} through download.urlopen; returns (files, list of requested urls)."""
    files, requested = {}, []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(files[url])

    monkeypatch.setattr(dl, "urlopen", fake_urlopen)
    return files, requested


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_mnist_download_then_load(tmp_path, served, monkeypatch, write_idx_file):
    files, requested = served
    sources = []
    for name, array in [("train-images-idx3-ubyte.gz", np.full((2, 28, 28), 7, np.uint8)),
                        ("train-labels-idx1-ubyte.gz", np.array([3, 1], np.uint8)),
                        ("t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8)),
                        ("t10k-labels-idx1-ubyte.gz", np.array([9], np.uint8))]:
        data = write_idx_file(tmp_path / "src" / name, array, gz=True).read_bytes()
        files[dl.MNIST_URL + name] = data
        sources.append((dl.MNIST_URL + name, _md5(data)))
    monkeypatch.setitem(dl.SOURCES, "mnist", ("mnist", sources, False))
    root = tmp_path / "root"
    assert dl.download("mnist", root) == root / "mnist"
    ds = load_dataset("mnist", "train", root=root)
    assert ds.labels.tolist() == [3, 1] and int(ds.images.max()) == 7
    dl.download("mnist", root)  # already there: nothing fetched again
    assert len(requested) == 4


def test_checksum_mismatch_leaves_nothing(tmp_path, served):
    files, _ = served
    for url, _ in dl.SOURCES["fashion-mnist"][1]:
        files[url] = gzip.compress(b"not the real file")
    with pytest.raises(ValueError, match="MD5"):
        dl.download("fashion-mnist", tmp_path)
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def test_cifar10_tarball_extracted(tmp_path, served, monkeypatch, fake_cifar10):
    files, _ = served
    truth = fake_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    files[dl.CIFAR10_URL] = buffer.getvalue()
    source = ("cifar-10-batches-py", [(dl.CIFAR10_URL, _md5(buffer.getvalue()))], True)
    monkeypatch.setitem(dl.SOURCES, "cifar10", source)
    root = tmp_path / "root"
    assert dl.download("cifar10", root) == root / "cifar-10-batches-py"
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no temp leftovers
    ds = load_dataset("cifar10", "test", root=root)
    np.testing.assert_array_equal(ds.labels.numpy(), truth["test"][1])


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="cifar10, cifar100, fashion-mnist, mnist"):
        dl.download("svhn", tmp_path)
