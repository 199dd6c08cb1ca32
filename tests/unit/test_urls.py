"""Result-URL helpers: expiry, redaction, file names (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch._urls import _parse_expiry_query, image_filename, is_safe_id, parse_expiry, redact

SIGNED = (
    "https://dashscope-result-intl.oss-cn-singapore.aliyuncs.com/1d/ab/x.png"
    "?Expires=1767225600&OSSAccessKeyId=LTAI5tSecretKeyId&Signature=abc%2Bdef%3D"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SIGNED, 1767225600.0),
        ("https://h/x.png?expires=17&x=1", 17.0),  # key case does not matter
        ("https://h/x.png?a=1&Expires=1767225600.5", 1767225600.5),
        ("https://h/x.png?Expires=xxx", None),  # the doc's placeholder
        ("https://h/x.png?Expires=", None),
        ("https://h/x.png?Expires=-5", None),
        ("https://h/x.png?Expires=inf", None),
        ("https://h/x.png?Expires=nan", None),
        ("https://h/x.png", None),
        ("https://h/x.png#Expires=5", None),  # a fragment is not the query
        ("not a url", None),
        ("http://[::1/x?Expires=5", None),  # unparseable netloc
    ],
)
def test_parse_expiry(url: str, expected: float | None) -> None:
    assert parse_expiry(url) == expected


_URL_PART = st.sampled_from(
    [
        "https://h/x.png",
        "?",
        "&",
        "#",
        "=",
        "Expires",
        "expires",
        "EXPIRES",
        "%45xpires",
        "17",
        "1767225600",
        "0",
        "-1",
        "x",
        "a=1",
        "[",
        "%",
        "+",
        "exPires=9",
    ]
)


@given(st.lists(_URL_PART, max_size=10))
def test_parse_expiry_fast_path_agrees_with_parsing_the_query(parts: list[str]) -> None:
    url = "".join(parts)
    assert parse_expiry(url) == _parse_expiry_query(url)


def test_redact_masks_every_credential_and_keeps_the_rest() -> None:
    out = redact(SIGNED)
    assert "LTAI5tSecretKeyId" not in out
    assert "abc%2Bdef%3D" not in out
    assert out == (
        "https://dashscope-result-intl.oss-cn-singapore.aliyuncs.com/1d/ab/x.png"
        "?Expires=1767225600&OSSAccessKeyId=***&Signature=***"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://h/x.png?security-token=SECRET&Expires=1",
        "https://h/x.png?x-oss-signature=SECRET&x-oss-credential=SECRET",
        "https://h/x.png?SIGNATURE=SECRET",
        "https://user:SECRET@h/x.png",
    ],
)
def test_redact_other_secret_forms(url: str) -> None:
    assert "SECRET" not in redact(url)


def test_redact_leaves_plain_urls_alone() -> None:
    assert redact("https://h/x.png?a=1&b=2#f") == "https://h/x.png?a=1&b=2#f"
    assert redact("https://user@h/x") == "https://user@h/x"


@given(st.text())
def test_redact_never_raises_and_never_shows_a_signature(secret: str) -> None:
    url = f"https://h/x.png?Expires=1&Signature={secret}"
    out = redact(url)
    assert "Signature=***" in out or out == "<unparseable URL>"


@pytest.mark.parametrize("job_id", ["a", "job-1", "A.b_c-9", "x" * 128, "0"])
def test_safe_ids(job_id: str) -> None:
    assert is_safe_id(job_id)
    assert image_filename(job_id, 3) == f"{job_id}-3.png"


@pytest.mark.parametrize(
    "job_id", ["", ".hidden", "..", "a/b", "a\\b", "-a", "a b", "é", "x" * 129, "a\n", "_a"]
)
def test_unsafe_ids(job_id: str) -> None:
    assert not is_safe_id(job_id)
    with pytest.raises(ValueError, match="safe file name"):
        image_filename(job_id, 0)


def test_image_index_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        image_filename("a", -1)
