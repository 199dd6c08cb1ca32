"""The error answers the mock gives: :class:`Rejection` and the documented codes and messages.

Codes, statuses and message texts follow API notes §5.2 (typos included: "plesase" is what the
service sends). Where the notes say the exact text is UNKNOWN the mock picks a plain one.
"""

from __future__ import annotations

__all__ = [
    "ARREARAGE",
    "DOWNLOAD_FAILED",
    "FREE_QUOTA",
    "INSPECTION",
    "INTERNAL",
    "INVALID_API_KEY",
    "INVALID_PARAMETER",
    "MODEL_NOT_FOUND",
    "NO_SYNC_CALLS",
    "RATE_QUOTA",
    "URL_ERROR",
    "Rejection",
]

INVALID_PARAMETER = "Required parameter(s) missing or invalid, please check the request parameters."
URL_ERROR = (
    "url error, please check url！ For details, see: "
    "https://help.aliyun.com/zh/model-studio/error-code#error-url"
)
DOWNLOAD_FAILED = "Failed to download multimodal content"
INSPECTION = "Input or output data may contain inappropriate content."
ARREARAGE = "Access denied, plesase make sure your account is in good standing."
RATE_QUOTA = "Requests rate limit exceeded, please try again later."
FREE_QUOTA = "Free allocated quota exceeded."
INTERNAL = "An internal error has occured, please try again later or contact service support."
INVALID_API_KEY = "Invalid API-key provided."
NO_SYNC_CALLS = "current user api does not support synchronous calls"
MODEL_NOT_FOUND = "Model not exist."


class Rejection(Exception):
    """A request the service answers with ``{"request_id","code","message"}`` and ``status``.

    ``deferred`` marks what the model worker (not the gateway) finds: an async task still gets
    an id and then turns FAILED with this code, as in the FAILED example of API notes §4.
    """

    def __init__(self, status: int, code: str, message: str, *, deferred: bool = False) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.deferred = deferred

    @classmethod
    def invalid(cls, message: str = INVALID_PARAMETER, *, deferred: bool = False) -> Rejection:
        """400 ``InvalidParameter`` with ``message``."""
        return cls(400, "InvalidParameter", message, deferred=deferred)
