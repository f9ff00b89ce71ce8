"""download() against a fake opener: no network."""

import gzip
import hashlib
import io
import tarfile

import os
import urllib.error

import numpy as np
import pytest

from eqprop.data import DatasetNotFoundError, DataFileError, DownloadError, UnsafeArchiveError, load_dataset
from eqprop.data import download as dl


@pytest.fixture
def served(monkeypatch):
    """Serve {url: bytes} through download.urlopen; returns (files, list of requested urls)."""
    files, requested = {}, []
    monkeypatch.delenv("EQPROP_DATA", raising=False)  # only the roots the tests name are searched

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(files[url])

    monkeypatch.setattr(dl, "urlopen", fake_urlopen)
    return files, requested


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_mnist_download_then_load(tmp_path, served, monkeypatch, write_idx_file):
    files, requested = served
    fake_mnist(tmp_path, files, monkeypatch, write_idx_file)
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
    with pytest.raises(DownloadError, match="MD5 .* != expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d; download corrupted"):
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
    with pytest.raises(ValueError, match="cifar10, cifar100, fashion-mnist, mnist, psmnist, smnist, svhn"):
        dl.download("basicmotions", tmp_path)
    assert "timeseriesclassification.com" in str(pytest.raises(ValueError, dl.download, "acsf1", tmp_path).value)


def fake_mnist(tmp_path, files, monkeypatch, write_idx_file):
    sources = []
    for name, array in [("train-images-idx3-ubyte.gz", np.full((2, 28, 28), 7, np.uint8)),
                        ("train-labels-idx1-ubyte.gz", np.array([3, 1], np.uint8)),
                        ("t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8)),
                        ("t10k-labels-idx1-ubyte.gz", np.array([9], np.uint8))]:
        data = write_idx_file(tmp_path / "src" / name, array, gz=True).read_bytes()
        files[dl.MNIST_URL + name] = data
        sources.append((dl.MNIST_URL + name, _md5(data)))
    monkeypatch.setitem(dl.SOURCES, "mnist", ("mnist", sources, False))


def test_no_network_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(dl, "urlopen", offline)
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte.gz: cannot download .*no network here\?"):
        dl.download("mnist", tmp_path)
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == []  # no .part file left


def test_http_error(tmp_path, monkeypatch):
    def not_found(url, timeout=None):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(dl, "urlopen", not_found)
    with pytest.raises(DownloadError, match="HTTP 404 Not Found; the file may have moved"):
        dl.download("svhn", tmp_path)


def test_unwritable_root(tmp_path, served):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DownloadError, match=r"cannot write mnist into .*a-file/sub.*choose a writable folder"):
        dl.download("mnist", blocker / "sub")


def test_default_root_is_eqprop_data_or_user_folder(tmp_path, served, monkeypatch, write_idx_file):
    files, _ = served
    fake_mnist(tmp_path, files, monkeypatch, write_idx_file)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert dl.download("smnist") == tmp_path / "xdg" / "eqprop" / "mnist"  # smnist reads MNIST's files
    monkeypatch.setenv("EQPROP_DATA", f"{tmp_path / 'env1'}{os.pathsep}{tmp_path / 'env2'}")
    assert dl.download("mnist") == tmp_path / "env1" / "mnist"


def test_load_dataset_download_opt_in(tmp_path, served, monkeypatch, write_idx_file):
    files, requested = served
    fake_mnist(tmp_path, files, monkeypatch, write_idx_file)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "new-root"
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", "train", root=tmp_path)  # without download=True: nothing fetched
    assert requested == []
    ds = load_dataset("mnist", "train", root=root, download=True)  # root created, files fetched
    assert ds.labels.tolist() == [3, 1] and ds.source == str(root / "mnist") and len(requested) == 4
    assert len(load_dataset("psmnist", "test", download=True)) == 1  # into the per-user folder
    assert (tmp_path / "xdg" / "eqprop" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    with pytest.raises(DatasetNotFoundError, match="download=True cannot help: basicmotions has no public"):
        load_dataset("basicmotions", "train", root=root, download=True)


def tarball(files, monkeypatch, members, name="cifar-10-batches-py"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    files[dl.CIFAR10_URL] = buffer.getvalue()
    monkeypatch.setitem(dl.SOURCES, "cifar10", (name, [(dl.CIFAR10_URL, _md5(buffer.getvalue()))], True))
    return buffer.getvalue()


def _info(name, data=b"", **kw):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def test_tarball_with_unsafe_member_is_refused(tmp_path, served, monkeypatch):
    files, _ = served
    tarball(files, monkeypatch, [_info("cifar-10-batches-py/batches.meta", b"x"), _info("../../EVIL", b"x")])
    root = tmp_path / "root"
    with pytest.raises(UnsafeArchiveError, match=r"refusing to extract member '../../EVIL'"):
        dl.download("cifar10", root)
    assert list(root.iterdir()) == [] and not (tmp_path / "EVIL").exists()


def test_truncated_tarball(tmp_path, served, monkeypatch):
    files, _ = served
    rng = np.random.default_rng(0)
    full = tarball(files, monkeypatch, [_info(f"cifar-10-batches-py/f{i}", rng.bytes(5000)) for i in range(8)])
    files[dl.CIFAR10_URL] = full[: len(full) // 2]  # the published MD5 is of the cut file: the tar is the check
    monkeypatch.setitem(dl.SOURCES, "cifar10", ("cifar-10-batches-py", [(dl.CIFAR10_URL, _md5(full[: len(full) // 2]))], True))
    root = tmp_path / "root"
    with pytest.raises(DataFileError, match=r"cifar-10-python.tar.gz: (truncated|corrupt) archive"):
        dl.download("cifar10", root)
    assert list(root.iterdir()) == []


def test_tarball_without_the_expected_folder(tmp_path, served, monkeypatch):
    files, _ = served
    tarball(files, monkeypatch, [_info("something-else/x", b"x")])
    with pytest.raises(DownloadError, match="holds no cifar-10-batches-py/ folder"):
        dl.download("cifar10", tmp_path / "root")


def test_connection_cut_mid_file(tmp_path, monkeypatch):
    import http.client

    class Cut(io.BytesIO):
        def read(self, n=-1):
            raise http.client.IncompleteRead(b"abc", 1000)

    monkeypatch.setattr(dl, "urlopen", lambda url, timeout=None: Cut())
    with pytest.raises(DownloadError, match=r"test_32x32.mat: cannot download|train_32x32.mat: cannot download"):
        dl.download("svhn", tmp_path)
    assert [p.name for p in (tmp_path / "svhn").iterdir()] == []
