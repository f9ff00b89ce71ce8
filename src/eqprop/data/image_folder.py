"""Reader for image-folder trees (``[SPLIT/]CLASS/FILE.jpg|png``) packed in a tar or tar.gz, with a decode cache."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import tarfile
import warnings
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .dataset import DataFileError
from .files import REFETCH
from .paths import cache_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
_CACHE_VERSION = 1


def read_image_folder_tar(path: str | os.PathLike, *, cache: bool = True):
    """Decode every image in a tar of ``SPLIT/CLASS/FILE`` or ``CLASS/FILE`` entries.

    Returns (images uint8 (N, 3, H, W) RGB, labels int64 (N,), classes list[str]); label k is the
    k-th class folder name in sorted order, samples are ordered by (class, file name). All images
    must have the same size. With ``cache=True`` the arrays are kept in an ``.npz`` under
    :func:`~eqprop.data.paths.cache_dir`, keyed by the tar's absolute path, size and mtime.
    """
    path = Path(path).resolve()
    target = _cache_file(path) if cache else None
    if target is not None and target.exists():
        try:
            with np.load(target, allow_pickle=False) as z:
                return z["images"], z["labels"], [str(c) for c in z["classes"]]
        except (OSError, ValueError, KeyError) as e:
            warnings.warn(f"ignoring unreadable cache {target}: {e}")
    images, labels, classes = _decode(path)
    if target is not None:
        _write_atomic(target, images=images, labels=labels, classes=np.array(classes))
    return images, labels, classes


def _decode(path: Path):
    blobs: dict[tuple[str, str], bytes] = {}
    names: dict[tuple[str, str], str] = {}
    prefixes: set[tuple[str, ...]] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # read into memory only: nothing is ever extracted to disk
                parts = PurePosixPath(member.name).parts
                parts = parts[1:] if parts and parts[0] == "." else parts
                if (not member.isfile() or len(parts) < 2
                        or PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES
                        or any(p.startswith(".") or p == "__MACOSX" for p in parts)):
                    continue
                prefixes.add(parts[:-2])
                blobs[(parts[-2], parts[-1])] = tar.extractfile(member).read()
                names[(parts[-2], parts[-1])] = member.name
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as e:
        problem = "truncated" if isinstance(e, EOFError) or "unexpected end" in str(e) else "corrupt"
        raise DataFileError(f"{path}: {problem} tar archive ({e or type(e).__name__}); {REFETCH}") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e.strerror or e}); {REFETCH}") from None
    if not blobs:
        raise DataFileError(f"{path}: no .jpg/.png files in CLASS/ folders")
    if len(prefixes) > 1:
        raise DataFileError(f"{path}: holds several trees {sorted('/'.join(p) for p in prefixes)}; expected one split")
    classes = sorted({c for c, _ in blobs})
    keys = sorted(blobs)
    first = _rgb(blobs[keys[0]], path, names[keys[0]])
    images = np.empty((len(keys), *first.shape), np.uint8)  # (N, H, W, 3)
    for i, key in enumerate(keys):
        image = _rgb(blobs[key], path, names[key])
        if image.shape != first.shape:
            size, expected = image.shape[:2], first.shape[:2]
            raise DataFileError(f"{path}: {'/'.join(key)} is {size}, expected {expected} like the others")
        images[i] = image
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[c] for c, _ in keys], dtype=np.int64)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels, classes


def _rgb(blob: bytes, path: Path, member: str) -> np.ndarray:
    """Decode one image; any decoder failure (garbage, truncated, too large) names the tar and the member."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob)) as image:
                return np.asarray(image.convert("RGB"))
    except Image.UnidentifiedImageError:
        raise DataFileError(f"{path}: member {member} is not a readable image (not a JPEG/PNG that PIL can "
                            f"identify: garbage or another format); remove it from the archive or {REFETCH}") from None
    except Exception as e:  # PIL raises OSError (truncated), SyntaxError, ValueError, DecompressionBomb...
        raise DataFileError(f"{path}: member {member} is not a readable image ({type(e).__name__}: {e}); "
                            f"remove it from the archive or {REFETCH}") from None


def _cache_file(path: Path) -> Path:
    st = path.stat()
    key = f"v{_CACHE_VERSION}|{path}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = path.name.split(".")[0]
    return cache_dir() / f"{path.parent.name}-{stem}-{digest}.npz"


def _write_atomic(target: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz via a temp file + os.replace; warn (don't fail) if the cache is unwritable."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        warnings.warn(f"could not write cache {target}: {e}")
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
