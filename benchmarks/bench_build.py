"""A rebuild at benchmark scale: time and size of ``scale-vqa build``, then of load_dataset.

Simulated annotations (curation.simulate, every organ, ~1,500 zoom paths -> ~5,000
questions) are given centres on the tissue of the vendored CMU-1-Small-Region.svs, so the
images are real crops of one skin slide whatever the organ says: a size and speed test,
not a dataset. It writes a build.yaml, runs the whole pipeline (stage times from its
report), then measures the dataset folder and ``datasets.load_dataset`` on it with a fresh
cache. Not part of the test suite::

    python benchmarks/bench_build.py [--paths 1500] [--size 224] [--dir /tmp/bench-build]
        [--embeddings] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SLIDE = Path(__file__).resolve().parents[1] / "scale_vqa" / "data" / "CMU-1-Small-Region.svs"


def tissue_centres(n: int, size: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` centres on tissue of the vendored slide (a seeded shuffle of a tissue grid)."""
    import random

    from scale_vqa.slides import Region, open_slide, tissue_mask

    with open_slide(SLIDE) as slide:
        mask = tissue_mask(slide)
        w, h = slide.dimensions
        step = 32
        half = size // 2
        pts = [
            (x, y)
            for y in range(half, h - half, step)
            for x in range(half, w - half, step)
            if mask.fraction(Region(x - half, y - half, size, size)) >= 0.5
        ]
    rng = random.Random(f"bench-build:{seed}")
    rng.shuffle(pts)
    return [pts[i % len(pts)] for i in range(n)]


def write_inputs(folder: Path, n_paths: int, size: int, embeddings: bool) -> Path:
    """Simulated annotations with centres on the slide + a build.yaml; returns the config."""
    from curation.annotations import write_annotations
    from curation.simulate import simulate

    anns = simulate(n_paths=n_paths, seed=0)
    for a, (x, y) in zip(anns, tissue_centres(len(anns), size)):
        a.centre = {"x": x, "y": y}
        a.slide_path = str(SLIDE)
    write_annotations(folder / "annotations.jsonl", anns)
    cfg = folder / "build.yaml"
    cfg.write_text(
        "annotations: annotations.jsonl\n"
        f"size: {size}\n"
        "seed: 0\n"
        f"screen: {{embeddings: {str(embeddings).lower()}, rounds: 2}}\n"
        "output: dataset\nwork: work\n"
        "card: {name: Scale-VQA benchmark-scale size test}\n"
    )
    return cfg


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", type=int, default=1500, help="simulated zoom paths")
    p.add_argument("--size", type=int, default=224, help="crop size in pixels")
    p.add_argument("--dir", type=Path, help="working folder (default: a temporary one)")
    p.add_argument("--embeddings", action="store_true", help="add embedding adversaries")
    p.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = p.parse_args(argv)

    import datasets

    from scale_vqa.config import load_config
    from scale_vqa.pipeline import run_pipeline

    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-build-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg_path = write_inputs(folder, args.paths, args.size, args.embeddings)
    t_inputs = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = run_pipeline(load_config(cfg_path), quiet=True)
    t_build = time.perf_counter() - t0
    out = folder / "dataset"
    shards = sorted(out.glob("data/*.parquet"))

    cache = Path(tempfile.mkdtemp(prefix="bench-build-cache-"))
    t0 = time.perf_counter()
    ds = datasets.load_dataset(str(out), cache_dir=str(cache))
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    row = ds["train"][0]
    n_images = len(row["images"])
    t_row = time.perf_counter() - t0
    shutil.rmtree(cache, ignore_errors=True)

    report = {
        "paths": args.paths,
        "size": args.size,
        "inputs_s": round(t_inputs, 1),
        "build_s": round(t_build, 1),
        "stages_s": {r.name: round(r.seconds, 1) for r in result.reports},
        "counts": result.counts,
        "dataset_bytes": folder_bytes(out),
        "shards": len(shards),
        "work_bytes": folder_bytes(folder / "work"),
        "load_dataset_s": round(t_load, 1),
        "first_row_s": round(t_row, 3),
        "images_per_row": n_images,
        "rows": {k: len(v) for k, v in ds.items()},
    }
    print(json.dumps(report, indent=1))
    if not args.keep and args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
