"""``scale-vqa build``: the whole rebuild from a ``build.yaml``, resumable stage by stage."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scale_vqa.pipeline import STAGES


def register(subparsers: Any) -> None:
    """Add the ``build`` subcommand."""
    p = subparsers.add_parser(
        "build",
        help="rebuild the dataset from slides + annotations (build.yaml)",
        description=(
            "Run the rebuild: annotations (evidence) -> split -> extract -> generate -> "
            "screen -> audit -> build. Each stage writes its output into the work folder; "
            "a rerun skips stages whose inputs and settings are unchanged."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="path to build.yaml")
    p.add_argument("--work", type=Path, help="work folder (overrides 'work' in the config)")
    p.add_argument("--out", type=Path, help="output folder (overrides 'output' in the config)")
    p.add_argument(
        "--force-stage",
        action="append",
        default=[],
        metavar="NAME",
        choices=STAGES,
        help=f"rerun this stage even if up to date (repeatable; one of {', '.join(STAGES)})",
    )
    p.add_argument(
        "--hidden-test",
        action="store_true",
        help="publish the test split without answers and rationales; the key goes to "
        "--key-file (default WORK/test_key.jsonl), never into the output folder",
    )
    p.add_argument(
        "--key-file", type=Path, help="where a hidden test's key is written (implies --hidden-test)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder even if scale-vqa did not write it (its files are deleted)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="only extract slice K of N of the slides into the work folder, then stop "
        "(a cluster job array; overrides 'shard'); then run build without --shard",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, apply overrides, run the pipeline and print a summary."""
    from scale_vqa.config import load_config
    from scale_vqa.extract_shards import parse_shard
    from scale_vqa.pipeline import run_pipeline

    cfg = load_config(args.config)
    if args.work:
        cfg.work = args.work.resolve()
    if args.out:
        cfg.output = args.out.resolve()
    if args.hidden_test or args.key_file:
        cfg.hidden_test = True
    if args.key_file:
        cfg.key_file = args.key_file.resolve()
    cfg.check_key_path()
    if args.shard:
        cfg.shard = parse_shard(args.shard)
    result = run_pipeline(cfg, force=args.force_stage, quiet=args.quiet, overwrite=args.overwrite)
    if cfg.shard is not None:
        k, n = cfg.shard
        print(
            f"shard {k}/{n}: {result.counts['zoom_paths']} zoom path(s) extracted into "
            f"{cfg.work / 'zoom'}; when all {n} shards are done, run the same build "
            "without --shard (and without 'shard' in build.yaml)"
        )
        return 0
    print(result.summary())
    return 0
