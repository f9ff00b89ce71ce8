"""Real datasets, read through the library's search path ($EQPROP_DATA; CI points it at
../shared/data), checked against their known statistics. Each test is marked with the datasets
it needs and skips, naming the files, where they are absent."""

import pytest
import torch

from eqprop.data import dataset_status, load_dataset, locate_dataset
from eqprop.data.timeseries import read_ts
from eqprop.data.transforms import channel_stats


@pytest.mark.requires_data("mnist")
def test_mnist():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.input_shape == (1, 28, 28) and train.num_classes == 10
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(train.images.double().mean().item() / 255 - 0.1307) < 1e-3


@pytest.mark.requires_data("fashion-mnist")
def test_fashion_mnist():
    """Found in $EQPROP_DATA or, on Debian with dataset-fashion-mnist, in /usr/share/datasets."""
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.labels.bincount().tolist() == [6_000] * 10
    assert test.labels.bincount().tolist() == [1_000] * 10
    assert train.classes[0] == "T-shirt/top" and train.input_shape == (1, 28, 28)


@pytest.mark.requires_data("cifar10")
def test_cifar10(cifar10_train, cifar10_test):
    assert (len(cifar10_train), len(cifar10_test)) == (50_000, 10_000)
    assert cifar10_train.labels.bincount().tolist() == [5_000] * 10
    assert cifar10_test.labels.bincount().tolist() == [1_000] * 10
    assert cifar10_train.classes[0] == "airplane" and cifar10_train.classes[-1] == "truck"
    assert cifar10_train.classes == cifar10_test.classes and len(cifar10_train.classes) == 10
    assert cifar10_train.input_shape == (3, 32, 32)
    mean, _ = channel_stats(cifar10_train.images)
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)


UEA = {  # name: (train size, test size, (T, C), classes, training file's @classLabel order)
    "basicmotions": (40, 40, (100, 6), 4, ["Standing", "Running", "Walking", "Badminton"]),
    "japanesevowels": (270, 370, (25, 12), 9, [str(k) for k in range(1, 10)]),
    "acsf1": (100, 100, (1460, 1), 10, [str(k) for k in range(10)]),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.requires_data(n)) for n in UEA])
def test_uea(name):
    n_train, n_test, shape, n_classes, order = UEA[name]
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert (len(train), len(test)) == (n_train, n_test)
    assert train.input_shape == test.input_shape == shape
    assert train.classes == test.classes and train.num_classes == n_classes
    assert sorted(train.classes) == sorted(order)
    # Labels follow class names: every test label names the same class as in its own file.
    test_file = locate_dataset(name, "test")[0]
    raw = read_ts(test_file)
    assert [test.classes[k] for k in test.labels] == [raw.classes[k] for k in raw.labels]
    assert torch.bincount(train.labels, minlength=n_classes).min() > 0


@pytest.mark.requires_data("mnist", "basicmotions")
def test_dataset_status_on_real_roots():
    rows = {(r.name, r.split): r for r in dataset_status(names=["mnist", "basicmotions"])}
    assert rows[("mnist", "test")].ok and rows[("mnist", "test")].message == "10000 samples, shape (1, 28, 28), 10 classes"
    assert rows[("basicmotions", "train")].message == "40 samples, shape (100, 6), 4 classes"
