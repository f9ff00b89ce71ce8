"""The in-memory dataset container shared by every loader, and the data layer's exceptions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset's files are missing; the message says where we looked and how to get them.

    Attributes (``None`` when not known): ``dataset`` (the name), ``wanted`` (the files looked
    for, as written in the message), ``looked`` (the folders searched).
    """

    def __init__(self, message: str, *, dataset: str | None = None, wanted: str | None = None,
                 looked: list | None = None) -> None:
        super().__init__(message)
        self.dataset, self.wanted, self.looked = dataset, wanted, looked

    def __str__(self) -> str:  # FileNotFoundError would print "[Errno ...]" only with errno set
        return str(self.args[0]) if self.args else ""


class DataRootError(DatasetNotFoundError):
    """A data root named explicitly (``$EQPROP_DATA`` or ``root=``) does not exist or is not a folder."""


class DataError(ValueError):
    """The data layer's error for bad data: the message names the problem, the file and the fix."""


class DataFileError(DataError):
    """A dataset file exists but cannot be used: unreadable, corrupt, truncated or malformed."""


class UnsafeArchiveError(DataFileError):
    """An archive holds a member that would be written outside the target folder (absolute path,
    ``..``, a link pointing outside, a device or FIFO); nothing of it is extracted."""


class DownloadError(DataError):
    """A download failed (no network, HTTP error, checksum mismatch, target not writable)."""


class RawPixelWarning(UserWarning):
    """uint8 (0..255) pixel values are about to be used as a model's inputs."""


_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_ACCEPTED = ("uint8 images (N, C, H, W); float images (N, C, H, W); float sequences (N, T, C) "
             "(NaN after the end of shorter ones); float feature vectors (N, D)")


def _first_non_finite(x: torch.Tensor, allow_nan: bool, chunk: int = 4096) -> int | None:
    """Index of the first sample holding inf (or NaN unless ``allow_nan``), in chunks of samples
    so that no full-size boolean copy is made."""
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        bad = torch.isinf(block) if allow_nan else ~torch.isfinite(block)
        if bool(bad.any()):
            return start + int(bad.reshape(len(block), -1).any(1).nonzero()[0])
    return None


@dataclass
class Dataset:
    """A whole split held in memory.

    ``images`` holds the inputs, one of:

    - uint8 images (N, C, H, W), pixel values 0..255 (the built-in image datasets);
    - float images (N, C, H, W), e.g. already scaled to [0, 1] or normalised;
    - float sequences (N, T, C): time series, sequential MNIST; sequences of unequal length are
      padded after their end with NaN (``eqprop.data.timeseries``);
    - float feature vectors (N, D): a user's own features.

    Float inputs may be float16, bfloat16, float32 or float64 and are kept as given; they must be
    finite (NaN is allowed only in sequences, as padding or missing values).
    ``labels``: int64 (N,), each in ``0 .. len(classes) - 1`` when ``classes`` is not empty;
    ``classes[k]`` names label k. ``source`` records the file or directory it was read from ("" if
    built by hand). :meth:`from_tensors` builds one from arrays or tensors of any integer label type.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r} ({self.split})" + (f" from {self.source}" if self.source else "")
        x, y = self.images, self.labels
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise DataError(f"{where}: images and labels must be torch tensors, got {type(x).__name__} and "
                            f"{type(y).__name__}; use Dataset.from_tensors(x, y) for numpy arrays")
        if x.dtype == torch.uint8:
            if x.dim() != 4:
                hint = " (add the channel axis: images.unsqueeze(1))" if x.dim() == 3 else ""
                raise DataError(f"{where}: uint8 inputs must be images (N, C, H, W), got shape {tuple(x.shape)}"
                                f"{hint}; accepted: {_ACCEPTED}")
        elif x.dtype in _FLOATS:
            if x.dim() not in (2, 3, 4):
                raise DataError(f"{where}: float inputs must be (N, D) features, (N, T, C) sequences or "
                                f"(N, C, H, W) images, got shape {tuple(x.shape)}")
            i = _first_non_finite(x, allow_nan=x.dim() == 3)
            if i is not None:
                what = "NaN or infinite values" if x.dim() != 3 else "infinite values"
                raise DataError(f"{where}: inputs hold {what} (first at sample {i}); clean or impute them "
                                f"(NaN is allowed only in (N, T, C) sequences, as padding)")
        else:
            raise DataError(f"{where}: inputs must be uint8 or float, got {x.dtype} {tuple(x.shape)}; "
                            f"accepted: {_ACCEPTED}")
        if y.dtype != torch.int64 or y.dim() != 1:
            raise DataError(f"{where}: labels must be int64 (N,), got {y.dtype} {tuple(y.shape)}; "
                            f"convert with labels.long() (or use Dataset.from_tensors)")
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels")
        if len(y) and self.classes:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= len(self.classes):
                raise DataError(f"{where}: labels must lie in 0..{len(self.classes) - 1} (one per class name), "
                                f"found {lo}..{hi}; pass one class name per label value")

    @classmethod
    def from_tensors(cls, inputs, labels, classes: list[str] | None = None, *, name: str = "custom",
                     split: str = "train") -> "Dataset":
        """A Dataset from numpy arrays or tensors: float64 numpy inputs stay float64, integer labels
        of any type become int64; ``classes`` defaults to ``["0", ..., str(max label)]``."""
        x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
            raise DataError(f"dataset {name!r} ({split}): labels must be integers, got {y.dtype}")
        y = y.long()
        if classes is None:
            classes = [str(k) for k in range(int(y.max()) + 1 if len(y) else 0)]
        return cls(name, split, x, y, list(classes))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image, (T, C) of one sequence, or (D,) of one feature vector."""
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def is_sequence(self) -> bool:
        """True for float (N, T, C) sequences."""
        return self.images.dim() == 3

    @property
    def is_features(self) -> bool:
        """True for float (N, D) feature vectors."""
        return self.images.dim() == 2

    def subset(self, n: int | None, generator: torch.Generator | None = None) -> "Dataset":
        """The first ``n`` samples, or ``n`` random ones (kept in original order) if a generator is given.

        ``n=None`` returns ``self``; ``n`` larger than ``len(self)`` keeps everything. Some sources are
        sorted by class (the CIFAR-10 JPEG copy), so the first ``n`` may all share one label: pass a
        generator for a representative subset.
        """
        if n is None:
            return self
        if n < 0:
            raise ValueError(f"subset size must be >= 0, got {n}")
        n = min(n, len(self))
        if generator is None:
            index = torch.arange(n)
        else:
            index = torch.randperm(len(self), generator=generator)[:n].sort().values
        return Dataset(self.name, self.split, self.images[index], self.labels[index], list(self.classes), self.source)


def check_inputs(x: torch.Tensor, *, what: str = "model inputs", stacklevel: int = 2) -> torch.Tensor:
    """Warn (:class:`RawPixelWarning`) if ``x`` looks like raw pixels 0..255 about to be fed to a model.

    Warns for uint8 tensors, and for float tensors whose values are whole numbers in 0..255 with a
    maximum above 1 (``images.float()`` without ``/ 255``). Only the first 65,536 values are
    inspected, so it is cheap to call on every batch. Returns ``x`` unchanged. Convert with
    ``eqprop.data.transforms.to_float`` (uint8 -> float32 in [0, 1]).
    """
    if not isinstance(x, torch.Tensor):
        return x
    if x.dtype == torch.uint8:
        warnings.warn(f"{what} are uint8 (pixel values 0..255 used as inputs): convert them first with "
                      f"eqprop.data.transforms.to_float (-> float32 in [0, 1])", RawPixelWarning, stacklevel=stacklevel)
    elif x.is_floating_point() and x.numel():
        head = x.detach().reshape(-1)[:65536]
        head = head[~torch.isnan(head)]
        if head.numel() and float(head.max()) > 1.5 and float(head.min()) >= 0 and float(head.max()) <= 255 \
                and bool((head == head.round()).all()):
            warnings.warn(f"{what} are whole numbers up to {float(head.max()):g} (raw pixel values 0..255 cast to "
                          f"float?): scale them to [0, 1] (divide by 255, or use eqprop.data.transforms.to_float on "
                          f"the uint8 images)", RawPixelWarning, stacklevel=stacklevel)
    return x
