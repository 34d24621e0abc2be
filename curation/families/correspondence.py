"""Type A, cross-scale correspondence: whether a matching structure appears at more than one
magnification, and at which.

Families: ``corr`` (two features seen at one power: is each matched at another?), ``corrm``
(one seen, one looked for and absent there: what of each at the other power?), ``corrx``
(at which of two powers each of two features has a match: both, or only the first; the
family once called localization) and ``corrs`` (one feature at two powers: at both, at
either one only, or at neither; no premise, so every path where the feature is recorded at
both powers can take it).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from curation.families.base import (
    SCALE_WORD,
    Family,
    QuestionType,
    cap,
    is_there,
    join_list,
    kept_state,
    no,
    not_there,
    presence_slot,
    prob,
    state_words,
)
from curation.options import Alt, Claim, Slot
from curation.organs import SCALES, Organ

_SEEN = {
    "correspondence-fixed-1": "The {SA}-power view shows {F1} and {F2}. Which statement "
    "correctly describes how these structures correspond in the {SB}-power view?",
    "correspondence-fixed-2": "{F1} and {F2} are both identified at {SA} power. Which "
    "option states correctly whether each is matched at {SB} power?",
    "correspondence-free-1": "Tracing structures from {SA} to {SB} magnification: {F1} and "
    "{F2} are visible in the {SA}-power field. What is seen of them in the {SB}-power field?",
    "correspondence-free-2": "Given that {F1} and {F2} are seen at {SA} power, which "
    "description of their correspondence in the {SB}-power field is accurate?",
    "correspondence-free-3": "Both {F1} and {F2} appear at {SA} magnification. Comparing "
    "with the {SB}-magnification image, which statement holds?",
    "correspondence-free-4": "{F1} and {F2} are identified at {SA} power. Which statement "
    "says correctly whether each has a matching counterpart at {SB} power?",
}
_MIXED = {
    "correspondence-fixed-1": "The {SA}-power view shows {F1} but not {F2}. Which statement "
    "correctly describes how these findings correspond in the {SB}-power view?",
    "correspondence-fixed-2": "At {SA} power the field shows {F1} and {F2N}. Which option "
    "states correctly what is seen of each at {SB} power?",
    "correspondence-free-1": "Tracing structures from {SA} to {SB} magnification: the "
    "{SA}-power field shows {F1} and {F2N}. What is seen of them in the {SB}-power field?",
    "correspondence-free-2": "Given {F1} and {F2N} at {SA} power, which description of "
    "their correspondence in the {SB}-power field is accurate?",
    "correspondence-free-3": "The {SA}-magnification image shows {F1} and {F2N}. Comparing "
    "with the {SB}-magnification image, which statement holds?",
    "correspondence-free-4": "Starting from {F1} and {F2N} at {SA} power, which account of "
    "the {SB}-power field is correct?",
}
_MATCH = {
    "correspondence-fixed-1": "Along this zoom path, at which magnifications does each of "
    "{F1} and {F2} have a matching structure?",
    "correspondence-fixed-2": "Which option states correctly the magnifications at which "
    "{F1} and {F2} are matched?",
    "correspondence-free-1": "In which of the fields of view are {F1} and {F2} matched "
    "across magnifications?",
    "correspondence-free-2": "Considering the low-, medium- and high-power images, at which "
    "powers are {F1} and {F2} found?",
    "correspondence-free-3": "Which statement correctly matches {F1} and {F2} across the "
    "magnifications of this zoom path?",
    "correspondence-free-4": "At which powers is each of {F1} and {F2} seen in this image set?",
}
_SINGLE = {
    "correspondence-fixed-1": "Along this zoom path, at which of the {SA}- and {SB}-power "
    "fields does {F1} appear?",
    "correspondence-fixed-2": "Which option states correctly where {F1} is found across the "
    "{SA}- and {SB}-power images?",
    "correspondence-free-1": "Tracing {F1} from {SA} to {SB} magnification, which account "
    "of the two fields is correct?",
    "correspondence-free-2": "Comparing the {SA}- and {SB}-power images, which statement "
    "about {F1} holds?",
    "correspondence-free-3": "Which account of {F1} in the {SA}-power and the {SB}-power "
    "fields is correct?",
    "correspondence-free-4": "In this image set, at which of {SA} and {SB} power is {F1} seen?",
}


class Correspondence(QuestionType):
    """Type A."""

    name = "correspondence"
    templates: ClassVar[dict[str, str]] = _SEEN
    tables: ClassVar[dict[str, dict[str, str]]] = {
        "mixed": _MIXED,
        "match": _MATCH,
        "single": _SINGLE,
    }

    def context(self, fam, slots, organ):
        ctx = super().context(fam, slots, organ)
        if len(slots) > 1:
            ctx["F2N"] = no(slots[1].phrase)
        return ctx

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        fams = []
        pairs = list(itertools.combinations(SCALES, 2))
        for sa, sb in pairs + [(b, a) for a, b in pairs]:
            feats = [
                f
                for f in organ.features.values()
                if sa in f.scales and sb in f.scales and prob(organ, f.id, dx) >= pmin
            ]
            if len(feats) < 2:
                continue
            ctx = {"SA": SCALE_WORD[sa], "SB": SCALE_WORD[sb]}
            s1, s2, s3 = [], [], []
            for f in feats:
                pre: Claim = (f.id, sa, True)
                s1.append(
                    presence_slot(
                        f"corr1:{f.id}:{sa}:{sb}",
                        f,
                        sb,
                        is_there(f.phrase, "still seen"),
                        not_there(f.phrase, "no longer seen", "no longer"),
                        pre,
                    )
                )
                s2.append(
                    presence_slot(
                        f"corr2:{f.id}:{sa}:{sb}",
                        f,
                        sb,
                        is_there(f.phrase, "present"),
                        not_there(f.phrase, "absent"),
                        pre,
                    )
                )
                if prob(organ, f.id, dx) <= 1 - pmin:
                    s3.append(
                        presence_slot(
                            f"corrm2:{f.id}:{sa}:{sb}",
                            f,
                            sb,
                            is_there(f.phrase, "newly present"),
                            not_there(f.phrase, "again absent", "again not"),
                            (f.id, sa, False),
                        )
                    )
            fams.append(Family(f"corr:{sa}:{sb}", (), ctx, s1, s2, same=True))
            if s3:
                fams.append(Family(f"corrm:{sa}:{sb}", (), ctx, s1, s3, wording="mixed"))
        fams.extend(self._match(organ, dx, pmin))
        fams.extend(self._single(organ, dx, pmin))
        return fams

    @staticmethod
    def _single(organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        """One feature at two powers: present or absent at each (no premise)."""
        fams = []
        for sa, sb in itertools.combinations(SCALES, 2):
            wa, wb = SCALE_WORD[sa], SCALE_WORD[sb]
            feats = [
                f
                for f in organ.features.values()
                if sa in f.scales
                and sb in f.scales
                and kept_state(f.phrase) is None  # "an intact layer ... absent" reads wrong
                and pmin <= prob(organ, f.id, dx) <= 1 - pmin
            ]
            if not feats:
                continue
            s1 = [
                presence_slot(
                    f"corrs1:{f.id}:{sa}", f, sa, f"present at {wa} power", f"absent at {wa} power"
                )
                for f in feats
            ]
            s2 = [
                presence_slot(
                    f"corrs2:{f.id}:{sb}", f, sb, f"seen at {wb} power", f"not seen at {wb} power"
                )
                for f in feats
            ]
            ctx = {"SA": wa, "SB": wb}
            fams.append(
                Family(f"corrs:{sa}:{sb}", (), ctx, s1, s2, wording="single", one_feature=True)
            )
        return fams

    @staticmethod
    def _match(organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        """At which of two powers each feature is seen: both, or the first only."""
        slots1: list[Slot] = []
        slots2: list[Slot] = []
        for f in organ.features.values():
            if prob(organ, f.id, dx) < pmin:
                continue
            for sa, sb in itertools.combinations(f.scales, 2):
                wa, wb = SCALE_WORD[sa], SCALE_WORD[sb]
                both = ((f.id, sa, True), (f.id, sb, True))
                only = ((f.id, sa, True), (f.id, sb, False))
                slots1.append(
                    Slot(
                        f"loc1:{f.id}:{sa}:{sb}",
                        (
                            Alt(both, f"{f.phrase} at both {wa} and {wb} power"),
                            Alt(only, f"{f.phrase} at {wa} but not {wb} power"),
                        ),
                        (f.id,),
                        f.phrase,
                    )
                )
                slots2.append(
                    Slot(
                        f"loc2:{f.id}:{sa}:{sb}",
                        (
                            Alt(both, f"{f.phrase} matched from {wa} to {wb} power"),
                            Alt(only, f"{f.phrase} confined to {wa} power"),
                        ),
                        (f.id,),
                        f.phrase,
                    )
                )
        if len(slots1) < 2:
            return []
        return [Family("corrx", (), {}, slots1, slots2, same=True, wording="match")]

    def render(self, fam: Family, alts: list[str]) -> str:
        if fam.wording in ("match", "single"):
            return super().render(fam, alts)
        return f"At {fam.ctx['SB']} power, {join_list(alts)}"

    def rationale(self, ann, organ, fam, slots, key):
        if fam.wording == "single":
            fid = slots[0].features[0]
            sa, sb = slots[0].alts[0].claims[0][1], slots[1].alts[0].claims[0][1]
            return (
                f"{cap(state_words(ann, fid, sa, organ))}, and "
                f"{state_words(ann, fid, sb, organ)}. Hence: {key}."
            )
        if fam.wording == "match":
            parts = []
            for s in slots:
                fid = s.features[0]
                sa, sb = s.alts[0].claims[0][1], s.alts[0].claims[1][1]
                parts.append(
                    f"{state_words(ann, fid, sa, organ)} and {state_words(ann, fid, sb, organ)}"
                )
            return cap("; ".join(parts)) + f". Hence: {key}."
        sa = slots[0].alts[0].claims[0][1]
        sb = slots[0].alts[0].claims[1][1]
        f1, f2 = slots[0].features[0], slots[1].features[0]
        p1, p2 = organ.features[f1].phrase, organ.features[f2].phrase
        shows = f"{p1} but not {p2}" if fam.wording == "mixed" else f"{p1} and {p2}"
        return (
            f"At {SCALE_WORD[sa]} power the field shows {shows}. At {SCALE_WORD[sb]} "
            f"power, {state_words(ann, f1, sb, organ, False)}, and "
            f"{state_words(ann, f2, sb, organ, False)}; "
            f"the accurate statement is therefore: {key}."
        )
