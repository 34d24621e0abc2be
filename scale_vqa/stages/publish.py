"""The build stage: screened questions joined with their crops (after the expert review,
with 'review:' in build.yaml) -> Parquet shards + card; and the counts for the card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from curation.errors import InputError, ValidationError
from scale_vqa.rebuild_card import card_info, empty_splits_note
from scale_vqa.stages.context import (
    RebuildContext,
    count_lines,
    jsonl_objects,
    read_json,
    write_json,
)


def rows_by_split(
    ctx: RebuildContext, zoom: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, list[Any]]:
    """Each screened question joined with its zoom path's crops, low -> high power
    (``zoom``: the ``zoom_paths.jsonl`` records, read from the work folder when None)."""
    from curation.records import SPLITS, read_questions
    from scale_vqa.extract import crops_low_to_high, read_zoom_paths
    from scale_vqa.schema import REGION_KEYS, Row

    paths = {z["path_id"]: z for z in (read_zoom_paths(ctx.zoom) if zoom is None else zoom)}
    out: dict[str, list[Any]] = {}
    qs = reviewed(ctx, list(read_questions(ctx.screened)))
    for q in tqdm(qs, desc="rows", unit="row", disable=ctx.quiet, leave=False):
        z = paths.get(q.path_id)
        if z is None:
            raise InputError(
                f"{ctx.screened}: question {q.id} refers to zoom path {q.path_id!r}, which "
                f"{ctx.zoom / 'zoom_paths.jsonl'} lacks; rerun with --force-stage extract"
            )
        if q.split not in SPLITS:
            raise ValidationError(
                f"{ctx.screened}: question {q.id} has split {q.split!r}; the generate "
                "stage must assign train/validation/test"
            )
        crops = crops_low_to_high(z)
        row = Row.from_question(
            q,
            images=[str(ctx.zoom / c["image"]) for c in crops],
            magnifications=[float(c["magnification"]) for c in crops],
            mpp=[float(c["mpp"]) for c in crops],
            regions=[{k: int(c["region"][k]) for k in REGION_KEYS} for c in crops],
        )
        out.setdefault(q.split, []).append(row)
    return {s: out[s] for s in SPLITS if s in out}


def reviewed(ctx: RebuildContext, qs: list[Any]) -> list[Any]:
    """The review step (build.yaml 'review:'): drop rejected sets, apply adjudicated edits."""
    if ctx.cfg.review is None:
        return qs
    from scale_vqa.review.apply import review_step

    qs, ctx.review_card = review_step(
        qs, ctx.cfg.review, ctx.work, ctx.annotations, ctx.cfg.organs_dir
    )
    return qs


def stage_build(ctx: RebuildContext) -> None:
    """Rows -> Parquet shards with embedded images + README card (atomic folder swap)."""
    from scale_vqa.build import write_dataset
    from scale_vqa.extract import read_zoom_paths

    cfg = ctx.cfg
    zoom = read_zoom_paths(ctx.zoom)
    rows = rows_by_split(ctx, zoom)
    ctx.empty_note = empty_splits_note(ctx, {s: len(r) for s, r in rows.items()})
    tissue = check_shared_tissue(ctx, rows, zoom)
    hidden = ["test"] if cfg.hidden_test and "test" in rows else []
    if hidden:
        from baselines.answer_key import withhold, write_key

        rows["test"], key = withhold(rows["test"])
        write_key(cfg.key_path, key)
    result = write_dataset(
        cfg.output,
        rows,
        card_info(ctx),
        max_shard_bytes=int(cfg.shard_size_mb * 2**20),
        on_shard=ctx.on_shard,
        progress=not ctx.quiet,
        hidden_splits=hidden,
        overwrite=ctx.overwrite,
        order_seed=cfg.seed,
    )
    shards = [
        {"path": s.path, "rows": s.rows, "bytes": s.bytes, "sha256": s.sha256}
        for s in result.shards
    ]
    write_json(
        ctx.build_report,
        {
            "output": str(cfg.output),
            "splits": result.splits,
            "bytes": result.total_bytes,
            "shards": shards,
            "shared_tissue": tissue,
        },
    )


def check_shared_tissue(
    ctx: RebuildContext, rows: dict[str, list[Any]], zoom: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Rows of different splits on overlapping fields of one slide file
    (:mod:`scale_vqa.shared_tissue`; ``zoom``: the ``zoom_paths.jsonl`` records): an
    InputError, or with ``split.shared_tissue: warn`` a warning and
    ``ctx.shared_tissue_note`` for the card. Returns the report."""
    import sys

    from scale_vqa.extract import slide_file
    from scale_vqa.shared_tissue import describe, field_of, shared_tissue, shared_tissue_error

    slide_of = {z["path_id"]: slide_file(z) for z in zoom}
    fields = {
        r.path_id: field_of(r.path_id, split, slide_of[r.path_id], r.regions, r.magnifications)
        for split, rs in rows.items()
        for r in rs
    }
    found = shared_tissue(fields.values())
    if found.pairs:
        ids = {s: [r.path_id for r in rs] for s, rs in rows.items()}
        if ctx.cfg.split.shared_tissue == "error":
            raise InputError(shared_tissue_error(found, ids))
        ctx.shared_tissue_note = describe(found, ids)
        ctx.shared_tissue_test = found.rows_by_split(ids).get("test", 0)
        print(f"warning: shared tissue: {ctx.shared_tissue_note}", file=sys.stderr)
    return found.to_dict()


def collect_counts(ctx: RebuildContext) -> None:
    """Counts for the summary and the card, from what the stages wrote."""
    c = ctx.counts
    c["slides"] = len(ctx.cfg.slides) or len(
        {j["slide_path"] for j in jsonl_objects(ctx.jobs)} if ctx.jobs.is_file() else set()
    )
    lines = {
        "annotations": ctx.annotations,
        "zoom_paths": ctx.zoom / "zoom_paths.jsonl",
        "generated": ctx.questions,
        "kept": ctx.screened,
    }
    for key, path in lines.items():
        if path.is_file():
            c[key] = count_lines(path)
    if ctx.screened.is_file() and "generated" in c:
        c["dropped"] = count_lines(ctx.dropped)
    if ctx.build_report.is_file():
        c["splits"] = read_json(ctx.build_report)["splits"]
