"""SVHN in its standard cropped-digits format: ``train_32x32.mat``, ``test_32x32.mat``.

Each file is a MATLAB v5 file with ``X``: uint8 (32, 32, 3, N) and ``y``: (N, 1) labels 1..10,
where 10 stands for the digit 0 (http://ufldl.stanford.edu/housenumbers/).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import DataFileError
from .files import REFETCH

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
SVHN_CLASSES = [str(d) for d in range(10)]


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,) in 0..9) from one SVHN ``.mat`` file."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError, ... on damaged files
        raise DataFileError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e}); {REFETCH}") from None
    if "X" not in data or "y" not in data:
        raise DataFileError(f"{path}: not an SVHN .mat file (expected variables 'X' and 'y', found "
                         f"{', '.join(k for k in data if not k.startswith('__'))})")
    x, y = data["X"], data["y"].reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise DataFileError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, {len(y)})")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)
    labels = y.astype(np.int64) % 10  # label 10 is the digit 0
    return images, labels
