"""The rebuild's inputs: annotations import (raw or canonical -> canonical) and the split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from curation.errors import InputError, ValidationError
from curation.io import atomic_write_jsonl
from scale_vqa.stages.context import RebuildContext, write_json


def stage_annotations(ctx: RebuildContext) -> None:
    """Raw or canonical annotations -> canonical annotations.jsonl (+ evidence report)."""
    from curation.annotations import parse_annotation, write_annotations
    from curation.evidence import normalise_annotations
    from curation.io import read_jsonl
    from curation.organs import get_organ

    cfg = ctx.cfg
    llm = ctx.llm_client(cfg.evidence.llm) if cfg.evidence.llm is not None else None

    def organs(name: str) -> Any:
        return get_organ(name, cfg.organs_dir)

    canon: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    reports: dict[str, Any] = {}
    for path in cfg.annotations:
        jobs.extend(extraction_job(obj, path, lineno) for lineno, obj in read_jsonl(path))
        rows, reports[str(path)] = normalise_annotations(
            path, organs=organs, llm=llm, threshold=cfg.evidence.threshold
        )
        canon.extend(rows)
    if not canon:
        raise InputError(
            f"{', '.join(map(str, cfg.annotations))}: no annotation lines; give one zoom "
            "path per line"
        )
    unmapped = sum(len(r.get("unmapped", [])) for r in reports.values())
    if unmapped and not ctx.quiet:
        tqdm.write(
            f"warning: {unmapped} free-text term(s) could not be mapped to the vocabulary "
            f"and were left out; see {ctx.evidence_report}",
            file=sys.stderr,
        )
    report = reports if len(reports) > 1 else next(iter(reports.values()))
    anns = [parse_annotation(obj, f"annotation {i + 1}") for i, obj in enumerate(canon)]
    _check_unique_ids(anns)
    write_json(ctx.evidence_report, report)
    atomic_write_jsonl(ctx.jobs, jobs)
    write_annotations(ctx.annotations, anns)


def _check_unique_ids(anns: list[Any]) -> None:
    """Every path_id once across all annotation files."""
    seen: dict[str, int] = {}
    for i, a in enumerate(anns):
        if a.path_id in seen:
            raise ValidationError(
                f"annotations: path_id {a.path_id!r} appears twice (records {seen[a.path_id]}"
                f" and {i + 1}); path ids must be unique across all annotation files"
            )
        seen[a.path_id] = i + 1


def extraction_job(obj: dict[str, Any], source: Path, lineno: int) -> dict[str, Any]:
    """What extraction needs of one annotation line, with slide_path resolved to the file."""
    slide_path = obj.get("slide_path") or ""
    if isinstance(slide_path, str) and slide_path:
        p = Path(slide_path)
        if not p.is_absolute():
            p = source.parent / p
        slide_path = str(p.resolve()) if p.exists() else slide_path
    return {
        "path_id": obj.get("path_id"),
        "slide_id": obj.get("slide_id"),
        "centre": obj.get("centre"),
        "slide_path": slide_path,
        "where": f"{source}:{lineno}",
    }


def stage_split(ctx: RebuildContext) -> None:
    """annotations.jsonl -> splits.json (grouped by patient, else slide)."""
    from curation.split import assign_splits

    sp = ctx.cfg.split
    splits = assign_splits(
        ctx.read_annotations(), (sp.train, sp.validation, sp.test), seed=ctx.cfg.seed
    )
    write_json(ctx.splits, splits)
