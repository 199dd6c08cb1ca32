"""Pure: read an input image's format, dimensions and alpha from its first bytes.

Only headers are parsed (PNG IHDR/tRNS, JPEG SOF, BMP info header, WEBP VP8/VP8L/VP8X), so
checking a reference image costs microseconds. Nothing here decodes pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ImageInfo", "sniff_image"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says: ``format`` ("png", "jpeg", "bmp", "webp"), size if readable, alpha."""

    format: str
    width: int | None
    height: int | None
    has_alpha: bool = False


def sniff_image(data: bytes) -> ImageInfo | None:
    """Identify ``data`` by its magic bytes; ``None`` if it is none of the accepted formats.

    A recognised format whose header is too short or odd gives an ``ImageInfo`` with
    ``width``/``height`` ``None`` rather than a guess.
    """
    if data.startswith(_PNG_MAGIC):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def _png(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return ImageInfo("png", None, None)
    width, height, _depth, color_type = struct.unpack(">IIBB", data[16:26])
    # Colour types 4 (grey+alpha) and 6 (RGBA) carry alpha; so does a tRNS chunk (the API takes
    # PNG without alpha only).
    alpha = color_type in (4, 6)
    pos = 8
    while not alpha and pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        alpha = kind == b"tRNS"
        pos += 12 + length
    return ImageInfo("png", width, height, alpha)


def _jpeg(data: bytes) -> ImageInfo:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageInfo("jpeg", width, height)
        if marker == 0xDA:  # start of scan: no SOF before the data
            break
        pos += 2 + length
    return ImageInfo("jpeg", None, None)


def _bmp(data: bytes) -> ImageInfo:
    if len(data) < 26:
        return ImageInfo("bmp", None, None)
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    # A negative height means a top-down bitmap.
    return ImageInfo("bmp", abs(width), abs(height))


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageInfo("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageInfo(
            "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
        )
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("webp", width, height, bool(data[20] & 0x10))
    return ImageInfo("webp", None, None)
