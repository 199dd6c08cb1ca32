"""Model profiles (_models), the wan2.7 rules (_rules27) and the bodies sent per model."""

from __future__ import annotations

from typing import Any

import pytest

from wanbatch._config import BatchConfig, GenerationDefaults
from wanbatch._jobs import Job
from wanbatch._models import (
    PROFILES,
    not_offered_problem,
    price_for,
    price_of,
    region_of_url,
    workspace_base_url,
)
from wanbatch._requests import build_body, build_planned_job
from wanbatch._rules import analyse_job


def issues(job: dict[str, Any], **defaults: Any) -> list[tuple[str, str, bool]]:
    _settings, found = analyse_job(Job.model_validate(job), GenerationDefaults(**defaults))
    return [(i.field, i.message, i.warning) for i in found]


def body(job: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    return build_body(Job.model_validate(job), GenerationDefaults(**defaults), lambda ref: ref)


def test_prices_and_regions_per_model() -> None:
    assert [price_of("wan2.6-image", r) for r in ("cn", "intl", "us")] == [0.20, 0.220177, 0.20]
    assert [price_of("wan2.7-image", r) for r in ("cn", "intl", "us")] == [0.20, 0.220177, 0.0]
    assert [price_of("wan2.7-image-pro", r) for r in ("cn", "intl")] == [0.50, 0.562065]
    assert PROFILES["wan2.7-image"].regions == ("cn", "intl")
    assert PROFILES["wan2.6-image"].regions == ("cn", "intl", "us")
    assert not_offered_problem("wan2.6-image", "us") is None
    assert not_offered_problem("wan2.7-image", None) is None
    assert "not offered in region us" in (not_offered_problem("wan2.7-image", "us") or "")


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://dashscope-intl.aliyuncs.com/api/v1", "intl"),
        ("https://dashscope.aliyuncs.com/api/v1", "cn"),
        ("https://dashscope-us.aliyuncs.com/api/v1", "us"),
        ("https://ws-1a.ap-southeast-1.maas.aliyuncs.com/api/v1", "intl"),
        ("https://llm-2b.cn-beijing.maas.aliyuncs.com/api/v1", "cn"),
        ("https://ws-1a.eu-central-1.maas.aliyuncs.com/api/v1", None),
        ("http://127.0.0.1:8080/api/v1", None),
        ("not a url", None),
    ],
)
def test_region_of_url(url: str, region: str | None) -> None:
    assert region_of_url(url) == region


def test_workspace_hosts_and_run_prices() -> None:
    url = workspace_base_url("ws-abc", "cn")
    assert url == "https://ws-abc.cn-beijing.maas.aliyuncs.com/api/v1"
    assert price_for(BatchConfig(base_url=url), "wan2.7-image-pro") == 0.50
    assert price_for(BatchConfig(base_url="http://127.0.0.1:1/api/v1"), "wan2.7-image-pro") == (
        0.562065  # the mock: the configured region (intl)
    )
    with pytest.raises(ValueError, match="not a workspace id"):
        workspace_base_url("ws_abc.evil.com/x", "cn")


def test_wan27_body_sends_n_and_no_event_stream_flags() -> None:
    sent = body({"model": "wan2.7-image", "prompt": "a fox"}, prompt_extend=True, max_images=3)
    assert sent["model"] == "wan2.7-image"
    assert sent["parameters"] == {"n": 1}
    edit = body({"model": "wan2.7-image-pro", "prompt": "a fox", "images": ["https://e.x/a.png"]})
    assert edit["parameters"] == {"n": 1}
    assert len(edit["input"]["messages"][0]["content"]) == 2
    sets = body({"model": "wan2.7-image", "prompt": "x", "enable_sequential": True, "n": 12})
    assert sets["parameters"] == {"n": 12, "enable_sequential": True}
    # Called as plain JSON (no event stream), planned at its maximum, with its model.
    planned, errors, _warnings = build_planned_job(
        Job.model_validate({"model": "wan2.7-image-pro", "prompt": "x", "n": 9,
                            "enable_sequential": True}),
        GenerationDefaults(), lambda ref: ref, path="j", line=1, source="",
    )  # fmt: skip
    assert planned is not None and not errors
    assert (planned.interleave, planned.max_new_images, planned.model) == (
        False, 9, "wan2.7-image-pro"
    )  # fmt: skip
    # The run-wide model applies to a job that names none; a job's own model wins.
    assert body({"prompt": "x"}, model="wan2.7-image")["model"] == "wan2.7-image"
    own = body({"prompt": "x", "model": "wan2.6-image"}, model="wan2.7-image")
    assert own["model"] == "wan2.6-image" and own["parameters"]["enable_interleave"] is True


@pytest.mark.parametrize(
    ("job", "field", "fragment"),
    [
        ({"images": [f"https://e.x/{i}.png" for i in range(10)]}, "images", "takes 0-9"),
        ({"n": 5}, "n", "must be 1-4 on wan2.7-image (enable_sequential true allows 1-12)"),
        ({"n": 13, "enable_sequential": True}, "n", "must be 1-12 on wan2.7-image in set mode"),
        ({"size": "4K"}, "size", "'4K' is not offered by wan2.7-image"),
        ({"size": "2600*300"}, "size", "aspect ratio outside 1:8 to 8:1"),
        ({"size": "4096*4096"}, "size", "768*768 to 2048*2048"),
        ({"enable_interleave": True}, "enable_interleave", "has no interleaved mode"),
        ({"max_images": 2}, "max_images", "has no interleaved mode"),
        ({"negative_prompt": "x"}, "negative_prompt", "does not take negative_prompt"),
        ({"parameters": {"prompt_extend": True}}, "parameters.prompt_extend", "does not take"),
        ({"bbox_list": [[[0, 0, 5, 5]]]}, "bbox_list", "needs reference images"),
        (
            {"images": ["https://e.x/a.png"], "bbox_list": [[[0, 0, 5, 5]] * 3]},
            "bbox_list",
            "at most 2 per image",
        ),
        (
            {"images": ["https://e.x/a.png"], "bbox_list": [[], []]},
            "bbox_list",
            "one list of boxes per reference image (1)",
        ),
        (
            {"images": ["https://e.x/a.png"], "bbox_list": [[[5, 0, 5, 9]]]},
            "bbox_list",
            "x1 < x2",
        ),
        ({"color_palette": [{"hex": "#000000", "ratio": "50.00%"}] * 2}, "color_palette", "3-10"),
        (
            {"color_palette": [{"hex": "#000000", "ratio": "33.33%"}] * 3},
            "color_palette",
            "add up to 99.99%",
        ),
        (
            {"color_palette": [{"hex": "000000", "ratio": "50.00%"}] * 3},
            "color_palette",
            '"#RRGGBB"',
        ),
        (
            {"enable_sequential": True, "color_palette": [{"hex": "#000000", "ratio": "25%"}] * 3},
            "color_palette",
            "not available in set mode",
        ),
        ({"prompt": "p" * 20_001}, "prompt", "wanbatch takes it for a mistake"),
        ({"model": "wan2.8-image"}, "model", "unknown model 'wan2.8-image'"),
    ],
)
def test_wan27_rule_messages(job: dict[str, Any], field: str, fragment: str) -> None:
    found = issues({"model": "wan2.7-image", "prompt": "a fox", **job})
    errors = [(f, m) for f, m, warning in found if not warning]
    assert errors and errors[0][0] == field, found
    assert fragment in errors[0][1]


def test_wan27_warnings_and_pro_4k() -> None:
    long = issues({"model": "wan2.7-image", "prompt": "p" * 5001})
    assert long == [("prompt", "prompt is 5001 characters; the service silently truncates it "
                    "to 5000", True)]  # fmt: skip
    assert issues({"model": "wan2.7-image", "prompt": "p" * 5000}) == []
    thinking = issues({"model": "wan2.7-image", "prompt": "x", "images": ["https://e.x/a.png"],
                       "thinking_mode": True})  # fmt: skip
    assert [(f, w) for f, _m, w in thinking] == [("thinking_mode", True)]
    assert issues({"model": "wan2.7-image-pro", "prompt": "x", "size": "4K"}) == []
    assert issues({"model": "wan2.7-image-pro", "prompt": "x", "size": "4096*4096"}) == []
    edit4k = issues({"model": "wan2.7-image-pro", "prompt": "x", "size": "4K",
                     "images": ["https://e.x/a.png"]})  # fmt: skip
    assert edit4k[0][0] == "size" and "text-to-image only" in edit4k[0][1]


def test_wan26_refuses_wan27_fields() -> None:
    found = issues({"prompt": "x", "images": ["https://e.x/a.png"], "enable_sequential": True})
    assert found == [
        ("enable_sequential", "a wan2.7 parameter: wan2.6-image does not take it", False)
    ]
