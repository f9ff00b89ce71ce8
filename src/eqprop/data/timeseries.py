"""Time series: a reader for the UEA/UCR ``.ts`` format and sequential MNIST.

The ``.ts`` format (the UEA/UCR archive's, also written by sktime/aeon): ``#`` comment lines,
then a header of ``@tag value`` lines, ``@data``, then one line per series::

    @problemName BasicMotions
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    v,v,...,v:v,v,...,v: ... :Standing        (one comma-separated list per dimension, then the label)

Missing values are ``?`` (read as NaN). Series of unequal length (``@equalLength false``) are
padded after their end with NaN to the longest one (:func:`pad_sequences`); the HSSM reads the
lengths from that padding. ``@timeStamps true`` (``(t,v)`` pairs) is not supported and says so.

Sequential MNIST (``smnist``): each image as a sequence of 784 pixels, one channel, in [0, 1];
permuted sequential MNIST (``psmnist``): the same pixels in one fixed random order
(``torch.randperm(784)`` from seed 0, :data:`PSMNIST_SEED`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .dataset import DataFileError
from .files import read_maybe_gz

PSMNIST_SEED = 0
_BOOL_TAGS = ("timestamps", "missing", "univariate", "equallength")
_KNOWN_TAGS = {"problemname", "timestamps", "missing", "univariate", "dimensions", "dimension",
               "equallength", "serieslength", "classlabel", "targetlabel", "data"}


class TsFormatError(DataFileError):
    """A ``.ts`` file is malformed; the message names the file, the line and the problem."""


@dataclass
class TimeSeries:
    """A ``.ts`` file's content.

    x: float32 (N, T, C), NaN after the end of shorter series (and for ``?``);
    lengths: int64 (N,); labels: int64 (N,) indices into ``classes`` (or float targets for
    regression files); classes: label names in header order; header: the parsed ``@`` tags.
    """

    x: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    header: dict = field(default_factory=dict)


def pad_sequences(seqs, value: float = math.nan) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of (T_i, C) arrays/tensors -> ``(x (N, max T_i, C) float32 padded with value, lengths (N,))``."""
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    seqs = [torch.as_tensor(np.asarray(s, dtype=np.float32)) for s in seqs]
    chans = {s.shape[1] if s.dim() == 2 else None for s in seqs}
    if None in chans or len(chans) != 1:
        raise ValueError(f"every sequence must be (steps, channels) with the same channels; got shapes "
                         f"{sorted({tuple(s.shape) for s in seqs})}")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    out = torch.full((len(seqs), int(lengths.max()), chans.pop()), value, dtype=torch.float32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths


def _open_text(path: Path) -> list[str]:
    """The lines of a plain or gzipped file; damage (truncated or corrupt gzip) is a DataFileError."""
    return read_maybe_gz(path).decode("utf-8", errors="replace").splitlines()


def _parse_bool(path, lineno, tag, value) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise TsFormatError(f"{path}:{lineno}: @{tag} must be true or false, got {value.strip()!r}")
    return v == "true"


def read_ts(path: str | Path) -> TimeSeries:
    """Read a ``.ts`` file (plain or gzipped). Raises :class:`TsFormatError` naming the problem."""
    path = Path(path)
    lines = _open_text(path)
    header: dict = {}
    classes: list[str] | None = None
    regression = False
    data_at = None
    for lineno, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not s.startswith("@"):
            raise TsFormatError(f"{path}:{lineno}: data before the @data line (is the header missing?): {s[:40]!r}")
        tag, _, value = s[1:].partition(" ")
        key = tag.lower()
        if key not in _KNOWN_TAGS:
            raise TsFormatError(f"{path}:{lineno}: unknown header tag @{tag}; known tags: "
                                f"@problemName, @timeStamps, @missing, @univariate, @dimensions, @equalLength, "
                                f"@seriesLength, @classLabel, @targetLabel, @data")
        if key == "data":
            data_at = lineno
            break
        if key in _BOOL_TAGS:
            header[key] = _parse_bool(path, lineno, tag, value)
        elif key in ("dimensions", "dimension", "serieslength"):
            try:
                n = int(value.strip())
            except ValueError:
                raise TsFormatError(f"{path}:{lineno}: @{tag} must be a positive integer, got {value.strip()!r}") from None
            if n < 1:
                raise TsFormatError(f"{path}:{lineno}: @{tag} must be a positive integer, got {n}")
            header["dimensions" if key.startswith("dimension") else key] = n
        elif key == "classlabel":
            parts = value.split()
            if not parts:
                raise TsFormatError(f"{path}:{lineno}: @classLabel needs true or false")
            if _parse_bool(path, lineno, tag, parts[0]):
                if len(parts) < 2:
                    raise TsFormatError(f"{path}:{lineno}: @classLabel true must list the class labels")
                classes = parts[1:]
                repeated = sorted({c for c in classes if classes.count(c) > 1})
                if repeated:
                    raise TsFormatError(f"{path}:{lineno}: @classLabel lists {', '.join(map(repr, repeated))} "
                                        f"more than once; each class name must appear once")
        elif key == "targetlabel":
            regression = _parse_bool(path, lineno, tag, value.split()[0] if value.split() else "")
        else:
            header[key] = value.strip()
    if data_at is None:
        raise TsFormatError(f"{path}: no @data line: the header must end with @data before the series")
    if header.get("timestamps"):
        raise TsFormatError(f"{path}: @timeStamps true ((t,v) pairs) is not supported; convert to plain values")

    rows, labels = [], []
    dims = header.get("dimensions")
    has_label = classes is not None or regression
    for lineno in range(data_at + 1, len(lines) + 1):
        s = lines[lineno - 1].strip()
        if not s or s.startswith("#"):
            continue
        fields = s.split(":")
        if has_label:
            fields, label = fields[:-1], fields[-1].strip()
            if classes is not None:
                if label not in classes:
                    raise TsFormatError(f"{path}:{lineno}: class label {label!r} is not one of @classLabel {classes}")
                labels.append(classes.index(label))
            else:
                try:
                    labels.append(float(label))
                except ValueError:
                    raise TsFormatError(f"{path}:{lineno}: regression target {label!r} is not a number") from None
        if dims is None:
            dims = len(fields)
        if len(fields) != dims:
            raise TsFormatError(f"{path}:{lineno}: {len(fields)} dimensions but the file has {dims}")
        try:
            chans = [[math.nan if v.strip() == "?" else float(v) for v in f.split(",")] for f in fields]
        except ValueError as e:
            raise TsFormatError(f"{path}:{lineno}: not a number in the series ({e})") from None
        n = {len(c) for c in chans}
        if len(n) != 1:
            raise TsFormatError(f"{path}:{lineno}: the dimensions of one series have different lengths {sorted(n)}")
        row = np.asarray(chans, dtype=np.float32).T
        if np.isinf(row).any():
            raise TsFormatError(f"{path}:{lineno}: an infinite value (or one too large for float32) in the series; "
                                f"write missing values as ?")
        rows.append(row)
    if not rows:
        raise TsFormatError(f"{path}: no series after @data")
    x, lengths = pad_sequences(rows)
    if header.get("equallength") and len(set(lengths.tolist())) != 1:
        raise TsFormatError(f"{path}: @equalLength true but the series have lengths {sorted(set(lengths.tolist()))[:5]}...")
    if "serieslength" in header and header.get("equallength", True) and int(lengths.max()) != header["serieslength"]:
        raise TsFormatError(f"{path}: @seriesLength {header['serieslength']} but the series have length {int(lengths.max())}")
    y = torch.tensor(labels, dtype=torch.float32 if regression and classes is None else torch.int64)
    if not has_label:
        y = torch.zeros(len(rows), dtype=torch.int64)
    return TimeSeries(x=x, lengths=lengths, labels=y, classes=list(classes or []), header=header)


def align_classes(reference: TimeSeries, other: TimeSeries, reference_path="train file",
                  other_path="test file") -> TimeSeries:
    """``other`` with its labels renumbered to index ``reference.classes``, matching classes by name.

    Two files of one problem may list their ``@classLabel`` names in different orders; label k of
    one is then not label k of the other. Raises TsFormatError if the two lists do not hold the
    same class names (a class present in one split and not the other).
    """
    ref, names = list(reference.classes), list(other.classes)
    if not ref and not names:  # unlabelled or regression files: nothing to align
        return other
    only_ref, only_other = [c for c in ref if c not in names], [c for c in names if c not in ref]
    if only_ref or only_other:
        parts = []
        if only_other:
            parts.append(f"{other_path} has class(es) {only_other} that {reference_path} lacks")
        if only_ref:
            parts.append(f"{reference_path} has class(es) {only_ref} that {other_path} lacks")
        raise TsFormatError(f"the two splits list different classes in @classLabel: {'; '.join(parts)}. "
                            f"Both files of a problem must list the same class names (in any order)")
    if names == ref:
        return other
    index = torch.tensor([ref.index(c) for c in names], dtype=torch.int64)
    return TimeSeries(x=other.x, lengths=other.lengths, labels=index[other.labels], classes=ref,
                      header=other.header)


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Per-channel ``(x - mean) / std`` with the statistics of ``train`` (NaN ignored) applied to all."""
    flat = train.reshape(-1, train.shape[-1]).double()
    mean = torch.nanmean(flat, 0)
    std = torch.sqrt(torch.nanmean((flat - mean).square(), 0)).clamp_min(1e-8)
    return [((t.double() - mean) / std).float() for t in (train, *others)]


def sequential_mnist(images: torch.Tensor, permute: bool = False) -> torch.Tensor:
    """uint8 MNIST images (N, 1, 28, 28) -> float32 pixel sequences (N, 784, 1) in [0, 1].

    ``permute``: the fixed pixel order of permuted sequential MNIST (seed :data:`PSMNIST_SEED`).
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    seq = images.reshape(len(images), -1).to(torch.float32).div_(255.0)
    if permute:
        seq = seq[:, psmnist_permutation(seq.shape[1])]
    return seq.unsqueeze(-1).contiguous()


def psmnist_permutation(n: int = 784) -> torch.Tensor:
    """The fixed pixel permutation of permuted sequential MNIST."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(PSMNIST_SEED))
