"""``scale-vqa tiny-model OUT``: write the offline tiny random Qwen2.5-VL checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``tiny-model`` subcommand."""
    p = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random Qwen2.5-VL (0.2 M parameters, offline) for smoke runs",
        description=(
            "Write a randomly initialised ~0.2 M-parameter Qwen2.5-VL checkpoint (model, "
            "tokenizer, chat template, image processor) into OUT, with no download. It "
            "answers at random: use it to try `scale-vqa train` and `scale-vqa evaluate "
            "--model` on a CPU machine."
        ),
    )
    p.add_argument("out", type=Path, metavar="OUT", help="new (or empty) output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the model and say where it is."""
    from baselines.tiny_model import make_tiny_model

    out = make_tiny_model(args.out)
    print(f"tiny random Qwen2.5-VL written to {out}")
    return 0
