"""Type E, diagnosis: the diagnosis most consistent with the combined evidence across the
images, stated with one finding at one power (a 2x2 square: two diagnoses x the finding
present or absent)."""

from __future__ import annotations

import itertools
from typing import ClassVar

from curation.families.base import (
    SCALE_WORD,
    Family,
    QuestionType,
    bare,
    cap,
    kept_state,
    presence_slot,
    state_words,
)
from curation.options import DX, Alt, Slot
from curation.organs import Feature, Organ

_TEMPLATES = {
    "diagnosis-fixed-1": "Based on the images provided, which option best matches the "
    "overall morphologic impression?",
    "diagnosis-fixed-2": "Taking the low-, medium- and high-power views together, which "
    "diagnosis and accompanying finding fit this zoom path?",
    "diagnosis-free-1": "What is the most likely diagnosis for this {ORGAN} specimen, and "
    "which finding accompanies it?",
    "diagnosis-free-2": "Integrating architecture and cytology across the three "
    "magnifications, which impression is correct?",
    "diagnosis-free-3": "Which overall interpretation of this {ORGAN} tissue is supported by "
    "the image set?",
    "diagnosis-free-4": "Which option states the diagnosis and an accompanying finding that "
    "these {ORGAN} images show?",
}


def _finding(f: Feature, scale: str) -> tuple[str, str]:
    """The finding's present / absent words at ``scale`` (no "with ... with", no "no a")."""
    w = SCALE_WORD[scale]
    kept = kept_state(f.phrase)
    if kept is not None:
        subject, adj = kept
        return f"{bare(f.phrase)} at {w} power", f"{bare(subject)} not {adj} at {w} power"
    return f"{bare(f.phrase)} present at {w} power", f"{bare(f.phrase)} absent at {w} power"


class DiagnosisType(QuestionType):
    """Type E."""

    name = "diagnosis"
    templates: ClassVar[dict[str, str]] = _TEMPLATES

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        dxs = list(organ.diagnoses.values())
        if len(dxs) < 2:
            return []
        s1 = [
            Slot(
                f"dx1:{a.id}|{b.id}",
                (Alt(((DX, a.id, True),), a.name), Alt(((DX, b.id, True),), b.name)),
                (f"{DX}{a.id}", f"{DX}{b.id}"),
                f"{a.name} or {b.name}",
            )
            for a, b in itertools.combinations(dxs, 2)
        ]
        s2 = []
        for f in organ.features.values():
            if max(organ.probability(f.id, d.id) for d in dxs) < pmin:
                continue
            for s in f.scales:
                present, absent = _finding(f, s)
                s2.append(presence_slot(f"dx2:{f.id}:{s}", f, s, present, absent))
        return [Family("dx", (), {}, s1, s2)]

    def render(self, fam: Family, alts: list[str]) -> str:
        return cap(f"{alts[0]}; " + " and ".join(alts[1:]))

    def rationale(self, ann, organ, fam, slots, key):
        dx = organ.diagnoses[ann.diagnosis] if ann.diagnosis else None
        seen = ann.seen_anywhere()
        if dx is not None:
            typical = sorted(
                (f for f in seen if dx.features.get(f, 0) >= 0.5),
                key=lambda f: (-dx.features.get(f, 0), f),
            )[:3]
        else:
            typical = []
        fid = slots[1].features[0]
        scale = slots[1].alts[0].claims[0][1]
        lead = (
            f"The zoom path shows {', '.join(organ.features[f].phrase for f in typical)}, "
            if typical
            else "The findings across the three magnifications are "
        )
        name = dx.name if dx else "the recorded diagnosis"
        return (
            f"{lead}in keeping with {name}; {state_words(ann, fid, scale, organ)}. "
            f"Overall impression: {key}."
        )
