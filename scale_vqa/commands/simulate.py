"""``scale-vqa simulate``: a simulated annotation corpus with realistic priors."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from scale_vqa.commands._common import add_organs_dir_argument

MAX_PATHS = 1_000_000
"""Most zoom paths one simulation writes (a million lines, about 1 GB of JSONL)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` parser."""
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated annotation corpus (JSONL, one zoom path per line)",
        description=(
            "Simulate annotated zoom paths: patients with one diagnosis each, several slides "
            "per patient, several zoom paths per slide; features drawn from P(feature | "
            "diagnosis), cytology only at high power, explicit negatives. Seeded and "
            "deterministic: the same arguments write the same bytes."
        ),
    )
    p.add_argument("--out", type=Path, required=True, metavar="ANN.jsonl", help="output file")
    p.add_argument("--paths", type=int, default=1500, metavar="N", help="zoom paths (1500)")
    p.add_argument(
        "--organs",
        default="all",
        metavar="all|skin,colon",
        help="organs to simulate, comma-separated, or all (default)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    add_organs_dir_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate and write the corpus."""
    from curation.annotations import write_annotations
    from curation.errors import ConfigError
    from curation.organs import list_organs
    from curation.simulate import simulate

    dirs = tuple(args.organs_dir)
    if not 1 <= args.paths <= MAX_PATHS:
        raise ConfigError(f"--paths {args.paths}: give a number of zoom paths in 1..{MAX_PATHS:,}")
    if args.organs.strip() == "all":
        organs = list_organs(dirs)
    else:
        organs = [o.strip() for o in args.organs.split(",") if o.strip()]
    anns = simulate(args.paths, organs, seed=args.seed, extra_dirs=dirs)
    write_annotations(args.out, anns)
    by_organ = Counter(a.organ for a in anns)
    print(
        f"wrote {len(anns)} zoom paths ({len({a.slide_id for a in anns})} slides, "
        f"{len({a.patient_id for a in anns})} patients, {len(by_organ)} organs) to {args.out}"
    )
    return 0
