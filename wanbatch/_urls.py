"""Result-URL helpers: expiry, redaction for logs, and image file names.

Pure: stdlib only (no aiohttp/anyio/tqdm import, no I/O, no clock read).

Result URLs are OSS V1 presigned URLs (docs/service.md, Result URLs and their expiry)::

    https://dashscope-result-intl.oss-cn-singapore.aliyuncs.com/x.png
        ?Expires=1767225600&OSSAccessKeyId=LTAI...&Signature=abc%2Bdef%3D

They are valid for 24 hours and need no Authorization header: the query string *is* the
credential, so a full URL must never reach a log line, an error message or ``summary.json``
(:func:`redact`). The journal keeps the full URL because resume needs it to download.
"""

from __future__ import annotations

import ipaddress
import math
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "SECRET_QUERY_KEYS",
    "endpoint_of",
    "image_filename",
    "is_loopback_url",
    "is_safe_id",
    "parse_expiry",
    "redact",
]

#: Query keys whose values are credentials (lower-cased). OSS V1 signing uses ``Signature`` and
#: ``OSSAccessKeyId``; STS URLs add ``security-token``; V4 signing uses the ``x-oss-*`` pair.
SECRET_QUERY_KEYS = frozenset(
    {
        "signature",
        "ossaccesskeyid",
        "security-token",
        "x-oss-signature",
        "x-oss-credential",
        "x-oss-security-token",
    }
)

#: The common case, ``...?...Expires=1767225600...``: read without parsing the whole query
#: (``urlsplit`` + ``parse_qsl`` cost ~0.1 ms a URL, once per image).
_EXPIRES = re.compile(r"[?&](?i:expires)=([0-9]{1,15})(?=[&#]|$)")

#: A job id (docs/job-format.md): it becomes part of a file name, so no separators, no leading dot.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def parse_expiry(url: str) -> float | None:
    """The Unix time at which a signed result URL expires, from its ``Expires=`` parameter.

    Returns ``None`` when the URL has no ``Expires`` parameter or its value is not a finite,
    non-negative number (the service's docs show ``?Expires=xxx`` as a placeholder).
    The key is matched case-insensitively; the first occurrence wins.
    """
    fast = _EXPIRES.search(url)
    if fast is not None:
        before = url[: fast.start()]
        # Only when nothing before it could change the answer: no fragment, no percent-encoded
        # key that might decode to "expires", no IPv6 netloc, and it is the first such key.
        query_at = url.find("?")
        in_query = (
            fast.start() == query_at if url[fast.start()] == "?" else 0 <= query_at < fast.start()
        )
        if in_query and not any(c in before for c in "#%[") and "xpires" not in before.lower():
            return float(fast.group(1))
    return _parse_expiry_query(url)


def _parse_expiry_query(url: str) -> float | None:
    """:func:`parse_expiry` the long way: split the URL and parse the whole query."""
    try:
        query = urlsplit(url).query
    except ValueError:  # e.g. an invalid IPv6 netloc
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() != "expires":
            continue
        try:
            expiry = float(value)
        except ValueError:
            return None
        return expiry if math.isfinite(expiry) and expiry >= 0 else None
    return None


def redact(url: str) -> str:
    """The URL with every credential value replaced by ``***``, safe to log.

    Keys stay (so a reader can tell the URL was signed), ``Expires`` stays (it is not secret and
    explains "expired" errors), and the URL's user-info password, if any, is masked too.
    Something that does not parse as a URL at all is replaced whole.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_pair(pair: str) -> str:
    # Work on the raw ``key=value`` text so that the kept parts stay byte-for-byte as sent.
    key, sep, _value = pair.partition("=")
    return f"{key}{sep}***" if key.lower() in SECRET_QUERY_KEYS else pair


def is_safe_id(s: str) -> bool:
    """True when ``s`` can be used as a file name component: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.

    The rule is the job file's id rule (docs/job-format.md); it excludes path separators, a
    leading dot (hidden files, ``..``) and anything a file system might treat specially.
    """
    return _SAFE_ID.fullmatch(s) is not None


def image_filename(job_id: str, k: int) -> str:
    """The file name of the ``k``-th image (from 0) of job ``job_id``: ``"<job_id>-<k>.png"``.

    Raises:
        ValueError: ``job_id`` is not a safe file name component, or ``k`` is negative.
    """
    if not is_safe_id(job_id):
        raise ValueError(f"job id {job_id!r} is not a safe file name component")
    if k < 0:
        raise ValueError(f"image index must be >= 0, got {k}")
    return f"{job_id}-{k}.png"


def endpoint_of(base_url: str) -> str:
    """The API base URL as the journal records it: no user info, query or fragment (where a
    credential could hide), no trailing slash."""
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme.lower(), host + port, parts.path.rstrip("/"), "", ""))


def is_loopback_url(base_url: str) -> bool:
    """Whether a base URL points at this machine (``localhost``, 127.0.0.0/8, ``::1``): the
    built-in mock (``run --mock``, ``MockServer``, the pytest fixtures) always listens there,
    and the service never does, so such a run is treated as a mock run."""
    host = (urlsplit(base_url.strip()).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
