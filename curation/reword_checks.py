"""The re-check of a reworded complementary set: the new text must say what the old one said.

:func:`rejection` returns the reason code a rewording is refused for (the set then keeps
its original text), or None. In this order, the first that applies:

- ``option_count`` / ``duplicate_options``: not one option per original option, or an
  option list with an empty, repeated or identical option
  (:func:`curation.records.option_set_fault`);
- ``unchanged``: the same text as before (nothing to apply);
- ``text_quality`` (the gate of :mod:`curation.text_quality`) or a type definition
  (``explanation_wording``, ``corroboration_no_diagnosis``, ``localization_compartments``)
  that the reworded rows break and the original rows did not;
- ``meaning_terms`` / ``meaning_negation`` / ``meaning_magnification`` / ``meaning_relation``:
  the stem or an option (compared in its position, so a reordered list fails) names other
  vocabulary terms (features, diagnoses, compartments, each by phrase or synonym), gives a
  term another negation count, names other magnifications (low/medium/high) or other
  compartment relations (same/another);
- ``length_spread``: option lengths spread more than the generator allows
  (:attr:`curation.generation.config.GeneratorConfig.max_length_spread`, or the original's
  spread if that was wider);
- ``distinct_options``, ``symmetry``, ``distinctive_tokens``, ``rationale_letters``: an
  option-set constraint of :mod:`curation.constraints` newly broken (a rewording that makes
  one option the hub or outlier, or gives it a word of its own, would leak its key).

A set of an organ without a vocabulary is kept (``unknown_organ``). The meaning check is
lexical and conservative: a paraphrase that drops a term's exact phrase (and its synonyms)
is refused, never applied.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from curation.families.base import bare, kept_state
from curation.organs import Organ
from curation.records import Question, option_set_fault

NEGATION = re.compile(
    r"\b(no|not|none|neither|nor|never|without|absent|absence|missing|lacking|lacks?|"
    r"cannot|contradict\w*|mismatch\w*|inconsistent|against)\b|n't\b",
    re.I,
)
"""Cues that turn a finding's polarity (negation, contradiction, mismatch)."""

SCALE_WORDS = re.compile(r"\b(low|medium|high)\b", re.I)
RELATIONS = re.compile(r"\b(same|another)\b", re.I)
_CLAUSE = re.compile(r"[;.?!]")

WORDING_CONSTRAINTS: tuple[str, ...] = (
    "text_quality",
    "explanation_wording",
    "corroboration_no_diagnosis",
    "localization_compartments",
)
"""The text gate and the type definitions (checked first)."""

SHAPE_CONSTRAINTS: tuple[str, ...] = (
    "distinct_options",
    "symmetry",
    "distinctive_tokens",
    "rationale_letters",
)
"""The option-set constraints that keep the text free of shortcuts (checked last)."""

TEXT_CONSTRAINTS = WORDING_CONSTRAINTS + SHAPE_CONSTRAINTS
"""Per-question constraints that read only the text (checked before and after)."""

MEANING_REASONS = ("meaning_terms", "meaning_negation", "meaning_magnification", "meaning_relation")


def organ_terms(organ: Organ) -> dict[str, str]:
    """Every phrase (lower case) naming a term of ``organ`` -> the term's id.

    Features (``f:<id>``: phrase and synonyms, without a leading article, and for a
    preserved state also its subject, as the generator words its negation: "lobular
    architecture not preserved"), diagnoses (``dx:<id>``: name and synonyms) and
    compartments (``c:<name>``).
    """
    terms: dict[str, str] = {}
    for f in organ.features.values():
        for phrase in (f.phrase, *f.synonyms):
            kept = kept_state(phrase)
            forms = [phrase, bare(phrase)] + ([bare(kept[0])] if kept else [])
            for form in forms:
                terms.setdefault(form.lower(), f"f:{f.id}")
    for d in organ.diagnoses.values():
        for name in (d.name, *d.synonyms):
            terms.setdefault(name.lower(), f"dx:{d.id}")
    for c in organ.compartments:
        terms.setdefault(c.replace("_", " ").lower(), f"c:{c}")
    return {p: t for p, t in terms.items() if p.strip()}


@dataclass(frozen=True)
class Signature:
    """What a text says, as the meaning check compares it."""

    terms: frozenset[str]
    negations: tuple[tuple[str, int], ...]
    scales: tuple[tuple[str, int], ...]
    relations: tuple[tuple[str, int], ...] = field(default=())


def _cue_owner(
    clause: str,
    cue: re.Match[str],
    ments: list[tuple[int, str]],
    every: list[tuple[int, str]],
    at: int,
) -> str:
    """What the negation ``cue`` in ``clause`` belongs to (see :meth:`TermMatcher.signature`);
    ``ments``: the clause's terms, ``every``: the text's, ``at``: the cue's place in it."""
    before = [t for pos, t in ments if pos < cue.start()]
    if before:
        return before[-1]
    after = [t for pos, t in ments if pos > cue.start()]
    if after:
        return after[0]
    # the power a cue qualifies follows it ("not seen at high power")
    scale = SCALE_WORDS.search(clause, cue.end()) or next(
        reversed(list(SCALE_WORDS.finditer(clause, 0, cue.start()))), None
    )
    if scale:
        return f"@{scale.group(1).lower()}"
    if every:
        return min(every, key=lambda m: (abs(m[0] - at), m[0] > at))[1]
    return "-"


class TermMatcher:
    """Finds an organ's terms in a text (longest phrase first, plural ``s``/``es`` allowed)."""

    def __init__(self, organ: Organ) -> None:
        self.terms = organ_terms(organ)
        phrases = sorted(self.terms, key=lambda p: (-len(p), p))
        alternation = "|".join(re.escape(p) for p in phrases) or r"(?!x)x"
        self._rx = re.compile(rf"\b({alternation})(?:e?s)?\b", re.I)

    def mentions(self, text: str) -> list[tuple[int, str]]:
        """``(position, term id)`` of every term named in ``text``, in order."""
        return [(m.start(), self.terms[m.group(1).lower()]) for m in self._rx.finditer(text)]

    def signature(self, text: str) -> Signature:
        """Terms named, negation cues per term, magnification and relation words.

        A negation cue belongs to the nearest term named before it in its clause (split at
        ``; . ? !``), else to the nearest after it there, else to the magnification the
        clause names after it, else before it ("absent at low power; seen at medium
        power"), else to the nearest term named anywhere in the text, else to the text
        (``"-"``).
        """
        negs: Counter[str] = Counter()
        every = self.mentions(text)
        start = 0
        for clause in _CLAUSE.split(text):
            ments = self.mentions(clause)
            for cue in NEGATION.finditer(clause):
                negs[_cue_owner(clause, cue, ments, every, start + cue.start())] += 1
            start += len(clause) + 1
        scales = Counter(m.group(1).lower() for m in SCALE_WORDS.finditer(text))
        relations = Counter(m.group(1).lower() for m in RELATIONS.finditer(text))
        return Signature(
            frozenset(t for _, t in every),
            tuple(sorted(negs.items())),
            tuple(sorted(scales.items())),
            tuple(sorted(relations.items())),
        )


def meaning_change(matcher: TermMatcher, old: Sequence[str], new: Sequence[str]) -> str | None:
    """The first meaning reason by which texts ``new`` differ from ``old`` (same positions)."""
    for before, after in zip(old, new, strict=True):
        a, b = matcher.signature(before), matcher.signature(after)
        if a.terms != b.terms:
            return "meaning_terms"
        if a.negations != b.negations:
            return "meaning_negation"
        if a.scales != b.scales:
            return "meaning_magnification"
        if a.relations != b.relations:
            return "meaning_relation"
    return None


def length_spread(options: Sequence[str]) -> float:
    """``(longest - shortest) / longest`` in characters (the generator's measure)."""
    lengths = [len(o) for o in options]
    return (max(lengths) - min(lengths)) / max(lengths) if lengths and max(lengths) else 0.0


def broken_constraints(rows: Sequence[Question], organs: Mapping[str, Organ] | None) -> set[str]:
    """Names of the :data:`TEXT_CONSTRAINTS` that some row of ``rows`` breaks."""
    from curation.constraints import check_all

    return {v.constraint for v in check_all(rows, None, organs, only=TEXT_CONSTRAINTS)}


def rejection(
    original: Sequence[Question],
    reworded: Sequence[Question],
    matcher: TermMatcher | None,
    organs: Mapping[str, Organ] | None,
    max_length_spread: float,
) -> str | None:
    """Why the reworded rows of one set are refused (a reason code), or None to apply them.

    ``original`` and ``reworded`` are the same set's rows before and after; ``matcher``
    reads the organ's terms (None: the organ is unknown and the meaning check cannot run,
    reason ``unknown_organ``).
    """
    old, new = original[0], reworded[0]
    if len(new.options) != len(old.options):
        return "option_count"
    if option_set_fault(new.options) is not None or not new.question.strip():
        return "duplicate_options"
    if new.question == old.question and new.options == old.options:
        return "unchanged"
    if matcher is None:
        return "unknown_organ"
    broken = broken_constraints(reworded, organs) - broken_constraints(original, organs)
    for name in WORDING_CONSTRAINTS:
        if name in broken:
            return name
    why = meaning_change(matcher, [old.question, *old.options], [new.question, *new.options])
    if why is not None:
        return why
    if length_spread(new.options) > max(max_length_spread, length_spread(old.options)):
        return "length_spread"
    for name in SHAPE_CONSTRAINTS:
        if name in broken:
            return name
    return None
