"""The in-memory dataset container shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset's files are missing; the message says where we looked and how to get them."""


@dataclass
class Dataset:
    """A whole split held in memory.

    images: uint8 (N, C, H, W) images, or float32 (N, T, C) sequences (time series, sequential
    MNIST); sequences of unequal length are padded after their end with NaN
    (``eqprop.data.timeseries``). labels: int64 (N,); classes[k] names label k.
    ``source`` records the file or directory it was read from ("" if built by hand).
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        image = self.images.dtype == torch.uint8 and self.images.dim() == 4
        sequence = self.images.dtype == torch.float32 and self.images.dim() == 3
        if not (image or sequence):
            raise ValueError(
                f"images must be uint8 (N, C, H, W) (or float32 (N, T, C) sequences), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(f"labels must be int64 (N,), got {self.labels.dtype} {tuple(self.labels.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image, or (T, C) of one sequence."""
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def is_sequence(self) -> bool:
        """True for float (N, T, C) sequences."""
        return self.images.dim() == 3

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
