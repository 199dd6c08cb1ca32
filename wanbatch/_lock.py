"""One run per output folder: an exclusive lock on ``DIR/.lock`` for the whole run.

The lock is a POSIX record lock (``fcntl.lockf``), which NFS (v4, and v3 with its lock manager)
carries between machines, unlike ``flock`` on some systems. The kernel (or the NFS server) drops
it when its process dies, however it dies, so a lock left by a killed run never blocks: the file
stays, and its content (the holder's pid and host, written after locking) is only read to name
the holder in the error. The file is never deleted: removing a lock file races with a run that
has just opened it.

POSIX locks belong to a process, and closing any descriptor of the file drops them; so a second
run inside the same process is refused from a registry before the file is opened at all.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
import threading
from pathlib import Path

from wanbatch._errors import FolderInUse, OutputError, UnusableOutput

__all__ = ["LOCK_NAME", "FolderLock", "lock_folder"]

LOCK_NAME = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Errors meaning "another process holds the lock".
_BUSY = (errno.EACCES, errno.EAGAIN)

_log = logging.getLogger("wanbatch")
#: Folders (device, inode) locked by this process.
_held: set[tuple[int, int]] = set()
_held_guard = threading.Lock()


def _holder(path: Path) -> tuple[int | None, str | None]:
    """The pid and host written in a lock file (None where unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:300]
    except OSError:
        return None, None
    fields = dict(part.partition("=")[::2] for part in text.split())
    pid = fields.get("pid", "")
    return (int(pid) if pid.isdigit() else None), (fields.get("host") or None)


class FolderLock:
    """``acquire()`` or raise :class:`FolderInUse`; ``release()`` (idempotent)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / LOCK_NAME
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    def acquire(self) -> None:
        """Lock the folder (which must exist) for this run, without waiting."""
        try:
            info = os.stat(self.out_dir)
        except OSError as exc:
            raise OutputError(f"cannot use the output folder {self.out_dir}: {exc}") from exc
        key = (info.st_dev, info.st_ino)
        with _held_guard:
            if key in _held:
                raise FolderInUse(str(self.out_dir), os.getpid(), socket.gethostname(), True)
            _held.add(key)
        try:
            self._lock_file()
        except BaseException:
            with _held_guard:
                _held.discard(key)
            raise
        self._key = key

    def _lock_file(self) -> None:
        try:
            # Never through a symbolic link: nothing is written outside the folder.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"{self.path} is not a regular file; remove it")
            if not _try_lock(fd, self.path):
                pid, host = _holder(self.path)
                raise FolderInUse(str(self.out_dir), pid, host, False)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot write the lock file {self.path}: {exc.strerror}") from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file drops it); the file stays."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self._key is not None:
            with _held_guard:
                _held.discard(self._key)
            self._key = None


def lock_folder(out_dir: Path) -> FolderLock:
    """Create the output folder if needed and lock it for this run (held: FolderInUse)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnusableOutput(
            f"cannot prepare the output folder {out_dir}: {exc.strerror or exc}"
        ) from exc
    lock = FolderLock(out_dir)
    lock.acquire()
    return lock


def _try_lock(fd: int, path: Path) -> bool:
    """Take the exclusive lock: True, or False when another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - no POSIX locks there
        _log.warning("no folder lock on Windows: do not run twice into %s at once", path.parent)
        return True
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            # A file system without locks (some network mounts): run, but say so.
            _log.warning(
                "cannot lock %s (%s): nothing stops a second run in this folder",
                path,
                exc.strerror,
            )
            return True
        raise
    return True
