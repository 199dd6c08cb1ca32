"""wanbatch._jobs: the job model, its rules, bodies, ids, fingerprints.

Pure: no files, no event loop. Images are resolved by a stand-in callable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from wanbatch._config import GenerationDefaults
from wanbatch._errors import JobFileError
from wanbatch._ids import IdSet
from wanbatch._jobs import (
    FIELDS,
    Job,
    PlannedJob,
    check_id,
    derive_job_id,
    parse_line,
    parse_line_issues,
)
from wanbatch._requests import build_body, build_planned_job, fingerprint
from wanbatch._rules import check_job

D = GenerationDefaults()
LINE = 7
PATH = "jobs.jsonl"
URL = "https://example.com/a.png"


def same(ref: str) -> str:
    return ref


def plan(
    job: dict[str, Any] | str,
    defaults: GenerationDefaults = D,
    resolve: Any = same,
) -> tuple[PlannedJob | None, list[JobFileError], list[Any]]:
    text = job if isinstance(job, str) else json.dumps(job)
    parsed = parse_line(text, LINE, PATH)
    return build_planned_job(parsed, defaults, resolve, path=PATH, line=LINE, source=text)


def body_of(job: dict[str, Any], defaults: GenerationDefaults = D) -> dict[str, Any]:
    planned, errors, _ = plan(job, defaults)
    assert not errors, [str(e) for e in errors]
    assert planned is not None
    return planned.body


def first_error(job: dict[str, Any] | str, defaults: GenerationDefaults = D) -> JobFileError:
    """The first error of a line, whether found while parsing or by the rules."""
    try:
        _, errors, _ = plan(job, defaults)
    except JobFileError as exc:
        return exc
    assert errors, f"expected an error for {job!r}"
    return errors[0]


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ('{"prompt": "x",}', "line", "not valid JSON"),
        ("[1, 2]", "line", "expected a JSON object, got an array"),
        ('"a prompt"', "line", "expected a JSON object, got a string"),
        ("42", "line", "expected a JSON object, got a number"),
        ("null", "line", "expected a JSON object, got null"),
        ('{"promt": "x"}', "promt", "unknown field 'promt' (did you mean 'prompt'?)"),
        ('{"prompt": "x", "seeed": 1}', "seeed", "did you mean 'seed'?"),
        ('{"prompt": "x", "zzz": 1}', "zzz", "unknown field 'zzz'"),
        ('{"prompt": 3}', "prompt", "must be a string"),
        ('{"prompt": "x", "n": 1.0}', "n", "JSON integer"),
        ('{"prompt": "x", "n": true}', "n", "JSON integer"),
        ('{"prompt": "x", "n": "2"}', "n", "JSON integer"),
        ('{"prompt": "x", "seed": 1.5}', "seed", "JSON integer"),
        ('{"prompt": "x", "max_images": 2.0}', "max_images", "JSON integer"),
        ('{"prompt": "x", "watermark": 0}', "watermark", "JSON boolean"),
        ('{"prompt": "x", "prompt_extend": "true"}', "prompt_extend", "JSON boolean"),
        ('{"prompt": "x", "enable_interleave": 1}', "enable_interleave", "JSON boolean"),
        ('{"prompt": "x", "images": "a.png"}', "images", "must be a list"),
        ('{"prompt": "x", "images": ["a.png", 5]}', "images[1]", "must be a string"),
        ('{"prompt": "x", "parameters": []}', "parameters", "must be an object"),
        ('{"prompt": "x", "meta": "m"}', "meta", "must be an object"),
        ('{"prompt": "x", "messages": {}}', "messages", "must be a list"),
        ('{"prompt": "x", "model": 1}', "model", "must be a string"),
        ('{"prompt": "x", "id": 12}', "id", "must be a string"),
        ('{"prompt": "x", "parameters": {"k": NaN}}', "parameters.k", "not JSON numbers"),
        ('{"prompt": "x", "meta": {"a": [1, Infinity]}}', "meta.a[1]", "not JSON numbers"),
        ('{"prompt": "x", "meta": {"big": 1e999}}', "meta.big", "not JSON numbers"),
    ],
)
def test_parse_line_errors_name_line_and_field(text: str, field: str, fragment: str) -> None:
    with pytest.raises(JobFileError) as info:
        parse_line(text, LINE, PATH)
    err = info.value
    assert (err.path, err.line, err.field) == (PATH, LINE, field)
    assert fragment in err.message
    assert str(err).startswith(f"{PATH}:{LINE}: {field}: ")


def test_parse_line_issues_reports_every_shape_problem() -> None:
    issues = parse_line_issues('{"prompt": 1, "n": "x", "colour": 2}')
    assert isinstance(issues, list)
    assert sorted(i.field for i in issues) == ["colour", "n", "prompt"]


def test_job_model_is_strict_frozen_and_forbids_extra() -> None:
    job = Job(prompt="x")
    with pytest.raises(ValueError):
        job.prompt = "y"
    with pytest.raises(ValueError):
        Job.model_validate({"prompt": "x", "n": "1"})
    with pytest.raises(ValueError):
        Job.model_validate({"prompt": "x", "other": 1})
    assert set(FIELDS) >= {"id", "prompt", "images", "messages", "parameters", "meta", "model"}


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize("job_id", ["a", "A-1", "x.y_z-0", "9" * 128, "CONSOLE", "con-1", "COM10"])
def test_valid_ids(job_id: str) -> None:
    assert check_id(job_id) is None


@pytest.mark.parametrize(
    ("job_id", "fragment"),
    [
        ("", "invalid id"),
        ("-a", "invalid id"),
        (".a", "invalid id"),
        ("a/b", "invalid id"),
        ("a b", "invalid id"),
        ("é", "invalid id"),
        ("a" * 129, "invalid id"),
        ("a.", "must not end with '.'"),
        ("CON", "reserved"),
        ("nul", "reserved"),
        ("Com1", "reserved"),
        ("lpt9.x", "reserved"),
        ("aux.png", "reserved"),
    ],
)
def test_invalid_ids(job_id: str, fragment: str) -> None:
    err = first_error({"id": job_id, "prompt": "x"})
    assert (err.line, err.field) == (LINE, "id")
    assert fragment in err.message


def test_derived_id_is_stable_across_key_order_spacing_id_and_meta() -> None:
    a = parse_line('{"prompt": "cat", "seed": 3, "size": "1280*1280"}', 1, PATH)
    b = parse_line('{ "size":"1280*1280","seed":3 ,"prompt":"cat", "meta": {"k": 1}}', 2, PATH)
    c = parse_line(
        '{"prompt": "cat", "seed": 3, "size": "1280*1280", "model": "wan2.6-image"}', 3, PATH
    )
    assert derive_job_id(a) == derive_job_id(b) == derive_job_id(c)
    assert derive_job_id(a).startswith("j") and len(derive_job_id(a)) == 17
    assert check_id(derive_job_id(a)) is None
    d = parse_line('{"prompt": "cat", "seed": 4, "size": "1280*1280"}', 4, PATH)
    assert derive_job_id(d) != derive_job_id(a)


def test_derived_id_sorts_nested_keys() -> None:
    a = parse_line('{"prompt": "x", "parameters": {"a": 1, "b": 2}}', 1, PATH)
    b = parse_line('{"parameters": {"b": 2, "a": 1}, "prompt": "x"}', 1, PATH)
    assert derive_job_id(a) == derive_job_id(b)


def test_derived_id_is_a_known_value() -> None:
    # Pinned: resume depends on the same line getting the same id in every release.
    assert derive_job_id(Job(prompt="a cat")) == "j0ac60c6183e93b2c"


def test_planned_job_uses_given_or_derived_id() -> None:
    given, _, _ = plan({"id": "mine", "prompt": "x"})
    derived, _, _ = plan({"prompt": "x"})
    assert given is not None and (given.id, given.id_derived) == ("mine", False)
    assert derived is not None and derived.id_derived and derived.id.startswith("j")


def test_idset_reports_first_line_and_grows() -> None:
    ids = IdSet(capacity=16)
    for i in range(1, 5001):
        assert ids.add(f"id-{i}", i) == 0
    assert len(ids) == 5000
    assert ids.add("id-1234", 9999) == 1234
    assert ids.add("id-5000", 10000) == 5000
    assert "id-77" in ids and "nope" not in ids and 3 not in ids


# ----------------------------------------------------------------------------- modes & bodies


def test_text_only_job_runs_interleaved_with_stream_and_max_images() -> None:
    assert body_of({"prompt": "a fox"}) == {
        "model": "wan2.6-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "a fox"}]}]},
        "parameters": {"max_images": 1, "enable_interleave": True, "stream": True},
    }


def test_job_with_images_runs_in_editing_mode_with_n() -> None:
    body = body_of({"prompt": "edit", "images": [URL, "b.png"]})
    assert body["input"]["messages"][0]["content"] == [
        {"text": "edit"},
        {"image": URL},
        {"image": "b.png"},
    ]
    assert body["parameters"] == {"n": 1, "enable_interleave": False}
    assert "stream" not in body["parameters"]


def test_interleave_with_one_image() -> None:
    planned, errors, _ = plan(
        {"prompt": "story", "images": [URL], "enable_interleave": True, "max_images": 3}
    )
    assert not errors and planned is not None
    assert planned.interleave and planned.max_new_images == 3 and planned.image_count == 1
    assert planned.body["parameters"] == {
        "max_images": 3,
        "enable_interleave": True,
        "stream": True,
    }


def test_all_parameters_in_body_and_planned_fields() -> None:
    job = {
        "id": "full",
        "prompt": "p",
        "images": [URL],
        "negative_prompt": "blur",
        "size": "2K",
        "n": 3,
        "seed": 0,
        "prompt_extend": False,
        "watermark": True,
        "parameters": {"is_async": False, "future_knob": {"a": 1}},
        "meta": {"k": [1, 2]},
    }
    planned, errors, warnings = plan(job)
    assert not errors and not warnings and planned is not None
    assert planned.body["parameters"] == {
        "prompt_extend": False,
        "watermark": True,
        "n": 3,
        "size": "2K",
        "seed": 0,
        "negative_prompt": "blur",
        "is_async": False,
        "future_knob": {"a": 1},
        "enable_interleave": False,
    }
    assert (planned.size, planned.seed, planned.max_new_images) == ("2K", 0, 3)
    assert planned.meta == {"k": [1, 2]} and planned.prompt == "p" and planned.line == LINE
    assert planned.source == json.dumps(job)
    assert "meta" not in json.dumps(planned.body)


def test_messages_pass_through_in_order_and_resolve_images() -> None:
    msgs = [{"role": "user", "content": [{"image": "a.png"}, {"text": "put it here"}]}]
    planned, errors, _ = plan({"messages": msgs}, resolve=lambda r: "R:" + r)
    assert not errors and planned is not None
    assert planned.body["input"]["messages"] == [
        {"role": "user", "content": [{"image": "R:a.png"}, {"text": "put it here"}]}
    ]
    assert not planned.interleave and planned.prompt == "put it here"


def test_resolver_output_goes_into_body() -> None:
    planned, _, _ = plan({"prompt": "x", "images": ["a.png"]}, resolve=lambda r: "data:" + r)
    assert planned is not None
    assert planned.body["input"]["messages"][0]["content"][1] == {"image": "data:a.png"}


def test_resolver_error_names_the_image_field() -> None:
    def bad(ref: str) -> str:
        if ref == "b.png":
            raise ValueError("no such file: 'b.png'")
        return ref

    _, errors, _ = plan({"prompt": "x", "images": ["a.png", "b.png"]}, resolve=bad)
    assert [(e.line, e.field) for e in errors] == [(LINE, "images[1]")]
    assert "no such file" in errors[0].message


# ----------------------------------------------------------------------------- defaults


def test_run_defaults_apply_and_job_values_override() -> None:
    defaults = GenerationDefaults(
        size="1280*1280",
        n=2,
        max_images=3,
        seed=9,
        prompt_extend=False,
        watermark=True,
        negative_prompt="ugly",
    )
    edit = body_of({"prompt": "x", "images": [URL]}, defaults)["parameters"]
    assert edit == {
        "prompt_extend": False,
        "watermark": True,
        "n": 2,
        "size": "1280*1280",
        "seed": 9,
        "negative_prompt": "ugly",
        "enable_interleave": False,
    }
    own = body_of(
        {
            "prompt": "x",
            "images": [URL],
            "n": 1,
            "seed": 1,
            "watermark": False,
            "size": "1K",
            "prompt_extend": True,
            "negative_prompt": "n",
        },
        defaults,
    )["parameters"]
    assert (own["n"], own["seed"], own["watermark"], own["size"]) == (1, 1, False, "1K")
    assert (own["prompt_extend"], own["negative_prompt"]) == (True, "n")
    t2i = body_of({"prompt": "x"}, defaults)["parameters"]
    assert t2i["max_images"] == 3 and "n" not in t2i


def test_cost_safe_defaults_send_one_image_and_no_none_values() -> None:
    edit = body_of({"prompt": "x", "images": [URL]})["parameters"]
    t2i = body_of({"prompt": "x"})["parameters"]
    assert edit["n"] == 1 and t2i["max_images"] == 1
    for params in (edit, t2i):
        assert None not in params.values()
        for key in ("seed", "size", "watermark", "prompt_extend", "negative_prompt"):
            assert key not in params


def test_run_default_error_says_so() -> None:
    err = first_error({"prompt": "x"}, GenerationDefaults(size="2K"))
    assert err.field == "size" and "(run default)" in err.message
    err = first_error({"prompt": "x", "images": [URL]}, GenerationDefaults(n=9))
    assert err.field == "n" and "(run default)" in err.message


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("job", "field", "fragment"),
    [
        # prompt / messages
        ({}, "prompt", "missing"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "x", "messages": []}, "prompt", "either messages or prompt"),
        ({"images": [URL], "messages": []}, "images", "either messages or prompt"),
        ({"prompt": "x", "model": "wan2.5-i2i"}, "model", "unknown model 'wan2.5-i2i'"),
        # image counts per mode
        ({"prompt": "x", "images": [URL] * 5}, "images", "editing mode takes 1-4"),
        ({"prompt": "x", "images": [URL] * 2, "enable_interleave": True}, "images", "0 or 1"),
        ({"prompt": "x", "enable_interleave": False}, "enable_interleave", "needs 1-4"),
        (
            {"prompt": "x", "images": [], "enable_interleave": False},
            "enable_interleave",
            "needs 1-4",
        ),
        # image references
        ({"prompt": "x", "images": ["ftp://h/a.png"]}, "images[0]", "unsupported scheme 'ftp:'"),
        ({"prompt": "x", "images": [URL, "oss://b/k.png"]}, "images[1]", "scheme 'oss:'"),
        ({"prompt": "x", "images": ["javascript:alert(1)"]}, "images[0]", "unsupported scheme"),
        ({"prompt": "x", "images": [""]}, "images[0]", "empty image reference"),
        # n / max_images
        ({"prompt": "x", "images": [URL], "n": 0}, "n", "must be 1-4"),
        ({"prompt": "x", "images": [URL], "n": 5}, "n", "must be 1-4"),
        ({"prompt": "x", "n": 2}, "n", "must be 1 in interleaved mode"),
        ({"prompt": "x", "max_images": 0}, "max_images", "must be 1-5"),
        ({"prompt": "x", "max_images": 6}, "max_images", "must be 1-5"),
        ({"prompt": "x", "images": [URL], "max_images": 9}, "max_images", "must be 1-5"),
        # seed
        ({"prompt": "x", "seed": -1}, "seed", "must be 0-2147483647"),
        ({"prompt": "x", "seed": 2147483648}, "seed", "must be 0-2147483647"),
        # size, editing mode
        ({"prompt": "x", "images": [URL], "size": "1k"}, "size", '"1K", "2K" or "W*H"'),
        ({"prompt": "x", "images": [URL], "size": "3K"}, "size", "must be"),
        ({"prompt": "x", "images": [URL], "size": "1024x1024"}, "size", "must be"),
        ({"prompt": "x", "images": [URL], "size": "767*767"}, "size", "768*768 to 2048*2048"),
        ({"prompt": "x", "images": [URL], "size": "2049*2048"}, "size", "768*768 to 2048*2048"),
        ({"prompt": "x", "images": [URL], "size": "3200*790"}, "size", "1:4 to 4:1"),
        ({"prompt": "x", "images": [URL], "size": " 1K"}, "size", "must be"),
        # size, interleaved mode: W*H only, up to 1280*1280 (team decision on 1K/2K)
        ({"prompt": "x", "size": "1K"}, "size", "editing mode only"),
        ({"prompt": "x", "size": "2K"}, "size", "editing mode only"),
        ({"prompt": "x", "size": "1281*1280"}, "size", "768*768 to 1280*1280"),
        ({"prompt": "x", "size": "1600*1100"}, "size", "768*768 to 1280*1280"),
        ({"prompt": "x", "size": "1600*390"}, "size", "1:4 to 4:1"),
        ({"prompt": "x", "size": "0*0"}, "size", "768*768 to 1280*1280"),
        # parameters passthrough
        ({"prompt": "x", "parameters": {"seed": 1}}, "parameters.seed", "is a job field"),
        ({"prompt": "x", "parameters": {"n": 1}}, "parameters.n", "top level"),
        (
            {"prompt": "x", "parameters": {"enable_interleave": True}},
            "parameters.enable_interleave",
            "is a job field",
        ),
        ({"prompt": "x", "parameters": {"stream": True}}, "parameters.stream", "set by wanbatch"),
    ],
)
def test_rule_errors_name_line_and_field(job: dict[str, Any], field: str, fragment: str) -> None:
    err = first_error(job)
    assert (err.path, err.line, err.field) == (PATH, LINE, field), str(err)
    assert fragment in err.message, err.message


@pytest.mark.parametrize(
    ("size", "images"),
    [
        ("1K", [URL]),
        ("2K", [URL]),
        ("768*768", [URL]),
        ("2048*2048", [URL]),
        ("2048*512", [URL]),  # exactly 4:1
        ("512*2048", [URL]),
        ("1344*576", [URL]),
        ("768*768", []),
        ("1280*1280", []),
        ("1280*720", []),
        ("2048*512", []),  # 1,048,576 px, exactly 4:1
        ("720*1280", [URL]),
        ("1600*400", [URL]),
    ],
)
def test_sizes_accepted(size: str, images: list[str]) -> None:
    assert body_of({"prompt": "x", "images": images, "size": size})["parameters"]["size"] == size


def test_seed_bounds_accepted() -> None:
    assert body_of({"prompt": "x", "seed": 0})["parameters"]["seed"] == 0
    assert body_of({"prompt": "x", "seed": 2147483647})["parameters"]["seed"] == 2147483647


def test_n_one_explicit_in_interleaved_mode_is_fine_and_omitted() -> None:
    assert "n" not in body_of({"prompt": "x", "n": 1})["parameters"]


@pytest.mark.parametrize(
    ("messages", "field", "fragment"),
    [
        ([], "messages", "exactly 1 message"),
        ([{"role": "user", "content": [{"text": "a"}]}] * 2, "messages", "exactly 1 message"),
        (["hi"], "messages[0]", "must be an object"),
        ([{"role": "assistant", "content": [{"text": "a"}]}], "messages[0].role", '"user"'),
        ([{"content": [{"text": "a"}]}], "messages[0].role", '"user"'),
        (
            [{"role": "user", "content": [{"text": "a"}], "name": "x"}],
            "messages[0].name",
            "unknown key",
        ),
        ([{"role": "user", "content": "a"}], "messages[0].content", "must be a list"),
        ([{"role": "user", "content": []}], "messages[0].content", "exactly one text item"),
        (
            [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}],
            "messages[0].content",
            "exactly one text item",
        ),
        (
            [{"role": "user", "content": [{"image": URL}]}],
            "messages[0].content",
            "exactly one text item",
        ),
        ([{"role": "user", "content": [{"text": " "}]}], "messages[0].content", "empty"),
        (
            [{"role": "user", "content": [{"text": "a"}, {"video": "v.mp4"}]}],
            "messages[0].content[1]",
            'must be {"text": ...} or {"image": ...}',
        ),
        (
            [{"role": "user", "content": [{"text": "a", "image": URL}]}],
            "messages[0].content[0]",
            "must be",
        ),
        (
            [{"role": "user", "content": [{"text": 5}]}],
            "messages[0].content[0].text",
            "must be a string",
        ),
        (
            [{"role": "user", "content": [{"text": "a"}] + [{"image": URL}] * 5}],
            "messages",
            "editing mode takes 1-4",
        ),
        (
            [{"role": "user", "content": [{"text": "a"}, {"image": "ftp://x/y.png"}]}],
            "messages[0].content[1].image",
            "unsupported scheme",
        ),
    ],
)
def test_messages_structure(messages: list[Any], field: str, fragment: str) -> None:
    err = first_error({"messages": messages})
    assert (err.line, err.field) == (LINE, field), str(err)
    assert fragment in err.message


def test_messages_image_count_in_interleaved_mode() -> None:
    msgs = [{"role": "user", "content": [{"text": "a"}, {"image": URL}, {"image": URL}]}]
    err = first_error({"messages": msgs, "enable_interleave": True})
    assert err.field == "messages" and "0 or 1" in err.message


def test_every_error_of_a_line_is_reported() -> None:
    _, errors, _ = plan({"prompt": " ", "n": 7, "images": [URL], "seed": -4, "size": "9*9"})
    assert [e.field for e in errors] == ["prompt", "n", "size", "seed"]
    assert {e.line for e in errors} == {LINE}


# ----------------------------------------------------------------------------- warnings


def test_long_prompt_is_a_warning_not_an_error() -> None:
    planned, errors, warnings = plan({"prompt": "字" * 2001})
    assert planned is not None and not errors
    assert [(w.line, w.field) for w in warnings] == [(LINE, "prompt")]
    assert "truncates it to 2000" in warnings[0].message
    assert str(warnings[0]).startswith(f"{PATH}:{LINE}: prompt: warning: ")
    assert plan({"prompt": "a" * 2000})[2] == []


def test_long_negative_prompt_is_a_warning() -> None:
    planned, errors, warnings = plan({"prompt": "x", "negative_prompt": "n" * 501})
    assert planned is not None and not errors
    assert [w.field for w in warnings] == ["negative_prompt"]
    assert "truncates it to 500" in warnings[0].message
    assert plan({"prompt": "x", "negative_prompt": "n" * 500})[2] == []


def test_long_prompt_in_messages_warns_on_messages() -> None:
    msgs = [{"role": "user", "content": [{"text": "a" * 2500}]}]
    _, errors, warnings = plan({"messages": msgs})
    assert not errors and [w.field for w in warnings] == ["messages"]


def test_max_images_in_editing_mode_warns_and_is_not_sent() -> None:
    planned, errors, warnings = plan({"prompt": "x", "images": [URL], "max_images": 3})
    assert planned is not None and not errors
    assert [w.field for w in warnings] == ["max_images"]
    assert "max_images" not in planned.body["parameters"]


def test_check_job_lists_errors_and_warnings() -> None:
    issues = check_job(Job(prompt="a" * 2001, n=3), D)
    assert [(i.field, i.warning) for i in issues] == [("prompt", True), ("n", False)]


# ----------------------------------------------------------------------------- build_body


def test_build_body_matches_plan_and_raises_first_error() -> None:
    job = parse_line('{"prompt": "x", "images": ["a.png"], "seed": 5}', 1, PATH)
    planned = plan('{"prompt": "x", "images": ["a.png"], "seed": 5}')[0]
    assert planned is not None and build_body(job, D, same) == planned.body
    with pytest.raises(JobFileError) as info:
        build_body(Job(prompt="x", n=3), D, same, path=PATH, line=12)
    assert (info.value.line, info.value.field) == (12, "n")

    def boom(ref: str) -> str:
        raise ValueError("gone")

    with pytest.raises(JobFileError) as info:
        build_body(job, D, boom, path=PATH, line=3)
    assert (info.value.line, info.value.field, info.value.message) == (3, "images[0]", "gone")


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_changes_with_the_body_only() -> None:
    a = plan({"id": "x", "prompt": "p", "seed": 1, "meta": {"a": 1}})[0]
    b = plan('{"seed": 1, "meta": {"a": 2}, "prompt": "p", "id": "x"}')[0]
    c = plan({"id": "x", "prompt": "p", "seed": 2})[0]
    d = plan({"id": "x", "prompt": "p", "seed": 1}, GenerationDefaults(watermark=True))[0]
    assert a is not None and b is not None and c is not None and d is not None
    assert a.fingerprint == b.fingerprint  # key order and meta do not matter
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3  # body and defaults do


def test_fingerprint_hashes_inline_images_by_content() -> None:
    def body(uri: str) -> dict[str, Any]:
        return {
            "model": "m",
            "input": {"messages": [{"role": "user", "content": [{"text": "t"}, {"image": uri}]}]},
            "parameters": {},
        }

    one, two = "data:image/png;base64,AAAA", "data:image/png;base64,AAAB"
    assert fingerprint(body(one)) == fingerprint(body("".join(["data:image/png;", "base64,AAAA"])))
    assert fingerprint(body(one)) != fingerprint(body(two))
    assert fingerprint(body(one)) != fingerprint(body(URL))
