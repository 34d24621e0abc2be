"""The violation record and the checker signature shared by every constraint module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from curation.annotations import Annotation
from curation.errors import ScaleVQAError
from curation.organs import Organ, get_organ
from curation.records import Question


@dataclass(frozen=True)
class Violation:
    """One broken constraint."""

    constraint: str
    question_id: str
    message: str

    def __str__(self) -> str:
        return f"[{self.constraint}] {self.question_id or '-'}: {self.message}"


Annotations = Mapping[str, Annotation] | None
Organs = Mapping[str, Organ] | None
Checker = Callable[[Sequence[Question], Annotations, Organs], list[Violation]]


def organ_of(q: Question, organs: Organs) -> Organ | None:
    """``q``'s organ from ``organs``, else the bundled vocabulary; None when unknown."""
    if organs and q.organ in organs:
        return organs[q.organ]
    try:
        return get_organ(q.organ)
    except ScaleVQAError:
        return None


def organ_resolver(organs: Organs) -> Callable[[Question], Organ | None]:
    """:func:`organ_of` looking each organ name up once (a checker's loop over questions
    would otherwise rescan the vocabulary folders per question)."""
    seen: dict[str, Organ | None] = {}

    def resolve(q: Question) -> Organ | None:
        if q.organ not in seen:
            seen[q.organ] = organ_of(q, organs)
        return seen[q.organ]

    return resolve
