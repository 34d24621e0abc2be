"""Whole-slide images over OpenSlide, in physical units.

A :class:`Slide` knows its microns per pixel (from the file, or given by the caller)
and reads any level-0 region at any output size the physically right way: from the
pyramid level just finer than needed, then downsampled with a Lanczos filter. Every
failure is a :class:`~curation.errors.SlideError` that names the file.

Magnification follows the 10 / mpp convention: 40x = 0.25 um/px, 20x = 0.5 um/px.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from curation.errors import ConfigError, SlideError

if TYPE_CHECKING:  # pragma: no cover
    import openslide

MICRONS_PER_MAGNIFICATION = 10.0
"""mpp = 10 / magnification (the convention of the dataset: 40x = 0.25 um/px)."""

LEVEL_TOLERANCE = 0.005
"""A pyramid level counts as "not coarser than needed" within this relative slack
(levels of odd-sized pyramids have downsamples such as 4.002 for a nominal 4)."""

SLIDE_SUFFIXES: tuple[str, ...] = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".vms",
    ".vmu",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
)
"""File suffixes collected when a folder of slides is given."""

WHITE = (255, 255, 255)
MAX_READ_PIXELS = 1 << 26
"""Most pixels one field may read from its pyramid level (64 Mpx, about 256 MB as RGBA)."""


def mpp_for(magnification: float) -> float:
    """Microns per pixel of a nominal objective power (10 / magnification)."""
    return MICRONS_PER_MAGNIFICATION / magnification


def magnification_for(mpp: float) -> float:
    """Nominal objective power of a pixel size in um (10 / mpp)."""
    return MICRONS_PER_MAGNIFICATION / mpp


@dataclass(frozen=True)
class Region:
    """A box in level-0 pixels; may extend past the slide only when padded."""

    x: int
    y: int
    width: int
    height: int

    def to_dict(self) -> dict[str, int]:
        """``{"x", "y", "width", "height"}`` as the shared formats write it."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    def contains(self, other: Region) -> bool:
        """Whether ``other`` lies wholly inside this box."""
        return (
            other.x >= self.x
            and other.y >= self.y
            and other.x + other.width <= self.x + self.width
            and other.y + other.height <= self.y + self.height
        )

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the box in level-0 pixels."""
        return (self.x + self.width / 2, self.y + self.height / 2)


_ZOOM_API = {
    "Crop": "scale_vqa.zoom",
    "ZoomPath": "scale_vqa.zoom",
    "extract_zoom_path": "scale_vqa.zoom",
    "field_regions": "scale_vqa.zoom",
    "sample_centres": "scale_vqa.zoom",
    "ExtractConfig": "scale_vqa.extract",
    "ExtractResult": "scale_vqa.extract",
    "extract_slides": "scale_vqa.extract",
    "read_zoom_paths": "scale_vqa.extract",
}


def __getattr__(name: str) -> Any:
    """``from scale_vqa.slides import extract_zoom_path`` etc. also work (lazily: those
    live in :mod:`scale_vqa.zoom` and :mod:`scale_vqa.extract`, which import this one)."""
    if name in _ZOOM_API:
        import importlib

        return getattr(importlib.import_module(_ZOOM_API[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


class Slide:
    """An open whole-slide image with physical pixel size. Use :func:`open_slide`.

    Attributes: ``path``, ``slide_id`` (file stem), ``mpp_x``/``mpp_y`` and ``mpp``
    (their mean, um per level-0 pixel), ``mpp_source`` ("metadata" or "caller"),
    ``objective_power`` (scanner metadata, or None), ``dimensions`` (level-0 width,
    height), ``level_dimensions``, ``level_downsamples``, ``vendor``.
    """

    def __init__(self, path: Path, osr: openslide.OpenSlide, mpp: float | None = None) -> None:
        self.path = path
        self.slide_id = path.stem
        self._osr = osr
        props = osr.properties
        self.vendor: str = props.get("openslide.vendor", "") or ""
        self.objective_power: float | None = _positive(props.get("openslide.objective-power"))
        if mpp is not None:
            value = _positive(mpp)
            if value is None:
                raise ConfigError(
                    f"{path.name}: mpp={mpp!r} is not a positive number of micrometres per "
                    "pixel; pass e.g. mpp=0.25 (CLI --mpp 0.25)"
                )
            self.mpp_x = self.mpp_y = value
            self.mpp_source = "caller"
        else:
            mx = _positive(props.get("openslide.mpp-x"))
            my = _positive(props.get("openslide.mpp-y"))
            if mx is None and my is None:
                raise SlideError(
                    f"{path}: the file records no microns per pixel (openslide.mpp-x/y), so "
                    "magnifications cannot be computed; give the scan's pixel size with "
                    "--mpp X (Python: open_slide(path, mpp=X)), e.g. 0.25 for a 40x scan"
                )
            self.mpp_x = mx or my  # type: ignore[assignment]
            self.mpp_y = my or mx  # type: ignore[assignment]
            self.mpp_source = "metadata"
        self.dimensions: tuple[int, int] = tuple(osr.dimensions)  # type: ignore[assignment]
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(osr.level_dimensions)
        self.level_downsamples: tuple[float, ...] = tuple(osr.level_downsamples)

    # -- physical units ---------------------------------------------------------------

    @property
    def mpp(self) -> float:
        """Mean microns per level-0 pixel."""
        return (self.mpp_x + self.mpp_y) / 2

    @property
    def native_magnification(self) -> float:
        """Objective power of the scan's own pixels (10 / mpp)."""
        return magnification_for(min(self.mpp_x, self.mpp_y))

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_dimensions)

    @property
    def properties(self) -> dict[str, str]:
        """All OpenSlide properties of the file."""
        return dict(self._osr.properties)

    def describe(self) -> str:
        """``0.499 um/px (20.0x native, objective power 20)``, for messages."""
        power = "unknown" if self.objective_power is None else f"{self.objective_power:g}"
        return (
            f"{self.mpp:.4g} um/px ({self.native_magnification:.1f}x native, "
            f"objective power {power})"
        )

    # -- reading ----------------------------------------------------------------------

    def level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample``.

        That is the level just finer than needed, so the read is only ever reduced.
        (OpenSlide's ``get_best_level_for_downsample`` compares strictly and rounds
        differently; this choice is explicit and tested.)
        """
        best = 0
        for level, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + LEVEL_TOLERANCE) and ds >= self.level_downsamples[best]:
                best = level
        return best

    def read(self, region: Region, size: tuple[int, int]) -> tuple[Image.Image, int]:
        """Read a level-0 ``region`` resampled to ``size`` (width, height) pixels.

        Reads from :meth:`level_for_downsample` of the needed downsample and resizes
        with Lanczos over the exact sub-pixel box; a region reaching past the slide is
        padded with white. Returns the RGB image and the level read.
        """
        out_w, out_h = size
        if out_w <= 0 or out_h <= 0 or region.width <= 0 or region.height <= 0:
            raise ConfigError(f"{self.path.name}: empty region {region} or size {size}")
        need = min(region.width / out_w, region.height / out_h)
        level = self.level_for_downsample(need)
        lw, lh = self.level_dimensions[level]
        # level pixel <-> level-0 pixel, per axis (the level spans the whole slide)
        dsx, dsy = self.dimensions[0] / lw, self.dimensions[1] / lh
        fx0, fy0 = region.x / dsx, region.y / dsy
        fx1, fy1 = (region.x + region.width) / dsx, (region.y + region.height) / dsy
        cx0, cy0 = math.floor(fx0), math.floor(fy0)
        cx1, cy1 = math.ceil(fx1) + 1, math.ceil(fy1) + 1  # +1: sub-pixel start slack
        if (cx1 - cx0) * (cy1 - cy0) > MAX_READ_PIXELS:
            raise ConfigError(
                f"{self.path.name}: a {out_w} x {out_h} crop of the level-0 field {region} "
                f"needs {(cx1 - cx0) * (cy1 - cy0) / 1e6:.0f} Mpx from pyramid level {level} "
                f"(limit {MAX_READ_PIXELS / 1e6:.0f} Mpx); use a smaller crop size or a higher "
                "lowest magnification, or a slide with a pyramid level near that magnification"
            )
        canvas = None
        rx0, ry0 = max(cx0, 0), max(cy0, 0)
        rx1, ry1 = min(cx1, lw), min(cy1, lh)
        # OpenSlide maps a level-0 location to level pixels by its mean downsample;
        # account for where its read really starts (sub-pixel) in the resize box.
        ds = self.level_downsamples[level]
        sx, sy = float(cx0), float(cy0)
        if rx1 > rx0 and ry1 > ry0:
            location = (round(rx0 * ds), round(ry0 * ds))
            try:
                tile = self._osr.read_region(location, level, (rx1 - rx0, ry1 - ry0))
            except Exception as exc:  # openslide.OpenSlideError and friends
                raise SlideError(
                    f"{self.path}: reading {region} at level {level} failed ({exc}); the "
                    "file may be truncated or damaged"
                ) from None
            if (rx0, ry0, rx1, ry1) == (cx0, cy0, cx1, cy1):
                canvas = _flatten(tile)  # wholly inside the slide: no padding
            else:
                canvas = Image.new("RGB", (cx1 - cx0, cy1 - cy0), WHITE)
                canvas.paste(_flatten(tile), (rx0 - cx0, ry0 - cy0))
            sx, sy = location[0] / ds - (rx0 - cx0), location[1] / ds - (ry0 - cy0)
        if canvas is None:
            canvas = Image.new("RGB", (cx1 - cx0, cy1 - cy0), WHITE)
        cw, ch = canvas.size
        box = (
            min(max(fx0 - sx, 0.0), cw),
            min(max(fy0 - sy, 0.0), ch),
            min(max(fx1 - sx, 0.0), cw),
            min(max(fy1 - sy, 0.0), ch),
        )
        if box == (0, 0, out_w, out_h):
            return canvas.crop((0, 0, out_w, out_h)), level
        return canvas.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box), level

    def thumbnail(self, max_size: int = 1024) -> Image.Image:
        """The whole slide, longest side ``max_size`` px (never upsampled)."""
        w, h = self.dimensions
        scale = min(1.0, max_size / max(w, h))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return self.read(Region(0, 0, w, h), size)[0]

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Release the OpenSlide handle."""
        self._osr.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return f"Slide({self.slide_id!r}, {w}x{h}, {self.level_count} level(s), {self.describe()})"


def _flatten(rgba: Image.Image) -> Image.Image:
    """RGBA from OpenSlide (transparent where no data) onto white, as RGB."""
    if rgba.mode != "RGBA" or rgba.getextrema()[3][0] == 255:
        return rgba.convert("RGB")  # fully opaque: nothing to composite
    base = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def open_slide(path: str | os.PathLike[str], mpp: float | None = None) -> Slide:
    """Open a whole-slide image that OpenSlide can read.

    ``mpp`` (um per level-0 pixel) overrides the file's metadata or fills it in when
    missing. Raises :class:`SlideError` naming the file when it is missing, empty, not
    a slide, damaged, or has no pixel size and none was given.
    """
    import openslide

    path = Path(path)
    if not path.exists():
        raise SlideError(f"{path}: no such file; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise SlideError(f"{path}: empty file (0 bytes); re-copy or re-export the slide")
    try:
        osr = openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError:
        raise SlideError(
            f"{path}: OpenSlide does not recognise it as a whole-slide image; it may be "
            "truncated or damaged, or not a slide (readable formats include "
            f"{', '.join(SLIDE_SUFFIXES)}, as tiled pyramids)"
        ) from None
    except Exception as exc:  # OpenSlideError, OSError: damaged or truncated files
        raise SlideError(
            f"{path}: OpenSlide cannot open it ({exc}); the file may be truncated or damaged"
        ) from None
    try:
        return Slide(path, osr, mpp=mpp)
    except BaseException:
        osr.close()
        raise


# -- tissue mask ----------------------------------------------------------------------


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values: the split maximising between-class variance."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    bins = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * bins)
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 - m0 * total) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    return int((best[0] + best[-1]) // 2)  # middle of a plateau (empty bins between modes)


@dataclass
class Mask:
    """A boolean tissue mask over the slide, from a thumbnail.

    ``array[row, col]`` is True on tissue; one mask pixel spans ``downsample``
    (x, y) level-0 pixels. ``fraction(region)`` is the tissue share of a level-0 box
    (area outside the slide counts as background).
    """

    array: np.ndarray
    downsample: tuple[float, float]
    threshold: int
    method: str

    def __post_init__(self) -> None:
        a = self.array.astype(np.int64)
        self._integral = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.int64)
        self._integral[1:, 1:] = a.cumsum(0).cumsum(1)

    @property
    def tissue_fraction(self) -> float:
        """Share of the slide covered by tissue."""
        return float(self.array.mean()) if self.array.size else 0.0

    def fractions(self, x: np.ndarray, y: np.ndarray, w: float, h: float) -> np.ndarray:
        """Tissue fractions of many level-0 boxes of one size (vectorised)."""
        dx, dy = self.downsample
        rows, cols = self.array.shape
        c0 = np.clip(np.rint(np.asarray(x) / dx), 0, cols).astype(np.int64)
        c1 = np.clip(np.rint((np.asarray(x) + w) / dx), 0, cols).astype(np.int64)
        r0 = np.clip(np.rint(np.asarray(y) / dy), 0, rows).astype(np.int64)
        r1 = np.clip(np.rint((np.asarray(y) + h) / dy), 0, rows).astype(np.int64)
        s = self._integral
        area = max((w / dx) * (h / dy), 1.0)
        return (s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]) / area

    def fraction(self, region: Region) -> float:
        """Tissue share of one level-0 region."""
        return float(
            self.fractions(np.array([region.x]), np.array([region.y]), region.width, region.height)[
                0
            ]
        )


def tissue_mask(
    slide: Slide,
    max_size: int = 1024,
    method: str = "saturation",
    min_threshold: int = 20,
    cleanup: int = 5,
) -> Mask:
    """Otsu tissue mask on a thumbnail, with morphological cleanup.

    The thumbnail (longest side ``max_size``) is blurred (radius ``max_size / 256``) so
    loose stroma counts as tissue, then ``method="saturation"`` (H&E and most stains)
    thresholds HSV saturation, or ``method="grey"`` darkness (255 - grey). The
    threshold is never below ``min_threshold``, so a blank slide gives an empty mask
    instead of noise. A closing then an opening with a ``cleanup``-pixel square fills
    pinholes and removes specks.
    """
    from PIL import ImageFilter

    thumb = slide.thumbnail(max_size)
    thumb = thumb.filter(ImageFilter.GaussianBlur(max(thumb.size) / 256))
    if method == "saturation":
        values = np.asarray(thumb.convert("HSV"))[..., 1]
    elif method == "grey":
        values = 255 - np.asarray(thumb.convert("L"))
    else:
        raise ConfigError(f"tissue mask method {method!r} is unknown; use 'saturation' or 'grey'")
    threshold = max(otsu_threshold(values), min_threshold)
    mask = values > threshold
    if cleanup > 1:
        size = cleanup if cleanup % 2 else cleanup + 1
        img = Image.fromarray(mask.astype(np.uint8) * 255)
        img = img.filter(ImageFilter.MaxFilter(size)).filter(ImageFilter.MinFilter(size))
        img = img.filter(ImageFilter.MinFilter(size)).filter(ImageFilter.MaxFilter(size))
        mask = np.asarray(img) > 127
    w, h = slide.dimensions
    downsample = (w / mask.shape[1], h / mask.shape[0])
    return Mask(array=mask, downsample=downsample, threshold=threshold, method=method)
