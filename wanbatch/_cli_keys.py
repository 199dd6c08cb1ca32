"""The keys of a command-line run: ``--keys-file``, ``DASHSCOPE_API_KEYS``, ``DASHSCOPE_API_KEY``.

A key pool comes from a keys file (one key a line, blank lines and ``#`` comments ignored) and
from ``DASHSCOPE_API_KEYS`` (keys separated by commas or white space), together;
``DASHSCOPE_API_KEY`` is the run's one key when neither is given. No message names a key.
"""

from __future__ import annotations

import os

from wanbatch._config import Secret
from wanbatch._keys import KeyProblem, parse_key_list, parse_keys_file, unique_keys

__all__ = ["KEYS_ENV", "run_keys"]

KEYS_ENV = "DASHSCOPE_API_KEYS"
#: A keys file larger than this is not a keys file.
_MAX_KEYS_FILE_BYTES = 1024 * 1024


def run_keys(keys_file: str | None) -> tuple[Secret | None, tuple[Secret, ...]] | str:
    """``(DASHSCOPE_API_KEY, pool)``, or a message saying what is wrong (never a key)."""
    pool: list[Secret] = []
    if keys_file is not None:
        try:
            with open(keys_file, "rb") as file:
                data = file.read(_MAX_KEYS_FILE_BYTES + 1)
        except OSError as exc:
            return f"--keys-file {keys_file}: cannot read it ({exc.strerror or exc})"
        if len(data) > _MAX_KEYS_FILE_BYTES:
            return f"--keys-file {keys_file}: larger than 1 MiB; one key a line"
        try:
            pool += parse_keys_file(data.decode("utf-8"), keys_file)
        except UnicodeDecodeError:
            return f"--keys-file {keys_file}: not UTF-8 text; one key a line"
        except KeyProblem as exc:
            return str(exc)
        if not pool:
            return f"--keys-file {keys_file}: holds no key (one key a line, # starts a comment)"
    listed = os.environ.get(KEYS_ENV, "")
    if listed.strip():
        try:
            pool += parse_key_list(listed, KEYS_ENV)
        except KeyProblem as exc:
            return str(exc)
    single = os.environ.get("DASHSCOPE_API_KEY", "").strip()
    return (Secret(single) if single else None), tuple(unique_keys(pool))
