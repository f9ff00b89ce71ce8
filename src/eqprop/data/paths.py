"""Where datasets are looked for, and where decoded copies are cached."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike | None = None) -> list[Path]:
    """Candidate data roots, in search order, as absolute paths (existing or not, duplicates dropped).

    1. ``root`` if given; 2. each entry of ``$EQPROP_DATA`` (``os.pathsep``-separated);
    3. ``./data``; 4. ``../shared/data`` (both relative to the current directory).
    """
    entries: list[str | os.PathLike] = [] if root is None else [root]
    entries += [e for e in os.environ.get("EQPROP_DATA", "").split(os.pathsep) if e]
    entries += ["data", os.path.join("..", "shared", "data")]
    roots: list[Path] = []
    for entry in entries:
        path = Path(os.path.abspath(os.path.expanduser(entry)))
        if path not in roots:
            roots.append(path)
    return roots


def cache_dir() -> Path:
    """Directory for decoded-dataset caches: ``$EQPROP_CACHE``, else ``~/.cache/eqprop`` (not created here)."""
    env = os.environ.get("EQPROP_CACHE")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "eqprop"
