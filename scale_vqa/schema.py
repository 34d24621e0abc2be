"""The published row: a question record plus its images and their geometry.

:data:`FEATURES` is the one ``datasets.Features`` object of the dataset; column
order, Parquet schema and the dataset card all derive from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import Any

import datasets

from curation.errors import ValidationError
from curation.records import Question, validate_question

REGION_KEYS: tuple[str, ...] = ("x", "y", "width", "height")

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "options": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "question_type": datasets.Value("string"),
        "rationale": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "magnifications": datasets.List(datasets.Value("float64")),
        "mpp": datasets.List(datasets.Value("float64")),
        "regions": datasets.List({k: datasets.Value("int64") for k in REGION_KEYS}),
        "organ": datasets.Value("string"),
        "slide_id": datasets.Value("string"),
        "patient_id": datasets.Value("string"),
        "path_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "template_id": datasets.Value("string"),
        "set_id": datasets.Value("string"),
    }
)
"""The dataset's features, in column order."""

COLUMNS: tuple[str, ...] = tuple(FEATURES)


@dataclass
class Row:
    """One row of the published dataset (see README, "Schema").

    ``images`` holds what ``datasets.Image`` encodes: encoded bytes as
    ``{"bytes": ..., "path": name}``, a file path, or a PIL image, ordered low -> high
    magnification. ``mpp`` and ``regions`` may be empty when unknown (an imported
    release); otherwise they match ``magnifications`` one to one.
    """

    id: str
    question: str
    options: list[str]
    answer: str
    question_type: str
    rationale: str = ""
    images: list[Any] = field(default_factory=list)
    magnifications: list[float] = field(default_factory=list)
    mpp: list[float] = field(default_factory=list)
    regions: list[dict[str, int]] = field(default_factory=list)
    organ: str = ""
    slide_id: str = ""
    patient_id: str = ""
    path_id: str = ""
    source: str = ""
    template_id: str = ""
    set_id: str = ""

    @classmethod
    def from_question(cls, q: Question, **geometry: Any) -> Row:
        """A row from a question record plus images, magnifications, mpp and regions."""
        names = {f.name for f in fields(cls)}
        base = {k: v for k, v in q.to_dict().items() if k in names}
        return cls(**base, **geometry)

    def to_question(self) -> Question:
        """The row's question record (images dropped)."""
        data = {
            k: getattr(self, k)
            for k in (
                "id",
                "question",
                "options",
                "answer",
                "question_type",
                "rationale",
                "organ",
                "slide_id",
                "patient_id",
                "path_id",
                "source",
                "template_id",
                "set_id",
            )
        }
        return Question(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in :data:`COLUMNS` order."""
        return {c: getattr(self, c) for c in COLUMNS}

    def validate(self, where: str = "row") -> None:
        """Raise :class:`ValidationError` naming ``where``, the field and the fix."""
        validate_row(self.to_dict(), where)


def validate_row(row: dict[str, Any], where: str = "row", hidden: bool = False) -> None:
    """Check one row dict against the schema and its invariants.

    ``hidden``: a row of a hidden-test split, whose ``answer`` and ``rationale`` must be
    empty (withheld; :mod:`baselines.answer_key`).
    """
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValidationError(f"{where}: missing column(s) {', '.join(missing)}")
    extra = [c for c in row if c not in FEATURES]
    if extra:
        raise ValidationError(
            f"{where}: unknown column(s) {', '.join(extra)}; the schema's columns are "
            f"{', '.join(COLUMNS)}"
        )
    if hidden and (row["answer"] or row["rationale"]):
        raise ValidationError(
            f"{where}: a hidden-test row must have an empty 'answer' and 'rationale' "
            "(they go to the key file)"
        )
    fields_ = {k: row[k] for k in ("question", "options", "answer", "question_type")}
    validate_question(Question(**(fields_ | ({"answer": "A"} if hidden else {})), id="x"), where)
    mags = row["magnifications"]
    n = len(mags)
    if len(row["images"]) not in (0, n):
        raise ValidationError(
            f"{where}: {len(row['images'])} image(s) but {n} magnification(s); give one "
            "magnification per image (or no images for a text-only row)"
        )
    for name in ("mpp", "regions"):
        if len(row[name]) not in (0, n):
            raise ValidationError(
                f"{where}: field '{name}' has {len(row[name])} value(s) but there are {n} "
                "magnification(s); give one per image, or none when unknown"
            )
    for i, m in enumerate(mags):
        if not isinstance(m, (int, float)) or not math.isfinite(m) or m <= 0:
            raise ValidationError(
                f"{where}: magnifications[{i}] is {m!r}; use a positive objective power (e.g. 20)"
            )
    if any(b <= a for a, b in pairwise(mags)):
        raise ValidationError(
            f"{where}: magnifications {list(mags)} are not strictly ascending; order images "
            "from low to high magnification"
        )
    for i, v in enumerate(row["mpp"]):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValidationError(f"{where}: mpp[{i}] is {v!r}; use a positive micrometres/pixel")
    for i, reg in enumerate(row["regions"]):
        if not isinstance(reg, dict) or set(reg) != set(REGION_KEYS):
            raise ValidationError(
                f"{where}: regions[{i}] must be an object with keys {', '.join(REGION_KEYS)}"
            )
        if reg["width"] <= 0 or reg["height"] <= 0:
            raise ValidationError(f"{where}: regions[{i}] has a non-positive width or height")
