"""Zoom-path extraction speed: pyramid-aware reads vs the naive level-0 read.

Writes a large pyramidal TIFF (the CMU slide mirrored and tiled to SIZE x SIZE,
LEVELS levels, JPEG or zlib tiles) into a temporary folder, then, for the same
centres, times

* ours:  ``Slide.read`` (level just finer than needed + Lanczos), and
* naive: ``read_region`` of the whole field at level 0, then a Lanczos resize,

per magnification and for whole zoom paths. Both run in this process, interleaved
per centre, each with its own OpenSlide handle and tile cache. Then it times writing the
crops read (encode + atomic write, as ``extract`` does) as JPEG q90 4:4:4 (the default)
against PNG level 6 (the previous default), with bytes and PSNR. Not part of the test suite::

    python benchmarks/bench_extract.py [--side 8192] [--levels 4] [--size 512] [--n 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scale_vqa.slides import open_slide
from scale_vqa.zoom import field_regions
from tests import slide_factory


def naive_read(slide, region, size: int) -> Image.Image:
    """The whole field at level 0, flattened, then resized."""
    rgba = slide._osr.read_region((region.x, region.y), 0, (region.width, region.height))
    return rgba.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8192, help="slide side in pixels")
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--size", type=int, default=512, help="crop side in pixels")
    ap.add_argument("--n", type=int, default=12, help="centres per magnification")
    ap.add_argument("--compression", default="jpeg", choices=["jpeg", "zlib"])
    ap.add_argument("--magnifications", default="2.5,5,10,20")
    args = ap.parse_args()
    mags = [float(m) for m in args.magnifications.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pixels = slide_factory.tile_pixels(slide_factory.cmu_pixels(), args.side, args.side)
        path = slide_factory.write_pyramid(
            Path(tmp) / "big.tif",
            pixels,
            mpp=0.499,
            levels=args.levels,
            compression=args.compression,
        )
        del pixels
        print(
            f"wrote {args.side}x{args.side} {args.levels}-level {args.compression} pyramid "
            f"({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        rng = np.random.default_rng(0)
        import openslide

        def fresh() -> tuple:
            """Two handles, each with its own empty tile cache (OpenSlide 4 otherwise
            shares one, and the method timed second would read decoded tiles)."""
            pair = open_slide(path), open_slide(path)
            for s in pair:
                s._osr.set_cache(openslide.OpenSlideCache(256 * 1024 * 1024))
            return pair

        ours_slide, naive_slide = fresh()
        print(f"levels: {ours_slide.level_downsamples}, {ours_slide.describe()}")
        margin = args.size * 10 / mags[0] / 0.499
        centres = [
            tuple(rng.uniform(margin / 2, args.side - margin / 2, 2).round().astype(int))
            for _ in range(args.n)
        ]
        rows = []
        for mag in mags:
            ours_slide, naive_slide = fresh()
            t_ours = t_naive = 0.0
            level = 0
            diffs = []
            for c in centres:
                region = field_regions(ours_slide, c, [mag], args.size)[0][0]
                t = time.perf_counter()
                img, level = ours_slide.read(region, (args.size, args.size))
                t_ours += time.perf_counter() - t
                t = time.perf_counter()
                ref = naive_read(naive_slide, region, args.size)
                t_naive += time.perf_counter() - t
                diffs.append(np.abs(np.asarray(img, float) - np.asarray(ref, float)).mean())
            rows.append(
                (f"{mag:g}x (level {level})", args.n / t_ours, args.n / t_naive, np.mean(diffs))
            )
        # whole zoom paths at every magnification
        ours_slide, naive_slide = fresh()
        t_ours = t_naive = 0.0
        for c in centres:
            regions = [r for r, _, _ in field_regions(ours_slide, c, mags, args.size)]
            t = time.perf_counter()
            for r in regions:
                ours_slide.read(r, (args.size, args.size))
            t_ours += time.perf_counter() - t
            t = time.perf_counter()
            for r in regions:
                naive_read(naive_slide, r, args.size)
            t_naive += time.perf_counter() - t
        rows.append(
            (f"path {args.magnifications}", args.n / t_ours, args.n / t_naive, float("nan"))
        )
        crops = [ours_slide.read(r, (args.size, args.size))[0] for c in centres
                 for r, _, _ in field_regions(ours_slide, c, mags, args.size)]  # fmt: skip
        ours_slide.close()
        naive_slide.close()
        writes = write_times(crops, Path(tmp) / "crops")

    print(f"\n{args.size} px crops, {args.n} centres; rates per second (crops, or whole paths)")
    print(f"{'field':<22}{'ours/s':>10}{'naive/s':>10}{'speed-up':>10}{'mean |diff|':>13}")
    for name, ours, naive, diff in rows:
        d = "" if np.isnan(diff) else f"{diff:.2f}"
        print(f"{name:<22}{ours:>10.2f}{naive:>10.2f}{ours / naive:>9.1f}x{d:>13}")
    print(f"\nwriting {len(crops)} crops of {args.size} px (encode + atomic write)")
    print(f"{'format':<28}{'ms/crop':>9}{'kB/crop':>9}{'PSNR dB':>9}")
    for name, (ms, kb, db) in writes.items():
        print(f"{name:<28}{ms:>9.1f}{kb:>9.0f}{db:>9}")
    png, jpeg = writes["png (previous default)"], writes["jpeg q90 4:4:4 (default)"]
    print(f"PNG / JPEG: write time {png[0] / jpeg[0]:.2f}x, bytes {png[1] / jpeg[1]:.2f}x")
    print(f"load average {os.getloadavg()}")


def write_times(crops: list, folder: Path) -> dict[str, tuple[float, float, str]]:
    """Per format: ms per crop (encode + atomic write), kB per crop, mean PSNR."""
    from curation.io import atomic_write_bytes
    from scale_vqa.encoding import ImageEncoding, psnr

    encodings = {
        "png (previous default)": ImageEncoding("png"),
        "jpeg q90 4:4:4 (default)": ImageEncoding("jpeg", 90),
        "jpeg q95 4:4:4": ImageEncoding("jpeg", 95),
        "webp q90": ImageEncoding("webp", 90),
    }
    best: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _ in range(3):  # formats interleaved, best of three rounds (the machine is shared)
        for name, enc in encodings.items():
            size = 0
            t = time.perf_counter()
            for i, img in enumerate(crops):
                data = enc.encode(img)
                atomic_write_bytes(folder / f"{i}{enc.suffix}", data)
                size += len(data)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
            sizes[name] = size
    out = {}
    for name, enc in encodings.items():
        db = float(np.mean([min(psnr(img, enc.encode(img)), 99.0) for img in crops[:8]]))
        out[name] = (
            1000 * best[name] / len(crops),
            sizes[name] / len(crops) / 1000,
            "lossless" if enc.lossless else f"{db:.1f}",
        )
    return out


if __name__ == "__main__":
    main()
