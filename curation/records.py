"""The question record: one multiple-choice question before images are attached.

Every stage of curation reads and writes these records as JSONL (one per line,
fields in the order of :data:`QUESTION_FIELDS`). The published dataset row
(:mod:`scale_vqa.schema`) is this record plus images and their geometry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from curation.errors import ValidationError
from curation.io import atomic_write_jsonl, read_jsonl

QUESTION_TYPES: tuple[str, ...] = (
    "correspondence",
    "corroboration",
    "localization",
    "explanation",
    "diagnosis",
)
"""The five question types (the paper's types A..E, in that order)."""

LETTERS = "ABCDEFGHIJ"
SPLITS: tuple[str, ...] = ("train", "validation", "test")

_LETTER_MENTION = re.compile(r"\b(?:option|choice|answer)\s*\(?([A-J])\)?\b|\(([A-J])\)", re.I)


def letter(index: int) -> str:
    """Letter of the option at ``index`` (0 -> "A")."""
    return LETTERS[index]


@dataclass
class Question:
    """One MCQ over one zoom path; ``answer`` is the key's letter."""

    question: str
    options: list[str]
    answer: str
    question_type: str
    rationale: str = ""
    organ: str = ""
    slide_id: str = ""
    patient_id: str = ""
    path_id: str = ""
    split: str = ""
    template_id: str = ""
    set_id: str = ""
    source: str = ""
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.content_id()

    @property
    def key_index(self) -> int:
        """Index of the key in ``options``."""
        return LETTERS.index(self.answer)

    @property
    def group(self) -> str:
        """Grouping unit for splits and cross-fitting: patient, else slide."""
        return self.patient_id or self.slide_id

    def content_id(self) -> str:
        """Stable hash of the published content, never of the key.

        Over the question, the options in their order, the type, the slide, the zoom path
        and the template: all fields a reader sees anyway, so the id adds nothing. The
        answer (and rationale) are left out, so trying each letter against the id finds
        nothing, and a hidden-test split can publish ids as they are.
        """
        payload = json.dumps(
            [
                self.question,
                self.options,
                self.question_type,
                self.slide_id,
                self.path_id,
                self.template_id,
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in field order; ``extra`` is omitted when empty."""
        out = asdict(self)
        if not out["extra"]:
            del out["extra"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "record") -> Question:
        """Build and validate a record; errors name ``where`` and the field."""
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("question", "options", "answer", "question_type") if k not in data]
        if missing:
            raise ValidationError(f"{where}: missing field(s) {', '.join(missing)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        q = cls(**kwargs, extra=extra)
        validate_question(q, where)
        return q


def seeded_order(questions: Iterable[Question], seed: int = 0) -> list[Question]:
    """``questions`` in an order fixed by ``seed`` and each id alone (ties: input order).

    Row order then says nothing about keys, cells or sets: a set's members are scattered,
    and the order is the same whatever order the questions came in.
    """
    items = list(questions)

    def rank(q: Question) -> str:
        return hashlib.sha256(f"scale-vqa-order:{seed}:{q.id}".encode()).hexdigest()

    return sorted(items, key=rank)


QUESTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Question) if f.name != "extra")


def validate_question(q: Question, where: str = "record", n_options: int | None = None) -> None:
    """Raise :class:`ValidationError` naming ``where`` and the field if ``q`` is malformed."""
    if not isinstance(q.question, str) or not q.question.strip():
        raise ValidationError(f"{where}: field 'question' must be a non-empty string")
    if not isinstance(q.options, list) or not all(isinstance(o, str) for o in q.options):
        raise ValidationError(f"{where}: field 'options' must be a list of strings")
    if len(q.options) < 2 or len(q.options) > len(LETTERS):
        raise ValidationError(
            f"{where}: field 'options' has {len(q.options)} option(s); "
            f"give between 2 and {len(LETTERS)}"
        )
    if n_options is not None and len(q.options) != n_options:
        raise ValidationError(
            f"{where}: field 'options' has {len(q.options)} option(s), expected {n_options}"
        )
    if any(not o.strip() for o in q.options):
        raise ValidationError(f"{where}: field 'options' contains an empty option")
    if len(set(q.options)) != len(q.options):
        raise ValidationError(f"{where}: field 'options' contains the same option twice")
    valid = LETTERS[: len(q.options)]
    if not isinstance(q.answer, str) or q.answer not in valid:
        raise ValidationError(
            f"{where}: field 'answer' is {q.answer!r}; it must be one of "
            f"{', '.join(valid)} (the key's letter among {len(q.options)} options)"
        )
    if q.question_type not in QUESTION_TYPES:
        raise ValidationError(
            f"{where}: field 'question_type' is {q.question_type!r}; "
            f"use one of {', '.join(QUESTION_TYPES)}"
        )
    if q.split and q.split not in SPLITS:
        raise ValidationError(
            f"{where}: field 'split' is {q.split!r}; use one of {', '.join(SPLITS)}"
        )


def letters_named(text: str) -> set[str]:
    """Option letters that ``text`` names explicitly ("option B", "(C)", "answer A")."""
    return {(a or b).upper() for a, b in _LETTER_MENTION.findall(text or "")}


def read_questions(path: str | os.PathLike[str]) -> Iterator[Question]:
    """Read and validate a questions JSONL file."""
    for lineno, obj in read_jsonl(path):
        yield Question.from_dict(obj, where=f"{path}:{lineno}")


def write_questions(path: str | os.PathLike[str], questions: Iterable[Question]) -> int:
    """Atomically write questions as JSONL; return how many were written."""
    return atomic_write_jsonl(Path(path), (q.to_dict() for q in questions))
