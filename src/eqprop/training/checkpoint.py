"""Checkpoints written atomically and read safely.

Writing: ``torch.save`` to a temporary file in the same folder, then ``os.replace`` it into place,
so a crash mid-write never leaves a broken file. Reading: ``torch.load(weights_only=True)``, which
refuses to unpickle anything but tensors, numbers, strings, lists and dicts, so a crafted
checkpoint cannot run code; a truncated, empty or foreign file is a ``CheckpointError`` that names it.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, not a checkpoint, or holds more than plain data."""


def save_checkpoint(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder; give the file (e.g. {str(path / 'checkpoint.pt')!r})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes); delete it to start afresh")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut one lacks its directory
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a checkpoint (not a torch.save zip "
                              f"archive); delete it (or use another run.out) to start afresh")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds objects other than tensors, numbers, strings, lists and dicts, "
            f"and was refused (loading it could run code): {str(e).splitlines()[0][:200]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a checkpoint ({str(e).splitlines()[0][:200]}); "
                              f"delete it (or use another run.out) to start afresh") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{str(path)!r} is not an eqprop checkpoint (no 'model' entry)")
    return ckpt
