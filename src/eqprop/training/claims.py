"""Claims: several ``eqprop compare`` workers share one grid, and each cell runs once.

A worker that is about to run a cell creates ``OUT/DATASET/LABEL/seedN.claim`` with
``os.open(O_CREAT | O_EXCL)``, which exactly one worker can do (on one machine, and on a shared
NFSv3+ or local file system across machines); the file names the holder (host, pid, time) and a
background thread refreshes its modification time every ``HEARTBEAT_S`` seconds while the cell
trains. Other workers skip a claimed cell and come back to it once their own cells are done: it is
then either finished (its summary is read) or its claim is *stale* -- the holder's process is gone
(same host) or its heartbeat is older than ``STALE_S`` (another host) -- and the claim is taken
over (an atomic rename of the old claim, so only one worker takes it) and the cell resumes from
its checkpoint.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_S = 300.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Claim:
    """A held claim on one cell; ``release()`` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def claim_path(cell_out: Path) -> Path:
    return cell_out.with_name(cell_out.name + ".claim")


def holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_stale(path: Path, now: float | None = None) -> bool:
    """The claim's holder is gone: a dead process on this host, or no heartbeat for ``STALE_S``."""
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    info = holder(path)
    if info and info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        if not _alive(info["pid"]) or info["pid"] == os.getpid():
            return True
    return age > STALE_S


def try_claim(cell_out: Path) -> Claim | None:
    """Claim the cell whose run folder is ``cell_out``; None if another live worker holds it."""
    path = claim_path(Path(cell_out))
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            judged = holder(path)
            if not is_stale(path):
                return None
            stale = path.with_name(f"{path.name}.stale-{socket.gethostname()}-{os.getpid()}")
            try:
                os.rename(path, stale)  # only one worker's rename of the stale claim succeeds
            except FileNotFoundError:
                return None
            if holder(stale) != judged:  # another worker took it over in between: give its claim back
                os.rename(stale, path)
                return None
            os.unlink(stale)
            print(f"[eqprop] taking over the stale claim on {cell_out}", flush=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, f)
        return Claim(path)
    return None
