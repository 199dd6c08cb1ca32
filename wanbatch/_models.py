"""The models wanbatch knows: one frozen :class:`ModelProfile` each, and where they are served.

A profile is what the service documents for one model (docs/service.md, Models):

- ``wan2.6-image``: editing (1-4 reference images) and interleaved text-and-image output
  (0-1 image, an event stream); prompts up to 2,000 characters; ``1K`` about 1280², ``2K``
  about 2048²; offered in every region.
- ``wan2.7-image`` and ``wan2.7-image-pro``: text-to-image (no image), editing and
  multi-reference (1-9 images), image sets (``enable_sequential``, ``n`` 1-12 as a maximum),
  box-targeted editing (``bbox_list``); prompts up to 5,000 characters; ``1K`` = 1024², ``2K``
  = 2048² (the default); ``4K`` = 4096² only for the pro model's text-to-image; plain JSON
  answers in every mode; offered in the Beijing (``cn``) and Singapore (``intl``) regions only.

Also here: the hosts (the legacy shared ones and each workspace's own), the region a base URL
belongs to, list prices per model and region, and the "not offered in this region" message.
The rules a job must follow under a 2.7 profile are in :mod:`wanbatch._rules27`.

Pure: stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._config import DEFAULT_MODEL, BatchConfig, Region

__all__ = [
    "MODELS",
    "PROFILES",
    "REGION_NAMES",
    "WORKSPACE_HOSTS",
    "ModelProfile",
    "SizeRange",
    "not_offered_problem",
    "price_for",
    "price_of",
    "profile_of",
    "region_of_url",
    "run_region",
    "unknown_model_problem",
    "workspace_base_url",
    "workspace_id_problem",
]


@dataclass(frozen=True, slots=True)
class SizeRange:
    """The ``"W*H"`` sizes one mode takes: total pixels and the widest aspect ratio."""

    min_pixels: int
    max_pixels: int
    max_ratio: int  #: 4 means 1:4 to 4:1

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width*height`` is outside this range, or None."""
        total = width * height
        if not self.min_pixels <= total <= self.max_pixels:
            low, high = _side(self.min_pixels), _side(self.max_pixels)
            return f"is {total} pixels; this takes {low}*{low} to {high}*{high} in total"
        if self.max_ratio * width < height or self.max_ratio * height < width:
            return (
                f"has an aspect ratio outside 1:{self.max_ratio} to {self.max_ratio}:1 "
                "(the service's limit)"
            )
        return None


def _side(pixels: int) -> int:
    side = 1
    while side * side < pixels:
        side += 1
    return side


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What one model accepts, and what it costs where it is offered."""

    name: str
    family: str  #: "wan2.6" or "wan2.7": which rule set applies (see :mod:`wanbatch._rules`)
    modes: tuple[str, ...]
    max_refs: int  #: reference images at most, in any mode
    max_prompt_chars: int  #: the service cuts longer prompts silently
    max_n: int  #: images per call in the plain modes
    max_n_set: int  #: images per call at most in set mode (0: no set mode)
    default_size: str | None  #: the preset the service uses when none is sent
    #: Presets and their total pixels, per mode ("edit", "t2i", "set", "interleave").
    presets: dict[str, dict[str, int]]
    #: ``"W*H"`` ranges per mode.
    sizes: dict[str, SizeRange]
    params: frozenset[str]  #: parameters the model takes (besides model and input)
    refused: frozenset[str]  #: job fields wanbatch refuses for this model: another model's
    event_stream: bool  #: True: one mode answers as an event stream (interleaved)
    prices: dict[str, float]  #: CNY per generated image, by region ("cn", "intl", "us")
    max_image_bytes: int  #: a reference image by URL, at most
    max_image_ratio: int  #: a reference image's aspect ratio (0: no documented limit)

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions the model is offered in, sorted."""
        return tuple(sorted(self.prices))


_MB = 1024 * 1024
_PX_768 = 768 * 768
_PX_1K6 = 1280 * 1280
_PX_2K = 2048 * 2048
_PX_4K = 4096 * 4096

WAN26 = ModelProfile(
    name="wan2.6-image",
    family="wan2.6",
    modes=("edit", "interleave"),
    max_refs=4,
    max_prompt_chars=2000,
    max_n=4,
    max_n_set=0,
    default_size="1K",
    presets={"edit": {"1K": _PX_1K6, "2K": _PX_2K}},
    sizes={
        "edit": SizeRange(_PX_768, _PX_2K, 4),
        "interleave": SizeRange(_PX_768, _PX_1K6, 4),
    },
    params=frozenset(
        {
            "n",
            "size",
            "seed",
            "watermark",
            "prompt_extend",
            "negative_prompt",
            "enable_interleave",
            "max_images",
            "stream",
        }
    ),
    refused=frozenset({"enable_sequential", "thinking_mode", "color_palette", "bbox_list"}),
    event_stream=True,
    prices={"cn": 0.20, "intl": 0.220177, "us": 0.20},
    max_image_bytes=10 * _MB,
    max_image_ratio=0,
)

_WAN27_PARAMS = frozenset(
    {"n", "size", "seed", "watermark", "enable_sequential", "thinking_mode", "color_palette",
     "bbox_list"}
)  # fmt: skip
#: 2.6 fields a 2.7 model has no use for: no interleaved mode, no prompt rewriting or negative
#: prompt documented.
_WAN27_REFUSED = frozenset({"enable_interleave", "max_images", "prompt_extend", "negative_prompt"})
_WAN27_PRESETS = {"1K": 1024 * 1024, "2K": _PX_2K}

WAN27 = ModelProfile(
    name="wan2.7-image",
    family="wan2.7",
    modes=("t2i", "edit", "set", "bbox"),
    max_refs=9,
    max_prompt_chars=5000,
    max_n=4,
    max_n_set=12,
    default_size="2K",
    presets={"t2i": _WAN27_PRESETS, "edit": _WAN27_PRESETS, "set": _WAN27_PRESETS},
    sizes={
        "t2i": SizeRange(_PX_768, _PX_2K, 8),
        "edit": SizeRange(_PX_768, _PX_2K, 8),
        "set": SizeRange(_PX_768, _PX_2K, 8),
    },
    params=_WAN27_PARAMS,
    refused=_WAN27_REFUSED,
    event_stream=False,
    prices={"cn": 0.20, "intl": 0.220177},
    max_image_bytes=20 * _MB,
    max_image_ratio=8,
)

WAN27_PRO = ModelProfile(
    name="wan2.7-image-pro",
    family="wan2.7",
    modes=WAN27.modes,
    max_refs=9,
    max_prompt_chars=5000,
    max_n=4,
    max_n_set=12,
    default_size="2K",
    presets={
        "t2i": {**_WAN27_PRESETS, "4K": _PX_4K},
        "edit": _WAN27_PRESETS,
        "set": _WAN27_PRESETS,
    },
    sizes={
        "t2i": SizeRange(_PX_768, _PX_4K, 8),
        "edit": SizeRange(_PX_768, _PX_2K, 8),
        "set": SizeRange(_PX_768, _PX_2K, 8),
    },
    params=_WAN27_PARAMS,
    refused=_WAN27_REFUSED,
    event_stream=False,
    prices={"cn": 0.50, "intl": 0.562065},
    max_image_bytes=20 * _MB,
    max_image_ratio=8,
)

PROFILES: dict[str, ModelProfile] = {p.name: p for p in (WAN26, WAN27, WAN27_PRO)}
#: The model names, in the order docs and messages list them.
MODELS: tuple[str, ...] = tuple(PROFILES)
assert DEFAULT_MODEL in PROFILES

REGION_NAMES: dict[str, str] = {
    "cn": "China (Beijing)",
    "intl": "Singapore",
    "us": "US (Virginia)",
}
#: The workspace hosts per region: each workspace has its own, and it takes only that
#: workspace's API keys.
WORKSPACE_HOSTS: dict[str, str] = {
    "intl": "https://{WorkspaceId}.ap-southeast-1.maas.aliyuncs.com/api/v1",
    "cn": "https://{WorkspaceId}.cn-beijing.maas.aliyuncs.com/api/v1",
    "us": "https://{WorkspaceId}.us-east-1.maas.aliyuncs.com/api/v1",
}
_MAAS_REGIONS: dict[str, Region] = {"ap-southeast-1": "intl", "cn-beijing": "cn", "us-east-1": "us"}
_LEGACY_HOSTS: dict[str, Region] = {
    "dashscope-intl.aliyuncs.com": "intl",
    "dashscope-us.aliyuncs.com": "us",
    "dashscope.aliyuncs.com": "cn",
}
#: A workspace id as the console shows it (``ws-...``, older ``llm-...``): one DNS label.
_WORKSPACE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


def profile_of(model: str) -> ModelProfile | None:
    """The profile of ``model``, or None for a model wanbatch does not know."""
    return PROFILES.get(model)


def unknown_model_problem(model: str) -> str:
    """The message for a model name wanbatch has no profile of."""
    shown = model if len(model) <= 60 else model[:57] + "..."
    return f"unknown model {shown!r}: wanbatch knows " + ", ".join(MODELS)


def price_of(model: str, region: str) -> float:
    """List price of one image of ``model`` in ``region``, CNY (0.0 when not offered there)."""
    profile = PROFILES.get(model)
    if profile is None:
        return 0.0
    return profile.prices.get(region, 0.0)


def run_region(config: BatchConfig) -> str:
    """The region a run's calls go to: its base URL's, else ``config.region`` (mock, proxy)."""
    return region_of_url(config.base_url) or config.region


def price_for(config: BatchConfig, model: str) -> float:
    """Price of one image of ``model`` in a run: ``--price`` if given, else the list price."""
    if config.price_per_image is not None:
        return config.price_per_image
    return price_of(model, run_region(config))


def not_offered_problem(model: str, region: str | None) -> str | None:
    """Why ``model`` cannot run in ``region`` (None: it can, or the region is unknown)."""
    profile = PROFILES.get(model)
    if profile is None or region is None or region in profile.prices:
        return None
    where = REGION_NAMES.get(region, region)
    offered = " and ".join(f"{r} ({REGION_NAMES[r]})" for r in profile.regions)
    return (
        f"{model} is not offered in region {region} ({where}); it is offered in {offered}: "
        "run with --region " + " or --region ".join(profile.regions)
    )


def region_of_url(url: str) -> Region | None:
    """The region a base URL serves (legacy or workspace host), or None (mock, proxy, other)."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return None
    if host in _LEGACY_HOSTS:
        return _LEGACY_HOSTS[host]
    parts = host.split(".")
    if len(parts) == 5 and parts[2:] == ["maas", "aliyuncs", "com"]:
        return _MAAS_REGIONS.get(parts[1])
    return None


def workspace_id_problem(workspace_id: str) -> str | None:
    """Why ``workspace_id`` cannot be a workspace's id (it becomes part of a host name)."""
    if _WORKSPACE_ID.fullmatch(workspace_id) is None:
        shown = workspace_id if len(workspace_id) <= 60 else workspace_id[:57] + "..."
        return (
            f"{shown!r} is not a workspace id: expected lower-case letters, digits and '-' "
            "(like ws-abc123 or llm-abc123), as the console shows it"
        )
    return None


def workspace_base_url(workspace_id: str, region: str) -> str:
    """The base URL of workspace ``workspace_id``'s own host in ``region``.

    Raises:
        ValueError: the id is not one (:func:`workspace_id_problem`) or the region unknown.
    """
    problem = workspace_id_problem(workspace_id)
    if problem is not None:
        raise ValueError(problem)
    if region not in WORKSPACE_HOSTS:
        raise ValueError(f"no workspace host is known for region {region!r}")
    return WORKSPACE_HOSTS[region].replace("{WorkspaceId}", workspace_id)
