"""``scale-vqa review-report``, ``review-export``, ``review-import``: figures and interchange."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "label-studio")


def register(subparsers: Any) -> None:
    """Add the ``review-report``, ``review-export`` and ``review-import`` subcommands."""
    p = subparsers.add_parser(
        "review-report",
        help="figures of an expert review: accuracy with images, cannot tell, kappa",
        description=(
            "Human accuracy with the images (blind answers against the key), the 'cannot "
            "tell' rate and the acceptance rate per reviewer, question type and organ, with "
            "Wilson 95%% intervals, and agreement (Cohen's / Fleiss' kappa with 95%% intervals)."
        ),
    )
    p.add_argument("--db", type=Path, required=True, help="review database")
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    p.add_argument("--plot", type=Path, help="write a chart (PNG)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (Fleiss' kappa interval)")
    p.set_defaults(func=run_report)

    e = subparsers.add_parser(
        "review-export",
        help="export review decisions as JSONL or Label Studio tasks",
        description="JSONL: every item, answer and decision. label-studio: tasks (from PATH), "
        "a labeling config (.xml) and the images; --with-results adds stored decisions.",
    )
    e.add_argument("--db", type=Path, required=True, help="review database")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    e.add_argument("--out", type=Path, required=True, help="output file (.jsonl or .json)")
    e.add_argument("--items", type=Path, help="questions file or build (label-studio)")
    e.add_argument("--zoom", type=Path, help="zoom folder of a questions file (label-studio)")
    e.add_argument("--url-prefix", default="/data/local-files/?d=",
                   help="prefix of image URLs in the tasks (label-studio)")  # fmt: skip
    e.add_argument("--with-results", action="store_true", help="include stored decisions")
    e.set_defaults(func=run_export)

    i = subparsers.add_parser(
        "review-import",
        help="import review decisions from JSONL or a Label Studio export",
        description="Append the answers and decisions of FILE the database lacks.",
    )
    i.add_argument("file", type=Path, help="a review-export JSONL or a Label Studio JSON export")
    i.add_argument("--db", type=Path, required=True, help="review database")
    i.add_argument("--format", choices=FORMATS, help="default: by suffix (.jsonl or .json)")
    i.set_defaults(func=run_import)


def run_report(args: argparse.Namespace) -> int:
    """Print the figures; write JSON and a chart on request."""
    from scale_vqa.commands._common import write_json
    from scale_vqa.review.figures import compute_figures, format_report, write_plot
    from scale_vqa.review.store import ReviewStore

    fig = compute_figures(ReviewStore(args.db, create=False), seed=args.seed)
    print(format_report(fig))
    if args.json:
        write_json(args.json, fig)
        print(f"figures: {args.json}")
    if args.plot:
        write_plot(fig, args.plot)
        print(f"chart: {args.plot}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export decisions (and, for Label Studio, tasks and images)."""
    from curation.errors import ConfigError
    from scale_vqa.review.interop import export_jsonl, export_label_studio
    from scale_vqa.review.store import ReviewStore

    store = ReviewStore(args.db, create=False)
    if args.format == "jsonl":
        print(f"{export_jsonl(store, args.out)} record(s) -> {args.out}")
        return 0
    if not args.items:
        raise ConfigError("--format label-studio needs --items (the questions file or build)")
    from scale_vqa.review.items import load_items

    source = load_items(args.items, zoom=args.zoom)
    info = export_label_studio(
        source, store, args.out, url_prefix=args.url_prefix, with_results=args.with_results
    )
    print(f"{info['tasks']} task(s) -> {args.out}; labeling config {info['config']}; "
          f"images {info['images']}")  # fmt: skip
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import decisions from JSONL or a Label Studio export."""
    from scale_vqa.review.interop import import_jsonl, import_label_studio
    from scale_vqa.review.store import ReviewStore

    fmt = args.format or ("jsonl" if args.file.suffix == ".jsonl" else "label-studio")
    store = ReviewStore(args.db)
    counts = (import_jsonl if fmt == "jsonl" else import_label_studio)(store, args.file)
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
