"""SVHN in its standard cropped-digits format: ``train_32x32.mat``, ``test_32x32.mat``.

Each file is a MATLAB v5 file with ``X``: uint8 (32, 32, 3, N) and ``y``: (N, 1) labels 1..10,
where 10 stands for the digit 0 (http://ufldl.stanford.edu/housenumbers/).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
SVHN_CLASSES = [str(d) for d in range(10)]


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,) in 0..9) from one SVHN ``.mat`` file."""
    from scipy.io import loadmat

    data = loadmat(str(path))
    if "X" not in data or "y" not in data:
        raise ValueError(f"{path}: not an SVHN .mat file (expected variables 'X' and 'y', found "
                         f"{', '.join(k for k in data if not k.startswith('__'))})")
    x, y = data["X"], data["y"].reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise ValueError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, {len(y)})")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)
    labels = y.astype(np.int64) % 10  # label 10 is the digit 0
    return images, labels
