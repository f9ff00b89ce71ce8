"""Safe extraction of (possibly untrusted) tar archives.

Every member is checked before anything is written: absolute names, ``..`` components, symbolic
or hard links whose target lies outside the destination, and device, FIFO or other special
members make the whole archive refused with an
:class:`~eqprop.data.UnsafeArchiveError`. Extraction then uses tarfile's ``filter="data"`` where
this Python has it (3.11.4+, 3.12+); where it does not, each member is re-checked against the
real file system just before it is written (so a member cannot go through a symlink extracted
earlier) and written without its owner, permissions or times (``set_attrs=False``).
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import zlib

from .dataset import DataFileError, UnsafeArchiveError
from .files import REFETCH

HAS_DATA_FILTER = hasattr(tarfile, "data_filter")  # tests switch this off to exercise the fallback


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def check_member(member: tarfile.TarInfo, archive: str | os.PathLike) -> None:
    """Raise UnsafeArchiveError if ``member`` could write outside the destination folder."""
    name = member.name
    unsafe = None
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\x00" in name:
        unsafe = "is an absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        unsafe = "has a '..' component"
    elif member.issym():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            unsafe = f"is a symbolic link to {target!r}, outside the archive's folder"
    elif member.islnk():
        target = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            unsafe = f"is a hard link to {member.linkname!r}, outside the archive's folder"
    elif not (member.isfile() or member.isdir()):
        kind = ("is a character device" if member.ischr() else "is a block device" if member.isblk()
                else "is a FIFO" if member.isfifo() else f"is a special member (type {member.type!r})")
        unsafe = kind
    if unsafe:
        raise UnsafeArchiveError(f"{archive}: refusing to extract member {name!r}: it {unsafe}; "
                                 f"nothing was extracted. Use an archive from the dataset's official source")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract the tar (plain, gz, bz2 or xz) ``archive`` into the folder ``dest``; return the member names.

    Raises UnsafeArchiveError (nothing written) for an unsafe member, DataFileError for a
    corrupt or truncated archive (what was written before the damage stays in ``dest``; extract
    into a temporary folder when that matters, as :func:`eqprop.data.download.download` does).
    """
    dest_path = os.path.realpath(dest)
    os.makedirs(dest_path, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads the whole archive: truncation shows up here
            for member in members:
                check_member(member, archive)
            if HAS_DATA_FILTER:
                try:
                    tar.extractall(dest_path, members=members, filter="data")
                except tarfile.FilterError as e:
                    raise UnsafeArchiveError(f"{archive}: refusing to extract: {e}. Use an archive from the "
                                             f"dataset's official source") from None
            else:
                for member in members:
                    _check_against_disk(member, dest_path, archive)
                    tar.extract(member, dest_path, set_attrs=False)
            return [m.name for m in members]
    except (tarfile.ReadError, EOFError, zlib.error) as e:
        problem = "truncated" if isinstance(e, EOFError) or "unexpected end" in str(e) else "corrupt"
        raise DataFileError(f"{archive}: {problem} archive, cannot be extracted ({e or type(e).__name__}); "
                            f"{REFETCH}") from None
    except tarfile.CompressionError as e:
        raise DataFileError(f"{archive}: cannot decompress ({e}); {REFETCH}") from None


def _check_against_disk(member: tarfile.TarInfo, dest: str, archive) -> None:
    """The part of ``filter="data"`` that depends on what is already on disk: the member's real path
    (through any link extracted before it) and a link's real target must stay inside ``dest``."""
    path = os.path.realpath(os.path.join(dest, member.name))
    if not _inside(dest, path):
        raise UnsafeArchiveError(f"{archive}: refusing to extract member {member.name!r}: it would be written "
                                 f"outside the target folder (through a link); use an archive from the dataset's "
                                 f"official source")
    if member.issym():
        target = os.path.realpath(os.path.join(os.path.dirname(path), member.linkname))
    elif member.islnk():
        target = os.path.realpath(os.path.join(dest, member.linkname))
    else:
        return
    if not _inside(dest, target):
        raise UnsafeArchiveError(f"{archive}: refusing to extract link {member.name!r} -> {member.linkname!r}: "
                                 f"its target lies outside the target folder; use an archive from the dataset's "
                                 f"official source")


__all__ = ["safe_extract", "check_member", "HAS_DATA_FILTER"]
