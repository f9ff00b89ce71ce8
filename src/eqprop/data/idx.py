"""Reader for the IDX format of MNIST-style files (optionally gzipped)."""

from __future__ import annotations

import os

import numpy as np

from .dataset import DataFileError
from .files import REFETCH, read_maybe_gz

# IDX type code -> big-endian numpy dtype.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip, detected from its bytes) into an array of shape dims.

    Header: two zero bytes, a type code (0x08 uint8 ... 0x0E float64), ndim, then ndim
    big-endian uint32 sizes. Raises :class:`~eqprop.data.DataFileError` (a ValueError) naming the
    file on a bad magic number, a truncated header or data, or a corrupt gzip stream.
    """
    raw = read_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataFileError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; an IDX file "
                            f"starts 0000 then a type code 08..0e); is this the right file? Otherwise {REFETCH}")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header ({len(raw)} bytes, {header} needed for {ndim} "
                            f"dimensions); {REFETCH}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    if len(raw) - header != expected:
        cut = "truncated: " if len(raw) - header < expected else ""
        raise DataFileError(f"{path}: {cut}IDX dims {dims} need {expected} data bytes, file has "
                            f"{len(raw) - header}; {REFETCH}")
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))
