"""The information budget as generation enforces it: a ledger of what each path and patient
already gives and tests (rules and checkers: :mod:`curation.budget`).

A candidate path is skipped for a set whose question would break a rule there:

- ``premise_conflicts``: the question gives a feature the path's patient already tests, or
  tests one the patient already gives (feature level, across scales and across the
  patient's paths, the set's other members included); with ``tissue``, also a feature at a
  scale that a path whose field there overlaps already tests or gives;
- ``diagnosis_narrowing``: the question offers a list of diagnoses other than the one the
  patient's diagnosis questions already offer;
- ``key_coupling``: the question tests a fact (a feature at one scale, where a feature
  lies) another question of the path tests, or one of an exclusive pair at a scale where
  the other is tested (:func:`curation.budget.coupling_keys`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from curation.annotations import Annotation
from curation.budget import Fact, Profile, Tissue
from curation.options import DX

RULES = ("premise_conflicts", "diagnosis_narrowing", "key_coupling")


def _any_in(features: frozenset[str], counts: Counter[str]) -> bool:
    return any(counts.get(f, 0) > 0 for f in features)


class BudgetLedger:
    """Features given and tested per patient (else slide) and per path, diagnosis lists.

    ``scope``: where a feature a question gives may not be tested by another, ``"path"``
    (its zoom path) or ``"patient"`` (every path of its patient), as in
    :func:`curation.budget.check_premise_conflicts`; the diagnosis and its option lists are
    always per patient, key coupling always per path. ``tissue``: the paths whose fields
    overlap (:data:`curation.budget.Tissue`), for the shared-tissue rule.
    """

    def __init__(self, scope: str = "patient", tissue: Tissue | None = None) -> None:
        self.scope = scope
        self.tissue = tissue or {}
        self.facts_given: dict[str, Counter[Fact]] = defaultdict(Counter)
        self.facts_tested: dict[str, Counter[Fact]] = defaultdict(Counter)
        self.given: dict[str, Counter[str]] = defaultdict(Counter)
        self.tested: dict[str, Counter[str]] = defaultdict(Counter)
        self.path_tested: dict[str, Counter[str]] = defaultdict(Counter)
        self.dx_lists: dict[str, Counter[frozenset[str]]] = defaultdict(Counter)
        self.skips: Counter[str] = Counter()
        """Times an otherwise eligible path was passed over, by the rule it would break."""
        self._sets: dict[str, tuple[Profile, list[Annotation]]] = {}

    def clear(self) -> None:
        """Forget everything (skip counts too)."""
        books = (self.given, self.tested, self.path_tested, self.dx_lists)
        for d in (*books, self.facts_given, self.facts_tested):
            d.clear()
        self.skips.clear()
        self._sets.clear()

    def unit(self, a: Annotation, feature: str = "") -> str:
        """Where ``feature`` of path ``a`` is counted: its patient (the diagnosis, or
        ``scope="patient"``), else its zoom path."""
        if self.scope == "patient" or feature == DX:
            return f"g:{a.group}"
        return f"p:{a.path_id}"

    def blocked(
        self, a: Annotation, profile: Profile, pending: Sequence[Annotation] = ()
    ) -> str | None:
        """The rule a question with ``profile`` on path ``a`` would break, else None.

        ``pending``: the set's members already picked (the same question on their paths).
        """
        if _any_in(profile.couplings, self.path_tested[a.path_id]):
            return "key_coupling"
        for f in profile.given:
            if self.tested[self.unit(a, f)].get(f, 0) > 0:
                return "premise_conflicts"
        for f in profile.tested:
            if self.given[self.unit(a, f)].get(f, 0) > 0:
                return "premise_conflicts"
        for f in profile.given & profile.tested:
            if any(self.unit(p, f) == self.unit(a, f) for p in pending):
                return "premise_conflicts"
        if self._shares_tissue(a, profile):
            return "premise_conflicts"
        if profile.dx_options is not None:
            lists = self.dx_lists[a.group]
            if any(n > 0 and lst != profile.dx_options for lst, n in lists.items()):
                return "diagnosis_narrowing"
        return None

    def _shares_tissue(self, a: Annotation, profile: Profile) -> bool:
        """Whether a path whose field overlaps ``a``'s at a scale gives a fact there that
        ``profile`` tests, or tests one it gives."""
        near = self.tissue.get(a.path_id)
        if not near:
            return False
        for facts, book in (
            (profile.tested_facts, self.facts_given),
            (profile.given_facts, self.facts_tested),
        ):
            for fact in facts:
                if any(book.get(p, {}).get(fact, 0) > 0 for p in near.get(str(fact[1]), ())):
                    return True
        return False

    def add(self, set_id: str, profile: Profile, members: Sequence[Annotation]) -> None:
        """Record a formed set: its question's profile on each member path."""
        for a in members:
            self._count(a, profile, +1)
        self._sets[set_id] = (profile, list(members))

    def release(self, set_id: str) -> None:
        """Forget a dropped set (unknown ids are ignored)."""
        entry = self._sets.pop(set_id, None)
        if entry is None:
            return
        profile, members = entry
        for a in members:
            self._count(a, profile, -1)

    def _count(self, a: Annotation, profile: Profile, step: int) -> None:
        for book, feats in ((self.given, profile.given), (self.tested, profile.tested)):
            for f in feats:
                counts = book[self.unit(a, f)]
                counts[f] += step
                if counts[f] <= 0:
                    del counts[f]
        if self.tissue:
            for book, facts in (
                (self.facts_given, profile.given_facts),
                (self.facts_tested, profile.tested_facts),
            ):
                for fact in facts:
                    book[a.path_id][fact] += step
                    if book[a.path_id][fact] <= 0:
                        del book[a.path_id][fact]
        counts = self.path_tested[a.path_id]
        for f in profile.couplings:
            counts[f] += step
            if counts[f] <= 0:
                del counts[f]
        if profile.dx_options is not None:
            lists = self.dx_lists[a.group]
            lists[profile.dx_options] += step
            if lists[profile.dx_options] <= 0:
                del lists[profile.dx_options]
