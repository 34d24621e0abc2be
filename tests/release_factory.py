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
    identical: Iterable[int] = (),
    repeated_option: Iterable[int] = (),
    answer_outside: Iterable[int] = (),
    no_question: Iterable[int] = (),
) -> list[dict[str, Any]]:
    """``n`` records (No 1..n, types and answers cycling).

    ``missing_high``: Nos whose high_mag is null. ``conflicts``: Nos whose rationale says
    "Only X matches" for a letter X other than the key. ``duplicates``: (a, b) pairs where
    record b repeats a's question and options on another zoom path.

    Unusable records, as the official release has them: ``identical`` (the four options
    are the same text, as in three released records), ``repeated_option`` (option D repeats
    option B), ``answer_outside`` (answer ``"E"`` among four options), ``no_question``
    (an empty question).
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
    for no in identical:
        text = by_no[no]["options"]["A"]
        by_no[no]["options"] = {k: text for k in "ABCD"}
    for no in repeated_option:
        by_no[no]["options"]["D"] = by_no[no]["options"]["B"]
    for no in answer_outside:
        by_no[no]["answer"] = "E"
    for no in no_question:
        by_no[no]["question"] = ""
    return records


FAULTS: dict[str, Any] = {
    "missing_high": [3, 17, 41],
    "conflicts": [5, 22, 60],
    "duplicates": [(2, 30), (8, 75)],
    "identical": [11, 47, 90],
    "repeated_option": [19],
    "answer_outside": [33],
    "no_question": [52],
}
"""Every fault class of the official release, placed in a 120-record file."""
UNUSABLE = ("identical", "repeated_option", "answer_outside", "no_question")


def faulty_release(n: int = 120) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the records with every fault class of :data:`FAULTS`, the same minus the unusable)."""
    records = make_release(n, **FAULTS)
    bad = {no for kind in UNUSABLE for no in FAULTS[kind]}
    return records, [r for r in records if r["No"] not in bad]


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
