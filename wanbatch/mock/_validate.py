"""Pure: turn a request body into a :class:`GenerationRequest` or raise :class:`Rejection`.

Implements the documented request rules (docs/service.md, Request body): model, the single user
message, the text/image items, each parameter's type and range, per-mode image counts, and the
input-image rules (URL schemes, data-URI decoding, 10 MB, 240–8000 px, no PNG alpha). Over-long
prompts are truncated, not rejected, and unknown parameters (such as the SDK's ``is_async``)
are accepted. ``wan2.7-image`` and ``wan2.7-image-pro`` requests are checked by
:mod:`wanbatch.mock._wan27` after the shared message and image checks.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from wanbatch.mock._errors import DOWNLOAD_FAILED, MODEL_NOT_FOUND, URL_ERROR, Rejection
from wanbatch.mock._imageinfo import sniff_image
from wanbatch.mock._sizing import SizeRequest, parse_size
from wanbatch.mock._wan27 import MAX_PROMPT, MODELS_27, check_wan27

__all__ = ["MODEL", "GenerationRequest", "InputImage", "prompt_of", "validate_generation"]

MODEL = "wan2.6-image"
MAX_PROMPT_CHARS = 2000
MAX_NEGATIVE_PROMPT_CHARS = 500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 240, 8000
MAX_SEED = 2147483647
DEFAULT_N = 4  # the service's default (and it bills 4 images)
DEFAULT_MAX_IMAGES = 5  # the official default; a third-party page says 3

_DATA_URI = re.compile(
    r"^data:image/(png|jpeg|jpg|bmp|webp);base64,(.*)$", re.IGNORECASE | re.DOTALL
)
_BOOL_PARAMS = ("enable_interleave", "prompt_extend", "watermark", "stream")


@dataclass(frozen=True, slots=True)
class InputImage:
    """One reference image: how it was given and its size when the mock could read it."""

    kind: Literal["url", "data", "oss"]
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A valid request, defaults applied and prompts truncated."""

    prompt: str
    negative_prompt: str | None
    interleave: bool
    n: int
    max_images: int
    size: SizeRequest
    seed: int | None
    images: tuple[InputImage, ...]

    @property
    def images_to_make(self) -> int:
        """Images one call produces (and bills): ``n`` (edit) or ``max_images`` (interleave)."""
        return self.max_images if self.interleave else self.n

    @property
    def last_image_size(self) -> tuple[int, int] | None:
        """Size of the last input image if known: presets follow its ratio."""
        if not self.images:
            return None
        last = self.images[-1]
        if last.width is None or last.height is None:
            return None
        return (last.width, last.height)


def prompt_of(body: object) -> str | None:
    """The (truncated) prompt of a body, or ``None``; lenient, for counting calls by prompt."""
    try:
        content = body["input"]["messages"][0]["content"]  # type: ignore[index]
        cut = MAX_PROMPT if body.get("model") in MODELS_27 else MAX_PROMPT_CHARS  # type: ignore[attr-defined]
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                return str(item["text"])[:cut]
    except (KeyError, IndexError, TypeError):
        return None
    return None


def validate_generation(body: object) -> GenerationRequest:
    """Check ``body`` (docs/service.md, Request body); raise :class:`Rejection` at a problem.

    Problems the model worker would find (``n`` in interleave mode, an unreachable image URL)
    are raised last and marked ``deferred`` so the async API can fail the task instead.
    """
    if not isinstance(body, dict):
        raise Rejection.invalid("The request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise Rejection(
            400, "BadRequest.EmptyModel", "Required parameter 'model' missing from request."
        )
    if not isinstance(model, str):
        raise Rejection.invalid("model must be a string")
    if model != MODEL and model not in MODELS_27:
        raise Rejection(404, "ModelNotFound", MODEL_NOT_FOUND)
    raw_input = body.get("input")
    if raw_input is None or raw_input == {}:
        raise Rejection(
            400, "BadRequest.EmptyInput", "Required input parameter missing from request."
        )
    if not isinstance(raw_input, dict):
        raise Rejection.invalid("input must be a JSON object")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Rejection.invalid("parameters must be a JSON object")

    if model in MODELS_27:
        return _wan27_request(model, raw_input, params)
    for name in _BOOL_PARAMS:
        if name in params and not isinstance(params[name], bool):
            raise Rejection.invalid(f"parameters.{name} must be a boolean")
    interleave = bool(params.get("enable_interleave", False))
    n = _int_param(params, "n", 1, 4, DEFAULT_N)
    max_images = _int_param(params, "max_images", 1, 5, DEFAULT_MAX_IMAGES)
    seed = _int_param(params, "seed", 0, MAX_SEED, None)
    negative = params.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise Rejection.invalid("parameters.negative_prompt must be a string")
    size = parse_size(params.get("size"), interleave=interleave)

    prompt, image_values = _split_message(raw_input)
    low, high = (0, 1) if interleave else (1, 4)
    if not low <= len(image_values) <= high:
        mode = "interleave mode (enable_interleave=true)" if interleave else "edit mode"
        raise Rejection.invalid(
            f"{mode} accepts {low} to {high} input images, got {len(image_values)}"
        )
    deferred: Rejection | None = None
    images: list[InputImage] = []
    for value in image_values:
        image, problem = _input_image(value)
        images.append(image)
        deferred = deferred or problem
    if interleave and "n" in params and n != 1:
        # The one documented validation message.
        deferred = Rejection.invalid("num_images_per_prompt must be 1", deferred=True)
    if deferred is not None:
        raise deferred
    return GenerationRequest(
        prompt=prompt[:MAX_PROMPT_CHARS],
        negative_prompt=None if negative is None else negative[:MAX_NEGATIVE_PROMPT_CHARS],
        interleave=interleave,
        n=1 if interleave else n,
        max_images=max_images,
        size=size,
        seed=seed,
        images=tuple(images),
    )


def _wan27_request(
    model: str, raw_input: dict[str, Any], params: dict[str, Any]
) -> GenerationRequest:
    """A wan2.7 request (:mod:`wanbatch.mock._wan27`); sets may make fewer images than ``n``."""
    prompt, values = _split_message(raw_input)
    deferred: Rejection | None = None
    images: list[InputImage] = []
    for value in values[:10]:
        image, problem = _input_image(value)
        images.append(image)
        deferred = deferred or problem
    sizes = [(i.width, i.height) if i.width and i.height else None for i in images]
    plan = check_wan27(model, params, prompt, sizes + [None] * (len(values) - len(images)))
    if deferred is not None:
        raise deferred
    seed = params.get("seed")
    return GenerationRequest(
        prompt=prompt[:MAX_PROMPT],
        negative_prompt=None,
        interleave=False,
        n=plan.count,
        max_images=1,
        size=plan.size,
        seed=seed if isinstance(seed, int) else None,
        images=tuple(images),
    )


def _int_param(params: dict[str, Any], name: str, low: int, high: int, default: int | None) -> Any:
    if name not in params:
        return default
    value = params[name]
    # JSON true/false are Python bools, which are ints: reject them explicitly.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejection.invalid(f"parameters.{name} must be an integer")
    if not low <= value <= high:
        raise Rejection.invalid(f"parameters.{name} must be between {low} and {high}, got {value}")
    return value


def _split_message(raw_input: dict[str, Any]) -> tuple[str, list[object]]:
    """The one user message's text and image values."""
    messages = raw_input.get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise Rejection.invalid("input.messages must be an array with exactly 1 message")
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user":
        raise Rejection.invalid("input.messages[0].role must be 'user'")
    content = message.get("content")
    if not isinstance(content, list):
        raise Rejection.invalid("input.messages[0].content must be an array")
    texts: list[object] = []
    images: list[object] = []
    for item in content:
        if not isinstance(item, dict) or ("text" in item) == ("image" in item):
            raise Rejection.invalid("each content item must hold exactly one of 'text' or 'image'")
        (texts if "text" in item else images).append(item.get("text", item.get("image")))
    if len(texts) != 1:
        raise Rejection.invalid(f"content must hold exactly one text item, got {len(texts)}")
    text = texts[0]
    if not isinstance(text, str) or not text.strip():
        raise Rejection.invalid("the text item must be a non-empty string")
    return text, images


def _input_image(value: object) -> tuple[InputImage, Rejection | None]:
    """Check one image value; a second, deferred problem means "the worker cannot fetch it"."""
    if not isinstance(value, str):
        raise Rejection.invalid(URL_ERROR)
    lowered = value[:16].lower()
    if lowered.startswith(("http://", "https://")):
        host = urlsplit(value).hostname or ""
        if not host:
            raise Rejection.invalid(URL_ERROR)
        # No network here: the reserved .invalid TLD stands for "unreachable".
        if host.endswith(".invalid"):
            return InputImage("url"), Rejection(
                400, "InternalError.Algo.InvalidParameter", DOWNLOAD_FAILED, deferred=True
            )
        return InputImage("url"), None
    if lowered.startswith("oss://"):
        return InputImage("oss"), None
    if lowered.startswith("data:"):
        return _data_uri(value), None
    raise Rejection.invalid(URL_ERROR)


def _data_uri(value: str) -> InputImage:
    match = _DATA_URI.match(value)
    if match is None:
        raise Rejection.invalid(
            "data URI images must look like data:image/{png,jpeg,jpg,bmp,webp};base64,<data>"
        )
    payload = match.group(2)
    if len(payload) // 4 * 3 > MAX_IMAGE_BYTES + 3:  # cheap bound before decoding
        raise Rejection.invalid("input image exceeds the 10 MB limit")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection.invalid("input image data URI is not valid base64") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise Rejection.invalid("input image exceeds the 10 MB limit")
    info = sniff_image(data)
    if info is None:
        raise Rejection.invalid("input image format not supported: use JPEG, PNG, BMP or WEBP")
    if info.format == "png" and info.has_alpha:
        raise Rejection.invalid("PNG input images must not have an alpha channel")
    if info.width is not None and info.height is not None:
        for side in (info.width, info.height):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise Rejection.invalid(
                    f"input image is {info.width}x{info.height}: width and height must be "
                    f"between {MIN_SIDE} and {MAX_SIDE} pixels"
                )
    return InputImage("data", info.width, info.height)
