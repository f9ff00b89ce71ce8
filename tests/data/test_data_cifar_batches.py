import fractions

import numpy as np
import pytest

from eqprop.data import DataFileError
from eqprop.data.cifar import read_cifar_batches

def test_cifar10_round_trip(tmp_path, fake_cifar10, write_pickle):
    truth = fake_cifar10(tmp_path)
    for split, n in [("train", 20), ("test", 4)]:
        images, labels, classes = read_cifar_batches(tmp_path, split)
        assert images.shape == (n, 3, 32, 32) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, truth[split][1])
        data = truth[split][0]
        # Row layout: 1024 R values, then G, then B, each 32 rows of 32.
        for k, c, r, col in [(0, 0, 0, 0), (1, 2, 31, 31), (3, 1, 5, 7), (3, 0, 7, 5)]:
            assert images[k, c, r, col] == data[k, c * 1024 + r * 32 + col]
        np.testing.assert_array_equal(images.reshape(n, -1), data)
    assert classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_single_pixel_lands_in_channel_row_col(tmp_path, fake_cifar10, write_pickle):
    fake_cifar10(tmp_path, per_batch=2)
    data = np.zeros((2, 3072), np.uint8)
    data[1, 1024 + 5 * 32 + 7] = 200  # image 1, green, row 5, column 7
    write_pickle(tmp_path / "test_batch", {b"data": data, b"labels": [0, 3]})
    images, labels, _ = read_cifar_batches(tmp_path, "test")
    assert images[1, 1, 5, 7] == 200 and images.sum() == 200
    assert labels.tolist() == [0, 3]


def test_cifar100_fine_and_coarse(tmp_path, fake_cifar100):
    truth = fake_cifar100(tmp_path)
    images, fine, classes = read_cifar_batches(tmp_path, "test")
    assert images.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(images.reshape(6, -1), truth["test"][0])
    np.testing.assert_array_equal(fine, truth["test"][1])
    assert len(classes) == 100 and classes[7] == "fine7"
    _, coarse, coarse_classes = read_cifar_batches(tmp_path, "train", coarse=True)
    np.testing.assert_array_equal(coarse, truth["train"][2])
    assert len(coarse_classes) == 20 and coarse_classes[3] == "coarse3"


def test_python3_pickles_also_read(tmp_path, fake_cifar10, write_pickle):
    fake_cifar10(tmp_path)
    data = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    write_pickle(tmp_path / "test_batch", {b"data": data, b"labels": [4, 2]}, py2=False)
    write_pickle(tmp_path / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]}, py2=False)
    images, labels, classes = read_cifar_batches(tmp_path, "test")
    np.testing.assert_array_equal(images.reshape(2, -1), data)
    assert labels.tolist() == [4, 2] and classes[9] == "c9"


def test_errors(tmp_path, fake_cifar10):
    with pytest.raises(FileNotFoundError, match="batches.meta"):
        read_cifar_batches(tmp_path, "train")
    fake_cifar10(tmp_path)
    with pytest.raises(ValueError, match="coarse"):
        read_cifar_batches(tmp_path, "train", coarse=True)
    with pytest.raises(ValueError, match="split"):
        read_cifar_batches(tmp_path, "val")


def test_refuses_arbitrary_pickled_objects(tmp_path, fake_cifar10, write_pickle):
    fake_cifar10(tmp_path)
    write_pickle(tmp_path / "test_batch", {b"data": fractions.Fraction(1, 3), b"labels": []})
    with pytest.raises(DataFileError, match="test_batch: refusing to load fractions.Fraction"):
        read_cifar_batches(tmp_path, "test")


@pytest.mark.parametrize("damage,needle", [
    (lambda raw: raw[: len(raw) // 2], "truncated CIFAR batch"),
    (lambda raw: b"garbage" * 10, "CIFAR batch, cannot be unpickled"),
    (lambda raw: b"", "truncated CIFAR batch"),
])
def test_damaged_batch_names_the_file(tmp_path, fake_cifar10, damage, needle):
    fake_cifar10(tmp_path)
    path = tmp_path / "data_batch_3"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataFileError, match=needle) as info:
        read_cifar_batches(tmp_path, "train")
    assert "data_batch_3" in str(info.value) and "download it again" in str(info.value)


def test_batch_with_wrong_content(tmp_path, fake_cifar10, write_pickle):
    fake_cifar10(tmp_path)
    write_pickle(tmp_path / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataFileError, match=r"test_batch: malformed CIFAR batch .*uint8 \(N, 3072\)"):
        read_cifar_batches(tmp_path, "test")
    write_pickle(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DataFileError, match="no 'labels' entry"):
        read_cifar_batches(tmp_path, "test")
    write_pickle(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(DataFileError, match="1 labels for 2 images"):
        read_cifar_batches(tmp_path, "test")
    (tmp_path / "data_batch_2").unlink()
    with pytest.raises(DataFileError, match="data_batch_2 is missing"):
        read_cifar_batches(tmp_path, "train")
