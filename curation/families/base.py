"""What every question type shares: slot families, the type interface, and wording helpers.

A type offers *families* of slots for one organ and diagnosis. A family pairs a list of
first slots with a list of second slots (and an optional premise that every path asked must
satisfy); a pair of slots yields a 2x2 option square (:func:`curation.options.square`). The
two slot positions use disjoint value words, so under a bag of words every option is
exactly as far from the others as any other option is. A family names the template table
its stems come from (``wording``); every table of a type has the same template ids.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from curation.annotations import Annotation
from curation.options import Alt, Claim, Slot
from curation.organs import Feature, Organ
from curation.text_quality import text_problems

SCALE_WORD = {"low": "low", "mid": "medium", "high": "high"}

_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.I)
_KEEP_ADJ = ("intact", "preserved", "maintained", "normal")
"""Adjectives of a *preserved state*: negating such a phrase negates the adjective."""


_HEAD_STOP = frozenset(
    {"of", "in", "with", "and", "by", "from", "within", "on", "above", "below", "beneath"}
    | {"under", "around", "inside", "into"}
)
"""Words that end a phrase's head noun ("mitotic figures above the basal layer")."""


def cap(text: str) -> str:
    """First letter upper-cased (the rest untouched)."""
    return text[:1].upper() + text[1:]


def bare(phrase: str) -> str:
    """``phrase`` without a leading article ("a microfollicular pattern" -> "microfollicular
    pattern"), for "no ..." and list contexts."""
    return _ARTICLE.sub("", phrase)


def be(phrase: str) -> str:
    """'are' for a plural-looking phrase, else 'is' (good enough for the vocabularies)."""
    words = bare(phrase).split()
    # the head noun of "X of Y" / "X in Y" / "X with Y" is before the preposition
    for i, w in enumerate(words):
        if w in _HEAD_STOP and i:
            words = words[:i]
            break
    last = words[-1].lower() if words else ""
    if last in _KEEP_ADJ:  # "crypt architecture preserved"
        last = words[-2].lower() if len(words) > 1 else ""
    plural = (
        (last.endswith("s") and not last.endswith(("ss", "sis", "us", "is")))
        or (last.endswith("i") and len(last) > 3)
        or last.endswith(("ae", "ea"))  # Latin plurals: corpora amylacea, lacunae
        or (bool(words) and words[0].lower() in ("corpora", "foci", "nuclei"))
    )
    return "are" if plural else "is"


def kept_state(phrase: str) -> tuple[str, str] | None:
    """``(subject, adjective)`` when ``phrase`` names a preserved state ("an intact
    myoepithelial layer" -> ("the myoepithelial layer", "intact")), else None."""
    words = bare(phrase).split()
    if len(words) > 1 and words[0].lower() in _KEEP_ADJ:
        return "the " + " ".join(words[1:]), words[0].lower()
    if len(words) > 1 and words[-1].lower() in _KEEP_ADJ:
        return "the " + " ".join(words[:-1]), words[-1].lower()
    return None


def is_there(phrase: str, word: str) -> str:
    """ "<phrase> is <word>" ("keratin pearls are present")."""
    return f"{phrase} {be(phrase)} {word}"


def not_there(phrase: str, word: str, adverb: str = "not") -> str:
    """ "<phrase> is <word>" for an absence ("horn cysts are absent"), worded so that a
    preserved state is negated, never called absent: "the myoepithelial layer is not intact"
    (``adverb`` is the negation used there: "not", "no longer", ...)."""
    kept = kept_state(phrase)
    if kept is None:
        return f"{phrase} {be(phrase)} {word}"
    subject, adj = kept
    return f"{subject} {be(subject)} {adverb} {adj}"


def no(phrase: str) -> str:
    """ "no <phrase>" without a doubled article ("no microfollicular pattern"), and for a
    preserved state "<subject> not <adj>" ("lobular architecture not preserved")."""
    kept = kept_state(phrase)
    if kept is None:
        return f"no {bare(phrase)}"
    subject, adj = kept
    return f"{bare(subject)} not {adj}"


def clean_slot(slot: Slot) -> bool:
    """Whether both alternatives of ``slot`` pass the text gate on their own."""
    return not any(text_problems(a.text) for a in slot.alts)


def presence_slot(
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
    wording: str = ""
    """Template table of the type that words this family's stems ("" = the default)."""
    one_feature: bool = False
    """Pair slots over the *same* feature (at two powers) instead of distinct features."""

    def __post_init__(self) -> None:
        # a slot whose own words fail the text gate never reaches an option
        self.slots1 = [s for s in self.slots1 if clean_slot(s)]
        self.slots2 = [s for s in self.slots2 if clean_slot(s)]

    def pairs(self) -> list[tuple[Slot, Slot]]:
        """Candidate (slot1, slot2) pairs over distinct features (the same one for
        ``one_feature`` families)."""
        out = []
        for a, b in itertools.product(self.slots1, self.slots2):
            if self.one_feature != (set(a.features) == set(b.features)):
                continue
            if not self.one_feature and set(a.features) & set(b.features):
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
    tables: ClassVar[dict[str, dict[str, str]]] = {}
    """Further template tables by ``Family.wording`` (same ids as ``templates``)."""

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        """The slot families of ``organ`` under diagnosis ``dx``."""
        raise NotImplementedError

    def render(self, fam: Family, alts: list[str]) -> str:
        """Option text from the alternatives' words (2 for a square, 3 for one-swap); by
        default the alternatives as clauses joined by semicolons."""
        return cap("; ".join(alts))

    def context(self, fam: Family, slots: Sequence[Slot], organ: Organ) -> dict[str, str]:
        """The fields a template may use: the family's, ``ORGAN``, ``F1`` and ``F2``."""
        ctx = dict(fam.ctx)
        ctx["ORGAN"] = organ.display_name.lower()
        for i, s in enumerate(slots[:2], start=1):
            ctx[f"F{i}"] = s.phrase
        return ctx

    def question(self, template_id: str, fam: Family, slots: Sequence[Slot], organ: Organ) -> str:
        """Question text for a template and a slot pair."""
        ctx = self.context(fam, slots, organ)
        table = self.tables.get(fam.wording, self.templates) if fam.wording else self.templates
        return cap(table[template_id].format(**ctx))

    def rationale(
        self, ann: Annotation, organ: Organ, fam: Family, slots: Sequence[Slot], key: str
    ) -> str:
        """Why the key holds on this path (never names a letter)."""
        raise NotImplementedError


def prob(organ: Organ, fid: str, dx: str | None) -> float:
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


def state_words(
    ann: Annotation, fid: str, scale: str, organ: Organ, name_scale: bool = True
) -> str:
    """What the annotation says of ``fid`` at ``scale`` ("X is seen at high power")."""
    phrase = organ.features[fid].phrase
    where = f" at {SCALE_WORD[scale]} power" if name_scale else ""
    if ann.state(fid, scale):
        return f"{is_there(phrase, 'seen')}{where}"
    return f"{not_there(phrase, 'looked for and absent')}{where}"


def join_list(alts: Sequence[str]) -> str:
    """ "a and b" / "a, b, and c"."""
    if len(alts) > 2:
        return ", ".join(alts[:-1]) + f", and {alts[-1]}"
    return " and ".join(alts)
