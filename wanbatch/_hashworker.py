"""The hash helper process of :mod:`wanbatch._hasher`: standard library only, run as a script.

Started as ``python -I <this file>`` so that it imports nothing of wanbatch (a few MB, tens of
ms). Reads one JSON array a line on stdin, answers one JSON array a line on stdout:

- ``["O", key, path_hex, dev, ino]``: a file to follow: its absolute path as file-system bytes
  in hex, and the device and inode of the file being written (opened at once; a file found
  under that name that is another one is refused);
- ``["U", key, n]``: the file has at least ``n`` bytes: hash up to there;
- ``["E", key, n]``: the file is ``n`` bytes: hash the rest, answer ``[key, sha256_hex]``, or
  ``[key, null, reason]`` when it cannot (the file is shorter, unreadable);
- ``["X", key]``: forget the file (its download failed).

Exits at end of input (also when wanbatch is killed: the pipe closes). Ignores SIGINT and
SIGTERM sent to wanbatch's process group: stopping is wanbatch's decision, and a graceful stop
lets downloads in flight finish, their hashes with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
from typing import Any

READ_SIZE = 1 << 20


class _File:
    def __init__(self, path: bytes, dev: int, ino: int) -> None:
        self.error: str | None = None
        self.fh: io.FileIO | None = None
        try:
            self.fh = io.FileIO(path, "rb")  # closed in close()
            info = os.fstat(self.fh.fileno())
        except OSError as exc:
            self.error = f"cannot open {path!r}: {exc.strerror or exc}"
        else:
            if (info.st_dev, info.st_ino) != (dev, ino):
                self.error = f"{path!r} is not the file being written"
        self.digest = hashlib.sha256()
        self.done = 0

    def hash_to(self, size: int, view: memoryview) -> None:
        while self.fh is not None and self.error is None and self.done < size:
            try:
                n = self.fh.readinto(view[: min(len(view), size - self.done)])
            except OSError as exc:
                self.error = f"cannot read: {exc.strerror or exc}"
                return
            if not n:
                self.error = f"the file has {self.done} bytes, {size} were written"
                return
            self.digest.update(view[:n])
            self.done += n

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def serve(lines: Any, out: Any) -> None:
    files: dict[int, _File] = {}
    view = memoryview(bytearray(READ_SIZE))
    for line in lines:
        op, key, *arg = json.loads(line)
        if op == "O":
            files[key] = _File(bytes.fromhex(arg[0]), arg[1], arg[2])
        elif op == "U":
            if key in files:
                files[key].hash_to(arg[0], view)
        elif op == "E":
            file = files.pop(key, None)
            if file is None:
                continue
            file.hash_to(arg[0], view)
            file.close()
            if file.error is None:
                answer = [key, file.digest.hexdigest()]
            else:
                answer = [key, None, file.error]
            out.write(json.dumps(answer) + "\n")
            out.flush()
        elif op == "X":
            file = files.pop(key, None)
            if file is not None:
                file.close()


def main() -> None:
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        serve(sys.stdin, sys.stdout)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
