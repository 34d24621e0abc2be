"""Zoom paths: nested fields of view of one slide at several magnifications.

A zoom path is a centre on the slide plus one crop per magnification, ordered low to
high. Each field of view lies inside the next lower-power one and inside the slide
(shifted, never padded, unless the slide is smaller than the field).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from curation.errors import ConfigError, SlideError
from scale_vqa.slides import Mask, Region, Slide, mpp_for, tissue_mask

UPSAMPLE_TOLERANCE = 0.02
MIN_CROP_SIZE = 16
MAX_CROP_SIZE = 4096
"""Crop sides (pixels) this package accepts: a model input, not a whole slide."""
MAX_PATHS_PER_SLIDE = 10_000
"""Most zoom paths sampled on one slide."""
"""Relative slack around the scan's own pixel size: within it a crop is read 1:1
(e.g. 20x = 0.5 um/px from a 0.499 or 0.504 um/px scan) instead of resampled."""


@dataclass
class Crop:
    """One field of view: image, nominal magnification, stored pixel size, box."""

    image: Image.Image
    magnification: float
    mpp: float
    region: Region
    level: int
    upsampled: bool = False
    padded: bool = False

    def to_record(self, image: str) -> dict:
        """The crop's entry in ``zoom_paths.jsonl`` (``image`` relative to the folder)."""
        return {
            "magnification": float(self.magnification),
            "mpp": round(self.mpp, 6),
            "region": self.region.to_dict(),
            "image": image,
            "upsampled": self.upsampled,
            "padded": self.padded,
        }


@dataclass
class ZoomPath:
    """Nested crops of one slide around ``centre`` (level-0 pixels), low to high."""

    slide_id: str
    path_id: str
    centre: tuple[int, int]
    crops: list[Crop] = field(default_factory=list)
    slide_path: str = ""

    def to_record(self, images: Sequence[str]) -> dict:
        """One line of ``zoom_paths.jsonl`` given each crop's image path."""
        return {
            "slide_id": self.slide_id,
            "path_id": self.path_id,
            "slide_path": self.slide_path,
            "centre": {"x": int(self.centre[0]), "y": int(self.centre[1])},
            "crops": [c.to_record(p) for c, p in zip(self.crops, images, strict=True)],
        }


def normalise_magnifications(magnifications: Sequence[float]) -> list[float]:
    """Sorted low -> high, positive and distinct, or :class:`ConfigError`."""
    mags = [float(m) for m in magnifications]
    if not mags:
        raise ConfigError("no magnifications given; pass e.g. --magnifications 5,10,20")
    for m in mags:
        if not math.isfinite(m) or m <= 0:
            raise ConfigError(f"magnification {m!r} must be a positive objective power, e.g. 20")
    if len(set(mags)) != len(mags):
        raise ConfigError(f"magnifications {mags} repeat a value; give each once")
    return sorted(mags)


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if not all(MIN_CROP_SIZE <= int(v) <= MAX_CROP_SIZE for v in (w, h)):
        raise ConfigError(
            f"output size {size!r} must lie in {MIN_CROP_SIZE}..{MAX_CROP_SIZE} pixels, e.g. 224"
        )
    return int(w), int(h)


@dataclass(frozen=True)
class _Plan:
    magnification: float
    width: int  # field in level-0 pixels
    height: int
    upsampled: bool


def _plan(
    slide: Slide, magnifications: Sequence[float], size: tuple[int, int], allow_upsample: bool
) -> list[_Plan]:
    """Field size in level-0 pixels for each magnification (checks upsampling)."""
    plans = []
    for mag in magnifications:
        target = mpp_for(mag)
        ratio = target / min(slide.mpp_x, slide.mpp_y)  # > 1: reduce, < 1: enlarge
        upsampled = False
        if ratio < 1 - UPSAMPLE_TOLERANCE:
            if not allow_upsample:
                raise SlideError(
                    f"{slide.path.name}: {mag:g}x needs {target:.4g} um/px, finer than the "
                    f"scan's native {slide.describe()}; ask for at most "
                    f"{slide.native_magnification:.0f}x, or pass allow_upsample=True "
                    "(CLI --allow-upsample) to upsample and record it"
                )
            upsampled = True
        if abs(ratio - 1) <= UPSAMPLE_TOLERANCE:
            w, h = size  # native pixels, read 1:1
        else:
            w = max(1, round(size[0] * target / slide.mpp_x))
            h = max(1, round(size[1] * target / slide.mpp_y))
        plans.append(_Plan(mag, w, h, upsampled))
    return plans


def _place(c: float, length: int, lo: float, hi: float, outer: tuple[int, int]) -> tuple[int, bool]:
    """Start of a ``length`` field centred on ``c``, inside [lo, hi) and ``outer``.

    Returns (start, padded). ``lo, hi`` is the slide extent; ``outer`` (start, length)
    the enclosing field. If the field is longer than the room on the slide, it is
    centred on that room and flagged as padded.
    """
    o0, o1 = outer[0], outer[0] + outer[1]
    a, b = max(lo, o0), min(hi, o1)
    if length <= b - a:
        start = math.floor(c - length / 2)
        return int(min(max(start, a), b - length)), False
    start = math.floor((a + b) / 2 - length / 2)
    return int(min(max(start, o0), o1 - length)), True


def field_regions(
    slide: Slide,
    centre: tuple[float, float],
    magnifications: Sequence[float],
    size: int | tuple[int, int] = 512,
    allow_upsample: bool = False,
) -> list[tuple[Region, bool, bool]]:
    """Level-0 boxes of the nested fields (low -> high) with (upsampled, padded) flags."""
    mags = normalise_magnifications(magnifications)
    plans = _plan(slide, mags, _size_pair(size), allow_upsample)
    sw, sh = slide.dimensions
    cx, cy = centre
    if not (0 <= cx < sw and 0 <= cy < sh):
        raise SlideError(
            f"{slide.path.name}: centre ({cx}, {cy}) is outside the slide ({sw} x {sh} level-0 "
            "pixels); give centres in level-0 pixels"
        )
    outer_x: tuple[int, int] = (-(10**12), 2 * 10**12)
    outer_y: tuple[int, int] = outer_x
    out = []
    for p in plans:
        x, pad_x = _place(cx, p.width, 0, sw, outer_x)
        y, pad_y = _place(cy, p.height, 0, sh, outer_y)
        out.append((Region(x, y, p.width, p.height), p.upsampled, pad_x or pad_y))
        outer_x, outer_y = (x, p.width), (y, p.height)
    return out


def extract_zoom_path(
    slide: Slide,
    centre: tuple[float, float],
    magnifications: Sequence[float],
    size: int | tuple[int, int] = 512,
    allow_upsample: bool = False,
    path_id: str = "",
) -> ZoomPath:
    """Read the nested crops around ``centre`` (level-0 pixels) at each magnification.

    Crops are ordered low -> high magnification, each ``size`` pixels, read from the
    pyramid level just finer than needed and downsampled. A magnification finer than
    the scan raises :class:`SlideError` unless ``allow_upsample`` (then recorded).
    """
    out_size = _size_pair(size)
    mags = normalise_magnifications(magnifications)
    crops = []
    for mag, (region, upsampled, padded) in zip(
        mags, field_regions(slide, centre, mags, out_size, allow_upsample), strict=True
    ):
        image, level = slide.read(region, out_size)
        mpp = region.width * slide.mpp_x / out_size[0] + region.height * slide.mpp_y / out_size[1]
        crops.append(Crop(image, mag, mpp / 2, region, level, upsampled, padded))
    c = (round(centre[0]), round(centre[1]))
    return ZoomPath(slide.slide_id, path_id, c, crops, str(slide.path))


def seed_for(seed: int, slide_id: str) -> int:
    """A per-slide seed independent of processing order."""
    digest = hashlib.sha256(f"{seed}:{slide_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_centres(
    slide: Slide,
    n: int,
    magnifications: Sequence[float],
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    min_spacing: float | None = None,
    min_tissue: float = 0.5,
    mask: Mask | None = None,
    avoid: Sequence[tuple[float, float]] = (),
    allow_upsample: bool = False,
    max_candidates: int = 200_000,
) -> list[tuple[int, int]]:
    """Up to ``n`` seeded zoom-path centres on tissue (level-0 pixels).

    Every field of the path (low, mid, high) must hold at least ``min_tissue`` tissue,
    and centres lie at least ``min_spacing`` level-0 pixels apart (Chebyshev distance;
    default: the side of the highest-power field, so high-power fields never overlap),
    also from ``avoid``. Fewer than ``n`` are returned when no more fit. Raises
    :class:`SlideError` when the slide has no tissue or no field qualifies.
    """
    if n <= 0:
        return []
    if not 0 <= min_tissue <= 1:
        raise ConfigError(f"min_tissue={min_tissue} must lie in [0, 1]")
    mags = normalise_magnifications(magnifications)
    out_size = _size_pair(size)
    plans = _plan(slide, mags, out_size, allow_upsample)
    mask = mask if mask is not None else tissue_mask(slide)
    if not mask.array.any():
        raise SlideError(
            f"{slide.path}: no tissue found (Otsu on {mask.method}, threshold "
            f"{mask.threshold}); the slide looks blank: check the file, or give centres "
            "in an annotation file"
        )
    if min_spacing is None:
        min_spacing = max(plans[-1].width, plans[-1].height)
    rng = np.random.default_rng(seed_for(seed, slide.slide_id))
    rows, cols = np.nonzero(mask.array)
    order = rng.permutation(len(rows))[:max_candidates]
    dx, dy = mask.downsample
    # a random point inside each tissue mask pixel, in level-0 pixels
    jitter = rng.random((len(order), 2))
    cx = np.floor((cols[order] + jitter[:, 0]) * dx)
    cy = np.floor((rows[order] + jitter[:, 1]) * dy)
    sw, sh = slide.dimensions
    cx = np.clip(cx, 0, sw - 1)
    cy = np.clip(cy, 0, sh - 1)
    worst = np.ones(len(cx))  # each candidate's lowest tissue fraction over its fields
    # nested placement, vectorised: each field clamped into the slide and its parent
    ox0 = np.full(len(cx), -np.inf)
    ox1 = np.full(len(cx), np.inf)
    oy0, oy1 = ox0.copy(), ox1.copy()
    for p in plans:
        xs = _place_many(cx, p.width, sw, ox0, ox1)
        ys = _place_many(cy, p.height, sh, oy0, oy1)
        worst = np.minimum(worst, mask.fractions(xs, ys, p.width, p.height))
        ox0, ox1, oy0, oy1 = xs, xs + p.width, ys, ys + p.height
    ok = worst >= min_tissue
    cand = np.stack([cx[ok], cy[ok]], axis=1).astype(np.int64)
    if len(cand) == 0:
        best = float(worst.max())
        raise SlideError(
            f"{slide.path}: no zoom path has >= {min_tissue:.0%} tissue in every field "
            f"({', '.join(f'{m:g}x' for m in mags)} at {out_size[0]} px; the best has "
            f"{best:.0%}, and tissue covers {mask.tissue_fraction:.0%} of the slide); lower "
            f"the minimum (--min-tissue / min_tissue={math.floor(best * 20) / 20:g}), use a "
            "smaller --size, or lower magnifications"
        )
    chosen: list[tuple[int, int]] = []
    taken = np.array([(round(a), round(b)) for a, b in avoid], dtype=np.float64).reshape(-1, 2)
    for x, y in cand:
        if len(taken) and np.max(np.abs(taken - (x, y)), axis=1).min() < min_spacing:
            continue
        chosen.append((int(x), int(y)))
        taken = np.vstack([taken, (x, y)])
        if len(chosen) == n:
            break
    return chosen


def _place_many(
    c: np.ndarray, length: int, extent: int, o0: np.ndarray, o1: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`_place` (start only)."""
    a = np.maximum(0, o0)
    b = np.minimum(extent, o1)
    fits = length <= b - a
    start = np.where(
        fits,
        np.minimum(np.maximum(np.floor(c - length / 2), a), b - length),
        np.floor((a + b) / 2 - length / 2),
    )
    lo = np.where(np.isfinite(o0), o0, start)
    hi = np.where(np.isfinite(o1), o1 - length, start)
    return np.where(fits, start, np.minimum(np.maximum(start, lo), hi))
