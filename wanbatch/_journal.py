"""The journal file, ``journal.jsonl``: appended to record by record (:class:`Journal`), and
read back into a run's state (:func:`read_journal`).

I/O: a stage. Writes are plain blocking writes of one short line: they take microseconds (page
cache), which is cheaper than a thread hop per record, and a process killed with ``kill -9``
loses nothing that was flushed. A torn last line (crash mid-write) is cut off before appending,
so it can never glue itself to the next record. Records are made by the builders of
:mod:`wanbatch._records`; the views derived from the journal are :mod:`wanbatch._views`.

A state snapshot (``.state-snapshot``, a cache: its content is :mod:`wanbatch._snapshot`)
lets a resume replay only the lines written after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from wanbatch import _snapshot
from wanbatch._cachefile import ignore, read_verified, write_verified
from wanbatch._errors import OutputError
from wanbatch._records import JOURNAL_VERSION, Record
from wanbatch._saved import JOURNAL_NAME
from wanbatch._state import RunState, replay
from wanbatch._touchlog import TouchLog

__all__ = ["JOURNAL_NAME", "SNAPSHOT_NAME", "Journal", "read_journal"]

SNAPSHOT_NAME = ".state-snapshot"


class _LineReader:
    """Decoded lines of a binary journal from an offset; knows where complete lines end."""

    def __init__(self, fh: IO[bytes], offset: int) -> None:
        self._fh = fh
        self.end = offset  #: byte offset just past the last complete line read
        self.complete = True  #: False when the last line read had no newline (torn)

    def __iter__(self) -> Iterator[str]:
        for raw in self._fh:
            if raw.endswith(b"\n"):
                self.end += len(raw)
            else:
                self.complete = False
            yield raw.decode("utf-8", "replace")


def _tail_digest(fh: IO[bytes], offset: int) -> str:
    fh.seek(max(0, offset - _snapshot.CHECK_BYTES))
    return hashlib.sha256(fh.read(min(offset, _snapshot.CHECK_BYTES))).hexdigest()


def _load_snapshot(out_dir: Path, fh: IO[bytes]) -> tuple[RunState, int, str] | None:
    """The snapshot's state, journal offset and tail digest, if it still describes this
    journal's start (else None: no snapshot, or one that is damaged or of another journal)."""
    path = out_dir / SNAPSHOT_NAME
    # Verified first (a sha256 pass: ~10 ms for a million done jobs), then checked for sense.
    read = read_verified(path, _snapshot.TYPECODES)
    if read is None:
        return None
    try:
        state, offset, tail = _snapshot.decode(*read)
    except (KeyError, ValueError) as exc:
        ignore(path, f"implausible content ({exc})")
        return None
    fh.seek(0, os.SEEK_END)
    if fh.tell() < offset or _tail_digest(fh, offset) != tail:
        ignore(path, "it was taken of another journal.jsonl than this one")
        return None
    return state, offset, tail


def read_journal(
    out_dir: Path, *, write_snapshot: bool = False, touched: TouchLog | None = None
) -> RunState:
    """Replay ``out_dir/journal.jsonl`` (an empty state when there is none).

    A snapshot of an earlier replay (``.state-snapshot``, a cache: deleting it is always safe)
    lets a resume skip the journal lines it covers; only newer lines are replayed. With
    ``write_snapshot`` the result is saved as the next snapshot. ``touched`` (for
    :func:`wanbatch._views.write_views`) learns where the replay started and the jobs it touched.
    """
    path = out_dir / JOURNAL_NAME
    if not path.exists():
        return RunState()
    with path.open("rb") as fh:
        loaded = _load_snapshot(out_dir, fh)
        state, offset, tail = loaded if loaded else (None, 0, "")
        if touched is not None and state is not None:
            touched.start_offset, touched.start_lines = offset, state.lines
            touched.start_source = f"{offset}:{tail}"
        fh.seek(offset)
        reader = _LineReader(fh, offset)
        # Only on top of a snapshot: the views can use the log only from where they stood.
        state = replay(reader, state, touched if state is not None else None)
        if reader.complete and reader.end > 0 and (write_snapshot or reader.end == offset):
            if not (loaded and reader.end == offset):  # else the snapshot's digest is it
                tail = _tail_digest(fh, reader.end)
            state.source = f"{reader.end}:{tail}"
            if write_snapshot:
                _write_snapshot(out_dir, state, reader.end, tail)
    return state


def _write_snapshot(out_dir: Path, state: RunState, offset: int, tail: str) -> None:
    # Not written: only a cache, the next run replays the journal instead.
    write_verified(out_dir / SNAPSHOT_NAME, *_snapshot.encode(state, offset, tail))


class Journal:
    """Append-only writer of ``journal.jsonl``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL_NAME
        self._fh: IO[bytes] | None = None
        #: Set once a write failed: the journal ends where the disk stopped taking bytes.
        self.broken: OSError | None = None
        #: The torn last line that :meth:`open` cut, when it was a ``generated`` record: a paid
        #: answer never written down whole (its job id, or "" when the cut came before it).
        self.cut_answer: str | None = None

    def open(self) -> None:
        """Open for appending, cutting a torn last line left by a crash."""
        try:
            # Unbuffered: a failed write (disk full, file-size limit) leaves no bytes in a buffer
            # that close() would try to write again, and a short write is seen at once.
            fh = self.path.open("a+b", buffering=0)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size:
                fh.seek(max(0, size - 65536))
                tail = fh.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    keep = size - len(tail) + cut + 1 if cut >= 0 else 0
                    if cut < 0 and size > len(tail):
                        keep = size  # a line over 64 KiB: leave it, terminate it instead
                        fh.write(b"\n")
                    else:
                        torn = tail[cut + 1 :]
                        if b'"event":"generated"' in torn:
                            found = re.search(rb'"id":"([A-Za-z0-9._-]{1,128})"', torn)
                            self.cut_answer = found[1].decode() if found else ""
                        fh.truncate(keep)
            fh.seek(0, os.SEEK_END)
        except OSError as exc:
            raise OutputError(f"cannot open the journal {self.path}: {exc.strerror}") from exc
        self._fh = fh

    def append(self, record: Record) -> None:
        """Write one record (from a builder of :mod:`wanbatch._records`) and flush it to the OS."""
        if self._fh is None:
            raise RuntimeError("Journal.append() before open()")
        line = {"v": JOURNAL_VERSION, "ts": round(time.time(), 3), **record}
        data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self.broken is not None:
            raise OutputError(f"cannot write the journal {self.path}: {self.broken.strerror}")
        try:
            view = memoryview(data)
            while view:  # a raw write may be short (e.g. up to a file-size limit)
                written = self._fh.write(view)
                if not written:
                    raise OSError(28, "No space left on device")
                view = view[written:]
        except OSError as exc:
            # A torn line may be left; the next run's open() cuts it (it is never "done").
            self.broken = exc
            raise OutputError(f"cannot write the journal {self.path}: {exc.strerror}") from exc

    def sync(self) -> None:
        """fsync the journal (at the end of a run; power-loss safety)."""
        if self._fh is not None:
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass

    def close(self) -> None:
        """Flush, fsync and close."""
        if self._fh is not None:
            self.sync()
            try:
                self._fh.close()
            except OSError:
                pass  # unbuffered: nothing is lost; the write error was reported already
            self._fh = None
