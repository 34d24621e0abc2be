"""``scale-vqa demo``: the whole rebuild on the vendored slide, offline, no key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="rebuild a small dataset from the bundled slide (offline, about 10-25 s)",
        description=(
            "Run the whole rebuild on the bundled CMU-1-Small-Region.svs (H&E skin) with "
            "illustrative demo annotations, then print the load_dataset line to read it."
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("scale-vqa-demo"),
        help="output folder (default ./scale-vqa-demo; the work folder is OUT-work)",
    )
    p.add_argument("--work", type=Path, help="work folder (default: OUT-work next to OUT)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder even if scale-vqa did not write it (its files are deleted)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo build and print how to load it."""
    from scale_vqa.pipeline import demo_config, run_pipeline

    out = args.out.resolve()
    work = args.work.resolve() if args.work else out.with_name(out.name + "-work")
    cfg = demo_config(out, work)
    result = run_pipeline(cfg, quiet=args.quiet, overwrite=args.overwrite)
    print(result.summary())
    print()
    print("Load it with:")
    print(f'  python -c "import datasets; print(datasets.load_dataset({str(out)!r}))"')
    return 0
