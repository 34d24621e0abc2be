"""``scale-vqa organs``: list, show and validate organ vocabularies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scale_vqa.commands._common import add_organs_dir_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``organs`` parser with its list/show/validate actions."""
    p = subparsers.add_parser(
        "organs",
        help="list, show or validate organ vocabularies",
        description=(
            "Organ vocabularies are YAML files (one organ per file): compartments, features "
            "with the scales where each is visible, diagnoses with P(feature | diagnosis), "
            "exclusive pairs. Shipped organs are always available; add folders with "
            "--organs-dir or the SCALE_VQA_ORGANS_DIR environment variable."
        ),
    )
    add_organs_dir_argument(p)
    common = argparse.ArgumentParser(add_help=False)
    add_organs_dir_argument(common, default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="organs_action", metavar="ACTION")
    sub.add_parser(
        "list", parents=[common], help="list every organ with its feature and diagnosis counts"
    )
    show = sub.add_parser("show", parents=[common], help="print one organ's vocabulary")
    show.add_argument("name", metavar="NAME")
    val = sub.add_parser(
        "validate",
        parents=[common],
        help="check an organ file; exit 1 listing every problem; warn (exit 0) about question "
        "types the vocabulary cannot feed",
    )
    val.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=run, organs_parser=p)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    import yaml

    from curation.organs import SCALES, get_organ, list_organs, validate_organ_file

    dirs = tuple(args.organs_dir)
    action = getattr(args, "organs_action", None)
    if action == "list":
        names = list_organs(dirs)
        print(f"{'organ':<18}{'features':>9}{'diagnoses':>10}  low/mid/high   file")
        for n in names:
            o = get_organ(n, dirs)
            vis = "/".join(str(len(o.visible_at(s))) for s in SCALES)
            print(f"{n:<18}{len(o.features):>9}{len(o.diagnoses):>10}  {vis:<13}  {o.path}")
        print(f"{len(names)} organ(s)")
        return 0
    if action == "show":
        o = get_organ(args.name, dirs)
        print(f"# {o.path}")
        print(yaml.safe_dump(o.to_dict(), sort_keys=False, allow_unicode=True), end="")
        return 0
    if action == "validate":
        problems = validate_organ_file(args.file)
        if problems:
            print(f"{args.file}: {len(problems)} problem(s):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            return 1
        from curation.organ_coverage import coverage_warnings
        from curation.organs import load_organ_file

        warnings = coverage_warnings(load_organ_file(args.file))
        for line in warnings:
            print(f"warning: {args.file}: {line}", file=sys.stderr)
        note = f" ({len(warnings)} warning(s))" if warnings else ""
        print(f"{args.file}: valid{note}")
        return 0
    args.organs_parser.print_help()
    return 2
