"""The exception tree, and the classification of service answers.

Pure: stdlib only. Every error wanbatch raises is a :class:`WanbatchError`::

    WanbatchError
     +-- JobFileError(ValueError)   a job line breaks a rule: path, line, field, message
     +-- ApiError                   the service answered an error: status, code, message, request_id
     |    +-- Throttled             429 Throttling*: back off and retry (retry_after if the server said)
     |    +-- RetryableApiError     5xx and other passing faults: retry with backoff
     |    +-- JobRejected           permanent for this job (400 InvalidParameter*, DataInspectionFailed)
     |    +-- BatchFatal            stop the whole batch (401, 403 AccessDenied*, Arrearage, quota gone)
     +-- TransportError             no usable answer; ``possibly_billed`` says if the call may have cost
     |    +-- ConnectFailed         the request was never sent: safe to retry, never billed
     |    +-- ResponseLost          sent, then timeout / reset / truncated body: possibly billed
     +-- DownloadError              fetching a result image failed
     |    +-- UrlExpired            the signed URL's Expires= passed (or OSS said so)
     |    +-- IntegrityError        the bytes are not a whole PNG, or over the size cap
     +-- JournalError               the journal cannot be used (unreadable, another job file)
     +-- OutputError                the output folder cannot be written (disk full, permissions)
"""

from __future__ import annotations

import enum

__all__ = [
    "ApiError",
    "BatchFatal",
    "ConnectFailed",
    "Disposition",
    "DownloadError",
    "IntegrityError",
    "InvalidJobs",
    "JobFileError",
    "JobRejected",
    "JournalError",
    "OutputError",
    "ResponseLost",
    "RetryableApiError",
    "Throttled",
    "TransportError",
    "UrlExpired",
    "WanbatchError",
]


class Disposition(enum.Enum):
    """What a failed attempt means for its job and for the batch."""

    RETRY = "retry"
    JOB_FAILED = "job_failed"
    FATAL = "fatal"


class WanbatchError(Exception):
    """Root of every error wanbatch raises."""


class JobFileError(WanbatchError, ValueError):
    """A job line breaks a rule of the job format or of the API (before anything is sent)."""

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.line, self.field, self.message))


class ApiError(WanbatchError):
    """The service answered with an error body ``{"request_id","code","message"}``."""

    disposition: Disposition = Disposition.RETRY

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        return f"HTTP {self.status} {self.code}: {self.message}{rid}"

    def __reduce__(self) -> tuple[object, ...]:
        args = (self.status, self.code, self.message, self.request_id, self.retry_after)
        return (type(self), args)


class Throttled(ApiError):
    """429 ``Throttling*``: the service wants us slower; back off and retry."""


class RetryableApiError(ApiError):
    """A passing service fault (5xx, gateway pages): retry with backoff."""


class JobRejected(ApiError):
    """The service refused this job for good (bad parameter, content inspection)."""

    disposition = Disposition.JOB_FAILED


class BatchFatal(ApiError):
    """No further call can succeed (bad key, overdue account, quota gone): stop the batch."""

    disposition = Disposition.FATAL


class TransportError(WanbatchError):
    """No usable answer came back. ``possibly_billed`` is True when the request was sent."""

    possibly_billed: bool = False

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ConnectFailed(TransportError):
    """The request never reached the service (DNS, refused, TLS): safe to retry, not billed."""


class ResponseLost(TransportError):
    """The request was sent, then the answer was lost (timeout, reset, cut body): maybe billed."""

    possibly_billed = True


class DownloadError(WanbatchError):
    """Fetching a result image failed."""


class UrlExpired(DownloadError):
    """The signed result URL expired before it could be downloaded."""


class IntegrityError(DownloadError):
    """The downloaded bytes are not one whole PNG of the announced length, or exceed the cap."""


class JournalError(WanbatchError):
    """The journal cannot be used: unreadable, or written for another job file."""


class OutputError(WanbatchError):
    """The output folder cannot be written (disk full, permissions, a symlink out of it)."""


class InvalidJobs(WanbatchError):
    """The job file has errors; nothing was sent. ``errors`` lists every one found."""

    def __init__(self, path: str, errors: list[JobFileError], total: int) -> None:
        self.path = path
        self.errors = errors
        self.total = total
        super().__init__(f"{path}: {total} invalid job line(s); nothing was sent")
