"""The information budget: what the questions of one zoom path and patient may reveal together.

A row that is leak-free alone can still be answered from the *other* rows of its zoom path
or patient. Three rules close that, each a checker with the signature of
:mod:`curation.constraints` (registered in ``check_all``), and each enforced by the
generator as it forms sets (:mod:`curation.generation.budget`):

- ``premise_conflicts``: a feature that any question states as given (its premise, a
  claim every option makes alike, or the exclusive partner of a feature it gives present,
  absent there by logic) is never a feature another question of the same zoom
  path tests, and the diagnosis never one of the same patient (``scope="patient"``: no
  feature either, across the patient's paths). Compared at the feature level, across
  scales: "X at low power" and "X at medium power" inform each other.
- ``diagnosis_narrowing``: one patient's diagnosis questions offer one and the same list of
  diagnoses (else their lists, intersected, narrow the diagnosis down).
- ``key_coupling``: no two questions of one zoom path test the same fact (a feature at one
  scale; where a feature lies), nor the two features of an exclusive pair at one scale:
  one key would fix or narrow the other by logic (one truth per fact, one compartment per
  feature, one diagnosis, at most one of an exclusive pair present). Keys that are only
  *correlated* (a feature at low and at medium power) may share a path: with every key of
  a split hidden and every set's keys a permutation, no published field anchors them
  (``benchmarks/attack_coupled_keys.py`` decodes a whole split with the true pairwise
  frequencies and stays at chance; told half the sets' keys, it reads the coupled others
  above chance).

Everything is read from the provenance in ``Question.extra`` (``premise``, ``claims``), over
claims of any shape: a claim is a list whose last element is its truth value; the *fact*
is the claim without it (``[feature, scale]``, ``["@dx", diagnosis]``, or longer claims such
as a feature with a compartment); the *feature* is the fact's first element. A question
without provenance is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curation.options import DX, IN, WITH
from curation.organs import Organ
from curation.records import Question
from curation.violations import Annotations, Organs, Violation, organ_resolver

Fact = tuple[Any, ...]


def fact_of(claim: Sequence[Any]) -> Fact:
    """The claim's identity without its truth value (the last element)."""
    return tuple(claim[:-1])


def feature_of(fact: Fact) -> str:
    """The feature a fact is about (``"@dx"`` for every diagnosis fact)."""
    return str(fact[0])


@dataclass(frozen=True)
class Profile:
    """What one question gives, tests and offers, at the feature level."""

    given: frozenset[str]
    tested: frozenset[str]
    dx_options: frozenset[str] | None = None
    couplings: frozenset[str] = frozenset()
    """What the key constrains, for ``key_coupling``: :func:`coupling_keys` of every
    tested fact, and ``"excl:a|b@scale"`` for each exclusive pair with a feature tested at
    that scale."""
    given_facts: frozenset[Fact] = frozenset()
    """Presence facts ``(feature, scale)`` it gives (the exclusive partners of those given
    present included), for the shared-tissue rule of ``premise_conflicts``."""
    tested_facts: frozenset[Fact] = frozenset()
    """Presence facts ``(feature, scale)`` it tests."""

    def conflicts(self, other: Profile) -> set[str]:
        """Features one of the two gives and the other tests."""
        return set(self.given & other.tested) | set(self.tested & other.given)


def coupling_keys(fact: Fact) -> tuple[str, ...]:
    """What testing ``fact`` constrains, for ``key_coupling``: the fact itself (a feature at
    one scale: ``"f@low"``); for a placement, where the feature lies at all (one place
    per feature: ``"place:f"``, and the other feature's for ``with:``); the diagnosis as
    one fact (``"@dx"``: a zoom path's diagnosis is asked once)."""
    feature = feature_of(fact)
    if feature == DX:
        return (DX,)
    where = str(fact[1]) if len(fact) == 2 else ""
    if where.startswith(IN):
        return (f"place:{feature}",)
    if where.startswith(WITH):
        return (f"place:{feature}", f"place:{where[len(WITH) :]}")
    return ("@".join(str(x) for x in fact),)


def profile_of(
    premise: Iterable[Sequence[Any]],
    options: Sequence[Iterable[Sequence[Any]]],
    exclusive: Iterable[Sequence[str]] = (),
) -> Profile:
    """The profile of a question with ``premise`` claims and per-option claims.

    Given: the premise's facts and every fact each option claims with the same truth value,
    and the partner of an exclusive pair whose other feature is given present at a scale
    (it is then absent there: "flat urothelium at low power" gives "no papillary fronds at
    low power").
    Tested: every other fact an option claims (its truth varies over the options, or some
    options do not claim it). Diagnosis options: the diagnoses the options name.
    ``exclusive``: the organ's exclusive feature pairs (for :attr:`Profile.couplings`).
    """
    truths: dict[Fact, set[bool]] = defaultdict(set)
    count: dict[Fact, int] = defaultdict(int)
    for claims in options:
        seen: set[Fact] = set()
        for c in claims:
            f = fact_of(c)
            truths[f].add(bool(c[-1]))
            if f not in seen:
                count[f] += 1
                seen.add(f)
    premise = [list(c) for c in premise]
    given = {fact_of(c) for c in premise}
    constant = {f for f, t in truths.items() if len(t) == 1 and count[f] == len(options)}
    given |= constant
    present = {fact_of(c) for c in premise if bool(c[-1])}
    present |= {f for f in constant if truths[f] == {True}}
    tested = set(truths) - constant
    dx = {str(f[1]) for f in truths if feature_of(f) == DX and len(f) > 1}
    tested_features = frozenset(feature_of(f) for f in tested)
    couplings = {k for f in tested for k in coupling_keys(f)}
    given_features = {feature_of(f) for f in given}
    given_facts = {f for f in given if _presence(f)}
    for a, b in exclusive:
        for f in tested:
            if len(f) == 2 and feature_of(f) in (a, b):
                couplings.add(f"excl:{'|'.join(sorted((a, b)))}@{f[1]}")
        for f in present:  # a given present at a scale gives its partner absent there
            if len(f) == 2 and feature_of(f) in (a, b):
                partner = b if feature_of(f) == a else a
                given_features.add(partner)
                given_facts.add((partner, f[1]))
    return Profile(
        frozenset(given_features),
        tested_features,
        frozenset(dx) if dx else None,
        frozenset(couplings),
        frozenset(given_facts),
        frozenset(f for f in tested if _presence(f)),
    )


def _presence(fact: Fact) -> bool:
    """Whether ``fact`` is a feature at one scale (not a placement, not the diagnosis)."""
    return len(fact) == 2 and feature_of(fact) != DX and not str(fact[1]).startswith((IN, WITH))


Tissue = Mapping[str, Mapping[str, Sequence[str]]]
"""Zoom paths sharing tissue: path id -> scale -> the other paths whose field at that scale
overlaps this path's (on one slide file; from the crops' boxes,
:func:`scale_vqa.shared_tissue.tissue_map`). A question carries its path's entry as
``extra["tissue"]``."""


def tissue_of(q: Question) -> Mapping[str, Sequence[str]]:
    """The paths sharing tissue with ``q``'s path, per scale (``extra["tissue"]``; empty
    when absent)."""
    t = q.extra.get("tissue") if q.extra else None
    return t if isinstance(t, Mapping) else {}


def question_profile(q: Question, organ: Organ | None = None) -> Profile | None:
    """The profile of ``q`` from its provenance; None without ``extra["claims"]``.

    ``organ``: ``q``'s vocabulary, for its exclusive pairs (None: no exclusive pairs).
    """
    claims = q.extra.get("claims") if q.extra else None
    if not isinstance(claims, list) or len(claims) != len(q.options):
        return None
    pairs = organ.exclusive if organ is not None else ()
    return profile_of(q.extra.get("premise", []) or [], claims, pairs)


def _profiles(
    questions: Sequence[Question], organs: Organs = None
) -> list[tuple[Question, Profile]]:
    """Each question with provenance and its profile; organs from ``organs``, else the
    bundled vocabularies (:func:`curation.violations.organ_resolver`)."""
    resolve = organ_resolver(organs)
    out = []
    for q in questions:
        p = question_profile(q, resolve(q) if q.organ else None)
        if p is not None:
            out.append((q, p))
    return out


SCOPES = ("path", "patient")


def check_premise_conflicts(
    questions: Sequence[Question],
    annotations: Annotations = None,
    organs: Organs = None,
    scope: str = "path",
) -> list[Violation]:
    """No feature one question gives is tested by another of the same path or patient.

    A feature of a zoom path is compared on its path (``scope="path"``, the default) or on
    its whole patient, else slide (``scope="patient"``, the strict reading: paths of one
    patient share tissue); the diagnosis (``"@dx"``) is a fact of the patient, so it is
    always compared per patient. Where fields overlap (``extra["tissue"]``, see
    :data:`Tissue`), a feature at one scale that a question of one path gives is also never
    tested at that scale on a path whose field there overlaps: it is the same tissue. One
    violation per question whose tested features another question gives.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: use one of {', '.join(SCOPES)}")

    def unit(q: Question, feature: str) -> str:
        if feature == DX or scope == "patient":
            return f"patient/slide {q.group!r}"
        return f"zoom path {q.path_id!r}"

    givers: dict[tuple[str, str], list[Question]] = defaultdict(list)
    fact_givers: dict[tuple[str, Fact], list[Question]] = defaultdict(list)
    items = _profiles(questions)
    for q, p in items:
        for f in p.given:
            givers[(unit(q, f), f)].append(q)
        for fact in p.given_facts:
            fact_givers[(q.path_id, fact)].append(q)
    out = []
    for q, p in items:
        hits = sorted(
            (unit(q, f), f, g.id)
            for f in p.tested
            for g in givers.get((unit(q, f), f), ())
            if g is not q
        )
        tissue = tissue_of(q)
        hits += sorted(
            (f"zoom path {other!r}, whose {fact[1]} field overlaps {q.path_id!r}'s", fact[0], g.id)
            for fact in p.tested_facts
            for other in tissue.get(str(fact[1]), ())
            for g in fact_givers.get((other, fact), ())
        )
        if hits:
            where, _, gid = hits[0]
            out.append(
                Violation(
                    "premise_conflicts",
                    q.id,
                    f"tests {sorted({h[1] for h in hits})} on {where}, which question {gid} "
                    f"(and {len(hits) - 1} other pairing(s)) states as given (or absent by an "
                    f"exclusive pair); a premise must not be what another question of the "
                    f"path or patient asks",
                )
            )
    return out


def check_diagnosis_narrowing(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """A patient's (else slide's) diagnosis questions all offer the same list of diagnoses."""
    lists: dict[str, dict[frozenset[str], Question]] = defaultdict(dict)
    for q, p in _profiles(questions):
        if p.dx_options is not None:
            lists[q.group].setdefault(p.dx_options, q)
    out = []
    for group, found in sorted(lists.items()):
        if len(found) < 2:
            continue
        common = frozenset.intersection(*found)
        first = min(found.values(), key=lambda q: q.id)
        out.append(
            Violation(
                "diagnosis_narrowing",
                first.id,
                f"patient/slide {group!r} has {len(found)} diagnosis option lists "
                f"{sorted(sorted(x) for x in found)}; taken together they narrow its diagnosis "
                f"to {sorted(common)}; give a patient's diagnosis questions one list",
            )
        )
    return out


def check_key_coupling(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """No two questions of one zoom path test one fact, where one feature lies, or an
    exclusive pair at one scale (:func:`coupling_keys`; one violation per later question)."""
    by_path: dict[str, list[tuple[Question, Profile]]] = defaultdict(list)
    for q, p in _profiles(questions, organs):
        if q.path_id:
            by_path[q.path_id].append((q, p))
    out = []
    for path, items in sorted(by_path.items()):
        for i, (q, p) in enumerate(items):
            for r, pr in items[:i]:
                shared = p.couplings & pr.couplings
                if shared:
                    out.append(
                        Violation(
                            "key_coupling",
                            q.id,
                            f"tests {sorted(shared)} on zoom path {path!r}, as question {r.id} "
                            f"does: one key would fix or narrow the other",
                        )
                    )
                    break
    return out


BUDGET = {
    "premise_conflicts": check_premise_conflicts,
    "diagnosis_narrowing": check_diagnosis_narrowing,
    "key_coupling": check_key_coupling,
}
"""The information-budget checkers by name (dataset level)."""
