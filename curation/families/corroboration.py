"""Type B, cross-scale corroboration: an implication raised at one scale, weak and
non-diagnostic, is supported or contradicted at another.

A finding ``P0`` seen at a power below high (the premise) raises the possibility of two
findings at a finer power that go with it (under some diagnosis of the organ, ``P0`` is
likely and each is at least :data:`MIN_LINK` likely). The options say, for each, whether the
finer view supports or contradicts that expectation; three of the four options rest on an absence
(a contradiction or a mismatch), so presence alone never picks the key. No stem or option
names a diagnosis (:func:`curation.type_checks.check_corroboration_names_no_diagnosis`).
"""

from __future__ import annotations

from typing import ClassVar

from curation.families.base import (
    SCALE_WORD,
    Family,
    QuestionType,
    cap,
    is_there,
    not_there,
    presence_slot,
    prob,
    state_words,
)
from curation.organs import SCALES, Organ

MIN_LINK = 0.3
"""A finding goes with ``P0`` when some diagnosis gives ``P0`` >= 0.5 and it this."""

_TEMPLATES = {
    "corroboration-fixed-1": "At {SA} power the field shows {P0}, which raises the possibility "
    "of {F1} and {F2} at {SB} power. How far does the {SB}-power view corroborate that "
    "expectation?",
    "corroboration-fixed-2": "The {SA}-power view shows {P0}; on its own this only hints that "
    "{F1} and {F2} may be present at {SB} power. Which statement describes what the "
    "{SB}-power view does with that hint?",
    "corroboration-free-1": "Given {P0} at {SA} power, which raises the possibility of {F1} "
    "and {F2} at {SB} power, which statement about the {SB}-power field is accurate?",
    "corroboration-free-2": "Seeing {P0} at {SA} power is a weak pointer towards {F1} and {F2} "
    "at {SB} power. Which option reports correctly how the {SB}-power view bears on it?",
    "corroboration-free-3": "Checking the expectation of {F1} and {F2} raised by {P0} at {SA} "
    "power, which account of the {SB}-power view holds?",
    "corroboration-free-4": "Starting from {P0} at {SA} magnification, which hints at {F1} and "
    "{F2}, what does the {SB}-power view support or contradict?",
}


_WORDS = (
    ("corro1", "found, supporting it", "missing", ", contradicting it"),
    ("corro2", "seen, in agreement", "not seen", ", a mismatch"),
)
"""Per slot position: key prefix, present words, absent words and the absence's verdict
(the two positions use disjoint words)."""


class Corroboration(QuestionType):
    """Type B."""

    name = "corroboration"
    templates: ClassVar[dict[str, str]] = _TEMPLATES

    @staticmethod
    def _linked(organ: Organ, p0: str, fid: str) -> bool:
        """Whether ``fid`` goes with ``p0`` under some diagnosis of the organ."""
        return any(
            organ.probability(p0, d) >= 0.5 and organ.probability(fid, d) >= MIN_LINK
            for d in organ.diagnoses
        )

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        fams = []
        for p0 in organ.features.values():
            sa = p0.scales[0]
            if sa == "high" or prob(organ, p0.id, dx) < 0.5:
                continue
            for sb in SCALES[SCALES.index(sa) + 1 :]:
                cands = [
                    f
                    for f in organ.features.values()
                    if sb in f.scales
                    and f.id != p0.id
                    and pmin <= prob(organ, f.id, dx) <= 1 - pmin
                    and self._linked(organ, p0.id, f.id)
                ]
                if len(cands) < 2:
                    continue
                s1, s2 = (
                    [
                        presence_slot(
                            f"{tag}:{f.id}:{sb}",
                            f,
                            sb,
                            is_there(f.phrase, seen),
                            not_there(f.phrase, unseen) + verdict,
                        )
                        for f in cands
                    ]
                    for tag, seen, unseen, verdict in _WORDS
                )
                # the family key keeps its old form for the high-power view
                key = f"corro:{p0.id}:{sa}" + ("" if sb == "high" else f":{sb}")
                ctx = {"SA": SCALE_WORD[sa], "SB": SCALE_WORD[sb], "P0": p0.phrase}
                fams.append(Family(key, ((p0.id, sa, True),), ctx, s1, s2, same=True))
        return fams

    def render(self, fam: Family, alts: list[str]) -> str:
        return f"At {fam.ctx['SB']} power, " + "; ".join(alts)

    def rationale(self, ann, organ, fam, slots, key):
        f1, f2 = slots[0].features[0], slots[1].features[0]
        p1, p2 = organ.features[f1].phrase, organ.features[f2].phrase
        sb = slots[0].alts[0].claims[0][1]
        w = SCALE_WORD[sb]
        return (
            f"{cap(fam.ctx['P0'])} at {fam.ctx['SA']} power raised the possibility of {p1} and "
            f"{p2}. In the {w}-power field {state_words(ann, f1, sb, organ, False)}, and "
            f"{state_words(ann, f2, sb, organ, False)}; so the {w}-power view reads: {key}."
        )
