"""The classification of service answers: one table of the service's error codes.

Pure: stdlib only. :func:`verdict` says what a failed attempt means (retry it, perhaps as a rate
limit; fail the job; or stop the batch, with a hint of which setting to check), from the HTTP
status, the body's ``code`` and, for a few codes, its ``message`` (docs/service.md, Error
answers). ``_errors.api_error`` turns a verdict into the exception class a caller catches.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Disposition", "Verdict", "classify", "is_throttle", "verdict"]


class Disposition(enum.Enum):
    """What a failed attempt means for its job and for the batch."""

    RETRY = "retry"
    JOB_FAILED = "job_failed"
    FATAL = "fatal"


# --------------------------------------------------------------------------------------------
# Classification: message rules, then exact codes, then code prefixes, then the HTTP status.
#
# Order matters: the same status carries codes of every disposition (400 holds InvalidParameter
# and Arrearage; 429 holds Throttling and the billing states PrepaidBillOverdue, ...), so a code
# wins over the status, an exact code over a prefix, and a (code, message) rule over the code.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one error answer means.

    ``throttle``: a rate limit (the limiter backs off; it counts as a 429). ``hint``: for a fatal
    answer, which setting to check, in words a user can act on (never the key itself).
    """

    disposition: Disposition
    throttle: bool = False
    hint: str = ""


_RETRY = Disposition.RETRY
_JOB = Disposition.JOB_FAILED
_FATAL = Disposition.FATAL

_RETRIES = Verdict(_RETRY)
_THROTTLE = Verdict(_RETRY, throttle=True)
_JOB_FAILS = Verdict(_JOB)

_BASE_URL = "the base URL (--base-url, --region or DASHSCOPE_HTTP_BASE_URL)"
_API_KEY = "the API key (DASHSCOPE_API_KEY)"
_CONSOLE = "in the Model Studio console"

#: Fatal answers, by what the user must check.
_BAD_KEY = Verdict(
    _FATAL,
    hint=f"check {_API_KEY}: it must be a valid key of the region that {_BASE_URL} points to",
)
_KEY_NOT_FOR_HOST = Verdict(
    _FATAL,
    hint=f"check {_API_KEY} and {_BASE_URL}: the key has expired, or it is a plan key "
    "that only its plan's own host accepts",
)
_NO_WORKSPACE = Verdict(
    _FATAL,
    hint="check the workspace: the base URL (--base-url or DASHSCOPE_HTTP_BASE_URL) must name "
    f"an existing workspace, and the account of {_API_KEY} must be a member of it",
)
_WORKSPACE_PERMISSION = Verdict(
    _FATAL,
    hint=f"check the workspace's permissions {_CONSOLE}: the workspace of {_API_KEY} must be "
    "allowed to use this model (a sub-workspace needs it granted)",
)
_ENDPOINT_REFUSED = Verdict(
    _FATAL,
    hint=f"check {_BASE_URL}: a workspace host accepts only keys of its own workspace, and none "
    "while the workspace is suspended; use the key's workspace host or the region's shared host "
    "(--region)",
)
_NO_ENDPOINT = Verdict(
    _FATAL,
    hint=f"check {_BASE_URL}: it must be the API root of a DashScope host, ending in /api/v1",
)
_NO_MODEL = Verdict(
    _FATAL,
    hint=f"check the model's availability: it must be offered in the region of {_BASE_URL} "
    "and enabled for this account",
)
_NO_ACCESS = Verdict(
    _FATAL,
    hint=f"check that the account of {_API_KEY} has activated Model Studio and may use this "
    f"model in the region of {_BASE_URL}",
)
_NO_SYNC_CALLS = Verdict(
    _FATAL,
    hint=f"check the model and {_BASE_URL}: this account or model refuses synchronous calls, "
    "the only kind wanbatch makes",
)
_BILL_OVERDUE = Verdict(
    _FATAL,
    hint=f"check the account's billing {_CONSOLE}: a bill is overdue or the balance is used up; "
    "settle it",
)
_NOT_PURCHASED = Verdict(
    _FATAL,
    hint=f"check the account's billing {_CONSOLE}: this model (or the plan it needs) has not "
    "been purchased or activated for this account",
)
_FREE_QUOTA_GONE = Verdict(
    _FATAL,
    hint=f"check the account's billing {_CONSOLE}: the free quota is used up and the account "
    "allows only free use; turn the free-tier-only setting off",
)

#: Codes whose meaning depends on the message: (code, lower-case message fragment, verdict).
_MESSAGE_RULES: tuple[tuple[str, str, Verdict], ...] = (
    # "Free allocated quota exceeded." never comes back (the free quota is spent); "Allocated
    # quota exceeded, please increase your quota limit." is a window that passes.
    ("Throttling.AllocationQuota", "free", _FREE_QUOTA_GONE),
    ("insufficient_quota", "free", _FREE_QUOTA_GONE),
    # "current user api does not support synchronous calls": the account's mode, not a permission.
    ("AccessDenied", "does not support", _NO_SYNC_CALLS),
    # "Missing Content-Length of multimodal url.": the job's reference URL is served without a
    # length; every retry of this job fails the same way.
    ("InternalError.Algo", "content-length", _JOB_FAILS),
)

#: Exact codes.
_CODE_TABLE: dict[str, Verdict] = {
    # 400: permanent for this job (fix the input).
    "InvalidParameter": _JOB_FAILS,
    # "Failed to download multimodal content": the job's reference URL is not fetchable. It says
    # "Internal", but it is the job's input that is wrong.
    "InternalError.Algo.InvalidParameter": _JOB_FAILS,
    "DataInspectionFailed": _JOB_FAILS,
    "data_inspection_failed": _JOB_FAILS,  # the OpenAI-compatible spelling
    "IPInfringementSuspect": _JOB_FAILS,  # the input looks like an IP infringement
    "InvalidURL": _JOB_FAILS,
    # 401: the key, or the key at this host.
    "InvalidApiKey": _BAD_KEY,
    "invalid_api_key": _BAD_KEY,
    "NOT AUTHORIZED": _NO_WORKSPACE,
    "invalid access token or token expired": _KEY_NOT_FOR_HOST,
    # 403: permissions and entitlements; no other job can succeed either.
    "AccessDenied.Unpurchased": _NOT_PURCHASED,
    "Model.AccessDenied": _WORKSPACE_PERMISSION,
    "Workspace.AccessDenied": _WORKSPACE_PERMISSION,
    "App.AccessDenied": _WORKSPACE_PERMISSION,
    "Endpoint.AccessDenied": _ENDPOINT_REFUSED,
    "AllocationQuota.FreeTierOnly": _FREE_QUOTA_GONE,
    # 404: every job shares one endpoint (and nearly always one model), so a wrong model name,
    # a model missing from this region, a wrong base path or workspace fails the whole batch
    # the same way. Stopping at once (exit 3) beats marking a million jobs failed one by one.
    "ModelNotFound": _NO_MODEL,
    "NotFound": _NO_ENDPOINT,
    "WorkSpaceNotFound": _NO_WORKSPACE,
    # The account cannot pay (400 Arrearage; 429 for the billing states): not a rate limit.
    "Arrearage": _BILL_OVERDUE,
    "PrepaidBillOverdue": _BILL_OVERDUE,
    "PostpaidBillOverdue": _BILL_OVERDUE,
    "CommodityNotPurchased": _NOT_PURCHASED,
    # 429 quota window (its "free" message is a rule above).
    "insufficient_quota": _THROTTLE,
    # 5xx: passing service faults ("ModelServingError": the service's own capacity is short).
    "SystemError": _RETRIES,
    "ModelUnavailable": _RETRIES,
    "ModelServiceFailed": _RETRIES,
    "ModelServingError": _RETRIES,
    "RequestTimeOut": _RETRIES,
}

#: Code families, tried in order after the exact table.
_PREFIX_RULES: tuple[tuple[str, Verdict], ...] = (
    ("Throttling", _THROTTLE),  # Throttling, .RateQuota, .BurstRate, .AllocationQuota, ...
    ("InternalError", _RETRIES),  # InternalError, .Algo, .Timeout, .Upload, .FileUpload
    ("InvalidParameter", _JOB_FAILS),  # InvalidParameter.DataInspection, ...
    ("BadRequest", _JOB_FAILS),  # BadRequest.EmptyInput / .EmptyParameters / .EmptyModel
    ("AccessDenied", _NO_ACCESS),  # AccessDenied and unknown AccessDenied.*
)

#: Unknown codes (or none) by status. Request timeout and conflict are retried (as the official
#: ``dashscope.v2`` client does), 429 is a rate limit; 401/403/404 are fatal for the batch: a bad
#: key, an account without access, an endpoint that does not exist at this base URL.
_STATUS_TABLE: dict[int, Verdict] = {
    401: _BAD_KEY,
    403: _NO_ACCESS,
    404: _NO_ENDPOINT,
    408: _RETRIES,
    409: _RETRIES,
    429: _THROTTLE,
}


def verdict(status: int | None, code: str | None, message: str = "") -> Verdict:
    """What a failed attempt means: retry it (maybe as a rate limit), fail the job, or stop.

    Args:
        status: the HTTP status, or ``None`` when no answer came back (transport error).
        code: the body's ``code`` (``None`` or empty when the body had none).
        message: the body's ``message``; it matters only for the codes of ``_MESSAGE_RULES``.

    Codes never seen get safe defaults: no answer, 429 and 5xx retry; 401/403/404 are fatal;
    any other 4xx fails the job. Anything else (a 2xx that carried no result, an odd 3xx) is a
    passing service fault and retried. A retryable answer with status 429 is a rate limit
    whatever its code.
    """
    if status is None:
        return _RETRIES
    found: Verdict | None = None
    if code:
        lowered = message.lower()
        for rule_code, fragment, rule in _MESSAGE_RULES:
            if code == rule_code and fragment in lowered:
                return rule
        found = _CODE_TABLE.get(code)
        if found is None:
            found = next((rule for prefix, rule in _PREFIX_RULES if code.startswith(prefix)), None)
    if found is None:
        found = _STATUS_TABLE.get(status)
    if found is None:
        found = _JOB_FAILS if 400 <= status < 500 else _RETRIES
    if status == 429 and found.disposition is _RETRY:
        return _THROTTLE
    return found


def classify(status: int | None, code: str | None, message: str = "") -> Disposition:
    """The :class:`Disposition` of :func:`verdict`: retry, fail the job, or stop the batch."""
    return verdict(status, code, message).disposition


def is_throttle(status: object, code: object, message: object = "") -> bool:
    """Whether a recorded answer (a journal line: any field may be mistyped) was a rate limit."""
    if not isinstance(status, int) or isinstance(status, bool):
        return False
    code_text = code if isinstance(code, str) else None
    return verdict(status, code_text, message if isinstance(message, str) else "").throttle
