"""Checkers that each question type meets the paper's definition (constraint-checker style).

- ``corroboration_no_diagnosis``: no type B stem or option names a diagnosis of the organ
  (name or synonym): the implication is weak and non-diagnostic;
- ``explanation_wording``: no type D stem or option uses causal, explanatory, directional
  or zoom-in wording (:data:`curation.families.explanation.FORBIDDEN`);
- ``localization_compartments``: the options of a type C question differ only by
  compartment names or spatial-relationship words
  (:data:`curation.families.localization.RELATION_WORDS`);
- ``text_quality``: the text-quality gate (:mod:`curation.text_quality`) on every question.

Registered in :data:`curation.constraints.CONSTRAINTS`. Organs are looked up in ``organs``
when given, else in the registry (a question of an unknown organ is skipped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from curation.families.explanation import FORBIDDEN
from curation.families.localization import RELATION_WORDS
from curation.options import word_bag
from curation.organs import Organ
from curation.records import Question
from curation.text_quality import question_problems
from curation.violations import Violation, organ_resolver


def diagnosis_names(organ: Organ) -> list[str]:
    """Every diagnosis name and synonym of ``organ`` (lower case)."""
    names = {d.name.lower() for d in organ.diagnoses.values()}
    names |= {s.lower() for d in organ.diagnoses.values() for s in d.synonyms}
    return sorted(n for n in names if n)


def corroboration_problems(q: Question, organ: Organ) -> list[str]:
    """Diagnosis names in a type B stem or option."""
    out = []
    for where, text in [("stem", q.question)] + [
        (f"option {i + 1}", o) for i, o in enumerate(q.options)
    ]:
        low = text.lower()
        for name in diagnosis_names(organ):
            if re.search(rf"\b{re.escape(name)}\b", low):
                out.append(f"{where} names the diagnosis {name!r}")
    return out


def explanation_problems(q: Question) -> list[str]:
    """Causal, directional or zoom-in wording in a type D stem or option."""
    out = []
    for where, text in [("stem", q.question)] + [
        (f"option {i + 1}", o) for i, o in enumerate(q.options)
    ]:
        out += [f"{where} uses {m.group(0)!r}" for m in FORBIDDEN.finditer(text)]
    return out


def localization_problems(q: Question, organ: Organ) -> list[str]:
    """Words that vary across a type C question's options other than compartments."""
    allowed = set(RELATION_WORDS)
    for c in organ.compartments:
        allowed |= set(word_bag(c.replace("_", " ")))
    bags = [word_bag(o) for o in q.options]
    common = bags[0].copy()
    for b in bags[1:]:
        common &= b
    varying = set().union(*(set(b - common) for b in bags))
    extra = sorted(varying - allowed)
    if extra:
        return [f"options differ by more than compartment or relation: {', '.join(extra)}"]
    if not varying & {w for c in organ.compartments for w in word_bag(c.replace("_", " "))}:
        return ["options do not differ by any compartment"]
    return []


def _violations(name: str, q: Question, msgs: Sequence[str]) -> list[Violation]:
    return [Violation(name, q.id, m) for m in msgs]


def check_corroboration_no_diagnosis(questions, annotations=None, organs=None) -> list:
    """No type B stem or option names a diagnosis."""
    out = []
    resolve = organ_resolver(organs)
    for q in questions:
        if q.question_type != "corroboration":
            continue
        organ = resolve(q)
        if organ is not None:
            out += _violations("corroboration_no_diagnosis", q, corroboration_problems(q, organ))
    return out


def check_explanation_wording(questions, annotations=None, organs=None) -> list:
    """No causal, directional or zoom-in wording in type D."""
    out = []
    for q in questions:
        if q.question_type == "explanation":
            out += _violations("explanation_wording", q, explanation_problems(q))
    return out


def check_localization_compartments(questions, annotations=None, organs=None) -> list:
    """Type C options differ only by compartment or spatial relationship."""
    out = []
    resolve = organ_resolver(organs)
    for q in questions:
        if q.question_type != "localization":
            continue
        organ = resolve(q)
        if organ is not None:
            out += _violations("localization_compartments", q, localization_problems(q, organ))
    return out


def check_text_quality(questions, annotations=None, organs=None) -> list:
    """Every stem, option and rationale passes the text-quality gate."""
    out = []
    for q in questions:
        out += _violations("text_quality", q, question_problems(q))
    return out


TYPE_CHECKS = {
    "corroboration_no_diagnosis": check_corroboration_no_diagnosis,
    "explanation_wording": check_explanation_wording,
    "localization_compartments": check_localization_compartments,
    "text_quality": check_text_quality,
}
"""The type-definition checkers and the text gate, by constraint name."""
