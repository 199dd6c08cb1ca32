"""The exception tree, and the factory that picks the class of a service's error answer.

Pure: stdlib only. Every error wanbatch raises is a :class:`WanbatchError`; which class a
service answer gets is what ``_verdicts`` decides (:func:`api_error` builds it)::

    WanbatchError
     +-- JobFileError(ValueError)   a job line breaks a rule: path, line, field, message
     +-- ApiError                   the service answered an error: status, code, message, request_id
     |    +-- Throttled             429 Throttling*: back off, retry (honour retry_after)
     |    +-- RetryableApiError     5xx and other passing faults: retry with backoff
     |    +-- JobRejected           this job failed for good (InvalidParameter*, DataInspection)
     |    +-- BatchFatal            stop the batch: key, host, workspace, model access, billing
     +-- TransportError             no usable answer (``possibly_billed``: may it have cost?)
     |    +-- ConnectFailed         never sent: safe to retry, never billed
     |    +-- ResponseLost          sent, then timeout / reset / cut body: possibly billed
     +-- DownloadError              fetching a result image failed
     |    +-- UrlExpired            the signed URL's Expires= passed (or OSS said so)
     |    +-- IntegrityError        the bytes are not a whole PNG, or over the size cap
     +-- JournalError               the journal cannot be used (unreadable, another job file)
     |    +-- FolderInUse           another run holds the output folder: pid, host
     +-- OutputError                the output folder cannot be written (disk full, permissions)
      +-- UnusableOutput        it cannot even be prepared: a usage error, nothing was sent
"""

from __future__ import annotations

from wanbatch._verdicts import Disposition, verdict

__all__ = [
    "ApiError",
    "BatchFatal",
    "ConnectFailed",
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
    "UnusableOutput",
    "UrlExpired",
    "WanbatchError",
    "api_error",
]


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

    @classmethod
    def not_utf8(cls, path: str, line: int, raw: bytes, exc: UnicodeDecodeError) -> JobFileError:
        """A line that is not UTF-8, naming its first bad byte."""
        return cls(
            path,
            line,
            "line",
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); "
            "save the file as UTF-8",
        )


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

    @property
    def foreign(self) -> bool:
        """No sign of the DashScope API in the answer: no request id and no error code of its
        own (a code made from the status, or no image in a success): a gateway's page, or
        some other web server at the base URL."""
        synthesized = self.code == f"HTTP{self.status}" or self.code == "EmptyOutput"
        return self.request_id is None and synthesized

    @property
    def hint(self) -> str:
        """For a fatal answer, which setting to check (the API key, the base URL, the workspace,
        the model's availability, the account's billing); empty for other answers."""
        return verdict(self.status, self.code, self.message).hint


class Throttled(ApiError):
    """429 ``Throttling*``: the service wants us slower; back off and retry."""


class RetryableApiError(ApiError):
    """A passing service fault (5xx, gateway pages): retry with backoff."""


class JobRejected(ApiError):
    """The service refused this job for good (bad parameter, content inspection)."""

    disposition = Disposition.JOB_FAILED


class BatchFatal(ApiError):
    """No further call can succeed (bad key or host, workspace, model access, billing): stop."""

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


class UnusableOutput(OutputError):
    """The output folder cannot even be prepared (a path that cannot be a folder, no
    permission): a usage error, found before anything was sent."""


class InvalidJobs(WanbatchError):
    """The job file has errors; nothing was sent. ``errors`` lists every one found."""

    def __init__(self, path: str, errors: list[JobFileError], total: int) -> None:
        self.path = path
        self.errors = errors
        self.total = total
        lines = "1 invalid job line" if total == 1 else f"{total} invalid job lines"
        super().__init__(f"{path}: {lines}; nothing was sent")


def api_error(
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the :class:`ApiError` subclass that :func:`~wanbatch._verdicts.verdict` picks.

    :class:`Throttled` for a rate limit, :class:`RetryableApiError` for any other retryable
    answer, :class:`JobRejected` or :class:`BatchFatal` otherwise.
    """
    found = verdict(status, code, message)
    cls: type[ApiError]
    if found.disposition is Disposition.FATAL:
        cls = BatchFatal
    elif found.disposition is Disposition.JOB_FAILED:
        cls = JobRejected
    elif found.throttle:
        cls = Throttled
    else:
        cls = RetryableApiError
    return cls(status, code, message, request_id, retry_after)
