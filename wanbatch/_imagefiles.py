"""Local reference images read once per run: :class:`ImageResolver` and its bounded cache.

An ``images`` entry becomes what is sent: a URL as-is, a data URI checked, a local file read
and checked (relative paths resolved against the job file's folder). Each file is read once
per run through a bounded LRU cache.

I/O helper of the jobs stage: stdlib and the pure core (:mod:`wanbatch._images`) only.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from dataclasses import dataclass

from ._images import (
    MAX_IMAGE_BYTES,
    ImageError,
    RefKind,
    check_image,
    classify_ref,
    data_uri,
    local_path_of,
    parse_data_uri,
)

__all__ = ["DEFAULT_IMAGE_CACHE_BYTES", "ImageCacheStats", "ImageResolver"]

#: Inline images kept for reuse by later jobs; a shared image is then read once per run.
DEFAULT_IMAGE_CACHE_BYTES = 64 * 1024 * 1024
#: Entries kept when images are only checked (validation keeps no bytes, just the verdict).
_CHECK_CACHE_ENTRIES = 16_384


@dataclass(frozen=True, slots=True)
class ImageCacheStats:
    """What :class:`ImageResolver` did: ``reads`` counts files opened and read."""

    reads: int
    hits: int
    entries: int
    bytes: int


class ImageResolver:
    """Turns an ``images`` entry into what is sent, reading each local file once.

    - ``http(s)://`` URL: returned as-is (the service fetches it).
    - ``data:image/...;base64,`` URI: decoded and checked, returned as-is.
    - anything else is a local path (``file:`` URIs included): relative paths are resolved
      against ``base_dir`` (the job file's folder), absolute paths are used as written. The
      file must be a regular file; its format is sniffed from its bytes. It is sent as a data
      URI (``embed=True``) or, when only validating (``embed=False``), checked and returned
      unchanged.

    Verdicts are cached by resolved path in an LRU bounded by ``max_bytes`` of data URIs
    (and by entry count), so a file shared by many jobs is read once.
    """

    def __init__(
        self,
        base_dir: str,
        *,
        embed: bool = True,
        max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
        max_entries: int = _CHECK_CACHE_ENTRIES,
    ) -> None:
        self.base_dir = base_dir
        self.embed = embed
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # resolved path -> data URI (or the ref itself when not embedding), or an ImageError
        self._cache: OrderedDict[str, str | ImageError] = OrderedDict()
        # reference as written -> resolved path ("" for a URL): skips re-parsing a reference
        # that many lines repeat. Holds no image bytes, so it is bounded by entries only.
        self._refs: dict[str, str] = {}
        self._bytes = 0
        self._reads = 0
        self._hits = 0
        #: resolved path -> (width, height) of a checked local image (no bytes: entries only)
        self._sizes: dict[str, tuple[int, int]] = {}
        #: (width, height) of the image the last call checked; None for a URL (not fetched)
        self.last_size: tuple[int, int] | None = None

    def stats(self) -> ImageCacheStats:
        """Counters: files read, cache hits, entries and bytes held."""
        return ImageCacheStats(self._reads, self._hits, len(self._cache), self._bytes)

    def __call__(self, ref: str) -> str:
        """Resolve one reference (see the class docstring).

        Raises:
            ImageError: the image breaks a rule, or the file cannot be read.
        """
        self.last_size = None
        full = self._refs.get(ref)
        if full is None:
            kind = classify_ref(ref)
            if kind is RefKind.DATA:  # not memoised: its key would be the whole image
                declared, data = parse_data_uri(ref)
                info = check_image(data, declared=declared)
                self.last_size = (info.width, info.height)
                return ref
            if kind is RefKind.URL:
                full = ""
            else:
                full = os.path.normpath(os.path.join(self.base_dir, local_path_of(ref)))
            if len(self._refs) >= self.max_entries:
                self._refs.clear()
            self._refs[ref] = full
        if not full:
            return ref
        self.last_size = self._sizes.get(full)
        cached = self._cache.get(full)
        if cached is not None:
            self._hits += 1
            self._cache.move_to_end(full)
            if isinstance(cached, ImageError):
                raise ImageError(str(cached))
            return cached if self.embed else ref
        try:
            value: str | ImageError = self._load(ref, full)
        except ImageError as exc:
            value = exc
        self._remember(full, value)
        if isinstance(value, ImageError):
            raise ImageError(str(value))
        return value if self.embed else ref

    def _load(self, ref: str, full: str) -> str:
        where = repr(ref) if full == ref else f"{ref!r} (resolved to {full})"
        try:
            st = os.stat(full)
        except FileNotFoundError:
            raise ImageError(f"no such file: {where}") from None
        except OSError as exc:
            raise ImageError(f"cannot read {where}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"is a directory, not an image file: {where}")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"not a regular file: {where}")
        if st.st_size > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{where} is {st.st_size / 1_048_576:.1f} MB; the API accepts at most "
                f"{MAX_IMAGE_BYTES // 1_048_576} MB"
            )
        try:
            with open(full, "rb") as fh:
                self._reads += 1
                data = fh.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise ImageError(f"cannot read {where}: {exc.strerror}") from None
        try:
            info = check_image(data)
        except ImageError as exc:
            raise ImageError(f"{exc} ({where})") from None
        if len(self._sizes) >= self.max_entries:
            self._sizes.clear()
        self._sizes[full] = self.last_size = (info.width, info.height)
        return data_uri(info, data) if self.embed else ref

    def _remember(self, full: str, value: str | ImageError) -> None:
        size = len(value) if isinstance(value, str) and self.embed else 0
        if size > self.max_bytes:
            return
        self._cache[full] = value
        self._bytes += size
        while self._bytes > self.max_bytes or len(self._cache) > self.max_entries:
            _, old = self._cache.popitem(last=False)
            if isinstance(old, str) and self.embed:
                self._bytes -= len(old)
