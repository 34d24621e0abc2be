"""Complementary-set formation: one question and option square on four zoom paths.

:class:`Ledger` records what has been formed (questions per path and type, slot pairs
used per pool and per path, every set's provenance); :func:`form_sets` greedily forms
sets from a pool's candidates, each path making a different option the key;
:func:`build_question` writes the record of one path, checking that the key is true and
every distractor false on it.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.annotations import Annotation
from curation.budget import Profile, profile_of
from curation.errors import ValidationError
from curation.generation.budget import BudgetLedger
from curation.generation.candidates import Candidate
from curation.generation.dx_exact import pack
from curation.generation.pools import Pool
from curation.generation.scarcity import Demand, touched
from curation.options import OptionSet, Slot, claims_to_json, option_truths, square
from curation.organs import Organ
from curation.records import LETTERS, Question
from curation.templates import TYPES, Family, QuestionType, template_ids


def short_hash(*parts: Any) -> str:
    """12 hex digits of SHA-256 over the parts joined by ``|``."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


def set_identifier(question: str, options: Sequence[str], path_ids: Iterable[str]) -> str:
    """A set's id from what its members publish: text, options and the *sorted* path ids.

    Nothing about which path got which cell (the key) or about the seed enters, so the id
    cannot be brute-forced back into the assignment.
    """
    return "set-" + short_hash(question, *options, *sorted(path_ids))


@dataclass
class SetInfo:
    """Provenance of one formed complementary set."""

    qtype: str
    pool: str
    pair_key: str
    template_id: str
    paths: list[str]


@dataclass
class Ledger:
    """What generation has formed so far (reset by :meth:`clear`)."""

    usage: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    used_pairs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    path_pairs: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    sets: dict[str, SetInfo] = field(default_factory=dict)
    total: Counter[str] = field(default_factory=Counter)
    """Questions per path over all types."""
    budget: BudgetLedger = field(default_factory=BudgetLedger)
    blocked_sets: Counter[str] = field(default_factory=Counter)
    """Candidate sets not formed because a cell's only free paths were over budget, by rule."""

    def clear(self) -> None:
        """Forget everything formed."""
        self.usage.clear()
        self.total.clear()
        self.used_pairs.clear()
        self.path_pairs.clear()
        self.sets.clear()
        self.budget.clear()
        self.blocked_sets.clear()

    def drop_set(self, set_id: str) -> SetInfo | None:
        """Forget one set (its paths' usage and budget go down); None if unknown."""
        self.budget.release(set_id)
        info = self.sets.pop(set_id, None)
        if info is not None:
            for pid in info.paths:
                self.usage[info.qtype][pid] -= 1
                self.total[pid] -= 1
        return info


def build_question(
    pool: Pool,
    qtype: QuestionType,
    fam: Family,
    slots: Sequence[Slot],
    opts: OptionSet,
    values: Sequence[int],
    ann: Annotation,
    text: str,
    template: str,
    split: str,
    design: str,
) -> Question:
    """The question on ``ann`` whose key is the option standing for slot ``values``."""
    key_idx = opts.index_of(values)
    truths = option_truths(ann, opts.claims)
    if truths[key_idx] is not True or any(
        t is not False for i, t in enumerate(truths) if i != key_idx
    ):
        raise ValidationError(  # pragma: no cover - guards the construction itself
            f"internal: option set on {ann.path_id} is not one-true ({truths})"
        )
    rationale = qtype.rationale(ann, pool.organ, fam, slots, opts.texts[key_idx])
    return Question(
        question=text,
        options=list(opts.texts),
        answer=LETTERS[key_idx],
        question_type=pool.qtype,
        rationale=rationale,
        organ=ann.organ,
        slide_id=ann.slide_id,
        patient_id=ann.patient_id,
        path_id=ann.path_id,
        split=split,
        template_id=template,
        source=ann.source,
        extra={
            "design": design,
            "diagnosis": pool.dx if pool.qtype != "diagnosis" else None,
            "premise": claims_to_json(fam.premise),
            "claims": [claims_to_json(c) for c in opts.claims],
            "values": [list(v) for v in opts.values],
            "slots": list(opts.slots),
            "family": fam.key,
            "pool": pool.key,
        },
    )


def candidate_profile(c: Candidate, organ: Organ) -> Profile:
    """What a question over ``c``'s slot pair gives and tests (the same on every path)."""
    s1, s2 = c.slots
    claims = [[*a.claims, *b.claims] for a in s1.alts for b in s2.alts]
    return profile_of(c.fam.premise, claims, organ.exclusive)


class SetFormer:
    """Forms complementary sets in pools, recording them in a :class:`Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        splits: Mapping[str, str],
        max_per_path: int,
        per_pair: int,
        budget: bool = True,
    ) -> None:
        self.ledger = ledger
        self.splits = splits
        self.max_per_path = max_per_path
        self.per_pair = per_pair
        self.enforce_budget = budget
        self.demand = Demand()
        self.dx_plan: dict[str, frozenset[str]] = {}
        """Patient (else slide) -> the diagnosis pair its questions offer (:meth:`exact_sets`)."""
        self._profiles: dict[str, Profile] = {}

    def profile(self, c: Candidate, pool: Pool) -> Profile:
        """:func:`candidate_profile`, cached per organ and slot pair."""
        key = f"{pool.organ.name}/{c.key}"
        if key not in self._profiles:
            self._profiles[key] = candidate_profile(c, pool.organ)
        return self._profiles[key]

    def exact_sets(
        self, pool: Pool, cands: list[Candidate], rng: random.Random
    ) -> Iterator[list[Question]]:
        """The sets of an optimal packing of a diagnosis pool (:mod:`.dx_exact`; only
        under the information budget), in a seeded order; each patient's pair is recorded
        in :attr:`dx_plan` (replacements by :meth:`iter_sets` keep to it)."""
        qtype = TYPES[pool.qtype]
        planned = pack(
            pool, cands, lambda c: self.profile(c, pool), rng, self.max_per_path, self.per_pair
        )
        for ps in planned:
            pair = self.profile(cands[ps.candidate], pool).dx_options
            for i in ps.paths:
                self.dx_plan[pool.anns[i].group] = pair
        rng.shuffle(planned)
        tids = template_ids(pool.qtype)
        for ps in planned:
            c = cands[ps.candidate]
            picks = [pool.anns[i] for i in ps.paths]
            prof = self.profile(c, pool)
            for k, a in enumerate(picks):
                if self.ledger.budget.blocked(a, prof, picks[:k]) is not None:
                    raise ValidationError(  # pragma: no cover - guards the packing
                        f"internal: planned set of {c.key} breaks the budget on {a.path_id}"
                    )
            yield self._make_set(pool, qtype, c, picks, rng, tids)

    def form_sets(
        self,
        pool: Pool,
        cands: list[Candidate],
        rng: random.Random,
        limit: int | None = None,
        avoid_templates: Iterable[str] = (),
        extra_cap: int = 0,
    ) -> list[Question]:
        """Greedy sets over ``cands`` (at most ``limit``), least-used paths first."""
        made: list[Question] = []
        for n_sets, members in enumerate(
            self.iter_sets(pool, cands, rng, avoid_templates, extra_cap)
        ):
            if limit is not None and n_sets >= limit:
                break
            made.extend(members)
        return made

    def iter_sets(
        self,
        pool: Pool,
        cands: list[Candidate],
        rng: random.Random,
        avoid_templates: Iterable[str] = (),
        extra_cap: int = 0,
    ) -> Iterator[list[Question]]:
        """Form sets one at a time (lazily: the ledger is read when each set is formed).

        Each pass over the shuffled candidates tries one set per candidate; for each value
        cell the path least used (this type), then least in demand by the type's other
        candidates (:class:`curation.generation.scarcity.Demand`), then least used (all
        types), then first in a seeded rank, among those under ``max_per_path`` and within
        the information budget, is picked.
        """
        qtype = TYPES[pool.qtype]
        usage = self.ledger.usage[pool.qtype]
        total = self.ledger.total
        rank = {a.path_id: rng.random() for a in pool.anns}
        rng.shuffle(cands)
        cap = self.max_per_path + extra_cap
        tids = [t for t in template_ids(pool.qtype) if t not in set(avoid_templates)]
        tids = tids or template_ids(pool.qtype)
        for _ in range(self.per_pair):
            for c in cands:
                prof = self.profile(c, pool)
                profile = prof if self.enforce_budget else None
                feats, dx_pair = touched(prof), prof.dx_options
                picks: list[Annotation] = []
                for cell in c.cells:
                    best: Annotation | None = None
                    best_key: tuple[int, float, int, float] | None = None
                    over: str | None = None
                    for i in cell:
                        a = pool.anns[i]
                        if usage[a.path_id] >= cap or a.path_id in c.members:
                            continue
                        if c.key in self.ledger.path_pairs[(pool.qtype, a.path_id)]:
                            continue
                        if dx_pair is not None and self.dx_plan.get(a.group, dx_pair) != dx_pair:
                            continue
                        if profile is not None:
                            rule = self.ledger.budget.blocked(a, profile, picks)
                            if rule is not None:
                                self.ledger.budget.skips[rule] += 1
                                over = over or rule
                                continue
                        k = (
                            usage[a.path_id],
                            self.demand.cost(pool.qtype, a.path_id, feats),
                            total[a.path_id],
                            rank[a.path_id],
                        )
                        if best_key is None or k < best_key:
                            best, best_key = a, k
                    if best is None:
                        if over is not None:
                            self.ledger.blocked_sets[over] += 1
                        break
                    picks.append(best)
                if len(picks) < 4:
                    continue
                yield self._make_set(pool, qtype, c, picks, rng, tids)

    def _make_set(
        self,
        pool: Pool,
        qtype: QuestionType,
        c: Candidate,
        picks: list[Annotation],
        rng: random.Random,
        tids: list[str],
    ) -> list[Question]:
        fam, (s1, s2) = c.fam, c.slots
        opts = square([s1, s2], lambda alts: qtype.render(fam, alts))
        order = list(range(len(opts.texts)))
        rng.shuffle(order)
        opts = opts.permuted(order)
        template = rng.choice(tids)
        text = qtype.question(template, fam, [s1, s2], pool.organ)
        paths = [a.path_id for a in picks]
        set_id = set_identifier(text, opts.texts, paths)
        out = []
        for cell, ann in zip(((0, 0), (0, 1), (1, 0), (1, 1)), picks):
            q = build_question(
                pool,
                qtype,
                fam,
                (s1, s2),
                opts,
                cell,
                ann,
                text,
                template,
                self.splits[ann.path_id],
                "square",
            )
            q.set_id = set_id
            q.id = q.content_id()
            out.append(q)
            self.ledger.usage[pool.qtype][ann.path_id] += 1
            self.ledger.total[ann.path_id] += 1
            self.ledger.path_pairs[(pool.qtype, ann.path_id)].add(c.key)
            c.members.add(ann.path_id)
        self.ledger.used_pairs[pool.key].add(c.key)
        self.ledger.sets[set_id] = SetInfo(pool.qtype, pool.key, c.key, template, paths)
        if self.enforce_budget:
            self.ledger.budget.add(set_id, self.profile(c, pool), picks)
        return out
