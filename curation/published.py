"""What a user of a published hidden-test split sees, and how rows relate to each other.

The dataset-level adversaries read :class:`PublicRow` views only: every published column
of a row except ``answer`` and ``rationale``, plus the row's position in the split. A
feature function that takes public rows therefore cannot read a key, by construction.
The helpers group rows by a column (zoom path, patient, complementary set) and rank the
rows of a group by their position, as an attacker reading the file in order would.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation.records import SPLITS, Question

PUBLISHED_FIELDS: tuple[str, ...] = (
    "id",
    "question",
    "options",
    "question_type",
    "organ",
    "slide_id",
    "patient_id",
    "path_id",
    "split",
    "template_id",
    "set_id",
    "source",
)
"""The columns of a published row an adversary may read (never answer, rationale)."""


@dataclass(frozen=True)
class PublicRow:
    """One published row without its key: the columns of :data:`PUBLISHED_FIELDS` and
    its ``position`` (0-based) in the split as written."""

    position: int
    id: str
    question: str
    options: tuple[str, ...]
    question_type: str
    organ: str
    slide_id: str
    patient_id: str
    path_id: str
    split: str
    template_id: str
    set_id: str
    source: str

    @property
    def unit(self) -> str:
        """The patient, else the slide (the unit of the context reader's wider context)."""
        return self.patient_id or self.slide_id


def public_rows(questions: Sequence[Question]) -> list[PublicRow]:
    """The published view of ``questions``, in order; a row's position counts the rows of
    its split before it (0, 1, ... per split, as in the split's shards)."""
    out = []
    seen: dict[str, int] = defaultdict(int)
    for q in questions:
        values = {f: getattr(q, f) for f in PUBLISHED_FIELDS}
        values["options"] = tuple(q.options)
        out.append(PublicRow(position=seen[q.split], **values))
        seen[q.split] += 1
    return out


def order_key(path_id: str, row_id: str, seed: int) -> tuple[str, str]:
    """Where a row goes in its split as published: its zoom path in a seeded order of path
    ids, then the row in a seeded order of ids. It reads ``seed``, the path id and the row
    id only: never the answer, the options, their positions or a set's cells."""

    def rank(kind: str, text: str) -> str:
        return hashlib.sha256(f"scale-vqa-row-order:{seed}:{kind}:{text}".encode()).hexdigest()

    return rank("path", path_id or row_id), rank("row", row_id)


def published_order(questions: Sequence[Question], seed: int) -> list[Question]:
    """``questions`` in the order a build publishes them: split by split (train, validation,
    test), each split in :func:`order_key` order."""
    split_rank = {s: i for i, s in enumerate(SPLITS)}
    return sorted(
        questions,
        key=lambda q: (
            split_rank.get(q.split, len(SPLITS)),
            q.split,
            *order_key(q.path_id, q.id, seed),
        ),
    )


def groups_of(rows: Sequence[PublicRow], column: str) -> dict[str, list[int]]:
    """Row indices per non-empty value of ``column`` (or of the ``unit`` property),
    each list in row order."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        value = getattr(r, column)
        if value:
            out[value].append(i)
    return dict(out)


def ranks_in(rows: Sequence[PublicRow], column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its rank among the rows sharing its ``column`` value (by position) and
    that group's size; -1 and 0 where the column is empty."""
    rank = np.full(len(rows), -1, dtype=int)
    size = np.zeros(len(rows), dtype=int)
    for idx in groups_of(rows, column).values():
        for r, i in enumerate(sorted(idx, key=lambda j: rows[j].position)):
            rank[i], size[i] = r, len(idx)
    return rank, size


def column_coverage(questions: Sequence[Question], column: str) -> float:
    """Share of rows whose ``column`` is non-empty."""
    if not questions:
        return 0.0
    return sum(1 for q in questions if getattr(q, column)) / len(questions)
