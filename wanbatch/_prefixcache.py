"""The done-prefix cache, ``.resume-prefix``: the job file's leading done lines as the end of
the last run found them (:class:`wanbatch._doneprefix.DonePrefix`), so that a resume passes
over them unread.

I/O: a stage. A cache like the state snapshot: damaged, implausible or of another format, it
is ignored with a warning, and the resume checks every line instead.
"""

from __future__ import annotations

from pathlib import Path

from wanbatch._cachefile import ignore, read_verified, write_verified
from wanbatch._doneprefix import DonePrefix, check_prefix

__all__ = ["PREFIX_NAME", "read_prefix", "write_prefix"]

PREFIX_NAME = ".resume-prefix"
PREFIX_FORMAT = 3  # 2: a prefix never ends inside a line; 3: checksummed


def write_prefix(out_dir: Path, prefix: DonePrefix | None) -> None:
    """Save the done prefix for the next resume (or remove a stale one); errors are ignored."""
    path = out_dir / PREFIX_NAME
    if prefix is None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return
    head = {
        "format": PREFIX_FORMAT,
        "source": prefix.source,
        "salt": prefix.salt,
        "size": prefix.size,
        "next_line": prefix.next_line,
        "jobs": prefix.jobs,
        "digest": prefix.digest,
    }
    write_verified(path, head, [prefix.first])  # not written: the next resume checks every line


def read_prefix(out_dir: Path) -> DonePrefix | None:
    """The saved done prefix, or ``None`` (none, or damaged, implausible or of another
    format: then with a warning)."""
    path = out_dir / PREFIX_NAME
    read = read_verified(path, "I")
    if read is None:
        return None
    head, (first,) = read
    try:
        if head.get("format") != PREFIX_FORMAT:
            raise ValueError(f"format {head.get('format')!r}, not {PREFIX_FORMAT}")
        return check_prefix(
            DonePrefix(
                source=head["source"],
                salt=head["salt"],
                size=head["size"],
                next_line=head["next_line"],
                jobs=head["jobs"],
                digest=head["digest"],
                first=first,
            )
        )
    except (KeyError, ValueError) as exc:
        ignore(path, f"implausible content ({exc})")
        return None
