"""One writer per output folder: a lock that names its holder and dies with it.

Two runs writing into one folder mix their outputs silently (features of two
F0 methods, weights of two seeds), so every command that writes into a
feature folder, a model directory or a conversion output folder holds
:func:`folder_lock` while it does. A second writer fails at once with one line
naming the holder (pid, host, start time, command).

The lock is ``flock`` on ``<folder>/.vawgan.lock``: the kernel releases it
when its process ends however it ends, so the lock file a killed run leaves
behind is stale by construction and the next run takes it over. Worker
processes forked while the lock is held close their copy of it, so a worker
outliving a killed parent does not keep the folder locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from vawgan.errors import DISK_FULL_ERRNOS, VawganError, disk_full

LOCK_FILE = ".vawgan.lock"

_held: dict[Path, int] = {}  # lock file -> descriptor, of the locks this process holds


def _close_in_child() -> None:
    for fd in _held.values():
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if missing) while the body runs; ``command`` names this run.

    Raises :class:`VawganError` naming the holder when another process holds
    it. Folders created here and left empty by the body are removed again, so
    a run refused for a bad setting leaves nothing behind.
    """
    folder = Path(folder)
    created = _missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise VawganError(f"{folder}: is a file, not a folder; choose another output folder") from None
    path = folder / LOCK_FILE
    fd = _acquire(path, folder)
    _held[path] = fd
    try:
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        try:
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}: {command}".encode())
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise disk_full(folder) from None
            raise
        yield
    finally:
        del _held[path]
        path.unlink(missing_ok=True)  # before closing: a waiting opener then finds its file gone and retries
        os.close(fd)
        for empty in created:
            with contextlib.suppress(OSError):
                empty.rmdir()


def _acquire(path: Path, folder: Path) -> int:
    """A descriptor of ``path`` holding its exclusive lock; :class:`VawganError` naming the holder otherwise."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1000).decode(errors="replace").strip() or "a run that is just starting"
            os.close(fd)
            raise VawganError(f"{folder}: another vawgan run is writing here ({holder}); wait for it to finish "
                              "or choose another folder") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)  # the holder finished and removed the file between our open and lock: try again
