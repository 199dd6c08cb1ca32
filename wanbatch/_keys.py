"""API keys of a key pool: reading them from text, and the labels that show them safely.

Pure: no I/O (``_cli`` reads the keys file and the environment and passes their text here).
A key is only ever held as a :class:`~wanbatch._config.Secret`; what users see of it is its
label: its position in the pool and its last 4 characters (``#2 …a1b9``), as the service's
console shows keys. Errors name the file and line, never the key.

Which fatal answers are the account's (retire that key, the others go on) and which are the
run's (no key can help: a model that does not exist, a wrong host) is :func:`account_fatal`.
"""

from __future__ import annotations

import re

from wanbatch._config import Secret

__all__ = [
    "KeyProblem",
    "account_fatal",
    "key_label",
    "parse_key_list",
    "parse_keys_file",
    "unique_keys",
]

#: Codes (and the statuses of unknown codes) that a fatal answer is about one account: its key,
#: its billing, its entitlements, its workspace. Any other fatal answer (no such model, no such
#: endpoint or workspace) fails the same way whatever key sends it.
_ACCOUNT_CODES = frozenset(
    {
        "InvalidApiKey",
        "invalid_api_key",
        "NOT AUTHORIZED",
        "invalid access token or token expired",
        "AccessDenied",
        "AccessDenied.Unpurchased",
        "Model.AccessDenied",
        "Workspace.AccessDenied",
        "App.AccessDenied",
        "Endpoint.AccessDenied",
        "AllocationQuota.FreeTierOnly",
        "Throttling.AllocationQuota",
        "insufficient_quota",
        "Arrearage",
        "PrepaidBillOverdue",
        "PostpaidBillOverdue",
        "CommodityNotPurchased",
    }
)
_RUN_CODES = frozenset({"ModelNotFound", "NotFound", "WorkSpaceNotFound"})

_SEPARATORS = re.compile(r"[\s,]+")


class KeyProblem(ValueError):
    """A keys file or variable that cannot be used; the message never holds a key."""


def account_fatal(status: int | None, code: str | None) -> bool:
    """Whether a fatal answer concerns only the account of the key that got it."""
    if code in _ACCOUNT_CODES or (code or "").startswith("AccessDenied"):
        return True
    if code in _RUN_CODES:
        return False
    return status in (401, 403)


def key_label(position: int, key: Secret) -> str:
    """``#2 …a1b9``: the key's 1-based position and its last 4 characters (fewer of a short key:
    a key of 8 characters or less shows none)."""
    value = key.reveal()
    tail = value[-4:] if len(value) > 8 else ""
    return f"#{position} …{tail}" if tail else f"#{position}"


def _usable(text: str) -> bool:
    return all("!" <= ch <= "~" for ch in text)


def parse_keys_file(text: str, where: str) -> list[Secret]:
    """Keys from a keys file: one a line; blank lines and lines starting with ``#`` ignored.

    Raises :class:`KeyProblem` (``FILE:LINE: ...``) for a line that cannot be a key.
    """
    keys: list[Secret] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _usable(line):
            raise KeyProblem(
                f"{where}:{number}: key: holds a space or a non-ASCII character (one key a line)"
            )
        keys.append(Secret(line))
    return keys


def parse_key_list(text: str, where: str) -> list[Secret]:
    """Keys from one variable, separated by commas or white space."""
    keys: list[Secret] = []
    for position, part in enumerate(_SEPARATORS.split(text.strip()), start=1):
        if not part:
            continue
        if not _usable(part):
            raise KeyProblem(f"{where}: key {position}: holds a non-ASCII character")
        keys.append(Secret(part))
    return keys


def unique_keys(keys: list[Secret]) -> list[Secret]:
    """The keys in order, each once (a key named twice would count its account's quota twice)."""
    seen: set[Secret] = set()
    out: list[Secret] = []
    for key in keys:
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out
