"""classify() and api_error(): a parametrized copy of the API notes §5.2 code table, every row."""

from __future__ import annotations

import pickle

import pytest

from wanbatch._errors import (
    ApiError,
    BatchFatal,
    Disposition,
    JobRejected,
    RetryableApiError,
    Throttled,
    api_error,
    classify,
)

RETRY, JOB, FATAL = Disposition.RETRY, Disposition.JOB_FAILED, Disposition.FATAL

# The long example messages of API notes §5.2, verbatim.
PARAMS = "Required parameter(s) missing or invalid, please check the request parameters."
BAD_URL = (
    "url error, please check url！ For details, see: "
    "https://help.aliyun.com/zh/model-studio/error-code#error-url"
)
NOT_ELIGIBLE = "Access to model denied. Please make sure you are eligible for using the model."
ALLOCATED = "Allocated quota exceeded, please increase your quota limit."

# (status, code, message, disposition) — one line per row (and per code) of API notes §5.2.
SECTION_5_2 = [
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
]


@pytest.mark.parametrize(("status", "code", "message", "expected"), SECTION_5_2)
def test_section_5_2_table(status: int, code: str, message: str, expected: Disposition) -> None:
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
        (200, "InvalidParameter", JOB),  # the task-FAILED shape (API notes §4): code decides
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
