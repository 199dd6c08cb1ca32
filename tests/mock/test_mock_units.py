"""The mock's pure parts: request validation, sizing, image sniffing, PNGs, signing, dice."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from mock_helpers import body, data_uri, image_bytes
from PIL import Image

from wanbatch.mock._behaviour import Behaviour
from wanbatch.mock._config import MockConfig
from wanbatch.mock._errors import Rejection
from wanbatch.mock._imageinfo import sniff_image
from wanbatch.mock._png import PngCache, encode_png
from wanbatch.mock._signing import UrlSigner
from wanbatch.mock._sizing import output_size, parse_size
from wanbatch.mock._validate import validate_generation


def rejected(payload: object) -> Rejection:
    with pytest.raises(Rejection) as caught:
        validate_generation(payload)
    return caught.value


def with_content(*content: object) -> dict[str, Any]:
    payload = body()
    payload["input"]["messages"][0]["content"] = list(content)
    return payload


TEXT = {"text": "p"}
IMG = {"image": "https://example.com/a.png"}


@pytest.mark.parametrize(
    ("payload", "status", "code", "fragment"),
    [
        (body() | {"model": "wan2.5-image"}, 404, "ModelNotFound", ""),
        ({"input": body()["input"]}, 400, "BadRequest.EmptyModel", "model"),
        ({"model": "wan2.6-image"}, 400, "BadRequest.EmptyInput", "input"),
        ([], 400, "InvalidParameter", "object"),
        (body() | {"parameters": []}, 400, "InvalidParameter", "parameters"),
        (body() | {"input": {"messages": []}}, 400, "InvalidParameter", "exactly 1"),
        (with_content(IMG), 400, "InvalidParameter", "exactly one text"),
        (with_content(TEXT, TEXT, IMG), 400, "InvalidParameter", "exactly one text"),
        (with_content({"text": "  "}, IMG), 400, "InvalidParameter", "non-empty"),
        (with_content(TEXT, {"image": "x", "text": "y"}), 400, "InvalidParameter", "exactly one"),
        (with_content(TEXT), 400, "InvalidParameter", "1 to 4"),
        (with_content(TEXT, *[IMG] * 5), 400, "InvalidParameter", "1 to 4"),
        (body(n=0), 400, "InvalidParameter", "n"),
        (body(n=5), 400, "InvalidParameter", "n"),
        (body(n=2.0), 400, "InvalidParameter", "integer"),
        (body(n=True), 400, "InvalidParameter", "integer"),
        (body(max_images=6), 400, "InvalidParameter", "max_images"),
        (body(seed=-1), 400, "InvalidParameter", "seed"),
        (body(seed=2147483648), 400, "InvalidParameter", "seed"),
        (body(watermark="false"), 400, "InvalidParameter", "boolean"),
        (body(prompt_extend=1), 400, "InvalidParameter", "boolean"),
        (body(enable_interleave="true"), 400, "InvalidParameter", "boolean"),
        (body(negative_prompt=3), 400, "InvalidParameter", "negative_prompt"),
        (body(size="3K"), 400, "InvalidParameter", "size"),
        (body(size="700*700"), 400, "InvalidParameter", "768*768"),
        (body(size="2048*2064"), 400, "InvalidParameter", "2048*2048"),
        (body(size="2000*480"), 400, "InvalidParameter", "1:4"),
        (body(size=1024), 400, "InvalidParameter", "size"),
        (
            body(images=[data_uri(), data_uri()], enable_interleave=True),
            400,
            "InvalidParameter",
            "0 to 1",
        ),
        (
            body(images=[], enable_interleave=True, size="1300*1300"),
            400,
            "InvalidParameter",
            "1280",
        ),
        (body(images=["ftp://x/a.png"]), 400, "InvalidParameter", "url error"),
        (body(images=["/tmp/a.png"]), 400, "InvalidParameter", "url error"),
        (body(images=["https:///a.png"]), 400, "InvalidParameter", "url error"),
        (body(images=[{"url": "x"}]), 400, "InvalidParameter", "url error"),
        (body(images=["data:image/gif;base64,R0lG"]), 400, "InvalidParameter", "data URI"),
        (body(images=["data:image/png;base64,@@@"]), 400, "InvalidParameter", "base64"),
        (body(images=["data:image/png;base64,aGVsbG8="]), 400, "InvalidParameter", "format"),
        (body(images=[data_uri(239, 320)]), 400, "InvalidParameter", "240"),
        (body(images=[data_uri(320, 320, mode="RGBA")]), 400, "InvalidParameter", "alpha"),
        (body(images=[data_uri(320, 320, mode="LA")]), 400, "InvalidParameter", "alpha"),
        (
            body(images=["data:image/png;base64," + "A" * (14 * 1024 * 1024)]),
            400,
            "InvalidParameter",
            "10 MB",
        ),
        (
            body(images=["http://cdn.example.invalid/a.png"]),
            400,
            "InternalError.Algo.InvalidParameter",
            "Failed to download",
        ),
        (body(images=[], enable_interleave=True, n=2), 400, "InvalidParameter", "must be 1"),
    ],
)
def test_rejections(payload: object, status: int, code: str, fragment: str) -> None:
    rejection = rejected(payload)
    assert (rejection.status, rejection.code) == (status, code)
    assert fragment in rejection.message


def test_deferred_problems_are_raised_after_structural_ones() -> None:
    # An unreachable URL (found by the worker) must not hide a bad n (found at the gateway).
    problem = rejected(body(images=["http://a.invalid/x.png"], n=9))
    assert not problem.deferred and "n" in problem.message
    assert rejected(body(images=[], enable_interleave=True, n=2)).deferred


def test_paletted_png_with_trns_counts_as_alpha() -> None:
    image = Image.new("P", (256, 256))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert "alpha" in rejected(body(images=[uri])).message


def test_accepted_requests_get_defaults_and_truncation() -> None:
    request = validate_generation(
        body(
            "p" * 2100, images=[data_uri(300, 600), "oss://bucket/x.png"], negative_prompt="n" * 600
        )
    )
    assert request.n == 4 and request.max_images == 5 and not request.interleave
    assert len(request.prompt) == 2000 and len(request.negative_prompt or "") == 500
    assert request.last_image_size is None  # an oss:// image has no known size
    interleave = validate_generation(body(images=[], enable_interleave=True, stream=True, n=1))
    assert interleave.images_to_make == 5 and interleave.n == 1
    assert validate_generation(body(seed=0, is_async=True, extra={"x": 1})).seed == 0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP"])
@pytest.mark.parametrize("size", [(240, 8000), (321, 257)])
def test_sniff_reads_sizes_of_every_accepted_format(fmt: str, size: tuple[int, int]) -> None:
    info = sniff_image(image_bytes(*size, fmt=fmt))
    assert info is not None
    assert (info.width, info.height, info.has_alpha) == (*size, False)
    assert validate_generation(body(images=[data_uri(*size, fmt=fmt)])).last_image_size == size


def test_sniff_lossless_and_extended_webp() -> None:
    lossless = io.BytesIO()
    Image.new("RGB", (300, 250)).save(lossless, "WEBP", lossless=True)
    info = sniff_image(lossless.getvalue())
    assert info is not None and (info.width, info.height) == (300, 250)
    extended = io.BytesIO()
    Image.new("RGBA", (260, 270)).save(extended, "WEBP")
    info = sniff_image(extended.getvalue())
    assert info is not None and (info.width, info.height) == (260, 270)
    assert sniff_image(b"GIF89a") is None


@pytest.mark.parametrize(
    ("size", "interleave", "last", "expected"),
    [
        ((1000, 777), False, None, (992, 768)),
        ("1K", False, None, (1280, 1280)),
        ("2K", False, (1920, 1080), (2736, 1536)),
        ("1K", False, (8000, 240), (2560, 640)),  # ratio clamped to 4:1
        (None, False, None, (1280, 1280)),
        (None, True, None, (1280, 1280)),
        (None, True, (800, 600), (800, 592)),
        (None, True, (4000, 3000), (1472, 1104)),
    ],
)
def test_output_size(
    size: Any, interleave: bool, last: tuple[int, int] | None, expected: tuple[int, int]
) -> None:
    width, height = output_size(size, interleave=interleave, last_image=last)
    assert (width, height) == expected
    assert width % 16 == 0 and height % 16 == 0


def test_parse_size_bounds() -> None:
    assert parse_size("768*768", interleave=True) == (768, 768)
    assert parse_size("1280*1280", interleave=True) == (1280, 1280)
    assert parse_size("2048*2048", interleave=False) == (2048, 2048)
    assert parse_size("512*2048", interleave=False) == (512, 2048)  # exactly 1:4
    assert parse_size("2K", interleave=False) == "2K"
    for bad in ("1k", "0*5000", "1024x1024", " 1024*1024"):
        with pytest.raises(Rejection):
            parse_size(bad, interleave=False)


@pytest.mark.parametrize("size", [(1, 1), (17, 3), (640, 480)])
def test_png_is_valid_rgb(size: tuple[int, int]) -> None:
    data = encode_png(*size, variant=2)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", size)
    assert sniff_image(data) == sniff_image(data) and not sniff_image(data).has_alpha  # type: ignore[union-attr]


def test_png_cache_is_bounded_and_variants_differ() -> None:
    cache = PngCache(max_bytes=100_000)
    first = cache.get((100, 100, 0), lambda: encode_png(100, 100, 0))
    assert cache.get((100, 100, 0), lambda: b"not encoded again") is first
    assert cache.get((100, 100, 1), lambda: encode_png(100, 100, 1)) != first
    for side in range(110, 160, 10):
        cache.get((side, side, 0), lambda side=side: encode_png(side, side))
    assert 0 < sum(len(v) for v in cache._items.values()) <= 100_000
    assert (100, 100, 0) not in cache._items  # the oldest went first


def test_signer() -> None:
    signer = UrlSigner(b"k" * 32)
    path = "/bucket/a.png"
    signature = signer.signature(path, 1700000000)
    assert signer.verify(path, "1700000000", signature)
    assert not signer.verify(path, "1700000001", signature)
    assert not signer.verify("/bucket/b.png", "1700000000", signature)
    assert not signer.verify(path, "soon", signature)
    assert not UrlSigner(b"x" * 32).verify(path, "1700000000", signature)
    assert "Signature=" in signer.query(path, 1) and signer.access_key_id.startswith("LTAI")


def test_rate_window_and_seeded_jitter() -> None:
    behaviour = Behaviour(MockConfig(rps=2, latency=1.0, latency_jitter=0.5, seed=4))
    assert [behaviour.admit_rate(t) for t in (0.0, 0.1, 0.2, 0.9)] == [True, True, False, False]
    assert behaviour.admit_rate(1.05) and not behaviour.admit_rate(1.06)
    samples = [behaviour.latency() for _ in range(50)]
    assert all(0.5 <= s <= 1.5 for s in samples) and len(set(samples)) > 1
    again = Behaviour(MockConfig(rps=2, latency=1.0, latency_jitter=0.5, seed=4))
    assert [again.latency() for _ in range(50)] == samples
