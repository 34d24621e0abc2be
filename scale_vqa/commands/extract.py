"""``scale-vqa extract``: nested multi-magnification crops from whole-slide images."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from curation.errors import ConfigError

if TYPE_CHECKING:
    from scale_vqa.extract import ExtractResult


def _magnifications(text: str) -> tuple[float, ...]:
    try:
        mags = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of objective powers, e.g. 5,10,20"
        ) from None
    if not mags:
        raise argparse.ArgumentTypeError("give at least one magnification, e.g. 5,10,20")
    return mags


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` subcommand."""
    p = subparsers.add_parser(
        "extract",
        help="extract nested zoom paths (low/mid/high power crops) from slides",
        description=(
            "Extract zoom paths from whole-slide images: for each path, one crop per "
            "magnification (objective power, 10/mpp: 40x = 0.25 um/px), nested and centred "
            "on tissue, read from the pyramid level just finer than needed. Writes "
            "OUT/zoom_paths.jsonl and OUT/images/; rerun the same command to resume. "
            "On a cluster, run N processes with --shard K/N into one --out folder (a SLURM "
            "job array), then --merge OUT."
        ),
    )
    p.add_argument("slides", nargs="*", metavar="SLIDE_OR_DIR", help="slide files or folders")
    p.add_argument("--out", help="output folder (required unless --merge)")
    p.add_argument(
        "--magnifications",
        type=_magnifications,
        default=(5.0, 10.0, 20.0),
        help="comma-separated objective powers (default 5,10,20)",
    )
    p.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    p.add_argument(
        "--paths-per-slide", type=int, default=8, help="zoom paths sampled per slide (default 8)"
    )
    p.add_argument(
        "--mpp", type=float, default=None, help="um per level-0 pixel; overrides the file's"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument(
        "--allow-upsample",
        action="store_true",
        help="permit magnifications above the scan's native one (recorded as upsampled)",
    )
    p.add_argument(
        "--min-tissue",
        type=float,
        default=0.5,
        help="minimum tissue fraction in every field of a sampled path (default 0.5)",
    )
    p.add_argument(
        "--min-spacing",
        type=float,
        default=None,
        help="minimum distance between sampled centres, level-0 px (default: high field side)",
    )
    p.add_argument(
        "--annotations",
        default=None,
        metavar="ANN.jsonl",
        help="annotation file: one zoom path per line (slide_id, path_id, centre or null)",
    )
    p.add_argument(
        "--image-format",
        choices=("jpeg", "png", "webp"),
        default="jpeg",
        help="crop encoding (default jpeg: quality 90, 4:4:4; png is lossless)",
    )
    p.add_argument("--quality", type=int, default=90, help="JPEG/WebP quality 1-100 (default 90)")
    p.add_argument(
        "--shard",
        metavar="K/N",
        default=None,
        help="extract only slice K of N (1-based) of the slides; then --merge OUT",
    )
    p.add_argument(
        "--merge",
        metavar="DIR",
        default=None,
        help="check that shards 1..N of DIR did every slide exactly once; write zoom_paths.jsonl",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the extraction; exit code 1 if any slide failed."""
    from scale_vqa.extract import ExtractConfig, extract_slides
    from scale_vqa.extract_shards import merge_shards, parse_shard
    from scale_vqa.zoom import MAX_CROP_SIZE, MAX_PATHS_PER_SLIDE, MIN_CROP_SIZE

    if args.merge:
        if args.slides or args.shard:
            raise ConfigError("--merge DIR takes no slides and no --shard; run it alone")
        result = merge_shards(args.merge)
        return _report(result, args.merge)
    if not args.out:
        raise ConfigError("--out is required: the folder the crops are written to")
    shard = parse_shard(args.shard) if args.shard else None
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be at least 1")
    if not 0 <= args.paths_per_slide <= MAX_PATHS_PER_SLIDE:
        raise ConfigError(
            f"--paths-per-slide {args.paths_per_slide}: give 0..{MAX_PATHS_PER_SLIDE} zoom paths"
        )
    if not MIN_CROP_SIZE <= args.size <= MAX_CROP_SIZE:
        raise ConfigError(
            f"--size {args.size}: give a crop side of {MIN_CROP_SIZE}..{MAX_CROP_SIZE} pixels"
        )
    config = ExtractConfig(
        magnifications=args.magnifications,
        size=args.size,
        paths_per_slide=args.paths_per_slide,
        mpp=args.mpp,
        seed=args.seed,
        allow_upsample=args.allow_upsample,
        min_tissue=args.min_tissue,
        min_spacing=args.min_spacing,
        image_format=args.image_format,
        image_quality=args.quality,
    )
    result = extract_slides(
        args.slides,
        args.out,
        config,
        annotations=args.annotations,
        workers=args.workers,
        progress=not args.quiet,
        shard=shard,
    )
    if shard is not None:
        print(
            f"shard {shard[0]}/{shard[1]}: {result.n_paths} zoom path(s) from "
            f"{len(result.done) + len(result.resumed)} slide(s) ({len(result.resumed)} resumed)"
            f" -> {args.out}; when all {shard[1]} shards are done: "
            f"scale-vqa extract --merge {args.out}"
        )
    return _report(result, args.out, shard is not None)


def _report(result: ExtractResult, out: str, shard: bool = False) -> int:
    """Notes, the summary line, and exit 1 when a slide failed."""
    from scale_vqa.extract import padded_note

    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if not shard:
        padded = padded_note(out)
        if padded:
            print(f"warning: {padded}", file=sys.stderr)
        print(
            f"{result.n_paths} zoom path(s) from {len(result.done) + len(result.resumed)} "
            f"slide(s) ({len(result.resumed)} resumed) -> {out}/zoom_paths.jsonl"
        )
    if result.failures:
        print(f"error: {result.failure_summary()}", file=sys.stderr)
        return 1
    return 0
