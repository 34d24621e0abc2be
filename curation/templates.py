"""The five question types: their slots, question templates, option wording and rationales.

Each type offers *families* of slots for one organ and diagnosis. A family pairs a list of
first slots with a list of second slots (and an optional premise that every path asked must
satisfy); a pair of slots yields a 2x2 option square (:func:`curation.options.square`).
The two slot positions use disjoint value words, so under a bag of words every option is
exactly as far from the others as any other option is.

Types (paper's A..E): correspondence (is a structure matched across magnifications),
corroboration (does the closer view support what the broader view suggests), localization
(at which scale each of two features is seen), explanation (which reasoning links an
architectural to a cytological observation), diagnosis (the overall impression, with a
finding). Each type has two fixed templates (``<type>-fixed-1/2``) and four free phrasings
(``<type>-free-1..4``); the chosen one is recorded as ``template_id``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from curation.annotations import Annotation
from curation.options import DX, Alt, Claim, Slot
from curation.organs import SCALES, Feature, Organ

SCALE_WORD = {"low": "low", "mid": "medium", "high": "high"}


def cap(text: str) -> str:
    """First letter upper-cased (the rest untouched)."""
    return text[:1].upper() + text[1:]


def be(phrase: str) -> str:
    """'are' for a plural-looking phrase, else 'is' (good enough for the vocabularies)."""
    last = phrase.split()[-1].lower() if phrase.split() else ""
    plural = (last.endswith("s") and not last.endswith(("ss", "sis", "us", "is"))) or (
        last.endswith("i") and len(last) > 3
    )
    return "are" if plural else "is"


def _presence_slot(
    key: str, f: Feature, scale: str, present: str, absent: str, premise: Claim | None = None
) -> Slot:
    """The slot "feature ``f`` present / absent at ``scale``" (after ``premise``, if any).

    ``present`` and ``absent`` are the words of the two alternatives.
    """
    pre = () if premise is None else (premise,)
    return Slot(
        key,
        (Alt((*pre, (f.id, scale, True)), present), Alt((*pre, (f.id, scale, False)), absent)),
        (f.id,),
        f.phrase,
    )


@dataclass
class Family:
    """Slots that combine into option squares, with their shared premise and wording."""

    key: str
    premise: tuple[Claim, ...]
    ctx: dict[str, str]
    slots1: list[Slot]
    slots2: list[Slot]
    same: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def pairs(self) -> list[tuple[Slot, Slot]]:
        """Candidate (slot1, slot2) pairs over distinct features."""
        out = []
        for a, b in itertools.product(self.slots1, self.slots2):
            if set(a.features) & set(b.features):
                continue
            if self.same and a.phrase >= b.phrase:
                continue
            if a.delta() & b.delta():
                continue
            out.append((a, b))
        return out


class QuestionType:
    """Base of the five types; subclasses fill the templates and the wording."""

    name = ""
    templates: ClassVar[dict[str, str]] = {}

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        """The slot families of ``organ`` under diagnosis ``dx``."""
        raise NotImplementedError

    def render(self, fam: Family, alts: list[str]) -> str:
        """Option text from the alternatives' words (2 for a square, 3 for one-swap)."""
        raise NotImplementedError

    def question(self, template_id: str, fam: Family, slots: Sequence[Slot], organ: Organ) -> str:
        """Question text for a template and a slot pair."""
        ctx = dict(fam.ctx)
        ctx["ORGAN"] = organ.display_name.lower()
        for i, s in enumerate(slots[:2], start=1):
            ctx[f"F{i}"] = s.phrase
        text = self.templates[template_id].format(**ctx)
        return cap(text)

    def rationale(
        self, ann: Annotation, organ: Organ, fam: Family, slots: Sequence[Slot], key: str
    ) -> str:
        """Why the key holds on this path (never names a letter)."""
        raise NotImplementedError


def _p(organ: Organ, fid: str, dx: str | None) -> float:
    """P(feature | dx); with no diagnosis, the largest over the organ's diagnoses."""
    if dx is None:
        return max(
            [organ.features[fid].prevalence]
            + [
                d.features.get(fid, organ.features[fid].prevalence)
                for d in organ.diagnoses.values()
            ]
        )
    return organ.probability(fid, dx)


def _state_words(
    ann: Annotation, fid: str, scale: str, organ: Organ, name_scale: bool = True
) -> str:
    """What the annotation says of ``fid`` at ``scale`` ("X is seen at high power")."""
    phrase = organ.features[fid].phrase
    where = f" at {SCALE_WORD[scale]} power" if name_scale else ""
    if ann.state(fid, scale):
        return f"{phrase} {be(phrase)} seen{where}"
    return f"{phrase} {be(phrase)} looked for and absent{where}"


class Correspondence(QuestionType):
    name = "correspondence"
    templates: ClassVar[dict[str, str]] = {
        "correspondence-fixed-1": "The {SA}-power view shows {F1} and {F2}. Which statement "
        "correctly describes how these structures correspond in the {SB}-power view?",
        "correspondence-fixed-2": "{F1} and {F2} are both identified at {SA} power. Which "
        "option states correctly whether each is matched at {SB} power?",
        "correspondence-free-1": "Tracing structures from {SA} to {SB} magnification: {F1} and "
        "{F2} are visible in the broader field. What happens to them in the closer field?",
        "correspondence-free-2": "Given that {F1} and {F2} are seen at {SA} power, which "
        "description of their correspondence in the {SB}-power field is accurate?",
        "correspondence-free-3": "Both {F1} and {F2} appear at {SA} magnification. Comparing "
        "with the {SB}-magnification image, which statement holds?",
        "correspondence-free-4": "Do {F1} and {F2}, identified at {SA} power, have matching "
        "counterparts at {SB} power?",
    }
    mixed_templates: ClassVar[dict[str, str]] = {
        "correspondence-fixed-1": "The {SA}-power view shows {F1} but not {F2}. Which statement "
        "correctly describes how these findings correspond in the {SB}-power view?",
        "correspondence-fixed-2": "At {SA} power {F1} is identified and {F2} is looked for and "
        "absent. Which option states correctly what is seen of each at {SB} power?",
        "correspondence-free-1": "Tracing structures from {SA} to {SB} magnification: the "
        "broader field shows {F1} and no {F2}. What happens to them in the closer field?",
        "correspondence-free-2": "Given {F1} but no {F2} at {SA} power, which description of "
        "their correspondence in the {SB}-power field is accurate?",
        "correspondence-free-3": "At {SA} magnification {F1} appears and {F2} does not. "
        "Comparing with the {SB}-magnification image, which statement holds?",
        "correspondence-free-4": "Starting from {F1} present and {F2} absent at {SA} power, "
        "which account of the {SB}-power field is correct?",
    }
    """Same template ids, for the mixed family (first feature seen, second absent at SA)."""

    def question(self, template_id: str, fam: Family, slots: Sequence[Slot], organ: Organ) -> str:
        if not fam.key.startswith("corrm:"):
            return super().question(template_id, fam, slots, organ)
        ctx = dict(fam.ctx)
        for i, s in enumerate(slots[:2], start=1):
            ctx[f"F{i}"] = s.phrase
        return cap(self.mixed_templates[template_id].format(**ctx))

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        fams = []
        pairs = list(itertools.combinations(SCALES, 2))
        for sa, sb in pairs + [(b, a) for a, b in pairs]:
            feats = [
                f
                for f in organ.features.values()
                if sa in f.scales and sb in f.scales and _p(organ, f.id, dx) >= pmin
            ]
            if len(feats) < 2:
                continue
            s1, s2 = [], []
            for f in feats:
                pre: Claim = (f.id, sa, True)
                b = be(f.phrase)
                s1.append(
                    _presence_slot(
                        f"corr1:{f.id}:{sa}:{sb}",
                        f,
                        sb,
                        f"{f.phrase} {b} still seen",
                        f"{f.phrase} {b} no longer seen",
                        pre,
                    )
                )
                s2.append(
                    _presence_slot(
                        f"corr2:{f.id}:{sa}:{sb}",
                        f,
                        sb,
                        f"{f.phrase} {b} present",
                        f"{f.phrase} {b} absent",
                        pre,
                    )
                )
            fams.append(
                Family(
                    f"corr:{sa}:{sb}",
                    (),
                    {"SA": SCALE_WORD[sa], "SB": SCALE_WORD[sb]},
                    s1,
                    s2,
                    same=True,
                )
            )
            # mixed: the first feature seen at SA, the second looked for and absent there
            s3 = []
            for f in feats:
                if _p(organ, f.id, dx) > 1 - pmin:
                    continue
                pre = (f.id, sa, False)
                b = be(f.phrase)
                s3.append(
                    _presence_slot(
                        f"corrm2:{f.id}:{sa}:{sb}",
                        f,
                        sb,
                        f"{f.phrase} {b} newly present",
                        f"{f.phrase} {b} again absent",
                        pre,
                    )
                )
            if s3:
                fams.append(
                    Family(
                        f"corrm:{sa}:{sb}",
                        (),
                        {"SA": SCALE_WORD[sa], "SB": SCALE_WORD[sb]},
                        s1,
                        s3,
                    )
                )
        return fams

    def render(self, fam: Family, alts: list[str]) -> str:
        body = ", ".join(alts[:-1]) + f", and {alts[-1]}" if len(alts) > 2 else " and ".join(alts)
        return f"At {fam.ctx['SB']} power, {body}"

    def rationale(self, ann, organ, fam, slots, key):
        sa = slots[0].alts[0].claims[0][1]
        sb = slots[0].alts[0].claims[1][1]
        f1, f2 = slots[0].features[0], slots[1].features[0]
        p1, p2 = organ.features[f1].phrase, organ.features[f2].phrase
        shows = f"{p1} but not {p2}" if fam.key.startswith("corrm:") else f"{p1} and {p2}"
        return (
            f"At {SCALE_WORD[sa]} power the field shows {shows}. At {SCALE_WORD[sb]} "
            f"power, {_state_words(ann, f1, sb, organ, False)}, and "
            f"{_state_words(ann, f2, sb, organ, False)}; "
            f"the accurate statement is therefore: {key}."
        )


class Corroboration(QuestionType):
    name = "corroboration"
    templates: ClassVar[dict[str, str]] = {
        "corroboration-fixed-1": "At {SA} power the field shows {P0}, which suggests {DX}. "
        "Which statement correctly describes what the high-power view shows?",
        "corroboration-fixed-2": "The broader {SA}-power view suggests {DX} because of {P0}. "
        "To what extent does the closer high-power view corroborate it?",
        "corroboration-free-1": "Given {P0} at {SA} power, pointing towards {DX}, which "
        "high-power findings are actually present?",
        "corroboration-free-2": "The {SA}-power impression is {DX}, based on {P0}. Which option "
        "accurately reports the evidence in the high-power field?",
        "corroboration-free-3": "Which statement about the high-power view is accurate when "
        "checking whether it supports the {DX} suggested by {P0} at {SA} power?",
        "corroboration-free-4": "Starting from {P0} at {SA} magnification, which suggests {DX}, "
        "what does the closer view confirm or fail to confirm?",
    }

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        if dx is None or dx not in organ.diagnoses:
            return []
        fams = []
        high = [
            f
            for f in organ.features.values()
            if "high" in f.scales and pmin <= _p(organ, f.id, dx) <= 1 - pmin
        ]
        for p0 in organ.features.values():
            sa = p0.scales[0]
            if sa == "high" or _p(organ, p0.id, dx) < 0.5:
                continue
            cands = [f for f in high if f.id != p0.id]
            if len(cands) < 2:
                continue
            s1 = [
                _presence_slot(
                    f"corro1:{f.id}",
                    f,
                    "high",
                    f"{f.phrase} {be(f.phrase)} present",
                    f"{f.phrase} {be(f.phrase)} absent",
                )
                for f in cands
            ]
            s2 = [
                _presence_slot(
                    f"corro2:{f.id}",
                    f,
                    "high",
                    f"{f.phrase} {be(f.phrase)} seen",
                    f"{f.phrase} {be(f.phrase)} not seen",
                )
                for f in cands
            ]
            fams.append(
                Family(
                    f"corro:{p0.id}:{sa}",
                    ((p0.id, sa, True),),
                    {
                        "SA": SCALE_WORD[sa],
                        "P0": p0.phrase,
                        "DX": organ.diagnoses[dx].name,
                    },
                    s1,
                    s2,
                    same=True,
                )
            )
        return fams

    def render(self, fam: Family, alts: list[str]) -> str:
        body = ", ".join(alts[:-1]) + f", and {alts[-1]}" if len(alts) > 2 else " and ".join(alts)
        return f"At high power, {body}"

    def rationale(self, ann, organ, fam, slots, key):
        f1, f2 = slots[0].features[0], slots[1].features[0]
        return (
            f"{cap(fam.ctx['P0'])} at {fam.ctx['SA']} power suggests {fam.ctx['DX']}. In the "
            f"high-power field {_state_words(ann, f1, 'high', organ, False)}, and "
            f"{_state_words(ann, f2, 'high', organ, False)}; so the closer view reads: {key}."
        )


class Localization(QuestionType):
    name = "localization"
    templates: ClassVar[dict[str, str]] = {
        "localization-fixed-1": "Along this zoom path, at which magnification is each of {F1} "
        "and {F2} seen?",
        "localization-fixed-2": "Which option correctly localises {F1} and {F2} to the "
        "magnifications where they are visible?",
        "localization-free-1": "In which of the fields of view do {F1} and {F2} appear?",
        "localization-free-2": "Considering the low-, medium- and high-power images, where are "
        "{F1} and {F2} found?",
        "localization-free-3": "Which statement correctly places {F1} and {F2} on the "
        "magnification scale of this zoom path?",
        "localization-free-4": "At which power does each of {F1} and {F2} become evident in "
        "this image set?",
    }

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        slots1: list[Slot] = []
        slots2: list[Slot] = []
        for f in organ.features.values():
            if _p(organ, f.id, dx) < pmin:
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
                            Alt(both, f"{f.phrase} extending from {wa} to {wb} power"),
                            Alt(only, f"{f.phrase} confined to {wa} power"),
                        ),
                        (f.id,),
                        f.phrase,
                    )
                )
        if len(slots1) < 2:
            return []
        return [Family("loc", (), {}, slots1, slots2, same=True)]

    def render(self, fam: Family, alts: list[str]) -> str:
        return cap("; ".join(alts))

    def rationale(self, ann, organ, fam, slots, key):
        parts = []
        for s in slots:
            fid = s.features[0]
            sa, sb = s.alts[0].claims[0][1], s.alts[0].claims[1][1]
            parts.append(
                f"{_state_words(ann, fid, sa, organ)} and {_state_words(ann, fid, sb, organ)}"
            )
        return cap("; ".join(parts)) + f". Hence: {key}."


class Explanation(QuestionType):
    name = "explanation"
    templates: ClassVar[dict[str, str]] = {
        "explanation-fixed-1": "Which line of reasoning correctly links what is seen at {SX} "
        "power to what is seen at high power?",
        "explanation-fixed-2": "Which option gives the cross-scale reasoning that this zoom "
        "path supports, from the {SX}-power view to the high-power view?",
        "explanation-free-1": "Which pairing of a {SX}-power observation with a high-power "
        "observation is borne out by the images?",
        "explanation-free-2": "How do the {SX}-power architecture and the high-power detail of "
        "this zoom path fit together?",
        "explanation-free-3": "Which chain of observations across magnifications, {SX} power "
        "then high power, is accurate here?",
        "explanation-free-4": "Which explanation connecting the broader {SX}-power field to the "
        "closer high-power field holds for these images?",
    }

    @staticmethod
    def _choices(organ: Organ, feats: list, scale: str, tag: str) -> list[Slot]:
        out = []
        w = SCALE_WORD[scale]
        for a, b in itertools.combinations(feats, 2):
            out.append(
                Slot(
                    f"{tag}:{a.id}|{b.id}:{scale}",
                    (
                        Alt(
                            ((a.id, scale, True), (b.id, scale, False)), f"{a.phrase} at {w} power"
                        ),
                        Alt(
                            ((a.id, scale, False), (b.id, scale, True)), f"{b.phrase} at {w} power"
                        ),
                    ),
                    (a.id, b.id),
                    f"{a.phrase} or {b.phrase}",
                )
            )
        return out

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        fams = []
        for sx in ("low", "mid"):
            xs = [
                f
                for f in organ.features.values()
                if sx in f.scales and pmin <= _p(organ, f.id, dx) <= 1 - pmin
            ]
            ys = [
                f
                for f in organ.features.values()
                if "high" in f.scales
                and sx not in f.scales
                and pmin <= _p(organ, f.id, dx) <= 1 - pmin
            ]
            if len(xs) < 2 or len(ys) < 2:
                continue
            fams.append(
                Family(
                    f"expl:{sx}",
                    (),
                    {"SX": SCALE_WORD[sx]},
                    self._choices(organ, xs, sx, "expl1"),
                    self._choices(organ, ys, "high", "expl2"),
                )
            )
            w = SCALE_WORD[sx]
            fams.append(
                Family(
                    f"explp:{sx}",
                    (),
                    {"SX": w},
                    [
                        _presence_slot(
                            f"explp1:{f.id}:{sx}",
                            f,
                            sx,
                            f"{f.phrase} at {w} power",
                            f"no {f.phrase} at {w} power",
                        )
                        for f in xs
                    ],
                    [
                        _presence_slot(
                            f"explp2:{f.id}", f, "high", f"with {f.phrase}", f"lacking {f.phrase}"
                        )
                        for f in ys
                    ],
                )
            )
        return fams

    def render(self, fam: Family, alts: list[str]) -> str:
        if fam.key.startswith("explp"):
            return cap(f"{alts[0]}, " + " and ".join(alts[1:]) + " at high power")
        if len(alts) > 2:
            return cap(f"{alts[0]}, in keeping with {' and '.join(alts[1:])}")
        return cap(f"{alts[0]}, in keeping with {alts[1]}")

    def rationale(self, ann, organ, fam, slots, key):
        parts = []
        for s in slots:
            scale = s.alts[0].claims[0][1]
            parts.append(" and ".join(_state_words(ann, f, scale, organ) for f in s.features))
        return cap("; ".join(parts)) + f". The reasoning that holds is: {key}."


class DiagnosisType(QuestionType):
    name = "diagnosis"
    templates: ClassVar[dict[str, str]] = {
        "diagnosis-fixed-1": "Based on the images provided, which option best matches the "
        "overall morphologic impression?",
        "diagnosis-fixed-2": "Taking the low-, medium- and high-power views together, which "
        "diagnosis and accompanying finding fit this zoom path?",
        "diagnosis-free-1": "What is the most likely diagnosis for this {ORGAN} specimen, with "
        "the finding that goes with it?",
        "diagnosis-free-2": "Integrating architecture and cytology across the three "
        "magnifications, which impression is correct?",
        "diagnosis-free-3": "Which overall interpretation of this {ORGAN} tissue is supported by "
        "the image set?",
        "diagnosis-free-4": "Which option states the diagnosis and an accompanying finding that "
        "these {ORGAN} images show?",
    }

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
                w = SCALE_WORD[s]
                s2.append(
                    _presence_slot(
                        f"dx2:{f.id}:{s}",
                        f,
                        s,
                        f"with {f.phrase} at {w} power",
                        f"without {f.phrase} at {w} power",
                    )
                )
        return [Family("dx", (), {}, s1, s2)]

    def render(self, fam: Family, alts: list[str]) -> str:
        return cap(f"{alts[0]}, " + " and ".join(alts[1:]))

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
            f"{lead}in keeping with {name}; {_state_words(ann, fid, scale, organ)}. "
            f"Overall impression: {key}."
        )


TYPES: dict[str, QuestionType] = {
    t.name: t
    for t in (Correspondence(), Corroboration(), Localization(), Explanation(), DiagnosisType())
}
"""The five question types by name, in the paper's order A..E."""


def template_ids(question_type: str) -> list[str]:
    """Template ids of a type (two fixed, then the free phrasings)."""
    return list(TYPES[question_type].templates)
