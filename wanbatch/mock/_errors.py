"""The error answers the mock gives: :class:`Rejection` and the documented codes and messages.

Codes, statuses and message texts follow the service's error pages (typos included: "plesase" is
what the service sends). Where the exact text is not documented the mock picks a plain one.
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
    "documented_message",
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


#: The service's message for codes the mock answers only through the ``force_error`` knob.
#: Codes whose text is undocumented get a plain one.
_MESSAGES: dict[str, str] = {
    "InvalidParameter": INVALID_PARAMETER,
    "InternalError.Algo.InvalidParameter": DOWNLOAD_FAILED,
    "DataInspectionFailed": INSPECTION,
    "data_inspection_failed": INSPECTION,
    "IPInfringementSuspect": "Input data is suspected of being involved in IP infringement.",
    "BadRequest.EmptyInput": "Required input parameter missing from request.",
    "BadRequest.EmptyParameters": "Required input parameter missing from request.",
    "BadRequest.EmptyModel": "Required input parameter missing from request.",
    "InvalidURL": "Invalid URL provided in your request.",
    "Arrearage": ARREARAGE,
    "InvalidApiKey": INVALID_API_KEY,
    "invalid_api_key": "Incorrect API key provided.",
    "NOT AUTHORIZED": (
        "Access denied: Either you are not authorized to access this workspace, "
        "or the workspace does not exist."
    ),
    "invalid access token or token expired": "invalid access token or token expired",
    "AccessDenied": "Access denied.",
    "AccessDenied.Unpurchased": (
        "Access to model denied. Please make sure you are eligible for using the model."
    ),
    "Model.AccessDenied": (
        "Access to model denied. Please make sure you are eligible for using the model."
    ),
    "Workspace.AccessDenied": "Access to the workspace denied.",
    "App.AccessDenied": "Access to the application denied.",
    "Endpoint.AccessDenied": "Workspace endpoint access denied.",
    "AllocationQuota.FreeTierOnly": "The free tier of the model is used up.",
    "ModelNotFound": MODEL_NOT_FOUND,
    "WorkSpaceNotFound": "WorkSpace can not be found.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": RATE_QUOTA,
    "Throttling.BurstRate": "Request rate increased too quickly",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "CommodityNotPurchased": "The commodity has not been purchased.",
    "PrepaidBillOverdue": "The prepaid bill is overdue.",
    "PostpaidBillOverdue": "The postpaid bill is overdue.",
    "InternalError": INTERNAL,
    "InternalError.Timeout": "The task did not finish in time.",
    "ModelServingError": (
        "Too many requests. Your requests are being throttled due to system capacity limits."
    ),
    "ModelUnavailable": "Model is unavailable, try again later.",
    "RequestTimeOut": "Request timed out, please try again later.",
}


def documented_message(code: str) -> str:
    """The service's message for ``code``, or a plain one naming it."""
    return _MESSAGES.get(code, f"The request failed: {code}.")


class Rejection(Exception):
    """A request the service answers with ``{"request_id","code","message"}`` and ``status``.

    ``deferred`` marks what the model worker (not the gateway) finds: an async task still gets
    an id and then turns FAILED with this code, as in the service's documented FAILED example.
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
