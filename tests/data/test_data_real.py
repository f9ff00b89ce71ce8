"""Real datasets from the shared offline root, checked against their known statistics."""

import torch

from eqprop.data.transforms import channel_stats


def test_mnist(shared_root, load_real):
    train, test = load_real("mnist", "train", shared_root), load_real("mnist", "test", shared_root)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.input_shape == (1, 28, 28) and train.num_classes == 10
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(train.images.double().mean().item() / 255 - 0.1307) < 1e-3


def test_fashion_mnist(shared_root, load_real):
    train, test = load_real("fashion-mnist", "train", shared_root), load_real("fashion-mnist", "test", shared_root)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.labels.bincount().tolist() == [6_000] * 10
    assert test.labels.bincount().tolist() == [1_000] * 10
    assert train.classes[0] == "T-shirt/top" and train.input_shape == (1, 28, 28)


def test_cifar10(cifar10_train, cifar10_test):
    assert (len(cifar10_train), len(cifar10_test)) == (50_000, 10_000)
    assert cifar10_train.labels.bincount().tolist() == [5_000] * 10
    assert cifar10_test.labels.bincount().tolist() == [1_000] * 10
    assert cifar10_train.classes[0] == "airplane" and cifar10_train.classes[-1] == "truck"
    assert cifar10_train.classes == cifar10_test.classes and len(cifar10_train.classes) == 10
    assert cifar10_train.input_shape == (3, 32, 32)
    mean, _ = channel_stats(cifar10_train.images)
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)
