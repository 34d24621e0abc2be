"""``scale-vqa evidence``: raw annotations (free text, captions) -> canonical feature ids."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scale_vqa.commands._common import add_organs_dir_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evidence`` subcommand."""
    p = subparsers.add_parser(
        "evidence",
        help="map free-text findings and captions onto the organ vocabulary",
        description=(
            "Normalise raw annotations (JSONL, one zoom path per line) into canonical ones: "
            "free-text findings and negatives are mapped to feature ids (exact phrase or "
            "synonym first, else the nearest entry by sentence embedding above --threshold); "
            "captions per magnification are decomposed by an LLM (--llm) first. Terms that "
            "cannot be mapped, or whose feature is not visible at that scale, are dropped "
            "and listed in the report; the command warns about them and exits 0 (1 with "
            "--strict)."
        ),
    )
    p.add_argument("raw", metavar="RAW.jsonl", help="raw annotation file")
    p.add_argument("--out", required=True, metavar="ANN.jsonl", help="canonical annotations")
    p.add_argument(
        "--report",
        metavar="REPORT.json",
        help="mapping report (default: next to --out, named <out>.report.json)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="cosine similarity needed to map by meaning (default 0.65)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="lead the nearest feature needs over the next one (default 0.05)",
    )
    add_organs_dir_argument(p, help="extra folder (or file) of organ vocabularies; repeatable")
    p.add_argument(
        "--llm",
        metavar="SPEC",
        help="OpenAI-compatible endpoint for captions: base_url=...,model=...[,key_env=VAR,"
        "temperature=0,concurrency=4]; the key is read from $OPENAI_API_KEY or key_env",
    )
    p.add_argument(
        "--cache-dir",
        "--cache",
        dest="cache_dir",
        metavar="DIR",
        default=None,
        help="cache folder for LLM answers (DIR/llm) and embeddings (DIR/embeddings); "
        "default $SCALE_VQA_CACHE_DIR, else ~/.cache/scale-vqa; a rerun reuses it and makes "
        "no call twice",
    )
    p.add_argument(
        "--embedding-model",
        metavar="DIR",
        help="local SentenceTransformer folder (default: the bundled all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any term is unmapped, not visible, conflicting or unparsable",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Normalise, write the annotations and the report, print a summary."""
    from curation.cache import cache_dir
    from curation.embeddings import Embedder
    from curation.evidence import (
        DEFAULT_MARGIN,
        DEFAULT_THRESHOLD,
        normalise_annotations,
        write_report,
    )
    from curation.io import atomic_write_jsonl
    from curation.llm import LLMClient, LLMConfig
    from curation.organs import get_organ

    out = Path(args.out)
    report_path = Path(args.report) if args.report else out.with_name(out.stem + ".report.json")
    llm = None
    if args.llm:
        llm = LLMClient(LLMConfig.parse(args.llm), cache_dir=cache_dir("llm", args.cache_dir))
    embedder = Embedder(args.embedding_model, cache_dir=cache_dir("embeddings", args.cache_dir))
    dirs = tuple(args.organs_dir)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    anns, report = normalise_annotations(
        args.raw,
        organs=lambda name: get_organ(name, dirs),
        embedder=embedder,
        llm=llm,
        threshold=threshold,
        margin=DEFAULT_MARGIN if args.margin is None else args.margin,
    )
    atomic_write_jsonl(out, anns)
    write_report(report_path, report)
    c = report["counts"]
    print(
        f"wrote {len(anns)} annotations to {out}; {c['terms']} terms: {c['exact']} mapped "
        f"exactly, {c['embedding']} by embedding (threshold {threshold:g}), {c['unmapped']} "
        f"unmapped, {c['not_visible']} not visible at their scale, {c['conflicts']} conflicts"
    )
    if c["captions"]:
        print(
            f"captions: {c['captions']} decomposed by {llm.config.model if llm else 'LLM'}, "
            f"{c['unparsable_llm_answers']} unparsable answers; LLM: "
            f"{llm.usage.summary() if llm else '-'}"
        )
    print(f"report: {report_path}")
    dropped = c["unmapped"] + c["not_visible"] + c["conflicts"] + c["unparsable_llm_answers"]
    if dropped:
        print(
            f"warning: {dropped} item(s) were dropped (unmapped, not visible at their scale, "
            f"conflicting or unparsable); see {report_path}, then add synonyms to the organ "
            "vocabulary or fix the annotations",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    return 0
