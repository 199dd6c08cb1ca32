"""The client's job rules and the mock's request rules agree, for every model.

The two are separate readings of the service's documentation (the mock imports nothing from the
client), so agreement on generated jobs is evidence that both read it the same way. Each
generated job is judged twice: by the client's validation of a job file
(:func:`wanbatch._validate.validate_file`, as ``wanbatch validate`` and every run do) and by the
mock's :func:`validate_generation` on the body the job asks for, built
here by a small translator of the job format (not by the client's code).

wan2.7-only fields are generated for the wan2.7 models only: on ``wan2.6-image`` the client
refuses them while the mock, like the service with unknown keys (the SDK's ``is_async``), lets
them pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mock_helpers import data_uri

from wanbatch._config import GenerationDefaults
from wanbatch._validate import validate_file
from wanbatch.mock._errors import Rejection
from wanbatch.mock._validate import validate_generation

MODELS = ("wan2.6-image", "wan2.7-image", "wan2.7-image-pro")
SIZES = [
    "1K", "2K", "4K", "8K", "1024*1024", "2048*2048", "4096*4096", "4096*4097", "2048*256",
    "2048*255", "256*2048", "1280*320", "1280*319", "767*767", "768*768", "1280*1280",
    "1281*1280", "3000*3000", "2048*2049", "abc", "0*0", "1k",
]  # fmt: skip

#: Reference images: URLs (not fetched), and inline ones of sizes around the rules' edges
#: (240 px a side at least; a ratio of 8:1 at most for the wan2.7 models).
IMAGES = [
    *(f"https://example.com/ref{k}.png" for k in range(6)),
    data_uri(320, 320),
    data_uri(1920, 240),
    data_uri(240, 1921),
    data_uri(2000, 240),
    data_uri(239, 300),
]
texts = st.one_of(
    st.sampled_from(["a red fox", "  ", "", "x" * 2100, "y" * 5100]),
    st.text(min_size=0, max_size=30),
)
palette_entry = st.fixed_dictionaries(
    {
        "hex": st.sampled_from(["#FF0000", "#00ff00", "#0000FF", "#12345", "red", "#GGGGGG"]),
        "ratio": st.sampled_from(["25.00%", "50.00%", "20.00%", "10.00%", "5.00%", "25%", "0.50"]),
    }
)
palettes = st.one_of(
    st.lists(palette_entry, min_size=0, max_size=11),
    # Valid ones, often: k colours splitting 100.00% evenly where it divides.
    st.sampled_from([2, 4, 5, 10]).map(
        lambda k: [
            {"hex": f"#{i:06X}", "ratio": f"{100 // k}.{(10000 // k) % 100:02d}%"} for i in range(k)
        ]
    ),
)
boxes = st.one_of(
    st.sampled_from([[0, 0, 10, 10], [5, 5, 5, 9], [1, 2, 300, 200], [-1, 0, 4, 4], [0, 0, 1]]),
    st.lists(st.integers(-2, 400), min_size=4, max_size=4),
)
bbox_lists = st.lists(st.lists(boxes, max_size=3), max_size=10)


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(st.sampled_from((*MODELS, None)))
    job: dict[str, Any] = {"prompt": draw(texts)}
    if model is not None:
        job["model"] = model
    count = draw(st.one_of(st.integers(0, 2), st.integers(0, 11)))
    if count or draw(st.booleans()):
        job["images"] = [draw(st.sampled_from(IMAGES)) for _ in range(count)]
    optional: dict[str, st.SearchStrategy[Any]] = {
        "size": st.sampled_from(SIZES),
        "n": st.integers(0, 14),
        "seed": st.sampled_from([-1, 0, 7, 2147483647, 2147483648]),
        "watermark": st.booleans(),
    }
    if model in ("wan2.7-image", "wan2.7-image-pro"):
        optional.update(
            enable_sequential=st.booleans(),
            thinking_mode=st.booleans(),
            color_palette=palettes,
            bbox_list=st.one_of(
                bbox_lists,
                st.just([[[10, 10, 100, 100]]] + [[]] * max(0, count - 1)),
            ),
            # 2.6 fields a 2.7 model does not take: both sides refuse them.
            enable_interleave=st.booleans(),
            max_images=st.integers(1, 5),
            prompt_extend=st.booleans(),
            negative_prompt=st.just("blurry"),
        )
    else:
        optional.update(
            enable_interleave=st.booleans(),
            max_images=st.integers(0, 6),
            prompt_extend=st.booleans(),
            negative_prompt=st.sampled_from(["blurry", "z" * 600]),
        )
    sparse = draw(st.sampled_from([2, 4, 10, 30]))  # some jobs set many fields, some few
    for name, strategy in optional.items():
        if draw(st.integers(1, sparse)) == 1:
            job[name] = draw(strategy)
    return job


def request_body(job: dict[str, Any]) -> dict[str, Any]:
    """The body the job format asks for (docs/job-format.md), written from the docs."""
    model = job.get("model", "wan2.6-image")
    content: list[dict[str, str]] = [{"text": job["prompt"]}]
    content += [{"image": ref} for ref in job.get("images", [])]
    params = {k: v for k, v in job.items() if k not in ("model", "prompt", "images")}
    if model == "wan2.6-image":
        # No image and no flag: interleaved mode, which streams; n goes with editing only.
        interleave = params.setdefault("enable_interleave", not job.get("images"))
        if interleave:
            params["stream"] = True
            params.setdefault("max_images", 1)
        else:
            params.setdefault("n", 1)  # max_images stays: ignored, but checked, in editing mode
    else:
        params.setdefault("n", 1)
    return {
        "model": model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": params,
    }


def client_valid(job: dict[str, Any], folder: Path) -> bool:
    path = folder / "job.jsonl"
    path.write_text(json.dumps(job) + "\n", encoding="utf-8")
    return validate_file(path, GenerationDefaults()).ok


def mock_valid(job: dict[str, Any]) -> bool:
    try:
        validate_generation(request_body(job))
    except Rejection:
        return False
    return True


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agree")


@settings(max_examples=1500, deadline=None, database=None)
@given(job=jobs())
def test_client_and_mock_agree_on_what_is_valid(job: dict[str, Any], folder: Path) -> None:
    assert client_valid(job, folder) == mock_valid(job), job


def test_the_generator_reaches_both_verdicts_for_every_model(folder: Path) -> None:
    """Not a vacuous agreement: for each model, valid and invalid jobs are generated."""
    seen: set[tuple[str, bool]] = set()

    @settings(max_examples=1000, deadline=None, database=None)
    @given(jobs())
    def collect(job: dict[str, Any]) -> None:
        seen.add((job.get("model", "wan2.6-image"), client_valid(job, folder)))

    collect()
    assert seen == {(m, v) for m in MODELS for v in (True, False)}
