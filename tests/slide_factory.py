"""Real slide files for tests and benchmarks: pyramidal TIFFs and damaged files.

Pyramids are written with tifffile as tiled TIFFs, one page per level (reduced
levels flagged REDUCEDIMAGE), with resolution tags in pixels per centimetre, which
OpenSlide reads as ``generic-tiff`` with ``openslide.mpp-x/y``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

CMU_SLIDE = Path(__file__).resolve().parents[1] / "scale_vqa" / "data" / "CMU-1-Small-Region.svs"


@functools.lru_cache(maxsize=1)
def cmu_pixels() -> np.ndarray:
    """The CMU slide's level-0 pixels as an RGB uint8 array (height, width, 3)."""
    import openslide

    with openslide.OpenSlide(str(CMU_SLIDE)) as s:
        pixels = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
    pixels.setflags(write=False)
    return pixels


def tile_pixels(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Repeat ``pixels`` (mirrored, so seams match) to fill ``width`` x ``height``."""
    h, w = pixels.shape[:2]
    block = np.concatenate([pixels, pixels[:, ::-1]], axis=1)
    block = np.concatenate([block, block[::-1]], axis=0)
    reps = (-(-height // (2 * h)), -(-width // (2 * w)), 1)
    return np.ascontiguousarray(np.tile(block, reps)[:height, :width])


def write_pyramid(
    path: str | Path,
    pixels: np.ndarray,
    mpp: float | None = 0.499,
    levels: int = 3,
    tile: int = 256,
    compression: str = "zlib",
) -> Path:
    """Write a tiled pyramidal TIFF, halving each level; ``mpp=None`` omits resolution."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    level = np.ascontiguousarray(pixels)
    with tifffile.TiffWriter(path) as tw:
        for i in range(levels):
            kwargs: dict = {}
            if mpp is not None:
                res = 1e4 / (mpp * 2**i)  # pixels per centimetre at this level
                kwargs = {"resolution": (res, res), "resolutionunit": "CENTIMETER"}
            tw.write(
                level,
                tile=(tile, tile),
                compression=compression,
                photometric="rgb",
                subfiletype=1 if i else 0,
                metadata=None,
                **kwargs,
            )
            h, w = level.shape[:2]
            if min(h, w) < 2 * 16:
                break
            level = _halve(level)
    return path


def _halve(pixels: np.ndarray) -> np.ndarray:
    """2x2 box average (the usual way scanners build pyramid levels)."""
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    p = pixels[:h, :w].astype(np.uint16)
    out = (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2] + 2) // 4
    return out.astype(np.uint8)


def write_cmu_pyramid(path: str | Path, levels: int = 3, mpp: float | None = 0.499) -> Path:
    """The CMU slide as a multi-level tiled TIFF (cropped to a multiple of 2**(levels-1)
    px, so every level is an exact power-of-two reduction: 2220 x 2964 for 3 levels)."""
    k = 2 ** (levels - 1)
    pixels = cmu_pixels()
    h, w = pixels.shape[0] // k * k, pixels.shape[1] // k * k
    return write_pyramid(path, pixels[:h, :w], mpp=mpp, levels=levels)


def write_blank_slide(path: str | Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """A tissue-free (white, slight noise) slide with mpp 0.5."""
    rng = np.random.default_rng(0)
    w, h = size
    pixels = (250 + rng.integers(0, 5, (h, w, 3))).astype(np.uint8)
    return write_pyramid(path, pixels, mpp=0.5, levels=2)


def write_truncated(path: str | Path, source: Path = CMU_SLIDE, fraction: float = 0.4) -> Path:
    """The first ``fraction`` of a real slide file's bytes."""
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return Path(path)


def write_corrupt_tiles(path: str | Path) -> Path:
    """A CMU pyramid whose header is intact but whose level-0 tile data is zeroed: it
    opens (and its thumbnail level reads), and fails when full-resolution pixels are read."""
    import tifffile

    path = write_cmu_pyramid(path)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        start = min(page.dataoffsets)  # keep the tile index: zero the tile data only
        end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts))
    data = bytearray(path.read_bytes())
    data[start:end] = bytes(end - start)
    path.write_bytes(bytes(data))
    return path


def write_not_an_image(path: str | Path) -> Path:
    """A text file named like a slide."""
    Path(path).write_text("this is not a slide\n" * 50, encoding="utf-8")
    return Path(path)


def write_empty(path: str | Path) -> Path:
    """A zero-byte file."""
    Path(path).write_bytes(b"")
    return Path(path)
