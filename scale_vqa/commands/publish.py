"""``scale-vqa publish``: upload a built dataset folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``publish`` parser."""
    p = subparsers.add_parser(
        "publish",
        help="upload a built dataset folder to the Hugging Face Hub",
        description=(
            "Validate a dataset folder (README.md with configs, Parquet shards) and upload it "
            "to a Hub dataset repository in one commit. The token comes from HF_TOKEN or "
            "`hf auth login`; HF_ENDPOINT selects another endpoint."
        ),
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="folder built by scale-vqa")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="Hub dataset repo id")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", metavar="R", help="branch to commit to (created if needed)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be uploaded (path, size, sha256) and the target; no token or "
        "network needed",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan, then upload (or only list with --dry-run)."""
    from scale_vqa.hub import plan_upload, publish

    plan = plan_upload(args.folder, args.repo_id, revision=args.revision, private=args.private)
    if args.dry_run:
        print("dry run: nothing uploaded")
        print(plan.describe())
        return 0
    url = publish(plan, log=lambda msg: print(msg, file=sys.stderr))
    print(f"published {len(plan.files)} file(s) to {plan.url}")
    print(f"commit: {url}")
    return 0
