"""How crops are stored: JPEG (default, q90 4:4:4), PNG (lossless) or WebP, and their PSNR.

Scanned slides are JPEG already (SVS tiles), so a lossless PNG of a crop stores the
scanner's artefacts losslessly at about three times the bytes of a JPEG q90 with full
chroma (4:4:4, no subsampling), and takes longer to write. The setting is part of a
build's identity (``image_format``, ``image_quality`` in build.yaml; ``scale-vqa extract
--image-format/--quality``), and the dataset card states it with the PSNR measured on a
sample of crops against the pixels read from the slide.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from curation.errors import ConfigError

FORMATS: tuple[str, ...] = ("jpeg", "png", "webp")
DEFAULT_FORMAT = "jpeg"
DEFAULT_QUALITY = 90
SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PSNR_EVERY = 4
"""PSNR is measured on every crop of one zoom path in this many (the first, the fifth, ...)."""


@dataclass(frozen=True)
class ImageEncoding:
    """A crop encoding: ``format`` one of :data:`FORMATS`, ``quality`` 1-100 (lossy only).

    JPEG keeps full chroma (4:4:4); PNG ignores ``quality`` (zlib level 6); WebP with
    quality 100 is lossless.
    """

    format: str = DEFAULT_FORMAT
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        fmt = str(self.format).lower()
        if fmt == "jpg":
            fmt = "jpeg"
        if fmt not in FORMATS:
            raise ConfigError(
                f"image format {self.format!r} is not supported; use one of {', '.join(FORMATS)}"
            )
        object.__setattr__(self, "format", fmt)
        q = self.quality
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
            raise ConfigError(f"image quality {q!r} must be a whole number from 1 to 100, e.g. 90")

    @property
    def suffix(self) -> str:
        """File suffix of an encoded crop (``.jpg``, ``.png``, ``.webp``)."""
        return SUFFIX[self.format]

    @property
    def lossless(self) -> bool:
        """True when decoding gives back the exact pixels."""
        return self.format == "png" or (self.format == "webp" and self.quality == 100)

    def encode(self, image: Image.Image) -> bytes:
        """The encoded bytes of an RGB crop (deterministic for one Pillow build)."""
        buf = io.BytesIO()
        if self.format == "jpeg":
            image.save(buf, format="JPEG", quality=self.quality, subsampling=0, optimize=False)
        elif self.format == "png":
            image.save(buf, format="PNG", optimize=False, compress_level=6)
        else:
            lossless = self.lossless  # lossy WebP is always 4:2:0
            image.save(buf, format="WEBP", quality=self.quality, lossless=lossless, method=4)
        return buf.getvalue()

    def describe(self) -> str:
        """One phrase for the card, e.g. ``JPEG quality 90, 4:4:4 chroma``."""
        if self.format == "png":
            return "PNG (lossless, zlib level 6)"
        if self.format == "jpeg":
            return f"JPEG quality {self.quality}, 4:4:4 chroma (no subsampling)"
        return "WebP lossless" if self.lossless else f"WebP quality {self.quality}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with an extraction (``format``, ``quality``)."""
        return {"format": self.format, "quality": self.quality}


def psnr(image: Image.Image, data: bytes) -> float:
    """PSNR in dB of the decoded ``data`` against ``image`` (RGB, peak 255; inf if equal)."""
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im.convert("RGB"), dtype=np.float64)
    ref = np.asarray(image.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((ref - decoded) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def summarise_psnr(values: list[float]) -> dict[str, Any]:
    """``{"n", "mean_db", "min_db"}`` over finite values (lossless crops count as inf)."""
    finite = [v for v in values if math.isfinite(v)]
    if not values:
        return {"n": 0, "mean_db": None, "min_db": None}
    if not finite:
        return {"n": len(values), "mean_db": "lossless", "min_db": "lossless"}
    return {
        "n": len(values),
        "mean_db": round(float(np.mean(finite)), 2),
        "min_db": round(float(np.min(finite)), 2),
    }
