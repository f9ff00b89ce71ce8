"""Reading dataset files so that every failure is a :class:`DataFileError` naming the file and the fix.

Corrupt, truncated or unreadable files must never surface as raw ``zlib.error``, ``EOFError``,
``gzip.BadGzipFile`` or ``PermissionError`` tracebacks.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from .dataset import DataFileError

REFETCH = "download it again (or restore it from a good copy)"


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``, or DataFileError if it cannot be read (permissions, a folder, I/O error)."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a folder, expected a file") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e.strerror or e}); check that it exists and is readable") from None


def gunzip(raw: bytes, path: str | os.PathLike) -> bytes:
    """Decompress gzip bytes read from ``path``; every kind of damage becomes a DataFileError."""
    try:
        return gzip.decompress(raw)
    except EOFError:
        problem = "truncated gzip file (the compressed stream ends early: the file was cut short)"
    except zlib.error as e:
        problem = f"corrupt gzip file (bad deflate data: {e})"
    except gzip.BadGzipFile as e:
        problem = f"corrupt gzip file ({e})"
    except OSError as e:  # pragma: no cover - other gzip-level errors
        problem = f"unreadable gzip file ({e})"
    raise DataFileError(f"{path}: {problem}; {REFETCH}")


def read_maybe_gz(path: str | os.PathLike) -> bytes:
    """The content of ``path``, decompressed if it is gzip (detected from its first bytes, not its name)."""
    raw = read_file(path)
    return gunzip(raw, path) if raw[:2] == b"\x1f\x8b" else raw
