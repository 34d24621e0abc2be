"""``scale-vqa export``: a built dataset as a VLMEvalKit TSV or an lmms-eval task folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` parser."""
    p = subparsers.add_parser(
        "export",
        help="export a dataset for VLMEvalKit (MCQ TSV) or lmms-eval (task folder)",
        description=(
            "Write one split of a dataset folder or Hub id in the format of an evaluation "
            "harness. vlmevalkit: a custom MCQ TSV (index, image, image_path, question, hint, "
            "A.., answer, category = question type, split); multi-image rows hold the list "
            "of base64 images low -> high, a row repeating an earlier row's images points to "
            "it by index. Put it at $LMUData/NAME.tsv and run VLMEvalKit with --data NAME. "
            "lmms-eval: a task folder (TASK.yaml, TASK_blind.yaml with no images, a group of "
            "both, utils.py with the prompt, answer extraction and metrics of `scale-vqa "
            "evaluate`) for `lmms-eval --include_path DIR --tasks TASK`; utils.py needs "
            "scale-vqa installed where lmms-eval runs. See docs/harnesses.md."
        ),
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder or Hub id (owner/name)")
    p.add_argument(
        "--format",
        required=True,
        choices=("lmms-eval", "vlmevalkit"),
        dest="fmt",
        help="lmms-eval: a task folder for --include_path; vlmevalkit: a custom MCQ TSV",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="vlmevalkit: the .tsv file to write; lmms-eval: the task folder to write (an "
        "existing one is replaced only when an earlier export wrote it)",
    )
    p.add_argument("--split", default="test", help="split to export (default: test)")
    p.add_argument(
        "--dataset-path",
        metavar="PATH_OR_HUB_ID",
        help="lmms-eval: what the YAML's dataset_path names (default: DATASET, absolute "
        "when it is a local folder; give a Hub id to share the task)",
    )
    p.add_argument("--task", default="scale_vqa", help="lmms-eval: task name (default: scale_vqa)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=256,
        metavar="N",
        help="lmms-eval: generation length (default 256, as `scale-vqa evaluate`)",
    )
    p.set_defaults(func=run)


def _warn(warnings: tuple[str, ...]) -> None:
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Export and say where it went and how to run it."""
    from curation.errors import ConfigError
    from scale_vqa.export import export

    if args.fmt == "vlmevalkit":
        result = export(args.dataset, "vlmevalkit", args.out, args.split)
        _warn(result.warnings)
        print(
            f"wrote {result.path}: {result.rows} rows, {result.images} embedded image(s), "
            f"{result.pointers} row(s) pointing to an earlier row's images"
        )
        print(
            f"VLMEvalKit: copy it to $LMUData/{result.path.name} and run "
            f"`python run.py --data {result.path.stem} --model MODEL`"
        )
        return 0
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens is {args.max_new_tokens}; give 1 or more")
    result = export(
        args.dataset,
        "lmms-eval",
        args.out,
        args.split,
        dataset_path=args.dataset_path,
        task=args.task,
        max_new_tokens=args.max_new_tokens,
    )
    _warn(result.warnings)
    print(f"wrote {result.path}: {', '.join(result.files)} ({result.rows} rows)")
    print(
        f"lmms-eval: lmms-eval --include_path {result.path} --tasks {args.task},"
        f"{args.task}_blind --model MODEL (scale-vqa must be installed in that environment)"
    )
    return 0
