"""Helpers shared by several subcommands: common options and strict JSON output."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ORGANS_DIR_HELP = "extra folder of organ YAML files (repeatable)"


def add_organs_dir_argument(
    p: argparse.ArgumentParser, help: str = ORGANS_DIR_HELP, default: Any = None
) -> None:
    """Add the repeatable ``--organs-dir DIR`` option (``args.organs_dir``, a list).

    ``default`` is a fresh empty list unless given (e.g. ``argparse.SUPPRESS`` on a parent
    parser shared by sub-actions, so the sub-action does not reset the outer value).
    """
    p.add_argument(
        "--organs-dir",
        action="append",
        default=[] if default is None else default,
        metavar="DIR",
        help=help,
    )


STRICT_HELP = (
    "refuse the input at its first unusable record (identical or repeated options, answer "
    "outside the options, no question, ...) instead of leaving it out and reporting it"
)


def add_strict_argument(p: argparse.ArgumentParser, help: str = STRICT_HELP) -> None:
    """Add ``--strict`` (``args.strict``): the input policy for unusable records."""
    p.add_argument("--strict", action="store_true", help=help)


def jsonable(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Atomically write strict JSON (indent 2)."""
    from curation.io import atomic_write_text

    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n")
