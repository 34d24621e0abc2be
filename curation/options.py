"""Option sets built from atomic claims: the factorial square and the release's one-swap rule.

A *claim* is ``(feature_id, scale, present)`` — "feature is seen (present=True) or looked
for and absent (present=False) at scale" — or ``(DX, diagnosis_id, True)``, or a
*placement*: ``(feature_id, "in:<compartment>", True)`` ("the feature lies in that
compartment") or ``(feature_id, "with:<other_feature>", same)`` ("it lies in the same
compartment as the other feature", or, with ``same=False``, in a different one). A
placement is only decided where the annotation records the compartment (``locations``):
a feature placed in one compartment is thereby placed in no other (the explicit negative).
A claim is true, false, or undetermined (None) on an annotation: absence is only ever
claimed where a negative was annotated. A *slot* is a binary choice between two alternatives (each a
conjunction of claims plus the words that state it); on a zoom path its value is 0 or 1
when exactly one alternative is true and the other false, else None.

- :func:`square` crosses two slots into a 2x2 option set: every option has the same
  multiset of edit distances to the others (no hub), and exactly one option is true on any
  path where both slots are determined.
- :func:`one_swap` writes the release's way: the key plus one distractor per slot with that
  slot flipped, so the key is the centre of the set (kept as the leaky baseline).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.annotations import Annotation

DX = "@dx"
"""Feature slot of a diagnosis claim: ``(DX, diagnosis_id, True)``."""
IN = "in:"
"""Scale slot prefix of a placement claim: ``(feature, IN + compartment, True)``."""
WITH = "with:"
"""Scale slot prefix of a relative placement: ``(feature, WITH + other_feature, same)``."""


def is_placement(claim: Sequence[Any]) -> bool:
    """Whether ``claim`` places a feature in a compartment (absolutely or relatively)."""
    return str(claim[1]).startswith((IN, WITH))


def placement_problem(organ: Any, claim: Sequence[Any]) -> str:
    """Why a placement claim cannot be made in ``organ`` ("" when it can)."""
    feature, where = claim[0], str(claim[1])
    if where.startswith(IN):
        comp = where[len(IN) :]
        allowed = organ.compartments_of(feature)
        if comp not in allowed:
            return (
                f"places {feature!r} in {comp!r}, where it cannot lie "
                f"(vocabulary allows: {', '.join(allowed) or 'none'})"
            )
        return ""
    other = where[len(WITH) :]
    if other not in organ.features:
        return f"places {feature!r} relative to unknown feature {other!r}"
    if not organ.compartments_of(feature) or not organ.compartments_of(other):
        return f"places {feature!r} relative to {other!r}, but one of them has no compartment"
    return ""


def placement_truth(ann: Annotation, claim: Sequence[Any]) -> bool | None:
    """Truth of a placement claim on ``ann`` (None unless every compartment named is recorded)."""
    feature, where, value = claim[0], str(claim[1]), bool(claim[2])
    here = ann.location(feature)
    if here is None:
        return None
    if where.startswith(IN):
        return (here == where[len(IN) :]) == value
    other = ann.location(where[len(WITH) :])
    if other is None:
        return None
    return (here == other) == value


Claim = tuple[str, str, bool]

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def word_bag(text: str) -> Counter[str]:
    """Lower-cased words of ``text`` with their counts (hyphen/apostrophe words kept whole)."""
    return Counter(_WORD.findall(text.lower()))


def claim_truth(ann: Annotation, claim: Sequence[Any]) -> bool | None:
    """Whether ``claim`` holds on ``ann``: True, False, or None when not annotated."""
    feature, scale, present = claim[0], claim[1], bool(claim[2])
    if is_placement(claim):
        return placement_truth(ann, claim)
    if feature == DX:
        if ann.diagnosis is None:
            return None
        return (ann.diagnosis == scale) == present
    state = ann.state(feature, scale)
    if state is None:
        return None
    return state == present


def claims_truth(ann: Annotation, claims: Sequence[Sequence[Any]]) -> bool | None:
    """Truth of a conjunction: False if any claim is false, None if any is undetermined."""
    undetermined = False
    for c in claims:
        t = claim_truth(ann, c)
        if t is False:
            return False
        if t is None:
            undetermined = True
    return None if undetermined else True


@dataclass(frozen=True)
class Alt:
    """One alternative of a slot: its claims and the words that state them."""

    claims: tuple[Claim, ...]
    text: str


@dataclass(frozen=True)
class Slot:
    """A binary choice between two alternatives; ``key`` names it uniquely in its organ."""

    key: str
    alts: tuple[Alt, Alt]
    features: tuple[str, ...] = ()
    phrase: str = ""

    def delta(self) -> frozenset[str]:
        """Words that differ between the two alternatives (bag-of-words difference)."""
        a, b = word_bag(self.alts[0].text), word_bag(self.alts[1].text)
        return frozenset((a - b) | (b - a))

    def value(self, ann: Annotation) -> int | None:
        """0 or 1 when exactly that alternative is true and the other false, else None."""
        t0 = claims_truth(ann, self.alts[0].claims)
        t1 = claims_truth(ann, self.alts[1].claims)
        if t0 is True and t1 is False:
            return 0
        if t1 is True and t0 is False:
            return 1
        return None


@dataclass
class OptionSet:
    """Option texts with the claims each makes and the slot values it stands for."""

    texts: list[str]
    claims: list[list[Claim]]
    values: list[tuple[int, ...]]
    slots: list[str] = field(default_factory=list)

    def permuted(self, order: Sequence[int]) -> OptionSet:
        """The same options in ``order`` (new index i holds old option ``order[i]``)."""
        return OptionSet(
            texts=[self.texts[i] for i in order],
            claims=[self.claims[i] for i in order],
            values=[self.values[i] for i in order],
            slots=list(self.slots),
        )

    def index_of(self, values: Sequence[int]) -> int:
        """Index of the option standing for slot ``values``."""
        return self.values.index(tuple(values))


Render = Callable[[list[str]], str]


def square(slots: Sequence[Slot], render: Render) -> OptionSet:
    """The full factorial over binary ``slots`` (2 slots -> 4 options), in value order."""
    texts, claims, values = [], [], []
    for combo in itertools.product((0, 1), repeat=len(slots)):
        alts = [s.alts[v] for s, v in zip(slots, combo)]
        texts.append(render([a.text for a in alts]))
        claims.append([c for a in alts for c in a.claims])
        values.append(tuple(combo))
    return OptionSet(texts, claims, values, [s.key for s in slots])


def one_swap(slots: Sequence[Slot], key_values: Sequence[int], render: Render) -> OptionSet:
    """The release's rule: the key, then one distractor per slot with that slot flipped."""
    combos = [tuple(key_values)]
    for i in range(len(slots)):
        flipped = list(key_values)
        flipped[i] = 1 - flipped[i]
        combos.append(tuple(flipped))
    texts, claims = [], []
    for combo in combos:
        alts = [s.alts[v] for s, v in zip(slots, combo)]
        texts.append(render([a.text for a in alts]))
        claims.append([c for a in alts for c in a.claims])
    return OptionSet(texts, claims, combos, [s.key for s in slots])


def option_truths(ann: Annotation, claims: Sequence[Sequence[Sequence[Any]]]) -> list[bool | None]:
    """Truth of every option's conjunction of claims on ``ann``."""
    return [claims_truth(ann, c) for c in claims]


def claims_to_json(claims: Sequence[Claim]) -> list[list[Any]]:
    """Claims as JSON lists ``[feature, scale, present]``."""
    return [[f, s, bool(p)] for f, s, p in claims]
