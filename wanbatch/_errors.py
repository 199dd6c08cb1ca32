"""The exception tree, and the classification of service answers.

Pure: stdlib only. Every error wanbatch raises is a :class:`WanbatchError`::

    WanbatchError
     +-- JobFileError(ValueError)   a job line breaks a rule: path, line, field, message
     +-- ApiError                   the service answered an error: status, code, message, request_id
     |    +-- Throttled             429 Throttling*: back off, retry (honour retry_after)
     |    +-- RetryableApiError     5xx and other passing faults: retry with backoff
     |    +-- JobRejected           this job failed for good (InvalidParameter*, DataInspection)
     |    +-- BatchFatal            stop the batch (401, 403 AccessDenied*, Arrearage, no quota)
     +-- TransportError             no usable answer (``possibly_billed``: may it have cost?)
     |    +-- ConnectFailed         never sent: safe to retry, never billed
     |    +-- ResponseLost          sent, then timeout / reset / cut body: possibly billed
     +-- DownloadError              fetching a result image failed
     |    +-- UrlExpired            the signed URL's Expires= passed (or OSS said so)
     |    +-- IntegrityError        the bytes are not a whole PNG, or over the size cap
     +-- JournalError               the journal cannot be used (unreadable, another job file)
     |    +-- FolderInUse           another run holds the output folder: pid, host
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
    "FolderInUse",
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
    "api_error",
    "classify",
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


class FolderInUse(JournalError):
    """Another run holds the output folder's lock (``pid``/``host`` of the holder, if known)."""

    def __init__(self, folder: str, pid: int | None, host: str | None, same_process: bool) -> None:
        self.folder, self.pid, self.host, self.same_process = folder, pid, host, same_process
        if same_process:
            holder = f"another run in this process (pid {pid})"
        elif pid is None:
            holder = "another wanbatch run (its pid is not written yet)"
        else:
            holder = f"another wanbatch run (pid {pid} on host {host or '?'})"
        super().__init__(
            f"{folder} is in use by {holder}; wait for it to end, or use another --out folder"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.folder, self.pid, self.host, self.same_process))


class OutputError(WanbatchError):
    """The output folder cannot be written (disk full, permissions, a symlink out of it)."""


class InvalidJobs(WanbatchError):
    """The job file has errors; nothing was sent. ``errors`` lists every one found."""

    def __init__(self, path: str, errors: list[JobFileError], total: int) -> None:
        self.path = path
        self.errors = errors
        self.total = total
        super().__init__(f"{path}: {total} invalid job line(s); nothing was sent")


# --------------------------------------------------------------------------------------------
# Classification: one table for every code in API notes §5.2, then prefix rules, then status.
#
# Order matters: an exact code wins over a prefix, a prefix over the HTTP status, because the
# same status carries codes of every disposition (400 holds both InvalidParameter and
# Arrearage; 429 holds both Throttling and the "free quota gone" AllocationQuota).
# --------------------------------------------------------------------------------------------

_RETRY = Disposition.RETRY
_JOB = Disposition.JOB_FAILED
_FATAL = Disposition.FATAL

#: Exact codes (API notes §5.2). Codes with a message-dependent meaning are handled in classify().
_CODE_TABLE: dict[str, Disposition] = {
    # 400: permanent for this job (fix the input).
    "InvalidParameter": _JOB,
    # "Failed to download multimodal content": our input image URL is not fetchable. It says
    # "Internal", but it is the job's input that is wrong, and retrying costs time, not money.
    "InternalError.Algo.InvalidParameter": _JOB,
    "DataInspectionFailed": _JOB,
    "data_inspection_failed": _JOB,  # the OpenAI-compatible spelling
    "InvalidURL": _JOB,
    # 400/403: the account, the key or the entitlement: no other job can succeed either.
    "Arrearage": _FATAL,
    "InvalidApiKey": _FATAL,
    "invalid_api_key": _FATAL,
    "Model.AccessDenied": _FATAL,
    "Workspace.AccessDenied": _FATAL,
    "AllocationQuota.FreeTierOnly": _FATAL,
    # 404: every job shares one endpoint (and nearly always one model), so a wrong model name,
    # a model missing from this region or a wrong base path fails the whole batch the same way.
    # Stopping at once (exit 3) beats marking a million jobs failed one by one.
    "ModelNotFound": _FATAL,
    "NotFound": _FATAL,
    # 5xx: passing service faults.
    "SystemError": _RETRY,
    "ModelUnavailable": _RETRY,
    "ModelServiceFailed": _RETRY,
    "RequestTimeOut": _RETRY,
}

#: Prefix rules, tried in order after the exact table (API notes §5.2 families).
_PREFIX_RULES: tuple[tuple[str, Disposition], ...] = (
    ("Throttling", _RETRY),  # Throttling, .RateQuota, .BurstRate, .ConcurrentLimit, ...
    ("InternalError", _RETRY),  # InternalError, .Algo, .Timeout, .Upload, .FileUpload
    ("InvalidParameter", _JOB),
    ("BadRequest", _JOB),  # BadRequest.EmptyInput / .EmptyParameters / .EmptyModel
    ("AccessDenied", _FATAL),  # AccessDenied, AccessDenied.Unpurchased
)

#: The quota codes whose meaning depends on the message (API notes §5.2, 429 AllocationQuota).
_QUOTA_CODES = frozenset({"Throttling.AllocationQuota", "insufficient_quota"})

#: Statuses that are retryable whatever the code: request timeout and conflict (the official
#: ``dashscope.v2`` client retries 408/409, API notes §6.3), too many requests.
_RETRY_STATUSES = frozenset({408, 409, 429})

#: Statuses that are fatal for the batch whatever the (unknown) code: a bad key (401), an account
#: without access (403), and 404: the one generation endpoint does not exist at this base URL.
_FATAL_STATUSES = frozenset({401, 403, 404})


def classify(status: int | None, code: str | None, message: str = "") -> Disposition:
    """What a failed attempt means: retry it, fail the job, or stop the batch.

    Args:
        status: the HTTP status, or ``None`` when no answer came back (transport error).
        code: the body's ``code`` (``None`` or empty when the body had none).
        message: the body's ``message``; it matters only for ``Throttling.AllocationQuota``.

    Returns:
        The :class:`Disposition`. Codes never seen get safe defaults: no answer, 429 and 5xx
        retry; 401/403/404 are fatal; any other 4xx fails the job. Anything else (a 2xx that
        carried no result, an odd 3xx) is treated as a passing service fault and retried.
    """
    if status is None:
        return _RETRY
    if code:
        if code in _QUOTA_CODES:
            # "Free allocated quota exceeded." never comes back (the free quota is spent);
            # "Allocated quota exceeded, please increase your quota limit." is a window.
            return _FATAL if "free" in message.lower() else _RETRY
        if code == "AccessDenied" and "does not support" in message:
            # "current user api does not support synchronous calls": the account's mode.
            return _FATAL
        found = _CODE_TABLE.get(code)
        if found is not None:
            return found
        for prefix, disposition in _PREFIX_RULES:
            if code.startswith(prefix):
                return disposition
    if status in _RETRY_STATUSES or status >= 500:
        return _RETRY
    if status in _FATAL_STATUSES:
        return _FATAL
    if 400 <= status < 500:
        return _JOB
    return _RETRY


def api_error(
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the :class:`ApiError` subclass that :func:`classify` picks for this answer.

    ``Throttled`` for a retryable 429 or ``Throttling*`` code, :class:`RetryableApiError` for any
    other retryable answer, :class:`JobRejected` or :class:`BatchFatal` otherwise.
    """
    disposition = classify(status, code, message)
    cls: type[ApiError]
    if disposition is _FATAL:
        cls = BatchFatal
    elif disposition is _JOB:
        cls = JobRejected
    elif status == 429 or code.startswith("Throttling"):
        cls = Throttled
    else:
        cls = RetryableApiError
    return cls(status, code, message, request_id, retry_after)
