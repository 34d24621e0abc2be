"""``scale-vqa screen``: flag text-only leaks, regenerate, re-screen, drop what still leaks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scale_vqa.commands._common import add_organs_dir_argument, add_strict_argument
from scale_vqa.commands.audit import add_adversary_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``screen`` parser."""
    p = subparsers.add_parser(
        "screen",
        help="screen generated questions with text-only adversaries; regenerate or drop leaks",
        description=(
            "Score every question with text-only adversaries (held out), flag what an "
            "adversary answers where it is systematically above chance (and AFLite "
            "predictability >= tau), regenerate flagged questions with tightened constraints "
            "(needs --annotations), re-screen up to --rounds times, and drop what still "
            "leaks. Writes the kept questions, and a report with retention and leakage "
            "before and after."
        ),
    )
    p.add_argument("questions", type=Path, metavar="QUESTIONS.jsonl")
    p.add_argument("--out", type=Path, required=True, metavar="SCREENED.jsonl")
    p.add_argument(
        "--annotations",
        type=Path,
        metavar="ANN.jsonl",
        help="annotations the questions were generated from; without them flagged "
        "questions can only be dropped",
    )
    p.add_argument(
        "--split-ratios",
        default="0.7,0.15,0.15",
        metavar="TRAIN,VAL,TEST",
        help="the split ratios the questions were generated with (as given to `generate`; "
        "default 0.7,0.15,0.15): regenerated questions keep every path in its split",
    )
    add_organs_dir_argument(p)
    # the old spelling, kept working but no longer shown
    p.add_argument("--organs", dest="organs_dir", action="append", help=argparse.SUPPRESS)
    p.add_argument(
        "--rounds", type=int, default=2, metavar="R", help="regeneration rounds (default 2)"
    )
    p.add_argument("--report", type=Path, metavar="REPORT.json", help="write the screen report")
    p.add_argument(
        "--dropped",
        type=Path,
        metavar="DROPPED.jsonl",
        help="write the dropped questions, each with its reasons",
    )
    p.add_argument("--no-aflite", action="store_true", help="skip AFLite")
    p.add_argument("--aflite-models", type=int, default=64, metavar="N")
    p.add_argument("--aflite-tau", type=float, default=0.75, metavar="TAU")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="family-wise significance level for 'systematically above chance'",
    )
    p.add_argument(
        "--min-excess",
        type=float,
        default=0.02,
        help="least excess over chance (fraction) for an adversary to flag",
    )
    add_adversary_arguments(p)
    add_strict_argument(p)
    p.set_defaults(func=run)


def one_line(message: str) -> str:
    """A multi-line problem list as one line: its heading and the first problem."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if len(lines) <= 1:
        return message.strip()
    head = lines[0].rstrip(":")
    return f"{head}, first: {lines[1]}"


def make_regenerator(args: argparse.Namespace) -> Any:
    """The regeneration callback built from ``--annotations`` (or None)."""
    if args.annotations is None:
        return None
    from curation.annotations import read_annotations
    from curation.errors import ValidationError
    from curation.generate import Generator, Regenerator

    dirs = [str(d) for d in args.organs_dir]
    try:
        anns = read_annotations(args.annotations, extra_dirs=tuple(dirs))
    except ValidationError as exc:
        raise ValidationError(one_line(str(exc))) from None
    gen = Generator(anns, seed=args.seed, organs_dir=dirs or None, ratios=args.split_ratios)
    return Regenerator(gen)


def run(args: argparse.Namespace) -> int:
    """Screen, write the kept questions (and report, dropped), print a summary."""
    from curation.aflite import AFLite
    from curation.errors import ConfigError
    from curation.io import atomic_write_jsonl
    from curation.records import describe_left_out, load_questions_file, write_questions
    from curation.screen import format_report, screen
    from scale_vqa.commands._common import write_json
    from scale_vqa.commands.audit import build_battery

    if args.rounds < 0:
        raise ConfigError(f"--rounds is {args.rounds}; give 0 or more")
    questions, left = load_questions_file(args.questions, strict=args.strict)
    print(describe_left_out(left.report()))
    battery = build_battery(args, args.questions.parent)
    embedder = next((a.embedder for a in battery if getattr(a, "embedder", None)), None)
    aflite = None
    if not args.no_aflite:
        aflite = AFLite(
            n_models=args.aflite_models,
            tau=args.aflite_tau,
            features="bow" if args.no_embeddings else "embeddings",
            embedder=embedder,
            seed=args.seed,
            unit=args.embed_unit,
        )
        battery = [a for a in battery if a.name != "aflite"]
    regenerate = make_regenerator(args)
    result = screen(
        questions,
        battery,
        aflite=aflite,
        regenerate=regenerate,
        rounds=args.rounds,
        seed=args.seed,
        alpha=args.alpha,
        min_excess=args.min_excess,
        progress=True,
    )
    write_questions(args.out, result.kept)
    report = dict(result.report)
    report["input"] = str(args.questions)
    report["left_out"] = left.report()
    report["output"] = str(args.out)
    if args.dropped:
        rows = []
        for d in result.dropped:
            row = dict(d["question"])
            row.setdefault("extra", {})
            row["extra"] = {
                **row["extra"],
                "screen": {"round": d["round"], "reasons": d["reasons"]},
            }
            rows.append(row)
        atomic_write_jsonl(args.dropped, rows)
        report["dropped_file"] = str(args.dropped)
    if args.report:
        slim = {
            **report,
            "dropped_items": [
                {k: v for k, v in d.items() if k != "question"} for d in result.dropped
            ],
        }
        write_json(args.report, slim)
    print(format_report(report))
    print(f"kept {len(result.kept)} question(s) -> {args.out}")
    if args.report:
        print(f"report: {args.report}")
    return 0
