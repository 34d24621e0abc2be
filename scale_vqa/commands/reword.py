"""``scale-vqa reword``: reword each complementary set by an LLM, re-check and re-screen."""

from __future__ import annotations

import argparse
from pathlib import Path

from scale_vqa.commands._common import add_organs_dir_argument
from scale_vqa.commands.audit import add_adversary_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reword`` parser."""
    p = subparsers.add_parser(
        "reword",
        help="optionally reword each complementary set's stem and options by an LLM",
        description=(
            "Ask an OpenAI-compatible model once per complementary set to reword its shared "
            "stem and options (the same text for every row of the set, options in the same "
            "order), then re-check each rewording: valid JSON, one option per option, no "
            "duplicates, the text-quality gate, the type definitions, the per-question text "
            "constraints, the same features, diagnoses, compartments, negations and "
            "magnifications per option, and the generator's option-length spread. A refused "
            "rewording leaves the set as it was; the reasons are counted. Ids and set ids "
            "are recomputed; each reworded row keeps its original text in extra. Then the "
            "text-only screen's first pass runs on the questions before and after. Answers "
            "are cached: a rerun makes no call twice and writes the same bytes."
        ),
    )
    p.add_argument("questions", type=Path, metavar="QUESTIONS.jsonl")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.jsonl")
    p.add_argument("--base-url", required=True, metavar="URL", help="e.g. http://localhost:8000/v1")
    p.add_argument("--model", required=True, metavar="NAME", help="the model to ask")
    p.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY; a local "
        "endpoint needs none); the key is never written anywhere",
    )
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests at once (4)")
    p.add_argument("--report", type=Path, metavar="R.json", help="write the JSON report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-rescreen", action="store_true", help="skip the re-screen before and after")
    add_organs_dir_argument(p)
    add_adversary_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reword, write the questions and the report, print a summary."""
    from curation.cache import cache_dir
    from curation.constraints import check_all, summarize
    from curation.errors import ConfigError, InputError
    from curation.llm import LLMClient, LLMConfig
    from curation.records import load_questions_file, write_questions
    from curation.reword import organs_of, rescreen, reword_questions
    from scale_vqa.commands._common import write_json
    from scale_vqa.commands.audit import build_battery

    if args.out.resolve() == args.questions.resolve():
        raise ConfigError(f"--out {args.out} is the input file; give another path")
    questions, _ = load_questions_file(args.questions, strict=True)
    if not questions:
        raise InputError(f"{args.questions}: no questions to reword; check the file")
    config = LLMConfig(
        base_url=args.base_url,
        model=args.model,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
    )
    dirs = tuple(str(d) for d in args.organs_dir)
    battery = None if args.no_rescreen else build_battery(args)
    client = LLMClient(config, cache_dir=cache_dir("llm", args.cache_dir))
    result = reword_questions(questions, client, organs_dir=dirs, progress=not args.no_progress)
    write_questions(args.out, result.questions)
    organs = organs_of(questions, dirs)
    report = {
        "input": str(args.questions),
        "output": str(args.out),
        **result.report,
        "constraints": {
            "before": summarize(check_all(questions, None, organs)),
            "after": summarize(check_all(result.questions, None, organs)),
        },
    }
    if battery is not None:
        report["rescreen"] = rescreen(
            questions,
            result.questions,
            battery,
            dataset_level=not args.adversaries,
            seed=args.seed,
            progress=not args.no_progress,
        )
    if args.report:
        write_json(args.report, report)
    r = result.report
    kept = ", ".join(f"{k} {v}" for k, v in r["kept_by_reason"].items()) or "none"
    print(
        f"reworded {r['reworded_sets']} of {r['sets']} set(s) ({r['reworded_rows']} of "
        f"{r['rows']} rows) with {config.model} -> {args.out}; kept as they were: {kept}"
    )
    after = report["constraints"]["after"]
    print(
        "constraint violations after: "
        + (", ".join(f"{k} {v}" for k, v in after.items()) or "none")
    )
    for label, fig in report.get("rescreen", {}).items():
        best = fig["best"]
        print(
            f"re-screen {label}: strongest {best['adversary']} {best['accuracy']:.1%} "
            f"(chance {fig['chance']:.1%}), {fig['flagged']} flagged"
        )
    print(f"LLM: {client.usage.summary()}")
    if args.report:
        print(f"report: {args.report}")
    return 0
