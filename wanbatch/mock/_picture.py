"""Pure: the PNG a served image shows, drawn from what was asked, so images tell jobs apart.

A picture is an 8-bit RGB PNG at the requested size:

- its background colour comes from a hash of the prompt (one prompt, one colour);
- a mirrored 8x8 block pattern (an "identicon") and its colour come from a hash of the prompt and
  the seed, so the same prompt with another seed looks different;
- a light panel in the middle shows the image's index in its answer (0, 1, ...: the ``-K`` of
  wanbatch's ``ID-K.png``) in big digits;
- text chunks hold ``prompt``, ``seed`` and ``index`` (``tEXt``; ``iTXt`` for a prompt that is
  not Latin-1), and ``Software``.

The same (prompt, seed, index, size) always gives the same bytes. Every row is flat runs of
colour, so each distinct row is built once as spans and written with the PNG "Sub" filter (zero
inside a run), a row equal to the one above with the "Up" filter (all zero); zlib's run-length
strategy then makes a 1280x1280 picture a few kilobytes in about 10 ms.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import struct
import zlib

__all__ = ["draw_picture"]

#: The pattern is GRID x GRID blocks, mirrored left to right.
GRID = 8
#: 3x5 digit glyphs, one string of 0/1 per glyph row.
_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}
_PANEL = bytes((246, 246, 242))
_INK = bytes((24, 24, 28))
_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: A row as runs of one colour: (3 RGB bytes, pixels).
Span = tuple[bytes, int]


def draw_picture(width: int, height: int, *, prompt: str, seed: int, index: int) -> bytes:
    """The PNG of image ``index`` of a call with ``prompt`` and ``seed``, ``width`` x ``height``."""
    if width < 1 or height < 1:
        raise ValueError(f"PNG size must be positive, got {width}x{height}")
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    prompt_hash = hashlib.sha256(prompt.encode("utf-8", "replace")).digest()
    pattern_hash = hashlib.sha256(prompt_hash + str(seed).encode()).digest()
    background = _colour(prompt_hash, saturation=(0.35, 0.6), value=(0.78, 0.95))
    ink = _colour(pattern_hash, saturation=(0.55, 0.9), value=(0.3, 0.55))
    # 4 bits a row, mirrored: 32 bits of the hash choose which blocks are painted.
    blocks = [[bool(pattern_hash[4 + r] >> c & 1) for c in range(GRID // 2)] for r in range(GRID)]
    layout = _Layout(width, height, str(index))

    rows: dict[tuple[int, int | None], bytes] = {}
    keys: list[tuple[int, int | None]] = []
    for y in range(height):
        key = (y * GRID // height, layout.panel_row(y))
        keys.append(key)
        if key not in rows:
            spans = _pattern_row(width, blocks[key[0]], background, ink)
            rows[key] = _sub_filtered(layout.paint(spans, key[1]))

    # One run of equal rows: its first row, then rows "the same as above".
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    same_as_above = b"\x02" + bytes(width * 3)
    parts: list[bytes] = []
    start = 0
    for y in range(1, height + 1):
        if y == height or keys[y] != keys[start]:
            parts.append(compressor.compress(rows[keys[start]]))
            parts.append(compressor.compress(same_as_above * (y - start - 1)))
            start = y
    parts.append(compressor.flush())

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no alpha
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _text(b"prompt", prompt),
            _text(b"seed", str(seed)),
            _text(b"index", str(index)),
            _text(b"Software", "wanbatch mock"),
            _chunk(b"IDAT", b"".join(parts)),
            _chunk(b"IEND", b""),
        )
    )


class _Layout:
    """Where the index panel and its digits go: a panel of 7 glyph pixels high, centred."""

    def __init__(self, width: int, height: int, text: str) -> None:
        self.text = text
        columns = 4 * len(text) + 1  # 3 per digit, 1 between digits, 1 of margin each side
        self.scale = min(height * 2 // 5 // 7, width * 3 // 5 // columns)
        self.width = columns * self.scale
        self.x0 = (width - self.width) // 2
        self.y0 = (height - 7 * self.scale) // 2

    def panel_row(self, y: int) -> int | None:
        """``None`` outside the panel, -1 on its margin, else the glyph row (0-4) at ``y``."""
        if self.scale < 1:
            return None
        row = (y - self.y0) // self.scale
        if y < self.y0 or row >= 7:
            return None
        return row - 1 if 1 <= row <= 5 else -1

    def paint(self, spans: list[Span], glyph_row: int | None) -> list[Span]:
        """``spans`` with the panel (and the digits' ``glyph_row``) painted over them."""
        if glyph_row is None:
            return spans
        spans = _paint(spans, self.x0, self.x0 + self.width, _PANEL)
        if glyph_row < 0:
            return spans
        for k, digit in enumerate(self.text):
            for j, bit in enumerate(_DIGITS[digit][glyph_row]):
                if bit == "1":
                    x = self.x0 + self.scale * (1 + 4 * k + j)
                    spans = _paint(spans, x, x + self.scale, _INK)
        return spans


def _colour(digest: bytes, *, saturation: tuple[float, float], value: tuple[float, float]) -> bytes:
    """An RGB colour from ``digest``: any hue, saturation and value within the given ranges."""
    hue = int.from_bytes(digest[:2], "big") / 65536
    s = saturation[0] + (saturation[1] - saturation[0]) * digest[2] / 255
    v = value[0] + (value[1] - value[0]) * digest[3] / 255
    return bytes(round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, s, v))


def _pattern_row(width: int, half: list[bool], background: bytes, ink: bytes) -> list[Span]:
    """One row of blocks: ``half`` says which of the left half's blocks are painted, mirrored."""
    painted = [*half, *reversed(half)]
    spans: list[Span] = []
    for c, on in enumerate(painted):
        start, end = c * width // GRID, (c + 1) * width // GRID
        if end > start:
            spans.append((ink if on else background, end - start))
    return spans


def _paint(spans: list[Span], x0: int, x1: int, colour: bytes) -> list[Span]:
    """``spans`` with pixels ``[x0, x1)`` (``0 <= x0 < x1 <= width``) set to ``colour``."""
    out: list[Span] = []
    painted = False
    x = 0
    for span_colour, length in spans:
        end = x + length
        if x < x0:
            out.append((span_colour, min(end, x0) - x))
        if end > x1:
            if not painted:
                out.append((colour, x1 - x0))
                painted = True
            out.append((span_colour, end - max(x, x1)))
        x = end
    if not painted:
        out.append((colour, x1 - x0))
    return out


def _sub_filtered(spans: list[Span]) -> bytes:
    """The row with PNG filter 1 (Sub): each byte minus the same channel of the pixel before."""
    parts = [b"\x01"]
    previous = b"\x00\x00\x00"
    for colour, length in spans:
        parts.append(_step(colour, previous))
        parts.append(bytes(3 * (length - 1)))
        previous = colour
    return b"".join(parts)


@functools.lru_cache(maxsize=256)
def _step(colour: bytes, previous: bytes) -> bytes:
    """The Sub-filtered bytes of a pixel of ``colour`` after one of ``previous``."""
    return bytes((a - b) & 0xFF for a, b in zip(colour, previous, strict=True))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text(keyword: bytes, text: str) -> bytes:
    """A ``tEXt`` chunk (Latin-1), or an uncompressed ``iTXt`` (UTF-8) if Latin-1 cannot hold it."""
    text = text.replace("\x00", " ")
    try:
        return _chunk(b"tEXt", keyword + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, NUL, no compression (0, 0), empty language tag and translated keyword.
        return _chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + text.encode("utf-8", "replace"))
