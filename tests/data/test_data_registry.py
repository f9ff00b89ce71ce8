import os
from pathlib import Path

import numpy as np
import pytest
import torch

from eqprop.data import Dataset, DatasetNotFoundError, available_datasets, data_root, load_dataset
from eqprop.data import registry


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """cwd in an empty tmp dir, no EQPROP_DATA, a private cache, no system Fashion-MNIST: only `root` is searched."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("EQPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-such-system-dir")
    return tmp_path


def write_mnist_like(directory, write_idx_file, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(0)
    truth = {}
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx_file(directory / f"{prefix}-images-idx3-ubyte{suffix}", x, gz=gz)
        write_idx_file(directory / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz=gz)
        truth["train" if prefix == "train" else "test"] = (x, y)
    return truth


def test_available_datasets():
    assert available_datasets() == sorted(available_datasets())
    assert {"cifar10", "cifar100", "fashion-mnist", "mnist", "svhn"} <= set(available_datasets())


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("EQPROP_DATA", f"{a}{os.pathsep}{os.pathsep}{b}")
    shared = tmp_path.parent / "shared" / "data"
    assert data_root("explicit") == [tmp_path / "explicit", a, b, tmp_path / "data", shared]
    monkeypatch.setenv("EQPROP_DATA", str(tmp_path / "data"))
    assert data_root() == [tmp_path / "data", shared]  # duplicates dropped


@pytest.mark.parametrize("layout,gz", [("mnist", True), ("MNIST/raw", False)])
def test_mnist_from_root(isolated, write_idx_file, layout, gz):
    truth = write_mnist_like(isolated / "root" / layout, write_idx_file, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, root=isolated / "root")
        x, y = truth[split]
        assert (ds.name, ds.split, ds.classes) == ("mnist", split, [str(i) for i in range(10)])
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(x), 1, 28, 28)
        assert ds.labels.dtype == torch.int64
        np.testing.assert_array_equal(ds.images[:, 0].numpy(), x)
        np.testing.assert_array_equal(ds.labels.numpy(), y)
        assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10 and len(ds) == len(x)
        assert ds.source == str(isolated / "root" / layout)


def test_env_var_root_and_fashion_classes(isolated, write_idx_file, monkeypatch):
    write_mnist_like(isolated / "second" / "fashion-mnist", write_idx_file)
    monkeypatch.setenv("EQPROP_DATA", f"{isolated / 'first'}{os.pathsep}{isolated / 'second'}")
    ds = load_dataset("fashion-mnist", "test")
    assert len(ds) == 3 and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_cifar10_prefers_python_batches(isolated, fake_cifar10, write_image_tar):
    root = isolated / "root"
    write_image_tar(root / "cifar10-jpeg" / "test.tar.gz", {"test/cat/0.png": np.zeros((32, 32, 3), np.uint8)})
    ds = load_dataset("cifar10", "test", root=root)  # only the jpeg copy exists
    assert len(ds) == 1 and ds.classes == ["cat"] and ds.source.endswith("test.tar.gz")
    truth = fake_cifar10(root / "cifar-10-batches-py")
    ds = load_dataset("cifar10", "test", root=root)
    assert ds.images.shape == (4, 3, 32, 32) and ds.classes[0] == "airplane"
    np.testing.assert_array_equal(ds.labels.numpy(), truth["test"][1])
    assert len(load_dataset("cifar10", "train", root=root)) == 20


def test_cifar100_fine_labels(isolated, fake_cifar100):
    truth = fake_cifar100(isolated / "cifar-100-python")
    ds = load_dataset("cifar100", "train", root=isolated)
    assert ds.num_classes == 100
    np.testing.assert_array_equal(ds.labels.numpy(), truth["train"][1])


@pytest.mark.parametrize("name,needles", [
    ("mnist", ["train-images-idx3-ubyte(.gz)", "ossci-datasets", "EQPROP_DATA"]),
    ("fashion-mnist", ["train-images-idx3-ubyte(.gz)", "apt-get install dataset-fashion-mnist", "zalandoresearch"]),
    ("cifar10", ["cifar-10-batches-py", "data_batch_1", "cifar10-jpeg/train.tar(.gz)", "cs.toronto.edu"]),
    ("cifar100", ["cifar-100-python", "cifar-100-python.tar.gz"]),
])
def test_missing_dataset_message(isolated, name, needles):
    empty = isolated / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, "train", root=empty)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(empty) in message and str(Path.cwd() / "data") in message
    for needle in needles:
        assert needle in message


def test_bad_name_and_split():
    with pytest.raises(ValueError, match="valid names: .*cifar10, cifar100, fashion-mnist, .*mnist"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("mnist", "validation")


def test_dataset_subset_and_validation():
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1).expand(10, 1, 2, 3).contiguous()
    ds = Dataset("toy", "train", images, torch.arange(10), ["a", "b"])
    assert ds.subset(None) is ds
    head = ds.subset(3)
    assert head.labels.tolist() == [0, 1, 2] and head.images[:, 0, 0, 0].tolist() == [0, 1, 2]
    assert len(ds.subset(99)) == 10 and len(ds.subset(0)) == 0
    pick = ds.subset(4, generator=torch.Generator().manual_seed(0))
    again = ds.subset(4, generator=torch.Generator().manual_seed(0))
    assert pick.labels.tolist() == again.labels.tolist() == sorted(set(pick.labels.tolist()))
    assert torch.equal(pick.images[:, 0, 0, 0].long(), pick.labels)  # images follow their labels
    assert pick.input_shape == (1, 2, 3) and pick.num_classes == 2
    with pytest.raises(ValueError):
        ds.subset(-1)
    with pytest.raises(ValueError, match="uint8"):
        Dataset("toy", "train", images.float(), torch.arange(10), [])
    with pytest.raises(ValueError, match="int64"):
        Dataset("toy", "train", images, torch.arange(10, dtype=torch.int32), [])
    with pytest.raises(ValueError, match="9 labels"):
        Dataset("toy", "train", images, torch.arange(9), [])
