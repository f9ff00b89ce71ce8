"""SVHN .mat reader on tiny files written in the real layout (X: 32x32x3xN, labels 1..10)."""
import numpy as np
import pytest
from scipy.io import savemat

from eqprop.data import DataFileError, load_dataset
from eqprop.data.svhn import read_svhn_mat


def write_svhn(path, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    savemat(path, {"X": x, "y": y})
    return x, y


def test_reader_layout_and_label_ten_is_zero(tmp_path):
    x, y = write_svhn(tmp_path / "train_32x32.mat", 7, 0)
    images, labels = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert images.shape == (7, 3, 32, 32) and images.dtype == np.uint8
    # pixel (row 5, col 9, channel 2) of sample 3
    assert images[3, 2, 5, 9] == x[5, 9, 2, 3]
    np.testing.assert_array_equal(labels, y.reshape(-1) % 10)
    assert set(labels.tolist()) <= set(range(10))


def test_registry_finds_svhn_and_errors_name_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    (tmp_path / "svhn").mkdir()
    write_svhn(tmp_path / "svhn" / "train_32x32.mat", 5, 1)
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", 3, 2)
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert len(ds) == 3 and ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="test_32x32.mat"):
        load_dataset("svhn", "test", root=tmp_path / "empty")


def test_bad_file_is_named(tmp_path):
    savemat(tmp_path / "x.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(DataFileError, match="x.mat: not an SVHN .mat file"):
        read_svhn_mat(tmp_path / "x.mat")
    (tmp_path / "y.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataFileError, match=r"y.mat: not a readable MATLAB .mat file"):
        read_svhn_mat(tmp_path / "y.mat")
    savemat(tmp_path / "z.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((5, 1), np.uint8)})
    with pytest.raises(DataFileError, match=r"z.mat: X has shape \(32, 32, 3, 4\), expected \(32, 32, 3, 5\)"):
        read_svhn_mat(tmp_path / "z.mat")
