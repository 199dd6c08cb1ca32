"""Property: any job line the loader accepts builds a request the mock accepts (HTTP 200).

The loader's rules mirror the service's so that nothing it would reject is paid for. The mock
is an independent reading of the same API docs (it imports nothing from wanbatch), so this
checks the two readings against each other on generated lines, good and bad. Lines the loader
rejects send nothing. Requests go to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from wanbatch._config import GenerationDefaults
from wanbatch._jobs import PlannedJob
from wanbatch._loader import iter_jobs

mock = pytest.importorskip("wanbatch.mock")

GENERATION_PATH = "/services/aigc/multimodal-generation/generation"


def _image(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (90, 140, 200, 128)[: len(mode)]).save(buf, fmt)
    return buf.getvalue()


def _data_uri(subtype: str, data: bytes) -> str:
    return f"data:image/{subtype};base64," + base64.b64encode(data).decode("ascii")


# A pool of references, valid and not: local files are written once per module.
LOCAL_FILES = {
    "refs/ok.png": _image("PNG", (256, 256)),
    "refs/ok.jpg": _image("JPEG", (300, 240)),
    "refs/ok.webp": _image("WEBP", (240, 400)),
    "refs/ok.bmp": _image("BMP", (250, 250)),
    "refs/alpha.png": _image("PNG", (256, 256), "RGBA"),
    "refs/small.png": _image("PNG", (100, 256)),
}
GOOD_REFS = [
    "https://example.com/ref.png",
    "http://example.com/a/b.jpg?x=1",
    "refs/ok.png",
    "refs/ok.jpg",
    "./refs/ok.webp",
    "refs/ok.bmp",
    _data_uri("png", LOCAL_FILES["refs/ok.png"]),
    _data_uri("jpeg", LOCAL_FILES["refs/ok.jpg"]),
]
BAD_REFS = [
    "refs/alpha.png",
    "refs/small.png",
    "refs/missing.png",
    "refs",
    "ftp://example.com/a.png",
    "oss://bucket/a.png",
    _data_uri("png", LOCAL_FILES["refs/ok.jpg"]),  # declared type disagrees with the bytes
    _data_uri("png", LOCAL_FILES["refs/alpha.png"]),
    "data:image/gif;base64,R0lGODlh",
]
EDIT_SIZES = ["1K", "2K", "768*768", "2048*2048", "2048*512", "512*2048", "1344*576", "1600*400"]
INTERLEAVE_SIZES = ["768*768", "1280*1280", "1280*720", "720*1280", "2048*512", "1600*1000"]
BAD_SIZES = ["1k", "767*767", "2049*2048", "3000*700", "1000x1000", "*", "", "1281*1280"]
TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
#: One field set to a value near or past a rule's edge.
MUTATIONS: list[tuple[str, Any]] = [
    ("seed", 2147483647),
    ("n", 0),
    ("n", 5),
    ("n", 2),
    ("n", 4),
    ("max_images", 0),
    ("max_images", 6),
    ("max_images", 5),
    ("seed", -1),
    ("seed", 2147483648),
    ("seed", 0),
    ("size", "1K"),
    ("size", "2K"),
    ("size", "1280*1280"),
    ("size", "2048*2048"),
    ("prompt", "   "),
    ("prompt", "a" * 2001),
    ("negative_prompt", "n" * 501),
    ("enable_interleave", True),
    ("enable_interleave", False),
    ("images", []),
    ("parameters", {"seed": 3}),
    ("parameters", {"stream": True}),
    ("id", "CON"),
    ("id", "x."),
    ("model", "wan2.5"),
]


@st.composite
def job_lines(draw: st.DrawFn) -> dict[str, Any]:
    """A job line of either mode, mostly valid, with at most one field pushed to an edge."""
    kind = draw(st.sampled_from(["text", "edit", "interleave-1", "messages"]))
    prompt = draw(st.one_of(TEXT, st.just("画一只猫 in the rain")))
    bad = st.sampled_from(BAD_REFS)
    good = st.sampled_from(GOOD_REFS)
    ref = st.one_of(good, good, good, good, good, bad)  # about 1 bad reference in 6
    job: dict[str, Any] = {}
    if kind == "text":
        images: list[str] = []
        sizes = INTERLEAVE_SIZES
    elif kind == "interleave-1":
        images = [draw(ref)]
        job["enable_interleave"] = True
        job["max_images"] = draw(st.integers(1, 5))
        sizes = INTERLEAVE_SIZES
    else:
        images = draw(st.lists(ref, min_size=1, max_size=4))
        if draw(st.booleans()):
            job["n"] = draw(st.integers(1, 4))
        sizes = EDIT_SIZES
    if kind == "messages":
        content: list[dict[str, str]] = [{"image": r} for r in images]
        content.insert(draw(st.integers(0, len(content))), {"text": prompt})
        job["messages"] = [{"role": "user", "content": content}]
    else:
        job["prompt"] = prompt
        if images:
            job["images"] = images
    if draw(st.booleans()):
        job["size"] = draw(st.sampled_from(sizes + BAD_SIZES[:2]))
    for name, strategy in {
        "seed": st.integers(0, 2147483647),
        "prompt_extend": st.booleans(),
        "watermark": st.booleans(),
        "negative_prompt": TEXT,
        "parameters": st.sampled_from([{}, {"future_knob": 1}, {"is_async": False}]),
        "meta": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
        "id": st.sampled_from(["job-1", "a.b_c", "Z"]),
    }.items():
        if draw(st.booleans()):
            job[name] = draw(strategy)
    # Hypothesis favours small draws: 0 (the simplest) leaves the line unmutated.
    if draw(st.integers(0, 2)) == 2:
        name, value = draw(st.sampled_from(MUTATIONS))
        if not (name in ("prompt", "images") and "messages" in job):
            job[name] = value
    return job


DEFAULTS = st.sampled_from(
    [
        GenerationDefaults(),
        GenerationDefaults(n=2, max_images=3, seed=7, watermark=False, prompt_extend=False),
        GenerationDefaults(size="1280*1280", negative_prompt="blurry"),
    ]
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("property")
    for name, data in LOCAL_FILES.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    config = mock.MockConfig(image_size=(16, 16))
    with mock.serve_in_thread(config) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        yield server.base_url
        counts = server.counters()
        # Not vacuous: accepted lines did reach the mock, and every call it got was a 200.
        assert counts.calls >= 10, counts
        assert counts.calls_by_outcome == {"200": counts.calls}, counts.calls_by_outcome


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def post(base_url: str, job: PlannedJob) -> tuple[int, str]:
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    if job.interleave:
        headers["X-DashScope-Sse"] = "enable"
    request = urllib.request.Request(
        base_url + GENERATION_PATH, data=json.dumps(job.body).encode(), headers=headers
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(job=job_lines(), defaults=DEFAULTS)
def test_accepted_lines_build_requests_the_mock_accepts(
    workdir: Path, base_url: str, job: dict[str, Any], defaults: GenerationDefaults
) -> None:
    path = workdir / "jobs.jsonl"
    path.write_text(json.dumps(job) + "\n", encoding="utf-8")
    items = list(iter_jobs(path, defaults, skip_invalid=True))  # a bad line: 1+ errors
    item = items[0]
    if not isinstance(item, PlannedJob):
        return  # rejected lines send nothing (both outcomes occur: see the test below)
    assert len(items) == 1
    status, text = post(base_url, item)
    assert status == 200, f"mock refused a line the loader accepted: {status} {text}\n{job}"
    if item.interleave:
        assert "data:" in text  # an SSE stream, read to its end


def test_generator_reaches_both_outcomes(workdir: Path) -> None:
    """Guard against a vacuous property: the strategy yields accepted and rejected lines."""
    outcomes: list[tuple[bool, bool]] = []

    @settings(max_examples=100, deadline=None, database=None)
    @given(job=job_lines())
    def probe(job: dict[str, Any]) -> None:
        path = workdir / "probe.jsonl"
        path.write_text(json.dumps(job) + "\n", encoding="utf-8")
        item = next(iter_jobs(path, GenerationDefaults(), skip_invalid=True))
        if isinstance(item, PlannedJob):
            outcomes.append((True, item.interleave))
        else:
            outcomes.append((False, False))

    probe()
    accepted = [o for o in outcomes if o[0]]
    assert 0.15 <= len(accepted) / len(outcomes) <= 0.9, len(accepted)
    assert {interleave for _, interleave in accepted} == {True, False}
