"""``scale-vqa audit``: text-only leakage audit of any multiple-choice benchmark."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from curation.records import LeftOut, Question
from scale_vqa.commands._common import add_strict_argument, write_json
from scale_vqa.commands._common import jsonable as jsonable  # re-exported for callers


def add_adversary_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``audit`` and ``screen``: battery, embeddings, LLMs, cache, seed."""
    p.add_argument(
        "--adversaries",
        metavar="A,B,...",
        help="comma-separated adversaries (default: centrality, longest, shortest, overlap, "
        "position, bow-options, bow-qa, embed-lr; the audit adds the dataset-level "
        "meta-hash, meta-lr, context-lr, joint-context); also centrality-tfidf, aflite, "
        "joint:NAME (NAME decoded jointly per complementary set)",
    )
    p.add_argument(
        "--no-embeddings",
        action="store_true",
        help="skip sentence embeddings (no embed-lr; AFLite on hashed n-grams)",
    )
    p.add_argument(
        "--llm",
        action="append",
        default=[],
        metavar="base_url=URL,model=NAME[,key=value...]",
        help="an OpenAI-compatible model as an adversary (repeatable); asked with and "
        "without the question text",
    )
    p.add_argument("--llm-samples", type=int, default=1, metavar="K", help="answers per question")
    p.add_argument(
        "--llm-variants",
        default="full,choices",
        metavar="full,choices",
        help="ask with the question (full) and/or the options alone (choices); default both",
    )
    p.add_argument(
        "--flag-rule",
        choices=("any", "majority"),
        default="majority",
        help="an LLM answers a question when any / a majority of its K samples pick the key",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache for LLM answers (DIR/llm) and embeddings (DIR/embeddings, persistent); "
        "default: $SCALE_VQA_CACHE_DIR, else ~/.cache/scale-vqa",
    )
    p.add_argument(
        "--embed-unit",
        choices=("option", "clause"),
        default="clause",
        help="embed each distinct clause, averaged (default: several times fewer texts "
        "when options share clauses), or each distinct whole option",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for folds and partitions")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` parser."""
    p = subparsers.add_parser(
        "audit",
        help="measure text-only shortcuts of an MCQ benchmark (accuracy without images)",
        description=(
            "Run text-only adversaries (heuristics, cross-fitted learners, optional LLMs) on "
            "a multiple-choice benchmark and report accuracy per adversary and question type "
            "with Wilson 95% intervals against chance. PATH is an official release JSON "
            "file, a questions JSONL file, a built dataset folder, or a Hub dataset id. "
            "The verdict is in the report; the exit code is 0."
        ),
    )
    p.add_argument("path", metavar="PATH", help="release JSON, questions JSONL, folder or Hub id")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a bar chart")
    p.add_argument(
        "--train",
        metavar="PATH",
        help="fit learned adversaries on these questions and test on PATH (instead of "
        "cross-fitting within PATH)",
    )
    p.add_argument(
        "--split",
        metavar="NAME",
        help="only this split of a dataset folder or Hub id (default: all splits)",
    )
    add_strict_argument(p)
    p.add_argument(
        "--no-dataset-adversaries",
        action="store_true",
        help="skip the dataset-level adversaries (ids, row order, the other questions of "
        "a zoom path and patient, joint decoding of sets) that run by default",
    )
    p.add_argument(
        "--null",
        type=int,
        default=0,
        metavar="K",
        help="also refit every learned adversary K times on keys permuted within each "
        "complementary set: each learned cell gets its null 95th percentile and a "
        "permutation p-value (a calibrated bar for 'above chance'; K times the learned "
        "adversaries' run time; 0 = off)",
    )
    add_adversary_arguments(p)
    p.set_defaults(func=run)


# ------------------------------------------------------------------------ loading


def _question_from_row(row: dict[str, Any], where: str, split: str) -> Question:
    from dataclasses import fields

    names = {f.name for f in fields(Question)} - {"extra"}
    data = {k: v for k, v in row.items() if k in names and v is not None}
    if split and not data.get("split") and split in ("train", "validation", "test"):
        data["split"] = split
    return Question.from_dict(data, where=where)


def _from_dataset(
    dsd: Any, source: str, split: str | None, strict: bool = False, left: LeftOut | None = None
) -> list[Question]:
    from curation.errors import InputError, RecordError

    splits = list(dsd.keys())
    if split is not None:
        if split not in splits:
            raise InputError(f"{source}: no split {split!r}; it has {', '.join(splits)}")
        splits = [split]
    out: list[Question] = []
    for s in splits:
        ds = dsd[s]
        drop = [c for c in ("images",) if c in ds.column_names]
        if drop:
            ds = ds.remove_columns(drop)
        for i, row in enumerate(ds):
            try:
                out.append(_question_from_row(row, f"{source} split {s} row {i}", s))
            except RecordError as exc:
                if strict or left is None:
                    raise
                left.add(exc, split=s, index=i, id=str(row.get("id") or ""))
    return out


def load_questions(
    source: str | os.PathLike[str],
    split: str | None = None,
    strict: bool = False,
    left: LeftOut | None = None,
) -> list[Question]:
    """Question records from a release JSON, a questions JSONL, a dataset folder or a Hub id.

    Images are never decoded (the ``images`` column is removed before reading rows).
    Unusable records are left out and noted in ``left`` (when given, and not ``strict``);
    otherwise the first one raises.
    """
    from baselines.evaluate import is_hub_dataset_id, load_folder, load_hub_dataset
    from curation.errors import InputError
    from curation.records import load_questions_file, read_questions

    path = Path(source)
    if path.is_dir():
        return _from_dataset(load_folder(path), str(path), split, strict, left)
    if path.is_file():
        if path.suffix == ".jsonl":
            if left is None:
                return list(read_questions(path))
            kept, skipped = load_questions_file(path, strict=strict)
            left.rows.extend(skipped.rows)
            return kept
        if path.suffix == ".json":
            from scale_vqa.release import infer_split, load_release

            try:
                sp = split or infer_split(path)
            except InputError:
                sp = "test"  # the audit does not use the split
            imp = load_release(path, split=sp, strict=strict or left is None)
            if left is not None:
                left.rows.extend(imp.left_out.rows)
            return list(imp.questions)
        raise InputError(
            f"{path}: unknown file type {path.suffix!r}; give a release .json, a questions "
            ".jsonl, a dataset folder or a Hub id"
        )
    text = str(source)
    if is_hub_dataset_id(text):
        return _from_dataset(load_hub_dataset(text), text, split, strict, left)
    raise InputError(f"{source}: no such file or folder; check the path")


def shared_tissue_of(source: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Rows of a dataset folder or Hub id whose fields overlap another split's fields on
    one slide (:mod:`scale_vqa.shared_tissue`, by ``slide_id`` and ``regions``); None for
    files and for datasets without field boxes."""
    from baselines.evaluate import is_hub_dataset_id, load_folder, load_hub_dataset
    from scale_vqa.shared_tissue import describe, field_of, shared_tissue

    path = Path(source)
    if path.is_dir():
        dsd = load_folder(path)
    elif not path.exists() and is_hub_dataset_id(str(source)):
        dsd = load_hub_dataset(str(source))
    else:
        return None
    cols = ("path_id", "slide_id", "regions", "magnifications")
    fields, ids = [], {}
    for split in dsd:
        ds = dsd[split]
        if any(c not in ds.column_names for c in cols):
            return None
        rows = ds.select_columns(list(cols)).to_list()
        ids[split] = [r["path_id"] for r in rows]
        fields += [
            field_of(r["path_id"], split, r["slide_id"], r["regions"], r["magnifications"])
            for r in rows
            if r["regions"]
        ]
    found = shared_tissue(fields)
    out = found.to_dict() | {"rows": found.rows_by_split(ids)}
    out["note"] = describe(found, ids, "slide_id") if found.pairs else ""
    return out


# ------------------------------------------------------------------------ battery


def build_battery(args: argparse.Namespace, base: Path | None = None) -> list[Any]:
    """The adversaries the options ask for (embedder shared, LLM clients cached).

    Caches go to :func:`curation.cache.cache_dir` (``--cache-dir``), never beside the input;
    ``base`` is accepted for callers of the older signature and unused.
    """
    from curation.adversaries import HEURISTICS, LEARNED, make_adversaries
    from curation.errors import ConfigError

    embedder = None
    names = (
        [n.strip() for n in args.adversaries.split(",") if n.strip()]
        if args.adversaries
        else [*HEURISTICS, *LEARNED]
    )
    if args.no_embeddings:
        if args.adversaries and "embed-lr" in names:
            raise ConfigError("--adversaries names embed-lr but --no-embeddings is set")
        names = [n for n in names if n != "embed-lr"]
    else:
        from curation.cache import cache_dir
        from curation.embeddings import Embedder

        cache = cache_dir("embeddings", args.cache_dir) if args.cache_dir else None
        embedder = Embedder(cache_dir=cache)
    battery = (
        make_adversaries(names, embedder=embedder, embed_unit=args.embed_unit) if names else []
    )
    if args.llm:
        from curation.cache import cache_dir
        from curation.llm_adversary import llm_adversaries

        variants = [v.strip() for v in args.llm_variants.split(",") if v.strip()]
        battery += llm_adversaries(
            args.llm, args.llm_samples, args.flag_rule, cache_dir("llm", args.cache_dir), variants
        )
    if not battery:
        raise ConfigError("no adversary selected; name some with --adversaries or --llm")
    return battery


def run(args: argparse.Namespace) -> int:
    """Load, audit, print the table; write JSON and plot when asked."""
    from curation.audit import audit, format_table
    from curation.errors import ConfigError
    from curation.records import describe_left_out

    if args.null < 0:
        raise ConfigError(f"--null {args.null}: give a number of refits >= 0 (0 = off)")
    left = LeftOut()
    questions = load_questions(args.path, args.split, strict=args.strict, left=left)
    if not questions and len(left):
        from curation.errors import InputError

        raise InputError(
            f"{args.path}: no usable record to audit: {describe_left_out(left.report())}"
        )
    train_left = LeftOut()
    train = load_questions(args.train, strict=args.strict, left=train_left) if args.train else None
    base = Path(args.path).parent if Path(args.path).exists() else None
    battery = build_battery(args, base)
    dataset_level = not args.adversaries and not args.no_dataset_adversaries
    report = audit(
        questions,
        battery,
        train=train,
        seed=args.seed,
        progress=True,
        dataset_level=dataset_level,
        null=args.null,
    )
    report["source"] = str(args.path)
    report["left_out"] = left.report()
    print(f"audit of {args.path}: {report['n']} questions, {report['mode']}")
    print(describe_left_out(report["left_out"]))
    if args.train:
        report["train_left_out"] = train_left.report()
        print(f"--train {args.train}: " + describe_left_out(report["train_left_out"]))
    print(format_table(report))
    tissue = shared_tissue_of(args.path)
    if tissue is not None:
        report["shared_tissue"] = tissue
        if tissue["pairs"]:
            print(f"shared tissue across splits: {tissue['note']}")
    if args.json:
        write_json(args.json, report)
        print(f"report: {args.json}")
    if args.plot:
        from curation.plots import audit_plot

        audit_plot(report, args.plot, title=f"{Path(str(args.path)).name}: text-only")
        print(f"plot: {args.plot}")
    return 0
