"""``scale-vqa generate``: leak-controlled MCQs from annotations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from curation.split import DEFAULT_MIN_CHUNK
from scale_vqa.commands._common import add_organs_dir_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` parser."""
    p = subparsers.add_parser(
        "generate",
        help="generate MCQs of the five types from annotations (complementary sets)",
        description=(
            "Split zoom paths by patient, then generate questions of the five types as "
            "complementary sets of 2x2 option squares (one question and option list on four "
            "zoom paths, each making a different option the key), so that no function of the "
            "text beats chance. --naive writes options the official release's way (each "
            "distractor = the key with one feature swapped), the leaky baseline."
        ),
    )
    p.add_argument("annotations", type=Path, metavar="ANN.jsonl", help="annotation file")
    p.add_argument("--out", type=Path, required=True, metavar="QUESTIONS.jsonl")
    p.add_argument("--naive", action="store_true", help="release-style one-swap distractors")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--split-ratios",
        default="0.7,0.15,0.15",
        metavar="TRAIN,VAL,TEST",
        help="split ratios in zoom paths (default 0.7,0.15,0.15, as in build.yaml)",
    )
    add_organs_dir_argument(p)
    p.add_argument(
        "--pool-by",
        choices=("diagnosis", "diagnosis+organ", "organ"),
        default="diagnosis+organ",
        help="where complementary sets are drawn: within organ and diagnosis only; also "
        "across diagnoses with the same prior for the asked features (default); or within "
        "organ for types whose text never names a diagnosis (more questions, but an "
        "adversary that knows the diagnosis gains)",
    )
    p.add_argument("--max-per-path", type=int, default=4, metavar="N", help="per path and type")
    p.add_argument(
        "--split-min-chunk",
        type=int,
        default=DEFAULT_MIN_CHUNK,
        metavar="N",
        help="fewest zoom paths of an organ x diagnosis stratum dealt to a split (default "
        f"{DEFAULT_MIN_CHUNK}; 0 deals every stratum to every split)",
    )
    p.add_argument(
        "--zoom",
        type=Path,
        metavar="DIR",
        help="the zoom paths of these annotations (`scale-vqa extract` output): paths whose "
        "fields overlap share tissue in the information budget, as in `scale-vqa build`",
    )
    p.add_argument("--report", type=Path, metavar="REPORT.json", help="write a JSON report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _tissue(zoom: Path) -> dict[str, dict[str, list[str]]]:
    """Which paths' fields overlap, from an extraction folder (or its zoom_paths.jsonl)."""
    from scale_vqa.extract import read_zoom_paths
    from scale_vqa.shared_tissue import tissue_map

    return tissue_map(read_zoom_paths(zoom))


def run(args: argparse.Namespace) -> int:
    """Generate, check every constraint, write questions and the report."""
    from curation.annotations import read_annotations
    from curation.constraints import check_all, summarize
    from curation.errors import ConfigError
    from curation.generate import Generator, GeneratorConfig
    from curation.io import atomic_write_text
    from curation.records import QUESTION_TYPES, write_questions
    from curation.split import format_split_table, split_report

    dirs = tuple(str(d) for d in args.organs_dir)
    anns = read_annotations(args.annotations, dirs)
    config = GeneratorConfig(
        max_per_path=args.max_per_path,
        pool_by=args.pool_by,
        split_min_chunk=args.split_min_chunk,
    )
    gen = Generator(
        anns,
        seed=args.seed,
        naive=args.naive,
        organs_dir=dirs,
        ratios=args.split_ratios,
        config=config,
        tissue=_tissue(args.zoom) if args.zoom else None,
    )
    questions = gen.generate(progress=not args.no_progress and sys.stderr.isatty())
    if not questions:
        raise ConfigError(no_questions_message(args, gen))
    violations = check_all(questions, {a.path_id: a for a in anns}, gen.organs)
    n = write_questions(args.out, questions)
    splits = split_report(questions)
    stats = gen.stats
    print(
        f"wrote {n} questions ({stats['design']}, {stats['sets']} complementary sets) to {args.out}"
    )
    print(format_split_table(splits))
    print(
        f"retention: {n} of {stats['candidate_slots']} candidate slots "
        f"({stats['retention']:.1%}; {args.max_per_path} per zoom path and type)"
    )
    for line in budget_lines(stats):
        print(line)
    for line in empty_split_warnings(args, gen, splits):
        print(f"warning: {line}", file=sys.stderr)
    summary = summarize(violations)
    if summary:
        print("constraint violations: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    else:
        print("constraint violations: none")
    if args.report:
        report = {
            "stats": stats,
            "splits": splits,
            "types": list(QUESTION_TYPES),
            "violations": summary,
            "violation_examples": [str(v) for v in violations[:50]],
        }
        atomic_write_text(args.report, json.dumps(report, indent=2) + "\n")
    return 0


def no_questions_message(args: argparse.Namespace, gen: Any) -> str:
    """One line: why no complementary set formed, in the vocabulary's terms, and what to do."""
    from curation.organ_coverage import unfed_summary

    types = ", ".join(gen.config.question_types)
    organs = ", ".join(sorted(gen.organs))
    causes = [c for c in (unfed_summary(o, gen.config.pmin) for o in gen.organs.values()) if c]
    why = ("; ".join(causes) + ". ") if causes else ""
    return (
        f"no questions generated from {args.annotations} ({len(gen.annotations)} zoom paths, "
        f"organ(s) {organs}): no question type ({types}) found a complementary set (four zoom "
        f"paths of one organ x diagnosis pool in one split whose annotations make each option "
        f"the key once). {why}Usual causes: an organ vocabulary without features visible at "
        f"two scales, with a single diagnosis, or too few zoom paths per organ x diagnosis pool "
        f"in a split. Check the vocabulary with 'scale-vqa organs validate FILE' (it warns about "
        f"question types it cannot feed), then give more zoom paths, --pool-by organ, or a "
        f"smaller --split-min-chunk; no output file was written"
    )


def empty_split_warnings(args: argparse.Namespace, gen: Any, splits: dict[str, Any]) -> list[str]:
    """A warning per split with a ratio > 0 that ended up with no questions."""
    from collections import Counter

    from curation.records import SPLITS

    paths = Counter(gen.splits.values())
    patients: dict[str, set[str]] = {s: set() for s in SPLITS}
    for a in gen.annotations:
        patients[gen.splits[a.path_id]].add(a.group)
    got = Counter(q.split for q in gen.questions)
    out = []
    for name, ratio in zip(SPLITS, gen.ratios, strict=True):
        if ratio <= 0 or got[name] > 0:
            continue
        out.append(
            f"split '{name}' has no questions although its ratio is {ratio:g} (it got "
            f"{len(patients[name])} patient(s), {paths[name]} zoom path(s)): each organ x "
            f"diagnosis stratum goes to a split only in chunks of at least --split-min-chunk "
            f"{gen.config.split_min_chunk} zoom paths, and a set needs four paths of one pool; "
            f"give more zoom paths, raise its ratio in --split-ratios (now "
            f"{args.split_ratios}), or lower --split-min-chunk (0 deals every stratum to "
            f"every split, which can leave every pool too small with few paths)"
        )
    return out


def budget_lines(stats: dict[str, Any]) -> list[str]:
    """Questions per zoom path by type and what the information budget skipped."""
    per = stats.get("per_path", {})
    by_type = ", ".join(
        f"{t} {v['mean']:.2f} on {v['paths']}" for t, v in per.get("by_type", {}).items()
    )
    lines = [
        f"questions per zoom path: {per.get('mean', 0):.2f} (max {per.get('max', 0)}); "
        f"per type, over the paths carrying it: {by_type}"
    ]
    fig = stats.get("information_budget", {})
    if fig.get("enforced"):
        skips = ", ".join(f"{k} {v}" for k, v in fig["path_skips"].items())
        blocked = ", ".join(f"{k} {v}" for k, v in fig["sets_blocked"].items())
        lines.append(
            f"information budget ({fig['scope']} scope): paths skipped by rule: {skips}; "
            f"sets not formed: {blocked}"
        )
    else:
        lines.append("information budget: off")
    return lines
