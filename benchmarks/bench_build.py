"""A rebuild at benchmark scale: today's shards against a PNG-per-row build, in one run.

Simulated annotations (curation.simulate, every organ, ~1,500 zoom paths -> ~5,000
questions) are given centres on the tissue of the vendored CMU-1-Small-Region.svs, so the
images are real crops of one skin slide whatever the organ says: a size and speed test,
not a dataset. It writes a build.yaml and runs the whole pipeline (JPEG q90 4:4:4 crops,
rows grouped by zoom path, one copy of each crop per row group), then, from the same
screened questions and centres, the old way: PNG crops embedded row by row in the given
order with 64-row groups and Parquet's default 1 MB dictionary. For both it measures shard
bytes, ``datasets.load_dataset`` time and cache bytes (fresh cache), and reports ratios
old/new. ``--estimate-512`` extracts a sample of the paths at 512 px in both formats and
estimates the 5,000-question build at 512 px. Not part of the test suite::

    python benchmarks/bench_build.py [--paths 1500] [--size 224] [--dir /tmp/bench-build]
        [--embeddings] [--keep] [--no-baseline] [--estimate-512 N]
"""

from __future__ import annotations

import argparse
import json
import os
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
        # every path is cropped from the one vendored slide, so splits share tissue
        "split: {shared_tissue: warn}\n"
        f"screen: {{embeddings: {str(embeddings).lower()}, rounds: 2}}\n"
        "output: dataset\nwork: work\n"
        "card: {name: Scale-VQA benchmark-scale size test}\n"
    )
    return cfg


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def legacy_write(out: Path, rows_by_split: dict, readme: str) -> None:
    """The previous writer: rows in the given order, 64-row groups, default dictionary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scale_vqa.build import _encode_row, shard_name
    from scale_vqa.schema import FEATURES

    schema = FEATURES.arrow_schema
    max_bytes = 256 * 2**20
    for split, rows in rows_by_split.items():
        rows = [r.to_dict() for r in rows]
        sizes = [sum(Path(i).stat().st_size for i in r["images"]) for r in rows]
        plan, start, acc = [], 0, 0
        for i, size in enumerate(sizes):
            if i > start and acc + size > max_bytes:
                plan.append((start, i))
                start, acc = i, 0
            acc += size
        plan.append((start, len(rows)))
        for index, (a, b) in enumerate(plan):
            path = out / shard_name(split, index, len(plan))
            path.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(path, schema, compression="zstd", version="2.6") as writer:
                for g in range(a, b, 64):
                    batch = [_encode_row(r, split) for r in rows[g : min(g + 64, b)]]
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    (out / "README.md").write_text(readme)


def measure_load(out: Path) -> dict:
    """``load_dataset`` on a fresh cache: seconds, cache bytes, first row's images."""
    import datasets

    cache = Path(tempfile.mkdtemp(prefix="bench-build-cache-"))
    try:
        t0 = time.perf_counter()
        ds = datasets.load_dataset(str(out), cache_dir=str(cache))
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        row = ds["train"][0]
        n_images = len(row["images"])
        sizes = [im.size for im in row["images"]]
        t_row = time.perf_counter() - t0
        return {
            "shard_bytes": sum(p.stat().st_size for p in out.glob("data/*.parquet")),
            "shards": len(list(out.glob("data/*.parquet"))),
            "load_dataset_s": round(t_load, 1),
            "cache_bytes": folder_bytes(cache),
            "first_row_s": round(t_row, 3),
            "images_per_row": n_images,
            "first_row_sizes": sizes,
            "rows": {k: len(v) for k, v in ds.items()},
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def used_crops(zoom: Path, dataset: Path) -> list[Path]:
    """The crop files of the zoom paths that the dataset's rows use (each once)."""
    import pyarrow.parquet as pq

    from scale_vqa.extract import read_zoom_paths

    used: set[str] = set()
    for f in dataset.glob("data/*.parquet"):
        used |= set(pq.read_table(f, columns=["path_id"])["path_id"].to_pylist())
    return [
        zoom / c["image"] for z in read_zoom_paths(zoom) if z["path_id"] in used for c in z["crops"]
    ]


def estimate_512(work: Path, n_sample: int, crops_per_question: float, share: float = 0.65) -> dict:
    """Extract ``n_sample`` of the build's paths at 512 px as JPEG and PNG; scale to 5,000."""
    from curation.io import read_jsonl
    from scale_vqa.extract import ExtractConfig, extract_slides

    jobs = [j for _, j in read_jsonl(work / "extract_jobs.jsonl")]
    sample = jobs[:: max(1, len(jobs) // n_sample)][:n_sample]
    out: dict = {"sample_paths": len(sample)}
    for fmt in ("jpeg", "png"):
        d = Path(tempfile.mkdtemp(prefix=f"bench-512-{fmt}-"))
        try:
            t0 = time.perf_counter()
            extract_slides(
                [], d, ExtractConfig(size=512, image_format=fmt), annotations=sample,
                progress=False,
            )  # fmt: skip
            dt = time.perf_counter() - t0
            crops = list((d / "images").rglob("*.*"))
            per_crop = sum(p.stat().st_size for p in crops) / len(crops)
            out[fmt] = {"bytes_per_crop": round(per_crop), "extract_s": round(dt, 1)}
            if fmt == "jpeg":
                out[fmt]["psnr"] = json.loads((d / "encoding.json").read_text())["psnr"]
        finally:
            shutil.rmtree(d, ignore_errors=True)
    distinct = crops_per_question * 5000
    cells = 3 * 5000
    out["distinct_crops_for_5000_questions"] = round(distinct)
    out["jpeg_once_gb"] = round(distinct * out["jpeg"]["bytes_per_crop"] / 1e9, 2)
    out["png_per_row_gb"] = round(share * cells * out["png"]["bytes_per_crop"] / 1e9, 2)
    out["load_dataset_cache_jpeg_gb"] = round(cells * out["jpeg"]["bytes_per_crop"] / 1e9, 2)
    out["note"] = (
        "jpeg_once: 3 crops per zoom path stored once; png_per_row: 3 cells per row, "
        f"a share {share} of them stored (as measured for the old layout in this run, else "
        "the issue's 0.65)"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", type=int, default=1500, help="simulated zoom paths")
    p.add_argument("--size", type=int, default=224, help="crop size in pixels")
    p.add_argument("--dir", type=Path, help="working folder (default: a temporary one)")
    p.add_argument("--embeddings", action="store_true", help="add embedding adversaries")
    p.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    p.add_argument("--no-baseline", action="store_true", help="skip the PNG-per-row build")
    p.add_argument("--estimate-512", type=int, default=0, metavar="N", help="sample N paths")
    args = p.parse_args(argv)

    from scale_vqa.config import load_config
    from scale_vqa.extract import ExtractConfig, extract_slides
    from scale_vqa.pipeline import run_pipeline
    from scale_vqa.stages.context import RebuildContext
    from scale_vqa.stages.publish import rows_by_split

    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-build-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg_path = write_inputs(folder, args.paths, args.size, args.embeddings)
    t_inputs = time.perf_counter() - t0

    t0 = time.perf_counter()
    cfg = load_config(cfg_path)
    result = run_pipeline(cfg, quiet=True)
    t_build = time.perf_counter() - t0
    out = folder / "dataset"
    work = folder / "work"
    crops = used_crops(work / "zoom", out)
    report: dict = {
        "paths": args.paths,
        "size": args.size,
        "load_avg_start": os.getloadavg(),
        "inputs_s": round(t_inputs, 1),
        "build_s": round(t_build, 1),
        "stages_s": {r.name: round(r.seconds, 1) for r in result.reports},
        "counts": result.counts,
        "distinct_crops": len(crops),
        "distinct_crop_bytes": sum(q.stat().st_size for q in crops),
        "encoding": json.loads((work / "zoom" / "encoding.json").read_text()),
        "new": measure_load(out),
    }
    cells = sum(report["new"]["rows"].values()) * report["new"]["images_per_row"]
    report["image_cells"] = cells
    if not args.no_baseline:
        png = folder / "png-zoom"
        excfg = ExtractConfig(
            magnifications=tuple(cfg.magnifications), size=cfg.size, seed=cfg.seed,
            image_format="png",
        )  # fmt: skip
        t0 = time.perf_counter()
        extract_slides([], png, excfg, annotations=work / "extract_jobs.jsonl", progress=False)
        t_png = time.perf_counter() - t0
        ctx = RebuildContext(cfg, quiet=True)
        ctx.zoom = png
        t0 = time.perf_counter()
        legacy_write(folder / "png-dataset", rows_by_split(ctx), (out / "README.md").read_text())
        t_write = time.perf_counter() - t0
        report["old"] = measure_load(folder / "png-dataset")
        report["old"]["extract_s"] = round(t_png, 1)
        report["old"]["write_s"] = round(t_write, 1)
        new, old = report["new"], report["old"]
        report["ratios_old_over_new"] = {
            "shard_bytes": round(old["shard_bytes"] / new["shard_bytes"], 2),
            "cache_bytes": round(old["cache_bytes"] / new["cache_bytes"], 2),
            "load_dataset_s": round(old["load_dataset_s"] / max(new["load_dataset_s"], 0.1), 2),
        }
        # not interleaved (minutes apart on a shared machine): bench_extract.py times writes
        report["old"]["extract_s_vs_new_extract_stage"] = round(
            t_png / max(report["stages_s"].get("extract", 0.1), 0.1), 2
        )
        png_bytes = sum(q.stat().st_size for q in used_crops(png, out))
        report["old"]["distinct_crop_bytes"] = png_bytes
        report["old"]["share_of_full_copies"] = round(
            old["shard_bytes"] / (png_bytes * cells / max(len(crops), 1)), 3
        )
    report["new"]["copies_per_distinct_crop"] = round(
        report["new"]["shard_bytes"] / report["distinct_crop_bytes"], 3
    )
    if args.estimate_512:
        per_question = len(crops) / sum(report["new"]["rows"].values())
        share = report.get("old", {}).get("share_of_full_copies", 0.65)
        report["estimate_512"] = estimate_512(work, args.estimate_512, per_question, share)
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    if not args.keep and args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
