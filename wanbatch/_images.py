"""Reference images as the API accepts them: classify a reference, sniff bytes, check the rules.

Owns: telling a URL from a ``data:`` URI from a local path (:func:`classify_ref`), reading the
format, size and alpha channel of an image from its first bytes (:func:`sniff`), and the API's
input-image rules (:func:`check_image`):

- formats JPEG/JPG, PNG, BMP, WEBP, recognised by their magic bytes, never by a file extension;
- at most 10 MB per image;
- width and height each 240-8000 px (the 2026 doc; the Dec-2025 doc said 384-5000);
- PNG without an alpha channel (colour type 4 or 6, or a ``tRNS`` chunk, is alpha).

Pure: stdlib only (``base64``, ``struct``, ``re``, ``urllib.parse``); no ``open()``, no clock.
Reading local files is :mod:`wanbatch._loader`'s job.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_SIDE_PX",
    "MIN_SIDE_PX",
    "ImageError",
    "ImageInfo",
    "RefKind",
    "check_image",
    "classify_ref",
    "data_uri",
    "local_path_of",
    "parse_data_uri",
    "sniff",
]

#: The service takes reference images of at most 10 MB.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: ... and 240-8000 px a side.
MIN_SIDE_PX = 240
MAX_SIDE_PX = 8000

#: MIME subtype written in a data URI -> the format name :func:`sniff` returns.
_DATA_URI_TYPES = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "bmp": "bmp", "webp": "webp"}
_MIME_OF_FORMAT = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "bmp": "image/bmp",
    "webp": "image/webp",
}
_DATA_URI = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,", re.ASCII)
#: A URI scheme (RFC 3986). A one-letter "scheme" is a Windows drive (C:\x.png), not a scheme.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
#: Base64 of MAX_IMAGE_BYTES, plus padding: longer payloads are refused before decoding.
_MAX_B64_CHARS = (MAX_IMAGE_BYTES + 2) // 3 * 4


class ImageError(ValueError):
    """A reference image breaks a rule; the message says which and how to fix it."""


class RefKind(Enum):
    """What an ``images`` entry is."""

    URL = "url"  #: http(s) URL: sent as-is, the service fetches it
    DATA = "data"  #: ``data:image/...;base64,`` URI: checked, sent as-is
    LOCAL = "local"  #: local path (or ``file:`` URI): read, checked, sent as a data URI


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What :func:`sniff` learnt from an image's bytes."""

    format: str  #: "png", "jpeg", "bmp" or "webp"
    width: int
    height: int
    has_alpha: bool  #: only computed for PNG (the only format the API restricts)
    nbytes: int

    @property
    def mime(self) -> str:
        """The MIME type to put in a data URI."""
        return _MIME_OF_FORMAT[self.format]


def classify_ref(ref: str) -> RefKind:
    """Say what kind of reference ``ref`` is.

    Raises:
        ImageError: empty, or a URI scheme other than http, https, data and file
            (``ftp:``, ``oss:``, ``javascript:``...), which the API would not fetch.
    """
    if not ref.strip():
        raise ImageError("empty image reference")
    m = _SCHEME.match(ref)
    if m is None:
        return RefKind.LOCAL
    scheme = m.group(1).lower()
    if scheme in ("http", "https"):
        parts = urlsplit(ref)
        if not parts.netloc:
            raise ImageError(f"URL has no host: {_short(ref)}")
        return RefKind.URL
    if scheme == "data":
        return RefKind.DATA
    if scheme == "file":
        return RefKind.LOCAL
    raise ImageError(
        f"unsupported scheme '{scheme}:' in {_short(ref)}; use an http(s):// URL, a "
        "data:image/...;base64, URI or a local file path"
    )


def local_path_of(ref: str) -> str:
    """The file system path a LOCAL reference names (``file:`` URIs decoded, others as-is).

    ``file:///abs/x.png`` and ``file://localhost/abs/x.png`` give ``/abs/x.png``;
    ``file:x.png`` gives the relative path ``x.png``.

    Raises:
        ImageError: a ``file://`` URI naming another host.
    """
    if ref[:5].lower() != "file:":
        return ref
    parts = urlsplit(ref)
    if parts.netloc not in ("", "localhost"):
        raise ImageError(f"file URI names a remote host '{parts.netloc}': {_short(ref)}")
    path = unquote(parts.path)
    if not path:
        raise ImageError(f"file URI has no path: {_short(ref)}")
    return path


def parse_data_uri(uri: str) -> tuple[str, bytes]:
    """Split ``data:image/<type>;base64,<payload>`` into (format, decoded bytes).

    Raises:
        ImageError: not that shape, a type the API does not accept, bad base64, or over 10 MB.
    """
    m = _DATA_URI.match(uri)
    if m is None:
        raise ImageError("data URI must look like data:image/<png|jpeg|jpg|bmp|webp>;base64,<data>")
    subtype = m.group(1).lower()
    fmt = _DATA_URI_TYPES.get(subtype)
    if fmt is None:
        raise ImageError(
            f"data URI type image/{subtype} is not accepted; the API takes JPEG, PNG, BMP or WEBP"
        )
    payload = uri[m.end() :]
    if len(payload) > _MAX_B64_CHARS:
        raise ImageError(_too_big(len(payload) * 3 // 4))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"data URI payload is not valid base64 ({exc})") from None
    return fmt, data


def data_uri(info: ImageInfo, data: bytes) -> str:
    """Encode checked image bytes as the data URI sent to the API."""
    return f"data:{info.mime};base64,{base64.b64encode(data).decode('ascii')}"


def check_image(data: bytes, *, declared: str | None = None) -> ImageInfo:
    """Apply the API's input-image rules to an image's bytes.

    Args:
        data: the whole file.
        declared: the format a data URI claimed (``"png"``, ``"jpeg"``...), if any; the bytes
            must agree with it.

    Raises:
        ImageError: with a message naming the broken rule.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(_too_big(len(data)))
    info = sniff(data)
    if declared is not None and declared != info.format:
        raise ImageError(f"data URI says image/{declared} but the data is {info.format.upper()}")
    if not (MIN_SIDE_PX <= info.width <= MAX_SIDE_PX and MIN_SIDE_PX <= info.height <= MAX_SIDE_PX):
        raise ImageError(
            f"image is {info.width}x{info.height} px; width and height must each be "
            f"{MIN_SIDE_PX}-{MAX_SIDE_PX} px"
        )
    if info.has_alpha:
        raise ImageError(
            "PNG has an alpha channel; the API accepts PNG without alpha only: "
            "flatten it onto a background or save it as JPEG"
        )
    return info


def sniff(data: bytes) -> ImageInfo:
    """Read format, dimensions and (for PNG) alpha from an image's bytes.

    Raises:
        ImageError: not a JPEG, PNG, BMP or WEBP, or too damaged to read its size.
    """
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _sniff_png(data)
    if head.startswith(b"\xff\xd8\xff"):
        return _sniff_jpeg(data)
    if head.startswith(b"BM"):
        return _sniff_bmp(data)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _sniff_webp(data)
    raise ImageError("not a JPEG, PNG, BMP or WEBP image (format read from the file's bytes)")


def _sniff_png(data: bytes) -> ImageInfo:
    # Chunks: length(4, BE) type(4) data crc(4); IHDR first (PNG spec 11.2.2).
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError("damaged PNG: no IHDR chunk")
    width, height, _depth, color_type = struct.unpack_from(">IIBB", data, 16)
    alpha = color_type in (4, 6)
    pos = 33  # 8 signature + 4 length + 4 type + 13 IHDR + 4 crc
    while not alpha and pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        ctype = data[pos + 4 : pos + 8]
        if ctype in (b"IDAT", b"IEND"):  # tRNS must come before IDAT
            break
        if ctype == b"tRNS":
            alpha = True
        pos += 12 + length
    return ImageInfo("png", width, height, alpha, len(data))


#: JPEG start-of-frame markers carry the size (all SOFn except DHT C4, JPG C8, DAC CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _sniff_jpeg(data: bytes) -> ImageInfo:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise ImageError("damaged JPEG: bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                break
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return ImageInfo("jpeg", width, height, False, len(data))
        pos += 2 + length
    raise ImageError("damaged JPEG: no frame header with the image size")


def _sniff_bmp(data: bytes) -> ImageInfo:
    if len(data) < 26:
        raise ImageError("damaged BMP: header too short")
    (dib_size,) = struct.unpack_from("<I", data, 14)
    if dib_size == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
    elif dib_size >= 40:  # BITMAPINFOHEADER and later: signed 32-bit, height < 0 = top-down
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        raise ImageError("damaged BMP: unknown header")
    return ImageInfo("bmp", abs(width), abs(height), False, len(data))


def _sniff_webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return ImageInfo("webp", w & 0x3FFF, h & 0x3FFF, False, len(data))
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return ImageInfo("webp", w, h, False, len(data))
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("webp", w, h, False, len(data))
    raise ImageError("damaged WEBP: no VP8/VP8L/VP8X header with the image size")


def _too_big(nbytes: int) -> str:
    return (
        f"image is {nbytes / 1_048_576:.1f} MB; the API accepts at most "
        f"{MAX_IMAGE_BYTES // 1_048_576} MB"
    )


def _short(ref: str, limit: int = 60) -> str:
    return repr(ref if len(ref) <= limit else ref[: limit - 3] + "...")
