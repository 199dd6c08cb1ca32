"""classify(), verdict() and api_error(): a parametrized copy of the service's error tables.

Every row of the wan2.6-image and wan2.7-image error pages, with the disposition wanbatch gives it.
"""

from __future__ import annotations

import pickle

import pytest

from wanbatch._errors import (
    ApiError,
    BatchFatal,
    JobRejected,
    RetryableApiError,
    Throttled,
    api_error,
)
from wanbatch._verdicts import Disposition, classify, is_throttle, verdict

RETRY, JOB, FATAL = Disposition.RETRY, Disposition.JOB_FAILED, Disposition.FATAL

# The long example messages of the error pages, verbatim.
PARAMS = "Required parameter(s) missing or invalid, please check the request parameters."
BAD_URL = (
    "url error, please check url！ For details, see: "
    "https://help.aliyun.com/zh/model-studio/error-code#error-url"
)
NOT_ELIGIBLE = "Access to model denied. Please make sure you are eligible for using the model."
ALLOCATED = "Allocated quota exceeded, please increase your quota limit."
NOT_A_MEMBER = (
    "Access denied: Either you are not authorized to access this workspace, "
    "or the workspace does not exist."
)
CAPACITY = "Too many requests. Your requests are being throttled due to system capacity limits."

# (status, code, message, disposition): one line per row (and per code) of the error pages.
ERROR_TABLE = [
    (400, "InvalidParameter", PARAMS, JOB),
    (400, "InvalidParameter", "num_images_per_prompt must be 1", JOB),
    (400, "InvalidParameter", BAD_URL, JOB),
    (400, "InternalError.Algo.InvalidParameter", "Failed to download multimodal content", JOB),
    (400, "DataInspectionFailed", "Input or output data may contain inappropriate content.", JOB),
    (400, "data_inspection_failed", "Input or output data may contain inappropriate content.", JOB),
    (400, "BadRequest.EmptyInput", "Required input parameter missing from request.", JOB),
    (400, "BadRequest.EmptyParameters", "Required input parameter missing from request.", JOB),
    (400, "BadRequest.EmptyModel", "Required input parameter missing from request.", JOB),
    (400, "InvalidURL", "Invalid URL provided in your request.", JOB),
    (400, "Arrearage", "Access denied, plesase make sure your account is in good standing.", FATAL),
    (403, "Arrearage", "Access denied, plesase make sure your account is in good standing.", FATAL),
    (401, "InvalidApiKey", "", FATAL),
    (401, "invalid_api_key", "Incorrect API key provided.", FATAL),
    (403, "AccessDenied", "Access denied.", FATAL),
    (403, "AccessDenied", "current user api does not support synchronous calls", FATAL),
    (403, "AccessDenied", "current user api does not support asynchronous calls", FATAL),
    (403, "AccessDenied.Unpurchased", NOT_ELIGIBLE, FATAL),
    (403, "Model.AccessDenied", "Access to model denied.", FATAL),
    (403, "Workspace.AccessDenied", "", FATAL),
    (403, "AllocationQuota.FreeTierOnly", "", FATAL),
    (404, "ModelNotFound", "", FATAL),
    (404, "NotFound", "", FATAL),
    (429, "Throttling", "Requests throttling triggered.", RETRY),
    (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", RETRY),
    (429, "Throttling.BurstRate", "Request rate increased too quickly", RETRY),
    (429, "Throttling.AllocationQuota", ALLOCATED, RETRY),
    (429, "insufficient_quota", ALLOCATED, RETRY),
    (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", FATAL),
    (429, "insufficient_quota", "Free allocated quota exceeded.", FATAL),
    (429, "Throttling.ConcurrentLimit", "", RETRY),
    (429, "Throttling.Concurrency", "", RETRY),
    (500, "InternalError", "An internal error has occured, please try again later.", RETRY),
    (500, "InternalError.Algo", "", RETRY),
    (500, "InternalError.Timeout", "", RETRY),
    (500, "InternalError.Upload", "", RETRY),
    (500, "InternalError.FileUpload", "", RETRY),
    (500, "SystemError", "", RETRY),
    (503, "ModelUnavailable", "", RETRY),
    (500, "ModelServiceFailed", "", RETRY),
    (504, "RequestTimeOut", "", RETRY),
    (502, "HTTP502", "<html>Bad Gateway</html>", RETRY),
    (503, "HTTP503", "Service Unavailable", RETRY),
    (504, "HTTP504", "Gateway Time-out", RETRY),
    (500, "Unknown", "upstream exploded", RETRY),
    # Rows of the current error page (wan2.7-image; it applies to wan2.6-image too).
    (
        400,
        "IPInfringementSuspect",
        "Input data is suspected of being involved in IP infringement.",
        JOB,
    ),
    (400, "InvalidParameter.DataInspection", "Failed to download multimodal content", JOB),
    (400, "InvalidParameter", "Exceeded limit on max bytes per data-uri item : 10485760", JOB),
    (401, "NOT AUTHORIZED", NOT_A_MEMBER, FATAL),
    (401, "invalid access token or token expired", "", FATAL),
    (403, "App.AccessDenied", "", FATAL),
    (403, "Endpoint.AccessDenied", "Workspace endpoint access denied.", FATAL),
    (404, "WorkSpaceNotFound", "WorkSpace can not be found.", FATAL),
    (429, "CommodityNotPurchased", "", FATAL),
    (429, "PrepaidBillOverdue", "", FATAL),
    (429, "PostpaidBillOverdue", "", FATAL),
    (500, "RequestTimeOut", "Request timed out, please try again later.", RETRY),
    (500, "InternalError.Timeout", "", RETRY),
    (500, "InternalError.Algo", "Missing Content-Length of multimodal url.", JOB),
    (500, "ModelServingError", CAPACITY, RETRY),
    (503, "ModelServingError", CAPACITY, RETRY),
    (503, "ModelUnavailable", "Model is unavailable, try again later.", RETRY),
]


@pytest.mark.parametrize(("status", "code", "message", "expected"), ERROR_TABLE)
def test_error_table(status: int, code: str, message: str, expected: Disposition) -> None:
    assert classify(status, code, message) is expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (None, None, RETRY),  # no answer at all: a transport error
        (None, "InvalidParameter", RETRY),  # status None means transport, whatever else
        (408, None, RETRY),
        (409, None, RETRY),
        (429, None, RETRY),
        (429, "SomethingNew", RETRY),
        (500, None, RETRY),
        (599, "Whatever", RETRY),
        (400, None, JOB),
        (400, "SomethingNew", JOB),
        (413, "RequestTooLarge", JOB),
        (422, None, JOB),
        (401, None, FATAL),
        (401, "SomethingNew", FATAL),
        (403, "SomethingNew", FATAL),
        (404, None, FATAL),
        (200, "EmptyOutput", RETRY),  # a 2xx without a result: a passing service fault
        (200, "InvalidParameter", JOB),  # the shape of a FAILED task: the code decides
        (400, "Throttling.RateQuota", RETRY),  # codes win over statuses
        (500, "InvalidParameter.Size", JOB),
        (400, "InvalidParameter.DataUri", JOB),
        (403, "AccessDenied.Whatever", FATAL),
        (400, "", JOB),  # an empty code is no code
    ],
)
def test_defaults_and_prefixes(status: int | None, code: str | None, expected: Disposition) -> None:
    assert classify(status, code) is expected


def test_free_quota_message_is_case_insensitive() -> None:
    assert classify(429, "Throttling.AllocationQuota", "FREE ALLOCATED QUOTA EXCEEDED") is FATAL


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (429, "Throttling.RateQuota", "slow down", Throttled),
        (429, "SomethingNew", "", Throttled),
        (400, "Throttling.BurstRate", "", Throttled),
        (500, "InternalError", "", RetryableApiError),
        (502, "HTTP502", "bad gateway", RetryableApiError),
        (200, "EmptyOutput", "", RetryableApiError),
        (400, "InvalidParameter", "n must be 1", JobRejected),
        (400, "DataInspectionFailed", "", JobRejected),
        (401, "InvalidApiKey", "", BatchFatal),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", BatchFatal),
        (429, "PrepaidBillOverdue", "", BatchFatal),
        (429, "PostpaidBillOverdue", "", BatchFatal),
        (429, "CommodityNotPurchased", "", BatchFatal),
        (429, "ModelServingError", CAPACITY, Throttled),  # a 429 that may be retried: a limit
        (500, "ModelServingError", CAPACITY, RetryableApiError),
        (503, "ModelUnavailable", "", RetryableApiError),
        (400, "IPInfringementSuspect", "", JobRejected),
        (401, "NOT AUTHORIZED", NOT_A_MEMBER, BatchFatal),
        (404, "WorkSpaceNotFound", "", BatchFatal),
    ],
)
def test_api_error_picks_the_subclass(
    status: int, code: str, message: str, cls: type[ApiError]
) -> None:
    err = api_error(status, code, message, "rid-1", retry_after=2.5)
    assert type(err) is cls
    assert err.disposition is classify(status, code, message)
    assert (err.status, err.code, err.message, err.request_id, err.retry_after) == (
        status,
        code,
        message,
        "rid-1",
        2.5,
    )
    assert "rid-1" in str(err)


def test_api_error_survives_pickling() -> None:
    err = api_error(429, "Throttling", "x", "rid", 1.0)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is Throttled
    assert back.retry_after == 1.0


# The setting a fatal answer's hint must name, by code.
KEY, BASE_URL, WORKSPACE = "DASHSCOPE_API_KEY", "--base-url", "workspace"
BILLING, REGION = "billing", "region"


@pytest.mark.parametrize(
    ("status", "code", "message", "names"),
    [
        (401, "InvalidApiKey", "", (KEY, BASE_URL)),
        (401, "invalid_api_key", "", (KEY,)),
        (401, "SomethingNew", "", (KEY,)),
        (401, "invalid access token or token expired", "", (KEY, BASE_URL)),
        (401, "NOT AUTHORIZED", NOT_A_MEMBER, (WORKSPACE, BASE_URL, KEY)),
        (404, "WorkSpaceNotFound", "", (WORKSPACE, BASE_URL)),
        (403, "Workspace.AccessDenied", "", (WORKSPACE,)),
        (403, "App.AccessDenied", "", (WORKSPACE,)),
        (403, "Model.AccessDenied", "", (WORKSPACE, "model")),
        (403, "Endpoint.AccessDenied", "", (BASE_URL, "--region")),
        (403, "AccessDenied", "Access denied.", (KEY, REGION)),
        (403, "SomethingNew", "", (REGION,)),
        (403, "AccessDenied", "current user api does not support synchronous calls", (BASE_URL,)),
        (404, "ModelNotFound", "", ("model", REGION)),
        (404, "NotFound", "", (BASE_URL, "/api/v1")),
        (404, None, "", (BASE_URL,)),
        (400, "Arrearage", "", (BILLING,)),
        (429, "PrepaidBillOverdue", "", (BILLING, "overdue")),
        (429, "PostpaidBillOverdue", "", (BILLING, "overdue")),
        (429, "CommodityNotPurchased", "", (BILLING, "purchased")),
        (403, "AccessDenied.Unpurchased", "", (BILLING, "purchased")),
        (403, "AllocationQuota.FreeTierOnly", "", (BILLING, "free")),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", (BILLING, "free")),
    ],
)
def test_fatal_answers_say_which_setting_to_check(
    status: int, code: str | None, message: str, names: tuple[str, ...]
) -> None:
    found = verdict(status, code, message)
    assert found.disposition is FATAL and not found.throttle
    assert found.hint.startswith("check ")
    for name in names:
        assert name in found.hint, name
    assert api_error(status, code or f"HTTP{status}", message).hint == found.hint


@pytest.mark.parametrize(("status", "code", "message", "expected"), ERROR_TABLE)
def test_every_fatal_row_has_a_hint_and_no_other_row_has_one(
    status: int, code: str, message: str, expected: Disposition
) -> None:
    assert bool(verdict(status, code, message).hint) is (expected is FATAL)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (429, "Throttling.RateQuota", "", True),
        (429, "SomethingNew", "", True),
        (429, None, "", True),
        (400, "Throttling.BurstRate", "", True),
        (429, "PrepaidBillOverdue", "", False),
        (429, "CommodityNotPurchased", "", False),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", False),
        (500, "ModelServingError", CAPACITY, False),
        (500, "InternalError", "", False),
        # Journal lines may hold anything: mistyped fields are no rate limit and no crash.
        ("429", "Throttling", "", False),
        (True, "Throttling", "", False),
        (None, "Throttling", "", False),
        (429, 7, None, True),
        (429, ["PrepaidBillOverdue"], {"x": 1}, True),
    ],
)
def test_is_throttle(status: object, code: object, message: object, expected: bool) -> None:
    assert is_throttle(status, code, message) is expected


def test_the_message_decides_only_for_its_own_code() -> None:
    # "free" in another 429 code's message does not make it fatal; "does not support" only
    # matters for AccessDenied; a missing Content-Length only for InternalError.Algo.
    assert classify(429, "Throttling.RateQuota", "free tier users are limited") is RETRY
    assert classify(500, "InternalError", "Missing Content-Length of multimodal url.") is RETRY
    assert classify(400, "InvalidParameter", "does not support this size") is JOB
