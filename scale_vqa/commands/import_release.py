"""``scale-vqa import-release``: the official Scale-VQA JSON release as a dataset folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import-release`` parser."""
    p = subparsers.add_parser(
        "import-release",
        help="convert the official Scale-VQA JSON release into a Parquet dataset folder",
        description=(
            "Convert Scale-VQA release files (e.g. data/val.json and data/test.json of "
            "iMVR-PL/ScaleReasoner-R1) into one dataset folder (Parquet shards plus a README "
            "dataset card that datasets.load_dataset(DIR) reads), one split per file, and "
            "report the release's faults: unusable records (identical or repeated options, "
            "answer outside the options, no question), which are left out and listed by "
            "their No; missing images; rationales that name another letter than the key; "
            "duplicates; answer-letter balance."
        ),
    )
    p.add_argument(
        "release",
        type=Path,
        nargs="+",
        metavar="RELEASE.json",
        help="release JSON file(s); each file's split comes from its name: val, valid, "
        "validation or dev -> validation; test -> test; train -> train. A file whose name "
        "names no split is an error unless --split is given (one file only)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder to write")
    p.add_argument(
        "--images",
        type=Path,
        metavar="ROOT",
        help="folder the release's image paths are relative to (every path is resolved and "
        "must stay inside ROOT, symbolic links included); without it the dataset is text-only",
    )
    p.add_argument("--report", type=Path, metavar="FILE.json", help="write the integrity report")
    p.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        help="split of a single file (default: from the file name; no default for a file "
        "such as release.json whose name names no split)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse a file with any unusable record instead of leaving the record out",
    )
    p.add_argument(
        "--max-shard-mb",
        type=float,
        default=256.0,
        metavar="MB",
        help="upper bound of one Parquet shard in MiB (default 256)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder even if scale-vqa did not write it (its files are deleted)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import, write the folder and the report, print a summary."""
    from curation.errors import ConfigError
    from curation.io import atomic_write_text
    from scale_vqa.outdir import check_replaceable, check_separate, check_writable
    from scale_vqa.release import import_release, summarize

    if not 0 < args.max_shard_mb < float("inf"):
        raise ConfigError(f"--max-shard-mb is {args.max_shard_mb}; give a positive size")
    inputs = {"the release file": list(args.release), "the image folder": []}
    if args.images:
        inputs["the image folder"].append(args.images)
    check_separate(args.out, inputs=inputs)
    check_replaceable(args.out, args.overwrite)
    check_writable(args.out)
    start = time.perf_counter()
    imps, result = import_release(
        args.release,
        args.out,
        split=args.split,
        images_root=args.images,
        max_shard_bytes=int(args.max_shard_mb * 2**20),
        progress=sys.stderr.isatty(),
        strict=args.strict,
        overwrite=args.overwrite,
    )
    if args.report:
        report = dict(imps[0].report) if len(imps) == 1 else {"files": [i.report for i in imps]}
        report["output"] = {
            "folder": str(args.out),
            "shards": [
                {"path": s.path, "rows": s.rows, "bytes": s.bytes, "sha256": s.sha256}
                for s in result.shards
            ],
        }
        atomic_write_text(args.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for imp in imps:
        print(summarize(imp.report))
    if all(i.text_only for i in imps):
        print("text-only: no images embedded (pass --images ROOT to embed them)")
    splits = ", ".join(f"{i.split!r} <- {i.path.name}" for i in imps)
    print(
        f"wrote {args.out}: {len(result.shards)} shard(s), {result.total_bytes} bytes, "
        f"split(s) {splits}, in {time.perf_counter() - start:.1f} s"
    )
    if args.report:
        print(f"report: {args.report}")
    return 0
