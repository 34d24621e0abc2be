"""The multiple-choice prompt, in the two shapes models take.

One prompt for every use (evaluation, GRPO, SFT): an intro naming how many images there
are and their order, one labelled image block per magnification (``Image 1 (5x):``), the
question, the lettered options, and an instruction to end with ``<answer>X</answer>``.

- :func:`conversation`: trl's conversational form, a list of messages whose user content
  interleaves ``{"type": "text"}`` and ``{"type": "image"}`` blocks (the PIL images travel
  separately, in the same order, as trl and processors expect);
- :func:`openai_messages`: the same prompt for an OpenAI-compatible endpoint, each image
  embedded as a base64 ``data:`` URL in an ``image_url`` part.

An example is any mapping with ``question``, ``options`` and, optionally, ``images`` (PIL
images or ``{"bytes", "path"}`` dicts, low -> high magnification) and ``magnifications``.
With no images the prompt carries no image blocks and no image intro (the blind control).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from curation.errors import ValidationError
from curation.records import LETTERS

ANSWER_INSTRUCTION = (
    "Choose the one correct option. Reason briefly if needed, then end your reply with the "
    "letter of your choice in the form <answer>X</answer>."
)


def magnification_label(mag: float | None) -> str:
    """``5`` -> ``"5x"``, ``2.5`` -> ``"2.5x"``; ``None`` -> ``""``."""
    return "" if mag is None else f"{float(mag):g}x"


def format_options(options: Sequence[str]) -> str:
    """``A. first`` / ``B. second`` ..., one per line."""
    if not 2 <= len(options) <= len(LETTERS):
        raise ValidationError(
            f"an MCQ needs 2 to {len(LETTERS)} options, got {len(options)}; "
            "check the options column"
        )
    return "\n".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options))


def question_text(example: Mapping[str, Any]) -> str:
    """The text after the images: question, lettered options and the answer instruction."""
    return (
        f"Question: {str(example['question']).strip()}\n"
        f"Options:\n{format_options(list(example['options']))}\n\n{ANSWER_INSTRUCTION}"
    )


def _intro(n_images: int) -> str:
    if n_images == 1:
        return "You are shown one field of view of a histopathology slide."
    return (
        f"You are shown {n_images} fields of view of the same histopathology slide, ordered "
        "from low to high magnification."
    )


def content_blocks(example: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The user content as trl blocks: text, then ``Image i (Mx):`` + image per image, then
    the question. Image blocks are ``{"type": "image"}`` placeholders, in image order."""
    images = list(example.get("images") or [])
    mags = list(example.get("magnifications") or [])
    if images and mags and len(mags) != len(images):
        raise ValidationError(
            f"example {example.get('id', '?')}: {len(images)} image(s) but {len(mags)} "
            "magnification(s); give one magnification per image"
        )
    blocks: list[dict[str, Any]] = []
    if images:
        blocks.append({"type": "text", "text": _intro(len(images))})
        for i in range(len(images)):
            label = magnification_label(mags[i]) if mags else ""
            head = f"Image {i + 1} ({label}):" if label else f"Image {i + 1}:"
            blocks.append({"type": "text", "text": head})
            blocks.append({"type": "image"})
    blocks.append({"type": "text", "text": question_text(example)})
    return blocks


def conversation(example: Mapping[str, Any]) -> list[dict[str, Any]]:
    """trl's conversational prompt: ``[{"role": "user", "content": blocks}]``."""
    return [{"role": "user", "content": content_blocks(example)}]


def to_pil(image: Any) -> Any:
    """A PIL image from a PIL image, ``{"bytes", "path"}`` dict, bytes or file path."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, Mapping):
        if image.get("bytes") is not None:
            return Image.open(io.BytesIO(image["bytes"]))
        image = image.get("path")
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image))
    if isinstance(image, str):
        return Image.open(image)
    raise ValidationError(f"unsupported image value of type {type(image).__name__}")


def image_data_url(image: Any, fmt: str = "PNG") -> str:
    """A ``data:image/...;base64,`` URL of the image, re-encoded as RGB ``fmt`` (PNG/JPEG)."""
    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValidationError(f"image format {fmt!r} is not supported; use PNG or JPEG")
    buf = io.BytesIO()
    pil = to_pil(image).convert("RGB")
    pil.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def openai_messages(example: Mapping[str, Any], image_format: str = "PNG") -> list[dict[str, Any]]:
    """The prompt for an OpenAI-compatible chat endpoint (images as base64 data URLs)."""
    images = iter(list(example.get("images") or []))
    parts: list[dict[str, Any]] = []
    for block in content_blocks(example):
        if block["type"] == "image":
            url = image_data_url(next(images), image_format)
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": block["text"]})
    return [{"role": "user", "content": parts}]
