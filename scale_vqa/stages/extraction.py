"""The extract stage: zoom paths at the annotations' centres (whole, or one ``shard: K/N``),
after checking that every annotated slide is found and its low-power field judgeable."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError, SlideError
from scale_vqa.stages.context import RebuildContext, jsonl_objects

_BUILD_HINTS = (
    (
        r"ask for at most (\S+)x, or pass allow_upsample=True \(CLI --allow-upsample\)",
        r"list at most \1x under 'magnifications' in build.yaml, or set 'allow_upsample: true'",
    ),
    (
        r"lower the minimum \(--min-tissue / min_tissue=[^)]*\), use a smaller --size, "
        r"or lower magnifications",
        "give the annotations explicit centres, or a smaller 'size' or lower 'magnifications' "
        "in build.yaml",
    ),
)


def stage_extract(ctx: RebuildContext) -> None:
    """Zoom paths at each annotation's centre (sampled on tissue when null)."""
    from scale_vqa.extract_shards import check_manifests, read_manifests

    excfg = extract_config(ctx)
    check_slides(ctx)
    warn_fields(ctx)
    if read_manifests(ctx.zoom):  # filled by `build --shard K/N` runs: check them
        check_manifests(ctx.zoom)
    # extract_slides resumes into its folder; a changed job list starts it afresh.
    if ctx.zoom.exists() and not (ctx.zoom / ".parts" / "config.json").is_file():
        shutil.rmtree(ctx.zoom)
    try:
        _extract(ctx, excfg, ctx.jobs)
    except ConfigError:  # made with other settings: start afresh
        shutil.rmtree(ctx.zoom, ignore_errors=True)
        _extract(ctx, excfg, ctx.jobs)
    from scale_vqa.extract import padded_note

    padded = padded_note(ctx.zoom)
    if padded:  # a warning, printed even when quiet (the card says it too)
        print(f"warning: {padded}", file=sys.stderr)


def extract_shard(ctx: RebuildContext) -> int:
    """``shard: K/N``: extract slice K of N of the annotated slides into the work folder.

    Reads the annotation files directly (no other stage runs, so N processes can share
    the work folder); the full build later checks the N shards and merges them. Returns
    the number of zoom paths extracted.
    """
    from curation.io import read_jsonl
    from scale_vqa.stages.inputs import extraction_job

    cfg = ctx.cfg
    jobs = [extraction_job(o, p, n) for p in cfg.annotations for n, o in read_jsonl(p)]
    return _extract(ctx, extract_config(ctx), jobs, shard=cfg.shard).n_paths


def _extract(
    ctx: RebuildContext, excfg: Any, jobs: Any, shard: tuple[int, int] | None = None
) -> Any:
    """scale_vqa.extract.extract_slides into the work folder; failed slides raise SlideError."""
    from scale_vqa.extract import extract_slides

    result = extract_slides(
        [str(p) for p in ctx.cfg.slides],
        ctx.zoom,
        excfg,
        annotations=jobs,
        progress=not ctx.quiet,
        report_failures=False,
        shard=shard,
    )
    if result.failures:
        raise SlideError(extraction_failure(result.failures, ctx.zoom))
    return result


def extract_config(ctx: RebuildContext) -> Any:
    """The extraction settings of this build (scale_vqa.extract.ExtractConfig)."""
    from scale_vqa.extract import ExtractConfig

    cfg = ctx.cfg
    return ExtractConfig(
        magnifications=tuple(cfg.magnifications),
        size=cfg.size,
        paths_per_slide=cfg.paths_per_slide,
        mpp=cfg.mpp,
        seed=cfg.seed,
        allow_upsample=cfg.allow_upsample,
        image_format=cfg.image_format,
        image_quality=cfg.image_quality,
    )


def extraction_failure(failures: list[dict[str, str]], zoom: Path) -> str:
    """One line for failed slides: the count, the first reason with build.yaml fixes."""
    first = failures[0]["error"]
    for pattern, repl in _BUILD_HINTS:
        first = re.sub(pattern, repl, first)
    more = f"; all in {zoom / 'failures.jsonl'}" if len(failures) > 1 else ""
    return f"{len(failures)} slide(s) failed during extraction; first: {first}{more}"


def check_slides(ctx: RebuildContext) -> None:
    """Every annotation's slide is found (by file stem among 'slides', else slide_path)."""
    stems = {p.stem for p in ctx.cfg.slides}
    missing: dict[str, str] = {}
    for job in jsonl_objects(ctx.jobs):
        sid, sp = job.get("slide_id"), job.get("slide_path") or ""
        if sid in stems or sid in missing:
            continue
        if sp and Path(sp).is_file():
            continue
        why = f"its slide_path {sp!r} does not exist" if sp else "it has no slide_path"
        missing[sid] = f"{job['where']}: slide {sid!r}: no slide file has that stem and {why}"
    if missing:
        lines = "\n  ".join(list(missing.values())[:20])
        raise InputError(
            f"{len(missing)} annotated slide(s) not found:\n  {lines}\nlist the slide files "
            "(or folders, globs) under 'slides' in build.yaml, named <slide_id>.<ext>, or "
            "give each annotation a slide_path relative to its annotation file"
        )


def warn_fields(ctx: RebuildContext) -> None:
    """Warn (stderr) where the organs' low-power features cannot be judged in the field."""
    from curation.organs import field_warnings, fields_mm, get_organ

    cfg = ctx.cfg
    widths = fields_mm(cfg.magnifications, cfg.size)
    for name in sorted({a.organ for a in ctx.read_annotations()}):
        for line in field_warnings(get_organ(name, cfg.organs_dir), widths):
            print(f"warning: {line}", file=sys.stderr)


def job_slides(jobs: Path) -> list[Path]:
    """Slide files named by the annotations (their identity enters the fingerprint)."""
    if not jobs.is_file():
        return []
    out: list[Path] = []
    for j in jsonl_objects(jobs):
        p = Path(j.get("slide_path") or "")
        if j.get("slide_path") and p.is_file() and p not in out:
            out.append(p)
    return sorted(out)
