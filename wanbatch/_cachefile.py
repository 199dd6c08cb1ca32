"""Cache files that vouch for their own content: a sha256 over all of it, checked on read.

The output folder keeps caches beside the journal (the state snapshot, the job file's done
prefix, the views' state). Each only saves time, so a damaged one (a flipped bit, a file cut
short or overwritten) must be ignored and rebuilt from the journal, never believed. All of them
are written by :func:`write_verified` and read back by :func:`read_verified`::

    wanbatch-cache <sha256 hex of everything after this line>\\n
    <JSON header>\\n
    <packed arrays, as the header's "arrays" lists them: [[typecode, itemsize, count], ...]>

A file that fails a check is reported in one line (a WARNING on the ``wanbatch`` logger: caches
are read in worker threads and by ``wanbatch status``, where no event sink exists) and removed,
so that the next read of the same run does not report it again. Callers check the meaning of
what they read (types, ranges) and call :func:`ignore` when it is implausible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ignore", "read_verified", "write_verified"]

MAGIC = b"wanbatch-cache"
#: Header keys the helper writes itself.
_LAYOUT = ("arrays", "byteorder")
log = logging.getLogger("wanbatch")


class _Damaged(Exception):
    """Why a cache file cannot be believed."""


def write_verified(
    path: Path, header: Mapping[str, Any], arrays: Sequence[array[int]] = ()
) -> bool:
    """Write ``header`` and ``arrays`` to ``path`` atomically, with their checksum.

    Returns False (and leaves no file behind) when the disk refused: a cache is never worth
    failing a run for.
    """
    head = dict(header)
    head["arrays"] = [[part.typecode, part.itemsize, len(part)] for part in arrays]
    head["byteorder"] = sys.byteorder
    body = json.dumps(head, separators=(",", ":")).encode() + b"\n"
    digest = hashlib.sha256(body)
    for part in arrays:
        digest.update(part)
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write(MAGIC + b" " + digest.hexdigest().encode() + b"\n" + body)
            for part in arrays:
                part.tofile(out)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def read_verified(
    path: Path, typecodes: str = ""
) -> tuple[dict[str, Any], list[array[int]]] | None:
    """The header and arrays (one per letter of ``typecodes``) :func:`write_verified` wrote.

    ``None`` when there is no file (quietly) or it cannot be believed: not one of these files,
    cut short or extended, a checksum that differs, arrays of other types (with a warning).
    The header keys ``arrays`` and ``byteorder`` are the helper's own.
    """
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        ignore(path, f"cannot read it: {exc.strerror}", remove=False)
        return None
    try:
        with fh:
            return _read(fh, typecodes)
    except _Damaged as exc:
        ignore(path, str(exc))
    except (ValueError, RecursionError):
        ignore(path, "its header is not JSON")
    except (OSError, EOFError) as exc:
        ignore(path, f"cannot read it: {getattr(exc, 'strerror', None) or 'cut short'}")
    return None


def _read(fh: Any, typecodes: str) -> tuple[dict[str, Any], list[array[int]]]:
    size = os.fstat(fh.fileno()).st_size
    first = fh.readline(len(MAGIC) + 80)
    magic, _, expected = first.rstrip(b"\n").partition(b" ")
    if magic != MAGIC or not first.endswith(b"\n"):
        raise _Damaged("not a checksummed wanbatch cache")
    body = fh.readline(size)
    digest = hashlib.sha256(body)
    head = json.loads(body)
    if not isinstance(head, dict):
        raise _Damaged("its header is not an object")
    layout = head.get("arrays")
    if (
        head.get("byteorder") != sys.byteorder
        or not isinstance(layout, list)
        or len(layout) != len(typecodes)
    ):
        raise _Damaged("its arrays are not the ones expected here")
    counts: list[int] = []
    for spec, typecode in zip(layout, typecodes, strict=True):
        itemsize = array(typecode).itemsize
        if not isinstance(spec, list) or spec[:2] != [typecode, itemsize] or len(spec) != 3:
            raise _Damaged("its arrays are not the ones expected here")
        if type(spec[2]) is not int or spec[2] < 0:
            raise _Damaged("an array count out of range")
        counts.append(spec[2])
    # Counts must add up to the bytes left exactly: a huge count is refused before any read.
    left = size - fh.tell()
    if left != sum(count * array(t).itemsize for count, t in zip(counts, typecodes, strict=True)):
        raise _Damaged("cut short, extended or with counts out of range")
    arrays: list[array[int]] = []
    for count, typecode in zip(counts, typecodes, strict=True):
        part = array(typecode)
        part.fromfile(fh, count)
        digest.update(part)
        arrays.append(part)
    if digest.hexdigest().encode() != expected:
        raise _Damaged("its checksum does not match its content")
    for key in _LAYOUT:
        del head[key]
    return head, arrays


def ignore(path: Path, reason: str, *, remove: bool = True) -> None:
    """Report in one line that the cache ``path`` is not used, and remove it (best effort)."""
    log.warning("ignoring the cache %s: %s; it is rebuilt from the journal", path, reason)
    if remove:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # read-only folder: the next reader reports it again, and ignores it again
