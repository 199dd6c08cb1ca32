"""Pure: OSS-V1-style presigned result URLs (``Expires``, ``OSSAccessKeyId``, ``Signature``).

Result URLs carry ``Expires=<unix seconds>&OSSAccessKeyId=LTAI…&Signature=<url-encoded base64>``
(docs/service.md, Result URLs and their expiry). The signature is HMAC-SHA1 over OSS's V1
string-to-sign (verb, expiry and the ``/bucket/object`` path) with a secret that lives only in
one server, so a URL cannot be forged, re-dated or moved to another object without the mock
noticing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from urllib.parse import quote

__all__ = ["UrlSigner"]


class UrlSigner:
    """Makes and checks signed query strings for one server's image paths."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        # A fake, per-server access key id in the real format ("LTAI" + 20 alphanumerics).
        self.access_key_id = "LTAI5tMock" + hashlib.sha1(self._secret).hexdigest()[:14].upper()

    def signature(self, path: str, expires: int) -> str:
        """Base64 HMAC-SHA1 of ``GET\\n\\n\\n{expires}\\n{path}`` (not URL-encoded)."""
        to_sign = f"GET\n\n\n{expires}\n{path}".encode()
        return base64.b64encode(hmac.new(self._secret, to_sign, hashlib.sha1).digest()).decode()

    def query(self, path: str, expires: int) -> str:
        """The query string (without ``?``) of a URL for ``path`` valid until ``expires``."""
        signature = quote(self.signature(path, expires), safe="")
        return f"Expires={expires}&OSSAccessKeyId={self.access_key_id}&Signature={signature}"

    def verify(self, path: str, expires: str, signature: str) -> bool:
        """Whether ``signature`` (already URL-decoded) signs ``path`` and ``expires``."""
        if not expires.isdigit():
            return False
        return hmac.compare_digest(self.signature(path, int(expires)), signature)
