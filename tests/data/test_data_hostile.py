"""Hostile and damaged data files: each ends in a clear error (a DataError/DatasetNotFoundError
naming the file, the problem and the fix), never a raw zlib/PIL/tarfile/EOF traceback or a
silently wrong result. Every file here is written by the test itself."""

import gzip
import io
import os
import tarfile

import numpy as np
import pytest
import torch

from eqprop.data import (DataError, DataFileError, DataRootError, DatasetNotFoundError, UnsafeArchiveError,
                         available_datasets, dataset_status, load_dataset, locate_dataset)
from eqprop.data import archive, registry
from eqprop.data.image_folder import read_image_folder_tar
from eqprop.data.timeseries import TsFormatError, align_classes, read_ts


# -- UEA/UCR .ts ----------------------------------------------------------------------------------

def ts_text(classes, rows, dims=2):
    header = (f"@problemName Toy\n@timeStamps false\n@missing false\n@univariate {str(dims == 1).lower()}\n"
              f"@dimensions {dims}\n@equalLength true\n@seriesLength 3\n@classLabel true {' '.join(classes)}\n@data\n")
    return header + "".join(":".join(",".join(str(v) for v in ch) for ch in series) + f":{label}\n"
                            for series, label in rows)


def toy_rows(labels, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(2, 3)).round(3).tolist(), lab) for lab in labels]


def write_ts(path, text, gz=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def write_uea(root, train_classes, test_classes, train_labels, test_labels, problem="BasicMotions"):
    d = root / "timeseries"
    write_ts(d / f"{problem}_TRAIN.ts.gz", ts_text(train_classes, toy_rows(train_labels, 0)))
    write_ts(d / f"{problem}_TEST.ts.gz", ts_text(test_classes, toy_rows(test_labels, 1)))


def test_ts_labels_are_mapped_by_name_across_splits(isolated):
    """The test file lists @classLabel in another order: labels must follow the names, not positions."""
    root = isolated / "root"
    write_uea(root, ["Standing", "Running", "Walking"], ["Walking", "Standing", "Running"],
              ["Standing", "Running", "Walking", "Walking"], ["Walking", "Standing", "Running", "Running"])
    train = load_dataset("basicmotions", "train", root=root)
    test = load_dataset("basicmotions", "test", root=root)
    assert train.classes == test.classes == ["Standing", "Running", "Walking"]
    assert train.labels.tolist() == [0, 1, 2, 2]
    assert test.labels.tolist() == [2, 0, 1, 1]  # by name; header positions would give [0, 1, 2, 2]
    assert [test.classes[k] for k in test.labels] == ["Walking", "Standing", "Running", "Running"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_ts_class_in_one_split_only(isolated, split):
    root = isolated / "root"
    write_uea(root, ["a", "b"], ["a", "b", "c"], ["a", "b"], ["a", "c"])
    with pytest.raises(TsFormatError, match=r"BasicMotions_TEST.ts.gz has class\(es\) \['c'\] that .*"
                                            r"BasicMotions_TRAIN.ts.gz lacks") as info:
        load_dataset("basicmotions", split, root=root)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert "same class names" in str(info.value)


def test_ts_align_classes_both_directions(tmp_path):
    a = read_ts(write_ts(tmp_path / "a.ts", ts_text(["x", "y", "z"], toy_rows(["x", "z"])), gz=False))
    b = read_ts(write_ts(tmp_path / "b.ts", ts_text(["x", "y"], toy_rows(["x", "y"])), gz=False))
    with pytest.raises(TsFormatError, match=r"A has class\(es\) \['z'\] that B lacks"):
        align_classes(a, b, "A", "B")
    same = read_ts(write_ts(tmp_path / "c.ts", ts_text(["z", "y", "x"], toy_rows(["x", "z"])), gz=False))
    assert align_classes(a, same).labels.tolist() == [0, 2]


def test_ts_duplicate_class_names(tmp_path):
    path = write_ts(tmp_path / "d.ts", ts_text(["a", "b", "a"], toy_rows(["a"])), gz=False)
    with pytest.raises(TsFormatError, match=r"d.ts:8: @classLabel lists 'a' more than once"):
        read_ts(path)


def test_ts_infinite_value(tmp_path):
    path = write_ts(tmp_path / "i.ts", ts_text(["a"], [([[1, "inf", 2], [0, 0, 0]], "a")]), gz=False)
    with pytest.raises(TsFormatError, match=r"i.ts:10: an infinite value"):
        read_ts(path)


def test_ts_truncated_gz(isolated):
    root = isolated / "root"
    write_uea(root, ["a", "b"], ["a", "b"], ["a", "b"] * 40, ["a", "b"])
    path = root / "timeseries" / "BasicMotions_TRAIN.ts.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataFileError, match=r"BasicMotions_TRAIN.ts.gz: truncated gzip file .*download it again"):
        read_ts(path)
    with pytest.raises(DataFileError, match="BasicMotions_TRAIN.ts.gz: truncated gzip"):
        load_dataset("basicmotions", "test", root=root)  # the test split reads the training file too


def test_ts_channels_differ_between_splits(isolated):
    d = isolated / "root" / "timeseries"
    write_ts(d / "BasicMotions_TRAIN.ts.gz", ts_text(["a", "b"], toy_rows(["a", "b"])))
    write_ts(d / "BasicMotions_TEST.ts.gz", ts_text(["a", "b"], [([[1, 2, 3]], "a")], dims=1))
    with pytest.raises(TsFormatError, match="1 channels but the training file .*has 2"):
        load_dataset("basicmotions", "test", root=isolated / "root")


# -- image-folder tars ----------------------------------------------------------------------------

def png(shape=(4, 4, 3)):
    return np.zeros(shape, np.uint8)


@pytest.mark.parametrize("blob,needle", [
    (b"\xff\xd8\xff\xe0 this is not a jpeg", r"\(OSError: Truncated File Read\)"),  # JPEG magic, then garbage
    (b"plain garbage, no image magic at all", r"\(not a JPEG/PNG that PIL can identify"),
])
def test_garbage_jpg_in_image_tar(tmp_path, write_image_tar, monkeypatch, blob, needle):
    monkeypatch.setenv("EQPROP_CACHE", str(tmp_path / "cache"))
    path = write_image_tar(tmp_path / "train.tar.gz", {"train/cat/0.png": png()}, {"train/dog/1.jpg": blob})
    with pytest.raises(DataFileError, match=r"train.tar.gz: member train/dog/1.jpg is not a readable image " + needle):
        read_image_folder_tar(path)


def test_truncated_png_in_image_tar(tmp_path, write_image_tar):
    buffer = io.BytesIO()
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(buffer, format="PNG")
    path = write_image_tar(tmp_path / "t.tar", {"cat/0.png": png((32, 32, 3))},
                           {"cat/1.png": buffer.getvalue()[:200]})
    with pytest.raises(DataFileError, match=r"t.tar: member cat/1.png is not a readable image"):
        read_image_folder_tar(path, cache=False)


def test_truncated_tar_gz(tmp_path, write_image_tar):
    rng = np.random.default_rng(0)
    tree = {f"train/c{i % 3}/{i}.png": rng.integers(0, 256, (16, 16, 3), np.uint8) for i in range(30)}
    path = write_image_tar(tmp_path / "train.tar.gz", tree)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataFileError, match=r"train.tar.gz: (truncated|corrupt) tar archive .*download it again"):
        read_image_folder_tar(path, cache=False)


def test_not_a_tar_at_all(tmp_path):
    path = tmp_path / "test.tar.gz"
    path.write_bytes(b"hello, I am not an archive")
    with pytest.raises(DataFileError, match=r"test.tar.gz: corrupt tar archive"):
        read_image_folder_tar(path, cache=False)


def test_corrupt_image_tar_through_the_registry(isolated):
    jpeg = isolated / "root" / "cifar10-jpeg"
    jpeg.mkdir(parents=True)
    (jpeg / "test.tar.gz").write_bytes(gzip.compress(b"x" * 5000)[:40])
    with pytest.raises(DataFileError, match="test.tar.gz: (truncated|corrupt) tar archive"):
        load_dataset("cifar10", "test", root=isolated / "root")


# -- IDX through the registry ---------------------------------------------------------------------

def write_mnist(directory, write_idx_file, n=4, labels=None, images_dtype=np.uint8):
    x = np.zeros((n, 28, 28), images_dtype)
    y = np.array(labels if labels is not None else list(range(n)), np.uint8)
    for prefix in ("train", "t10k"):
        write_idx_file(directory / f"{prefix}-images-idx3-ubyte.gz", x, gz=True)
        write_idx_file(directory / f"{prefix}-labels-idx1-ubyte.gz", y, gz=True)


@pytest.mark.parametrize("case,damage,needle", [
    ("truncated idx", lambda raw: gzip.compress(gzip.decompress(raw)[:-100]),
     r"train-images-idx3-ubyte.gz: truncated: IDX dims"),
    ("wrong magic", lambda raw: gzip.compress(b"\x08\x03" + gzip.decompress(raw)[2:]),
     r"train-images-idx3-ubyte.gz: not an IDX file \(bad magic number"),
    ("truncated gz", lambda raw: raw[:-30], r"train-images-idx3-ubyte.gz: truncated gzip file"),
    ("corrupt deflate", lambda raw: raw[:12] + bytes(b ^ 0xFF for b in raw[12:20]) + raw[20:],
     r"train-images-idx3-ubyte.gz: corrupt gzip file"),
    ("empty", lambda raw: b"", r"train-images-idx3-ubyte.gz: not an IDX file \(bad magic number empty"),
])
def test_damaged_mnist(isolated, write_idx_file, case, damage, needle):
    d = isolated / "root" / "mnist"
    write_mnist(d, write_idx_file)
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataFileError, match=needle):
        load_dataset("mnist", "train", root=isolated / "root")


def test_mnist_files_that_do_not_pair_up(isolated, write_idx_file):
    d = isolated / "root" / "mnist"
    write_mnist(d, write_idx_file)
    write_idx_file(d / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), gz=True)
    with pytest.raises(DataFileError, match=r"do not pair up"):
        load_dataset("mnist", "train", root=isolated / "root")
    write_mnist(d, write_idx_file, labels=[0, 1, 2, 12])
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: label 12 found, mnist has classes 0..9"):
        load_dataset("mnist", "train", root=isolated / "root")
    write_mnist(d, write_idx_file, images_dtype=np.float32)
    with pytest.raises(DataFileError, match=r"holds float32.*both must be uint8"):
        load_dataset("mnist", "train", root=isolated / "root")


# -- archives -------------------------------------------------------------------------------------

def make_tar(path, members):
    """members: list of (TarInfo kwargs, data bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            ti = tarfile.TarInfo(info.pop("name"))
            for k, v in info.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


OK_FILE = ({"name": "pkg/ok.txt"}, b"fine")
HOSTILE = {
    "absolute path": ([OK_FILE, ({"name": "/tmp/EVIL"}, b"x")], "is an absolute path"),
    "dot-dot": ([OK_FILE, ({"name": "pkg/../../EVIL"}, b"x")], "has a '..' component"),
    "symlink outside": ([OK_FILE, ({"name": "pkg/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)],
                        "symbolic link to '/etc/passwd'"),
    "symlink up": ([OK_FILE, ({"name": "pkg/link", "type": tarfile.SYMTYPE, "linkname": "../../x"}, None)],
                   "symbolic link to '../../x'"),
    "hardlink outside": ([OK_FILE, ({"name": "pkg/hard", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)],
                         "hard link to '/etc/passwd'"),
    "char device": ([OK_FILE, ({"name": "pkg/tty", "type": tarfile.CHRTYPE, "devmajor": 5, "devminor": 0}, None)],
                    "a character device"),
    "block device": ([OK_FILE, ({"name": "pkg/sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)],
                     "a block device"),
    "fifo": ([OK_FILE, ({"name": "pkg/pipe", "type": tarfile.FIFOTYPE}, None)], "a FIFO"),
}


@pytest.fixture(params=[True, False], ids=["data-filter", "fallback-check"])
def filter_mode(request, monkeypatch):
    """Run with tarfile's filter="data" and with the check used on Pythons that lack it."""
    monkeypatch.setattr(archive, "HAS_DATA_FILTER", request.param and hasattr(tarfile, "data_filter"))
    return request.param


@pytest.mark.parametrize("case", list(HOSTILE))
def test_unsafe_archive_refused(tmp_path, filter_mode, case):
    members, needle = HOSTILE[case]
    path = make_tar(tmp_path / "evil.tar.gz", [(dict(i), d) for i, d in members])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match=needle) as info:
        archive.safe_extract(path, dest)
    assert "evil.tar.gz" in str(info.value) and "nothing was extracted" in str(info.value)
    assert list(dest.iterdir()) == []  # refused before anything was written
    assert not (tmp_path / "EVIL").exists() and not (tmp_path / "out" / "EVIL").exists()


def test_symlink_chain_escape_refused(tmp_path, filter_mode):
    """Each link looks harmless alone, but 'a/b' written through the link 'a' -> '.' would escape."""
    path = make_tar(tmp_path / "chain.tar.gz", [
        ({"name": "a", "type": tarfile.SYMTYPE, "linkname": "."}, None),
        ({"name": "a/b", "type": tarfile.SYMTYPE, "linkname": "../x"}, None),
        ({"name": "a/b/EVIL"}, b"x"),
    ])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match="chain.tar.gz"):
        archive.safe_extract(path, dest)
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "out" / "x" / "EVIL").exists()


def test_safe_archive_extracted(tmp_path, filter_mode):
    path = make_tar(tmp_path / "good.tar.gz", [
        ({"name": "pkg", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
        ({"name": "pkg/ok.txt", "mode": 0o4755}, b"fine"),  # setuid bit must not survive
        ({"name": "pkg/link", "type": tarfile.SYMTYPE, "linkname": "ok.txt"}, None),
        ({"name": "pkg/hard", "type": tarfile.LNKTYPE, "linkname": "pkg/ok.txt"}, None),
    ])
    names = archive.safe_extract(path, tmp_path / "dest")
    assert names == ["pkg", "pkg/ok.txt", "pkg/link", "pkg/hard"]
    for name in ("ok.txt", "link", "hard"):
        assert (tmp_path / "dest" / "pkg" / name).read_bytes() == b"fine"
    assert not os.stat(tmp_path / "dest" / "pkg" / "ok.txt").st_mode & 0o4000


def test_truncated_archive(tmp_path, filter_mode):
    rng = np.random.default_rng(0)
    path = make_tar(tmp_path / "big.tar.gz", [({"name": f"f{i}"}, rng.bytes(3000)) for i in range(10)])
    path.write_bytes(path.read_bytes()[:12000])
    with pytest.raises(DataFileError, match=r"big.tar.gz: (truncated|corrupt) archive, cannot be extracted"):
        archive.safe_extract(path, tmp_path / "dest")


# -- data roots -----------------------------------------------------------------------------------

def test_missing_eqprop_data_entry_is_an_error(isolated, monkeypatch, write_idx_file):
    write_mnist(isolated / "work" / "data" / "mnist", write_idx_file)  # ./data has MNIST...
    missing = isolated / "typo"
    monkeypatch.setenv("EQPROP_DATA", str(missing))
    with pytest.raises(DataRootError, match=rf"data root {missing} \(from EQPROP_DATA\) does not exist") as info:
        load_dataset("mnist", "train")  # ...but it must not be used silently
    assert isinstance(info.value, DatasetNotFoundError)
    with pytest.raises(DataRootError, match="does not exist"):
        dataset_status()
    a_file = isolated / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("EQPROP_DATA", f"{isolated / 'work' / 'data'}{os.pathsep}{a_file}")
    with pytest.raises(DataRootError, match="is not a folder"):
        locate_dataset("mnist", "train")


def test_missing_explicit_root_is_an_error(isolated, write_idx_file):
    write_mnist(isolated / "work" / "data" / "mnist", write_idx_file)
    with pytest.raises(DataRootError, match=r"nowhere \(passed as root\) does not exist"):
        load_dataset("mnist", "train", root=isolated / "nowhere")


# -- listing --------------------------------------------------------------------------------------

def test_dataset_status_survives_a_corrupt_dataset(isolated, write_idx_file, fake_cifar10):
    root = isolated / "root"
    write_mnist(root / "mnist", write_idx_file)
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    fake_cifar10(root / "cifar-10-batches-py")
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x02 truncated")
    write_uea(root, ["a", "b"], ["a", "b"], ["a", "b"], ["b", "a"])
    rows = {(r.name, r.split): r for r in dataset_status(root)}
    assert set(rows) == {(n, s) for n in available_datasets() for s in ("train", "test")}
    assert rows[("mnist", "train")].ok and rows[("mnist", "train")].message.startswith("4 samples, shape (1, 28, 28)")
    bad = rows[("mnist", "test")]
    assert not bad.ok and bad.message.startswith("error: ") and "t10k-images-idx3-ubyte.gz" in bad.message
    assert not rows[("cifar10", "train")].ok and "data_batch_1" in rows[("cifar10", "train")].message
    assert rows[("cifar10", "test")].ok
    assert rows[("basicmotions", "test")].ok
    assert rows[("svhn", "train")].message.startswith("missing: train_32x32.mat")
    assert not rows[("smnist", "test")].ok and rows[("smnist", "train")].ok
    assert all("\n" not in r.message for r in rows.values())
    fast = {(r.name, r.split): r for r in dataset_status(root, ["mnist"], load=False)}
    assert fast[("mnist", "test")].ok and "t10k-images-idx3-ubyte.gz" in fast[("mnist", "test")].message


def test_dataset_status_survives_an_unexpected_failure(isolated, write_idx_file, monkeypatch):
    write_mnist(isolated / "root" / "mnist", write_idx_file)

    def boom(*_):
        raise RuntimeError("reader bug")

    monkeypatch.setattr(registry, "_LOADERS", {**registry._LOADERS,
                                                "svhn": registry._Entry(boom, boom)})
    rows = {(r.name, r.split): r for r in dataset_status(isolated / "root")}
    assert rows[("svhn", "train")].message == "error: RuntimeError: reader bug"
    assert rows[("mnist", "train")].ok


# -- in-memory data -------------------------------------------------------------------------------

def test_dataset_label_out_of_range_names_the_fix():
    from eqprop.data import Dataset

    with pytest.raises(DataError, match=r"labels must lie in 0..1 .*found 0..2"):
        Dataset("toy", "train", torch.zeros(3, 4), torch.tensor([0, 1, 2]), ["a", "b"])
    with pytest.raises(DataError, match=r"found -1..1"):
        Dataset("toy", "train", torch.zeros(3, 4), torch.tensor([0, 1, -1]), ["a", "b"])


def test_ts_corrupt_deflate(tmp_path):
    text = ts_text(["a", "b"], toy_rows(["a", "b"] * 50))
    raw = bytearray(gzip.compress(text.encode()))
    for i in range(12, 20):
        raw[i] ^= 0xFF
    path = tmp_path / "X_TRAIN.ts.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"X_TRAIN.ts.gz: (corrupt|truncated) gzip file"):
        read_ts(path)


def test_dataset_status_unknown_name(isolated):
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['imagenet'\]; valid names: acsf1"):
        dataset_status(names=["mnist", "imagenet"])


def test_non_finite_found_beyond_the_first_chunk():
    from eqprop.data import Dataset

    x = torch.zeros(9000, 2)
    x[8500, 1] = float("-inf")
    with pytest.raises(DataError, match="first at sample 8500"):
        Dataset("big", "train", x, torch.zeros(9000, dtype=torch.int64), ["a"])
