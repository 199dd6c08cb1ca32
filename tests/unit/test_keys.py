"""The pool's keys read from text, their labels, and which fatal answers are one account's."""

from __future__ import annotations

import pytest

from wanbatch._config import Secret
from wanbatch._keys import (
    KeyProblem,
    account_fatal,
    key_label,
    parse_key_list,
    parse_keys_file,
    unique_keys,
)
from wanbatch._verdicts import Disposition, verdict

KEY = "sk-0123456789abcdefa1b9"


def test_keys_file_skips_blanks_and_comments() -> None:
    text = f"# team keys\n\n  {KEY}  \n#sk-commented-out\nsk-second-key-000\r\n"
    assert [k.reveal() for k in parse_keys_file(text, "keys.txt")] == [KEY, "sk-second-key-000"]


def test_keys_file_error_names_file_and_line_not_the_key() -> None:
    with pytest.raises(KeyProblem) as caught:
        parse_keys_file(f"{KEY}\n{KEY} {KEY}\n", "keys.txt")
    assert str(caught.value).startswith("keys.txt:2: key:")
    assert KEY not in str(caught.value) and "a1b9" not in str(caught.value)


@pytest.mark.parametrize(
    "text", [f"a-key-0001,{KEY}", f" a-key-0001 \n {KEY}", f"a-key-0001, ,{KEY},"]
)
def test_key_list_takes_commas_or_white_space(text: str) -> None:
    assert [k.reveal() for k in parse_key_list(text, "DASHSCOPE_API_KEYS")] == ["a-key-0001", KEY]


def test_duplicates_count_once() -> None:
    keys = [Secret("sk-aaaaaaaa1"), Secret("sk-bbbbbbbb2"), Secret("sk-aaaaaaaa1")]
    assert [k.reveal() for k in unique_keys(keys)] == ["sk-aaaaaaaa1", "sk-bbbbbbbb2"]


def test_label_shows_position_and_last_four_only() -> None:
    assert key_label(2, Secret(KEY)) == "#2 …a1b9"
    assert key_label(1, Secret("short-k")) == "#1"  # a short key shows nothing of itself
    assert KEY[:-4] not in key_label(2, Secret(KEY))


@pytest.mark.parametrize(
    ("status", "code", "account"),
    [
        (401, "InvalidApiKey", True),
        (400, "Arrearage", True),
        (429, "PrepaidBillOverdue", True),
        (403, "AccessDenied.Unpurchased", True),
        (403, "Model.AccessDenied", True),
        (403, "AccessDenied.SomethingNew", True),
        (401, "SomethingNew", True),
        (404, "ModelNotFound", False),
        (404, "NotFound", False),
        (404, "WorkSpaceNotFound", False),
        (404, "HTTP404", False),
    ],
)
def test_account_fatal_versus_run_fatal(status: int, code: str, account: bool) -> None:
    assert verdict(status, code).disposition is Disposition.FATAL  # only fatal answers are asked
    assert account_fatal(status, code) is account
