"""wanbatch._images: reference kinds, format sniffing, and the API's input-image rules."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from wanbatch._images import (
    MAX_IMAGE_BYTES,
    ImageError,
    ImageInfo,
    RefKind,
    check_image,
    classify_ref,
    data_uri,
    local_path_of,
    parse_data_uri,
    sniff,
)


def encode(fmt: str, size: tuple[int, int] = (256, 256), mode: str = "RGB", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 40)[: len(mode)] if mode != "P" else 3).save(buf, fmt, **kw)
    return buf.getvalue()


def dims(info: ImageInfo) -> tuple[int, int]:
    return info.width, info.height


def png_chunks(width: int, height: int, color_type: int, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- classify_ref


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("https://example.com/a.png", RefKind.URL),
        ("HTTP://example.com/a.png", RefKind.URL),
        ("data:image/png;base64,AAAA", RefKind.DATA),
        ("images/a.png", RefKind.LOCAL),
        ("/abs/a.png", RefKind.LOCAL),
        ("C:\\pics\\a.png", RefKind.LOCAL),  # a drive letter, not a scheme
        ("./odd:name.png", RefKind.LOCAL),
        ("file:///abs/a.png", RefKind.LOCAL),
    ],
)
def test_classify_ref_kinds(ref: str, kind: RefKind) -> None:
    assert classify_ref(ref) is kind


@pytest.mark.parametrize(
    "ref", ["ftp://host/a.png", "oss://bucket/a.png", "javascript:alert(1)", "s3://b/k"]
)
def test_classify_ref_rejects_other_schemes(ref: str) -> None:
    with pytest.raises(ImageError, match="unsupported scheme"):
        classify_ref(ref)


@pytest.mark.parametrize("ref", ["", "   "])
def test_classify_ref_rejects_empty(ref: str) -> None:
    with pytest.raises(ImageError, match="empty"):
        classify_ref(ref)


def test_classify_ref_rejects_url_without_host() -> None:
    with pytest.raises(ImageError, match="no host"):
        classify_ref("https:///a.png")


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("file:///abs/a%20b.png", "/abs/a b.png"),
        ("file://localhost/abs/a.png", "/abs/a.png"),
        ("file:rel/a.png", "rel/a.png"),
        ("rel/a.png", "rel/a.png"),
    ],
)
def test_local_path_of(ref: str, path: str) -> None:
    assert local_path_of(ref) == path


def test_local_path_of_rejects_remote_host() -> None:
    with pytest.raises(ImageError, match="remote host"):
        local_path_of("file://server/share/a.png")


# ----------------------------------------------------------------------------- sniff


@pytest.mark.parametrize(
    ("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("BMP", "bmp"), ("WEBP", "webp")]
)
def test_sniff_reads_format_and_size_from_bytes(fmt: str, name: str) -> None:
    info = sniff(encode(fmt, (300, 260)))
    assert (info.format, info.width, info.height, info.has_alpha) == (name, 300, 260, False)


def test_sniff_webp_lossless_and_extended() -> None:
    assert dims(sniff(encode("WEBP", (301, 257), lossless=True))) == (301, 257)
    info = sniff(encode("WEBP", (302, 258), mode="RGBA"))  # VP8X with alpha: allowed for WEBP
    assert (info.width, info.height, info.has_alpha) == (302, 258, False)


def test_sniff_jpeg_skips_exif_and_progressive() -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 2000  # ImageDescription: a long APP1 segment before the frame
    data = encode("JPEG", (400, 250), exif=exif.tobytes(), progressive=True)
    assert dims(sniff(data)) == (400, 250)


@pytest.mark.parametrize(("color_type", "alpha"), [(2, False), (6, True), (4, True), (0, False)])
def test_sniff_png_alpha_by_color_type(color_type: int, alpha: bool) -> None:
    assert sniff(png_chunks(300, 300, color_type)).has_alpha is alpha


def test_sniff_png_trns_chunk_is_alpha() -> None:
    trns = struct.pack(">I", 6) + b"tRNS" + b"\x00" * 6 + b"\x00" * 4
    assert sniff(png_chunks(300, 300, 2, trns)).has_alpha is True


def test_sniff_png_palette_with_transparency_is_alpha() -> None:
    data = encode("PNG", (300, 300), mode="P", transparency=0)
    assert sniff(data).has_alpha is True


def test_sniff_bmp_top_down_height() -> None:
    data = bytearray(encode("BMP", (250, 260)))
    struct.pack_into("<i", data, 22, -260)
    assert dims(sniff(bytes(data))) == (250, 260)


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a" + b"\x00" * 40, b"hello world", b"\x89PNG\r\n\x1a\n"]
)
def test_sniff_rejects_unknown_or_damaged(data: bytes) -> None:
    with pytest.raises(ImageError):
        sniff(data)


def test_sniff_ignores_extension_like_text() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (300, 300)).save(gif, "GIF")
    with pytest.raises(ImageError, match="not a JPEG, PNG, BMP or WEBP"):
        sniff(gif.getvalue())


# ----------------------------------------------------------------------------- check_image


def test_check_image_accepts_bounds() -> None:
    assert check_image(encode("PNG", (240, 8000 // 10))).width == 240


@pytest.mark.parametrize("size", [(239, 300), (300, 239), (8001, 300)])
def test_check_image_rejects_out_of_range_sides(size: tuple[int, int]) -> None:
    data = png_chunks(*size, 2)  # header-only PNG: no need to encode 8000 px
    with pytest.raises(ImageError, match="240-8000 px"):
        check_image(data)


def test_check_image_rejects_png_alpha() -> None:
    with pytest.raises(ImageError, match="alpha"):
        check_image(encode("PNG", (300, 300), mode="RGBA"))


def test_check_image_rejects_over_10_mb() -> None:
    data = png_chunks(300, 300, 2) + b"\x00" * MAX_IMAGE_BYTES
    with pytest.raises(ImageError, match="at most 10 MB"):
        check_image(data)


def test_check_image_declared_type_must_match() -> None:
    with pytest.raises(ImageError, match="says image/png but the data is JPEG"):
        check_image(encode("JPEG"), declared="png")


# ----------------------------------------------------------------------------- data URIs


@pytest.mark.parametrize("subtype", ["png", "jpeg", "jpg", "bmp", "webp", "JPEG"])
def test_parse_data_uri_accepts_allowed_types(subtype: str) -> None:
    fmt, data = parse_data_uri(f"data:image/{subtype};base64,AAAA")
    assert data == b"\x00\x00\x00"
    assert fmt == {"jpg": "jpeg"}.get(subtype.lower(), subtype.lower())


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("data:image/gif;base64,AAAA", "image/gif is not accepted"),
        ("data:text/plain;base64,AAAA", "must look like"),
        ("data:image/png,AAAA", "must look like"),
        ("data:image/png;base64,A*AA", "not valid base64"),
        ("data:image/png;base64,AAA", "not valid base64"),
    ],
)
def test_parse_data_uri_rejects(uri: str, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        parse_data_uri(uri)


def test_parse_data_uri_refuses_oversize_before_decoding() -> None:
    with pytest.raises(ImageError, match="at most 10 MB"):
        parse_data_uri("data:image/png;base64," + "A" * (MAX_IMAGE_BYTES // 3 * 4 + 8))


def test_data_uri_round_trip() -> None:
    raw = encode("JPEG")
    uri = data_uri(check_image(raw), raw)
    assert uri.startswith("data:image/jpeg;base64,")
    assert parse_data_uri(uri) == ("jpeg", raw)
    assert base64.b64decode(uri.split(",", 1)[1]) == raw
