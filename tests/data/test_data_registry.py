import os
from pathlib import Path

import numpy as np
import pytest
import torch

from eqprop.data import DataError, Dataset, DatasetNotFoundError, available_datasets, data_root, load_dataset
from eqprop.data import registry


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
    a, b, explicit = tmp_path / "a", tmp_path / "b", tmp_path / "explicit"
    for d in (a, b, explicit):
        d.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # EQPROP_DATA set: its entries and nothing else (no ./data, no per-user folder).
    monkeypatch.setenv("EQPROP_DATA", f"{a}{os.pathsep}{os.pathsep}{b}")
    assert data_root("explicit") == [explicit, a, b]
    monkeypatch.setenv("EQPROP_DATA", f"{a}{os.pathsep}{a}")
    assert data_root() == [a]  # duplicates dropped
    # Unset (or empty): ./data, then the per-user folder; neither needs to exist.
    monkeypatch.setenv("EQPROP_DATA", "")
    assert data_root() == [tmp_path / "data", tmp_path / "xdg" / "eqprop"]
    monkeypatch.delenv("EQPROP_DATA")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert data_root(explicit) == [explicit, tmp_path / "data", Path.home() / ".local" / "share" / "eqprop"]
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec says: ignore relative paths
    assert data_root()[-1] == Path.home() / ".local" / "share" / "eqprop"


def test_no_shared_folder_in_the_search_path(tmp_path, monkeypatch):
    """The library never names our CI's ../shared/data (issue 8: a fresh machine has none)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == [tmp_path / "data", tmp_path / "xdg" / "eqprop"]
    source = "".join(p.read_text() for p in Path(registry.__file__).parent.glob("*.py"))
    assert "shared" not in source.replace("shared by every", "").replace("Shared", "")


def test_data_root_from_user_folder(isolated, write_idx_file):
    write_mnist_like(isolated / "xdg" / "eqprop" / "mnist", write_idx_file)
    assert len(load_dataset("mnist", "test")) == 3  # found in the per-user folder


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
    (isolated / "first").mkdir()
    monkeypatch.setenv("EQPROP_DATA", f"{isolated / 'first'}{os.pathsep}{isolated / 'second'}")
    ds = load_dataset("fashion-mnist", "test")
    assert len(ds) == 3 and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_cifar10_prefers_python_batches(isolated, fake_cifar10, write_image_tar):
    root = isolated / "root"
    write_image_tar(root / "cifar10-jpeg" / "test.tar.gz", {"test/cat/0.png": np.zeros((32, 32, 3), np.uint8)})
    ds = load_dataset("cifar10", "test", root=root)  # only the jpeg copy exists
    assert len(ds) == 1 and ds.source.endswith("test.tar.gz")
    assert ds.classes[ds.labels[0]] == "cat" and ds.labels.tolist() == [3]  # by name, not folder position
    truth = fake_cifar10(root / "cifar-10-batches-py")
    ds = load_dataset("cifar10", "test", root=root)
    assert ds.images.shape == (4, 3, 32, 32) and ds.classes[0] == "airplane"
    np.testing.assert_array_equal(ds.labels.numpy(), truth["test"][1])
    assert len(load_dataset("cifar10", "train", root=root)) == 20


def test_cifar10_jpeg_labels_by_class_name(isolated, write_image_tar):
    """A split whose tar lacks a class folder must not shift the other labels (silently wrong)."""
    root = isolated / "root"
    img = np.zeros((32, 32, 3), np.uint8)
    write_image_tar(root / "cifar10-jpeg" / "train.tar.gz",
                    {f"train/{c}/0.png": img for c in ["airplane", "bird", "truck"]})
    ds = load_dataset("cifar10", "train", root=root)
    assert ds.num_classes == 10 and [ds.classes[k] for k in ds.labels] == ["airplane", "bird", "truck"]
    assert ds.labels.tolist() == [0, 2, 9]
    write_image_tar(root / "cifar10-jpeg" / "test.tar.gz", {"test/cat/0.png": img, "test/zebra/0.png": img})
    with pytest.raises(DataError, match=r"test.tar.gz: class folder\(s\) \['zebra'\] are not classes"):
        load_dataset("cifar10", "test", root=root)


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
    ds = Dataset("toy", "train", images, torch.arange(10), list("abcdefghij"))
    assert ds.subset(None) is ds
    head = ds.subset(3)
    assert head.labels.tolist() == [0, 1, 2] and head.images[:, 0, 0, 0].tolist() == [0, 1, 2]
    assert len(ds.subset(99)) == 10 and len(ds.subset(0)) == 0
    pick = ds.subset(4, generator=torch.Generator().manual_seed(0))
    again = ds.subset(4, generator=torch.Generator().manual_seed(0))
    assert pick.labels.tolist() == again.labels.tolist() == sorted(set(pick.labels.tolist()))
    assert torch.equal(pick.images[:, 0, 0, 0].long(), pick.labels)  # images follow their labels
    assert pick.input_shape == (1, 2, 3) and pick.num_classes == 10
    with pytest.raises(ValueError):
        ds.subset(-1)
    with pytest.raises(DataError, match="uint8 or float, got torch.int32"):
        Dataset("toy", "train", images.int(), torch.arange(10), [])
    with pytest.raises(DataError, match=r"uint8 inputs must be images \(N, C, H, W\), got shape \(10, 2, 3\) "
                                        r"\(add the channel axis"):
        Dataset("toy", "train", images[:, 0], torch.arange(10), [])
    with pytest.raises(DataError, match="int64"):
        Dataset("toy", "train", images, torch.arange(10, dtype=torch.int32), [])
    with pytest.raises(DataError, match="10 inputs but 9 labels"):
        Dataset("toy", "train", images, torch.arange(9), [])
    with pytest.raises(DataError, match=r"float inputs must be .*got shape \(10,\)"):
        Dataset("toy", "train", torch.zeros(10), torch.arange(10), [])
    with pytest.raises(DataError, match="numpy arrays"):
        Dataset("toy", "train", np.zeros((10, 3)), torch.arange(10), [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dataset_accepts_float_features_and_images(dtype):
    """Issue 8: a user's own float feature vectors (N, D) and float images are accepted as they are."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(12, 20, generator=g).to(dtype)
    labels = torch.randint(0, 3, (12,), generator=g)
    ds = Dataset("mine", "train", features, labels, ["a", "b", "c"])
    assert ds.images.dtype == dtype and ds.input_shape == (20,) and ds.is_features and not ds.is_sequence
    sub = ds.subset(5, generator=torch.Generator().manual_seed(1))
    assert sub.images.shape == (5, 20) and sub.images.dtype == dtype
    images = torch.rand(12, 3, 4, 4, generator=g).to(dtype)
    assert Dataset("mine", "test", images, labels, ["a", "b", "c"]).input_shape == (3, 4, 4)
    seq = torch.rand(12, 7, 2, generator=g).to(dtype)
    seq[0, 5:] = float("nan")  # padding after the end is fine in sequences
    assert Dataset("mine", "test", seq, labels, ["a", "b", "c"]).is_sequence


def test_dataset_refuses_non_finite_features():
    x = torch.zeros(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(DataError, match=r"NaN or infinite values \(first at sample 2\)"):
        Dataset("mine", "train", x, torch.zeros(4, dtype=torch.int64), ["a"])
    seq = torch.zeros(4, 5, 2)
    seq[3, 0, 0] = float("inf")
    with pytest.raises(DataError, match=r"infinite values \(first at sample 3\)"):
        Dataset("mine", "train", seq, torch.zeros(4, dtype=torch.int64), ["a"])


def test_dataset_from_tensors():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 20)), rng.integers(0, 3, 30).astype(np.int32)
    ds = Dataset.from_tensors(x, y)
    assert ds.images.dtype == torch.float64 and ds.labels.dtype == torch.int64
    assert ds.classes == ["0", "1", "2"] and ds.name == "custom"
    assert Dataset.from_tensors(torch.zeros(2, 3), [0, 1], ["no", "yes"], name="n", split="test").classes == ["no", "yes"]
    with pytest.raises(DataError, match="labels must be integers, got torch.float64"):
        Dataset.from_tensors(x, y.astype(np.float64))
