import os
import warnings

import numpy as np
import pytest

from eqprop.data import image_folder
from eqprop.data.image_folder import read_image_folder_tar


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("EQPROP_CACHE", str(directory))
    return directory


def sample_tree(prefix="train/"):
    """Classes created out of order; one grayscale image; 4x5 pixels each."""
    rng = np.random.default_rng(0)
    tree = {}
    for cls, n in [("dog", 2), ("ant", 3), ("cat", 1)]:
        for i in range(n):
            tree[f"{prefix}{cls}/{i:04d}.png"] = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    tree[f"{prefix}cat/0001.png"] = rng.integers(0, 256, (4, 5), dtype=np.uint8)  # mode "L"
    return tree


def expected(tree):
    keys = sorted(tree, key=lambda k: (k.split("/")[-2], k.split("/")[-1]))
    rgb = [tree[k] if tree[k].ndim == 3 else np.repeat(tree[k][:, :, None], 3, axis=2) for k in keys]
    classes = sorted({k.split("/")[-2] for k in keys})
    return np.stack(rgb).transpose(0, 3, 1, 2), [classes.index(k.split("/")[-2]) for k in keys], classes


@pytest.mark.parametrize("prefix,suffix", [("train/", ".tar.gz"), ("", ".tar"), ("./test/", ".tar.gz")])
def test_exact_pixels_and_labels(tmp_path, cache, write_image_tar, prefix, suffix):
    tree = sample_tree(prefix)
    junk = {f"{prefix}README.txt": b"hello", f"{prefix}cat/.DS_Store": b"x", f"{prefix}cat/._0000.png": b"x"}
    path = write_image_tar(tmp_path / f"split{suffix}", tree, junk)
    images, labels, classes = read_image_folder_tar(path)
    want_images, want_labels, want_classes = expected(tree)
    assert classes == want_classes == ["ant", "cat", "dog"]
    assert images.dtype == np.uint8 and images.shape == (7, 3, 4, 5)
    np.testing.assert_array_equal(images, want_images)
    assert labels.dtype == np.int64 and labels.tolist() == want_labels == [0, 0, 0, 1, 1, 2, 2]


def test_second_read_hits_cache(tmp_path, cache, write_image_tar, monkeypatch):
    path = write_image_tar(tmp_path / "train.tar.gz", sample_tree())
    first = read_image_folder_tar(path)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith(f"{tmp_path.name}-train-")
    assert not list(cache.glob("*.tmp"))

    def no_decode(_):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(image_folder, "_decode", no_decode)
    second = read_image_folder_tar(path)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]

    # A changed tar (new mtime) gets a new key and is decoded again.
    os.utime(path, ns=(0, 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        read_image_folder_tar(path)


def test_corrupt_cache_is_rebuilt(tmp_path, cache, write_image_tar):
    path = write_image_tar(tmp_path / "train.tar.gz", sample_tree())
    want = read_image_folder_tar(path)
    (target,) = cache.glob("*.npz")
    target.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable cache"):
        got = read_image_folder_tar(path)
    np.testing.assert_array_equal(got[0], want[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image_folder_tar(path)  # rewritten: clean hit


def test_no_cache_and_unwritable_cache(tmp_path, monkeypatch, write_image_tar):
    path = write_image_tar(tmp_path / "train.tar.gz", sample_tree())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EQPROP_CACHE", str(blocker / "cache"))  # cannot be created
    with pytest.warns(UserWarning, match="could not write cache"):
        images, _, _ = read_image_folder_tar(path)
    assert images.shape == (7, 3, 4, 5)
    monkeypatch.setenv("EQPROP_CACHE", str(tmp_path / "unused"))
    read_image_folder_tar(path, cache=False)
    assert not (tmp_path / "unused").exists()


def test_bad_trees(tmp_path, cache, write_image_tar):
    img = np.zeros((4, 4, 3), np.uint8)
    mixed = write_image_tar(tmp_path / "mixed.tar", {"a/0.png": img, "b/0.png": np.zeros((5, 4, 3), np.uint8)})
    with pytest.raises(ValueError, match="b/0.png"):
        read_image_folder_tar(mixed)
    two_splits = write_image_tar(tmp_path / "two.tar", {"train/a/0.png": img, "test/a/0.png": img})
    with pytest.raises(ValueError, match="several"):
        read_image_folder_tar(two_splits)
    empty = write_image_tar(tmp_path / "empty.tar", {}, {"notes.txt": b"x"})
    with pytest.raises(ValueError, match="no .jpg"):
        read_image_folder_tar(empty)
