"""Type C, localization as compartment attribution: where a structure or cell population lies.

Options differ only by compartment or spatial relationship; correctness depends on
placement, not morphology (atypical cells within the epithelium vs beneath it is the
in-situ vs invasive distinction). The claims are placements
(:data:`curation.options.IN`, :data:`curation.options.WITH`), decided only where the
annotation records the compartment a finding lies in (``locations``). Every option also
claims each feature seen at the coarsest power where it is visible (the same claim in all
four options: a given, which the information budget of :mod:`curation.budget` then keeps
out of the other questions of the path).

Families: ``locr:<feature>`` (that feature in one of two compartments it can lie in, feature two in
the same compartment or another) and ``locc`` (each of two features in one of two
compartments; the two compartment pairs share no word).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from curation.families.base import Family, QuestionType, be, cap, prob
from curation.options import IN, WITH, Alt, Slot
from curation.organs import Organ

RELATION_WORDS = frozenset({"within", "the", "in", "same", "another", "compartment"})
"""Words besides compartment names that C options may vary in."""

_TEMPLATES = {
    "localization-fixed-1": "Which option best characterizes the compartmental context of "
    "the structures shown?",
    "localization-fixed-2": "Considering the tissue compartments on this zoom path, which "
    "placement of {F1} and {F2} is correct?",
    "localization-free-1": "Which statement places {F1} and {F2} in the tissue compartments "
    "where they lie?",
    "localization-free-2": "In which compartment of this {ORGAN} tissue does each of {F1} and "
    "{F2} lie?",
    "localization-free-3": "Which option correctly attributes {F1} and {F2} to the "
    "compartments they occupy?",
    "localization-free-4": "Across the three magnifications, which compartmental placement of "
    "{F1} and {F2} holds?",
}


def only_placements(slots: tuple[Slot, ...]) -> bool:
    """Whether every claim of the slots is a placement (so every option asserts the same
    presence, and only the location priors can tell the options apart)."""
    return all(str(c[1]).startswith((IN, WITH)) for s in slots for a in s.alts for c in a.claims)


def placement_profile(organ: Organ, slots: tuple[Slot, ...], dx: str | None) -> tuple:
    """The location priors under ``dx`` of the features the slots place (empty when none):
    paths of different diagnoses share a set only where these priors agree too."""
    feats = sorted(
        {c[0] for s in slots for a in s.alts for c in a.claims if str(c[1]).startswith((IN, WITH))}
        | {
            str(c[1])[len(WITH) :]
            for s in slots
            for a in s.alts
            for c in a.claims
            if str(c[1]).startswith(WITH)
        }
    )
    return tuple(
        (f, tuple(sorted((k, round(v, 3)) for k, v in organ.location_prior(f, dx).items())))
        for f in feats
    )


def compartment_words(name: str) -> str:
    """A compartment id as words ("lamina_propria" -> "lamina propria")."""
    return name.replace("_", " ")


class Localization(QuestionType):
    """Type C."""

    name = "localization"
    templates: ClassVar[dict[str, str]] = _TEMPLATES

    @staticmethod
    def _placed(organ: Organ, dx: str | None, pmin: float) -> list[str]:
        return [
            f.id for f in organ.features.values() if f.where() and prob(organ, f.id, dx) >= pmin
        ]

    @staticmethod
    def _in_slot(organ: Organ, fid: str, x: str, y: str, tag: str) -> Slot:
        f = organ.features[fid]
        seen = (fid, f.scales[0], True)
        return Slot(
            f"{tag}:{fid}:{x}|{y}",
            (
                Alt((seen, (fid, IN + x, True)), f"{f.phrase} within the {compartment_words(x)}"),
                Alt((seen, (fid, IN + y, True)), f"{f.phrase} within the {compartment_words(y)}"),
            ),
            (fid,),
            f.phrase,
        )

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        placed = self._placed(organ, dx, pmin)
        multi = [f for f in placed if len(organ.compartments_of(f)) >= 2]
        if not multi:
            return []
        s_in = [
            self._in_slot(organ, f, x, y, "loc1")
            for f in multi
            for x, y in itertools.combinations(organ.compartments_of(f), 2)
        ]
        fams = []
        for a in multi:
            rel = []
            for g in placed:
                if g == a or not set(organ.compartments_of(g)) & set(organ.compartments_of(a)):
                    continue
                p = organ.features[g].phrase
                seen = (g, organ.features[g].scales[0], True)
                rel.append(
                    Slot(
                        f"loc2:{g}:{a}",
                        (
                            Alt((seen, (g, WITH + a, True)), f"{p} in the same compartment"),
                            Alt((seen, (g, WITH + a, False)), f"{p} in another compartment"),
                        ),
                        (g,),
                        p,
                    )
                )
            mine = [s for s in s_in if s.features[0] == a]
            if rel:
                fams.append(Family(f"locr:{a}", (), {}, mine, rel))
        fams.append(Family("locc", (), {}, s_in, list(s_in), same=True))
        return fams

    def rationale(self, ann, organ, fam, slots, key):
        parts = []
        for s in slots:
            fid = s.features[0]
            comp = ann.location(fid) or ""
            p = organ.features[fid].phrase
            parts.append(f"{p} {be(p)} in the {compartment_words(comp)}")
        return cap("; ".join(parts)) + f" on this zoom path. Hence: {key}."
