"""Write files in the Scale-VQA release format, with known faults placed where tests want them.

Everything is deterministic: record ``No`` values, texts and images depend only on the
arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TYPES = ("type_A", "type_B", "type_C", "type_D", "type_E")
LEVELS = {"low_mag": 10, "mid_mag": 40, "high_mag": 200}
ARTICLE_RATIONALE = (
    "A matching feature is present at low and mid magnification; A smooth muscle component "
    "is described in both views, so the cross-scale match is supported."
)


def make_record(
    no: int,
    qtype: str = "type_A",
    answer: str = "A",
    rationale: str = ARTICLE_RATIONALE,
    wsi: str | None = None,
    path_id: str | None = None,
    high: bool = True,
    question: str | None = None,
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One release record; ``high=False`` gives the release's ``"high_mag": null`` fault."""
    wsi = wsi or f"WSI{no % 7:04d}"
    path_id = path_id or f"path-{no:05d}"
    stem = f"{no}.{no * 37 % 1000:05d}y_{no * 11 % 1000:05d}x.jpg"
    return {
        "question": question or f"Which option best matches the findings of zoom path {no}?",
        "options": options
        or {k: f"Option text {k} for record {no}: feature {k.lower()}{no}" for k in "ABCD"},
        "answer": answer,
        "rationale": rationale,
        "image_path": {
            "low_mag": f"{wsi}/rois/10_{stem}",
            "mid_mag": f"{wsi}/rois/40_{stem}",
            "high_mag": f"{wsi}/rois/200_{stem}" if high else None,
        },
        "extra_info": {"wsi_name": wsi, "path_id": path_id, "question_type": qtype},
        "No": no,
    }


def make_release(
    n: int,
    missing_high: Iterable[int] = (),
    conflicts: Iterable[int] = (),
    duplicates: Iterable[tuple[int, int]] = (),
) -> list[dict[str, Any]]:
    """``n`` records (No 1..n, types and answers cycling).

    ``missing_high``: Nos whose high_mag is null. ``conflicts``: Nos whose rationale says
    "Only X matches" for a letter X other than the key. ``duplicates``: (a, b) pairs where
    record b repeats a's question and options on another zoom path.
    """
    missing_high, conflicts = set(missing_high), set(conflicts)
    records = []
    for no in range(1, n + 1):
        answer = "ABCD"[(no * 7) % 4]
        rationale = ARTICLE_RATIONALE
        if no in conflicts:
            other = "ABCD"[("ABCD".index(answer) + 1) % 4]
            rationale = f"Only {other} matches the features listed at low and mid magnification."
        records.append(
            make_record(
                no,
                qtype=TYPES[no % 5],
                answer=answer,
                rationale=rationale,
                high=no not in missing_high,
            )
        )
    by_no = {r["No"]: r for r in records}
    for a, b in duplicates:
        by_no[b]["question"] = by_no[a]["question"]
        by_no[b]["options"] = dict(by_no[a]["options"])
    return records


def write_release(path: str | Path, records: Sequence[Any] | str) -> Path:
    """Write records (or raw text, for malformed files) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = records if isinstance(records, str) else json.dumps(list(records), indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def write_images(
    root: str | Path, records: Iterable[dict[str, Any]], size: int = 24, fmt: str = "JPEG"
) -> int:
    """Write a small deterministic image for every image path the records name."""
    from PIL import Image

    root = Path(root)
    count = 0
    for rec in records:
        for key, rel in rec["image_path"].items():
            if not rel:
                continue
            target = root / rel
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shade = (rec["No"] * 29 + LEVELS[key]) % 256
            Image.new("RGB", (size, size), (shade, 255 - shade, LEVELS[key] % 256)).save(
                target, format=fmt, quality=90
            )
            count += 1
    return count
