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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from curation.errors import RecordError
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
            raise RecordError(
                f"{where}: missing field(s) {', '.join(missing)}", reason="missing_fields"
            )
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        q = cls(**kwargs, extra=extra)
        validate_question(q, where)
        return q


def set_rows(questions: Sequence[Question]) -> dict[str, list[int]]:
    """Row indices per non-empty ``set_id`` (complementary set), each list in row order."""
    out: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        if q.set_id:
            out.setdefault(q.set_id, []).append(i)
    return out


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


def normalise_option(text: str) -> str:
    """An option as compared for sameness: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


def option_set_fault(options: list[str]) -> str | None:
    """The reason code of what is wrong with a list of option strings, or None:
    ``empty_option``, ``identical_options`` (all the same) or ``duplicate_options``."""
    if any(not o.strip() for o in options):
        return "empty_option"
    distinct = {normalise_option(o) for o in options}
    if len(distinct) == 1:
        return "identical_options"
    return "duplicate_options" if len(distinct) != len(options) else None


def validate_question(q: Question, where: str = "record", n_options: int | None = None) -> None:
    """Raise :class:`RecordError` naming ``where``, the field and a ``reason`` code if ``q``
    is malformed (see :data:`REASONS`)."""

    def bad(reason: str, message: str) -> RecordError:
        return RecordError(f"{where}: {message}", reason=reason)

    if not isinstance(q.question, str) or not q.question.strip():
        raise bad("no_question", "field 'question' must be a non-empty string")
    if not isinstance(q.options, list) or not all(isinstance(o, str) for o in q.options):
        raise bad("bad_options", "field 'options' must be a list of strings")
    if len(q.options) < 2 or len(q.options) > len(LETTERS):
        raise bad(
            "option_count",
            f"field 'options' has {len(q.options)} option(s); give between 2 and {len(LETTERS)}",
        )
    if n_options is not None and len(q.options) != n_options:
        raise bad(
            "option_count",
            f"field 'options' has {len(q.options)} option(s), expected {n_options}",
        )
    fault = option_set_fault(q.options)
    if fault is not None:
        raise bad(
            fault,
            {
                "empty_option": "field 'options' contains an empty option",
                "identical_options": f"field 'options' holds the same text {len(q.options)} "
                "times (all options identical)",
                "duplicate_options": "field 'options' contains the same option twice",
            }[fault],
        )
    valid = LETTERS[: len(q.options)]
    if not isinstance(q.answer, str) or q.answer not in valid:
        raise bad(
            "answer_not_in_options",
            f"field 'answer' is {q.answer!r}; it must be one of "
            f"{', '.join(valid)} (the key's letter among {len(q.options)} options)",
        )
    if q.question_type not in QUESTION_TYPES:
        raise bad(
            "unknown_question_type",
            f"field 'question_type' is {q.question_type!r}; use one of {', '.join(QUESTION_TYPES)}",
        )
    if q.split and q.split not in SPLITS:
        raise bad("unknown_split", f"field 'split' is {q.split!r}; use one of {', '.join(SPLITS)}")


REASONS: dict[str, str] = {
    "no_question": "no question text",
    "bad_options": "options missing or not text",
    "option_count": "too few or too many options",
    "empty_option": "an empty option",
    "identical_options": "all options identical",
    "duplicate_options": "the same option twice",
    "answer_not_in_options": "answer outside the options",
    "unknown_question_type": "unknown question type",
    "unknown_split": "unknown split",
    "missing_fields": "required fields missing",
    "not_an_object": "not a JSON object",
    "bad_image_path": "malformed image_path",
    "not_an_image": "an image file that is not an image",
    "image_count_mismatch": "images and magnifications differ in number",
    "invalid_record": "invalid record",
}
"""Reason codes of :class:`RecordError` and what each means (reports and cards use both)."""


@dataclass
class LeftOut:
    """Records a lenient loader left out: where each was, why (code and message)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, exc: RecordError, **where: Any) -> None:
        """Note one unusable record (``where``: index, No, line... as known)."""
        self.rows.append({**where, "reason": exc.reason, "message": str(exc)})

    def __len__(self) -> int:
        return len(self.rows)

    def report(self) -> dict[str, Any]:
        """``{"count", "by_reason": {code: n}, "rows": [...]}`` (codes in first-seen order)."""
        by: dict[str, int] = {}
        for r in self.rows:
            by[r["reason"]] = by.get(r["reason"], 0) + 1
        return {"count": len(self.rows), "by_reason": by, "rows": list(self.rows)}


def describe_left_out(left: dict[str, Any], limit: int = 8) -> str:
    """One line: ``left out 3 unusable record(s): all options identical 2 (No 5, No 9), ...``."""
    if not left.get("count"):
        return "left out: none (every record is usable)"
    parts = []
    for reason, n in left["by_reason"].items():
        refs = [_ref(r) for r in left["rows"] if r["reason"] == reason]
        more = f", ... (+{len(refs) - limit})" if len(refs) > limit else ""
        parts.append(f"{REASONS.get(reason, reason)} {n} ({', '.join(refs[:limit])}{more})")
    return f"left out {left['count']} unusable record(s): " + "; ".join(parts)


def _ref(row: dict[str, Any]) -> str:
    if row.get("No") is not None:
        return f"No {row['No']}"
    if row.get("line") is not None:
        return f"line {row['line']}"
    return f"#{row.get('index', '?')}"


def letters_named(text: str) -> set[str]:
    """Option letters that ``text`` names explicitly ("option B", "(C)", "answer A")."""
    return {(a or b).upper() for a, b in _LETTER_MENTION.findall(text or "")}


def read_questions(path: str | os.PathLike[str]) -> Iterator[Question]:
    """Read and validate a questions JSONL file (the first unusable record raises)."""
    for lineno, obj in read_jsonl(path):
        yield Question.from_dict(obj, where=f"{path}:{lineno}")


def load_questions_file(
    path: str | os.PathLike[str], strict: bool = False
) -> tuple[list[Question], LeftOut]:
    """A questions JSONL file under the lenient policy: every usable record, and the
    unusable ones left out with their line and reason. ``strict``: the first unusable
    record raises its :class:`RecordError` instead. A line that is not JSON always raises."""
    kept: list[Question] = []
    left = LeftOut()
    for lineno, obj in read_jsonl(path):
        try:
            kept.append(Question.from_dict(obj, where=f"{path}:{lineno}"))
        except RecordError as exc:
            if strict:
                raise
            left.add(exc, line=lineno, id=str(obj.get("id") or ""))
    return kept, left


def write_questions(path: str | os.PathLike[str], questions: Iterable[Question]) -> int:
    """Atomically write questions as JSONL; return how many were written."""
    return atomic_write_jsonl(Path(path), (q.to_dict() for q in questions))
