import gzip

import numpy as np
import pytest

from eqprop.data import DataFileError
from eqprop.data.idx import read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, gz, dtype, write_idx_file):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    out = read_idx(write_idx_file(tmp_path / "x.idx", array, gz=gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, array)


def test_labels_1d_and_gzip_detected_by_content(tmp_path, write_idx_file):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    path = write_idx_file(tmp_path / "labels-no-gz-suffix", labels, gz=True)
    np.testing.assert_array_equal(read_idx(path), labels)
    assert read_idx(path).flags.writeable


def test_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataFileError, match="bad: not an IDX file \\(bad magic number 12340801"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")  # unknown type code
    with pytest.raises(DataFileError, match="magic"):
        read_idx(path)
    path.write_bytes(b"")
    with pytest.raises(DataFileError, match="bad magic number empty"):
        read_idx(path)


def test_truncated(tmp_path, write_idx_file):
    path = write_idx_file(tmp_path / "x", np.zeros((4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataFileError, match=r"x: truncated: IDX dims \(4, 4\) need 16 data bytes, file has 13"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")  # header cut short
    with pytest.raises(DataFileError, match="truncated IDX header"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6])
    with pytest.raises(DataFileError, match="x.gz: truncated gzip file"):
        read_idx(path)


def test_truncated_gz_of_a_big_file(tmp_path, write_idx_file):
    path = write_idx_file(tmp_path / "images.gz", np.random.default_rng(0).integers(0, 256, (50, 28, 28), np.uint8),
                          gz=True)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataFileError, match="images.gz: truncated gzip file .*download it again"):
        read_idx(path)


def test_corrupt_deflate_stream(tmp_path, write_idx_file):
    path = write_idx_file(tmp_path / "images.gz", (np.arange(50 * 28 * 28) % 7).astype(np.uint8).reshape(50, 28, 28),
                          gz=True)
    raw = bytearray(path.read_bytes())
    for i in range(12, 20):  # flip the first deflate block's code lengths, leaving the gzip header intact
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"images.gz: corrupt gzip file \(bad deflate data: .*invalid"):
        read_idx(path)


def test_bad_crc(tmp_path):
    path = tmp_path / "x.gz"
    raw = bytearray(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab"))
    raw[-8] ^= 0xFF  # the CRC32 in the trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="x.gz: corrupt gzip file"):
        read_idx(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(DataFileError, match="is a folder"):
        read_idx(tmp_path)
    with pytest.raises(DataFileError, match="cannot be read"):
        read_idx(tmp_path / "absent")
