"""Where datasets are looked for, and where decoded copies are cached.

Search order (:func:`data_root`): the ``root`` passed to ``load_dataset``; then, if
``$EQPROP_DATA`` is set, each of its entries (``os.pathsep``-separated) and nothing else;
otherwise ``./data`` and the per-user data folder (:func:`user_data_dir`). A root named
explicitly (``root=`` or an ``$EQPROP_DATA`` entry) that does not exist is an error, never a
reason to read another root silently. Fashion-MNIST is also found in Debian's
``/usr/share/datasets/fashion-mnist`` (see the registry).
"""

from __future__ import annotations

import os
from pathlib import Path

from .dataset import DataRootError

ENV = "EQPROP_DATA"


def user_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/eqprop``, else ``~/.local/share/eqprop`` (not created here)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(os.path.expanduser(xdg)) if xdg and os.path.isabs(os.path.expanduser(xdg)) \
        else Path.home() / ".local" / "share"
    return base / "eqprop"


def _env_roots() -> list[str]:
    return [e for e in os.environ.get(ENV, "").split(os.pathsep) if e.strip()]


def _absolute(entry: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(entry)))


def _check_explicit(path: Path, origin: str) -> None:
    if not path.exists():
        fix = (f"fix the path (or create the folder), or unset {ENV} to search ./data and {user_data_dir()}"
               if ENV in origin else "fix the path (or create the folder), or leave root unset")
        raise DataRootError(f"data root {path} ({origin}) does not exist; {fix}")
    if not path.is_dir():
        raise DataRootError(f"data root {path} ({origin}) is not a folder; {ENV} lists folders separated by "
                            f"'{os.pathsep}'")


def data_root(root: str | os.PathLike | None = None, *, check: bool = True) -> list[Path]:
    """Data roots in search order, as absolute paths (duplicates dropped).

    1. ``root`` if given; 2. every entry of ``$EQPROP_DATA`` if it is set (then nothing else);
    3. otherwise ``./data`` and :func:`user_data_dir`, which need not exist.
    With ``check`` (the default), a ``root`` or ``$EQPROP_DATA`` entry that does not exist or is not
    a folder raises :class:`~eqprop.data.DataRootError` (a DatasetNotFoundError) naming it.
    """
    entries: list[tuple[Path, str | None]] = []
    if root is not None:
        entries.append((_absolute(root), "passed as root"))
    env = _env_roots()
    if env:
        entries += [(_absolute(e), f"from {ENV}") for e in env]
    else:
        entries += [(_absolute("data"), None), (user_data_dir(), None)]
    roots: list[Path] = []
    for path, origin in entries:
        if check and origin is not None:
            _check_explicit(path, origin)
        if path not in roots:
            roots.append(path)
    return roots


def download_root() -> Path:
    """Where downloads go by default: the first ``$EQPROP_DATA`` entry if set, else :func:`user_data_dir`."""
    env = _env_roots()
    return _absolute(env[0]) if env else user_data_dir()


def cache_dir() -> Path:
    """Directory for decoded-dataset caches: ``$EQPROP_CACHE``, else ``~/.cache/eqprop`` (not created here)."""
    env = os.environ.get("EQPROP_CACHE")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "eqprop"
