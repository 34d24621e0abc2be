"""The question stages: generate (+ optional LLM rewording), screen, audit; with the
generator and adversary settings they share."""

from __future__ import annotations

from typing import Any

from curation.errors import InputError
from curation.io import atomic_write_jsonl
from scale_vqa.config import LLMEndpoint
from scale_vqa.stages.context import RebuildContext, write_json


def generator(ctx: RebuildContext, naive: bool | None = None) -> Any:
    """curation.generate.Generator over the annotations (``naive`` overrides the config's),
    told which zoom paths share tissue (overlapping fields, from the extract stage)."""
    from curation.generate import Generator, GeneratorConfig
    from scale_vqa.extract import ZOOM_PATHS, read_zoom_paths
    from scale_vqa.shared_tissue import tissue_map

    cfg = ctx.cfg
    sp = cfg.split
    has_zoom = (ctx.zoom / ZOOM_PATHS).is_file()
    tissue = tissue_map(read_zoom_paths(ctx.zoom)) if has_zoom else None
    return Generator(
        ctx.read_annotations(),
        seed=cfg.seed,
        naive=cfg.generation.naive if naive is None else naive,
        organs_dir=[str(d) for d in cfg.organs_dir],
        ratios=(sp.train, sp.validation, sp.test),
        config=GeneratorConfig(
            question_types=tuple(cfg.generation.question_types),
            split_min_chunk=cfg.generation.split_min_chunk,
        ),
        tissue=tissue,
    )


def adversaries(ctx: RebuildContext) -> list[Any]:
    """The text-only adversaries of ``screen:`` in build.yaml (the screen's and the audit's)."""
    from curation.adversaries import default_battery, make_adversaries

    sc = ctx.cfg.screen
    embedder = None
    if sc.embeddings:
        from curation.embeddings import Embedder

        embedder = Embedder()  # the persistent cache (curation.cache)
    if sc.adversaries:
        advs = make_adversaries(sc.adversaries, embedder=embedder)
    else:
        advs = default_battery(embedder=embedder, include_embeddings=sc.embeddings)
    if sc.llm:
        from curation.llm_adversary import llm_adversaries

        by_samples: dict[int, list[str]] = {}
        for e in sc.llm:
            by_samples.setdefault(e.samples, []).append(e.spec())
        for k, specs in sorted(by_samples.items()):
            advs.extend(
                llm_adversaries(specs, samples=k, flag_rule=sc.flag.rule, cache_dir=ctx.cache)
            )
    return advs


def stage_generate(ctx: RebuildContext) -> None:
    """Annotations + splits -> questions.jsonl (reworded with 'reword:' in build.yaml)."""
    from curation.records import write_questions

    qs = generator(ctx).generate(progress=not ctx.quiet)
    if not qs:
        raise InputError(
            f"{ctx.annotations}: the annotations produced no question; give more zoom "
            "paths with findings and negatives at several scales"
        )
    write_questions(ctx.questions, qs)
    if ctx.cfg.reword is not None:
        reword(ctx, ctx.cfg.reword)


def reword(ctx: RebuildContext, endpoint: LLMEndpoint) -> None:
    """The optional ``reword:`` step of generation: each complementary set of
    questions.jsonl reworded in place by ``endpoint`` (:mod:`curation.reword`), the report
    to reword_report.json, the answers cached in the work folder."""
    from curation.records import read_questions, write_questions
    from curation.reword import reword_questions

    client = ctx.llm_client(endpoint)
    dirs = [str(d) for d in ctx.cfg.organs_dir]
    qs = list(read_questions(ctx.questions))
    result = reword_questions(qs, client, dirs, progress=not ctx.quiet)
    write_questions(ctx.questions, result.questions)
    write_json(ctx.reword_report, result.report)


def stage_screen(ctx: RebuildContext) -> None:
    """questions.jsonl -> screened.jsonl, dropped.jsonl, screen_report.json."""
    from curation.records import read_questions, write_questions

    qs = list(read_questions(ctx.questions))
    if ctx.cfg.screen.enabled:
        result = _screen(ctx, qs)
        report, dropped, kept = result.report, result.dropped, result.kept
    else:
        report, dropped, kept = {"enabled": False, "n": len(qs)}, [], qs
    write_json(ctx.screen_report, report)
    atomic_write_jsonl(ctx.dropped, dropped)
    write_questions(ctx.screened, kept)


def _screen(ctx: RebuildContext, qs: list[Any]) -> Any:
    """curation.screen.screen with this build's adversaries, AFLite and regeneration."""
    from curation.generate import Regenerator
    from curation.screen import screen

    cfg = ctx.cfg
    aflite = None
    if cfg.screen.aflite:
        from curation.aflite import AFLite

        aflite = AFLite(seed=cfg.seed)
    regenerate = Regenerator(generator(ctx, naive=False))
    result = screen(
        qs,
        adversaries(ctx),
        aflite=aflite,
        regenerate=regenerate,
        rounds=cfg.screen.rounds,
        seed=cfg.seed,
        alpha=cfg.screen.flag.alpha,
        min_excess=cfg.screen.flag.min_excess,
    )
    if not result.kept:
        raise InputError(
            "the screen dropped every question; loosen 'screen.flag' or add annotations"
        )
    return result


def stage_audit(ctx: RebuildContext) -> None:
    """Leakage audit of the screened questions (the rows to be built), in the order the
    build publishes them (split by split, each in its shards' order) -> audit.json."""
    from curation.audit import audit
    from curation.published import published_order
    from curation.records import read_questions

    qs = published_order(list(read_questions(ctx.screened)), ctx.cfg.seed)
    report = audit(
        qs,
        adversaries=adversaries(ctx),
        seed=ctx.cfg.seed,
        dataset_level=True,
        null=ctx.cfg.audit.null_refits,
    )
    write_json(ctx.audit, report)
