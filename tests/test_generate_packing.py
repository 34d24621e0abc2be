"""Packing: more complementary sets under the same rules (demand-aware path choice, scarce
types first, diagnosis pools packed exactly)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import curation.generate as generate_module
from curation.budget import Profile
from curation.constraints import check_all, summarize
from curation.generate import Generator, GeneratorConfig
from curation.generation.candidates import Candidate
from curation.generation.dx_exact import pack
from curation.generation.flow import SparseModel
from curation.generation.order import interleave
from curation.generation.scarcity import Demand, scarce_types
from curation.generation.sets import SetFormer
from curation.options import DX
from curation.records import QUESTION_TYPES, Question


def _old_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator as it was: fair turns only, least-used paths, the first set locks."""
    monkeypatch.setattr(generate_module, "scarce_types", lambda n, floor: [])
    monkeypatch.setattr(SetFormer, "exact_sets", SetFormer.iter_sets)
    monkeypatch.setattr(Demand, "cost", lambda self, *a: 0.0)


def test_every_rule_holds_and_reruns_are_identical(corpus, generated, monkeypatch):
    gen, qs = generated
    assert summarize(check_all(qs, corpus, gen.organs)) == {}
    by_type = Counter(q.question_type for q in qs)
    assert set(by_type) == set(QUESTION_TYPES)
    cfg = gen.config
    # the cap always holds; the floor is best effort (type trimming stops once a quarter of
    # the questions is gone, which 240 paths reach)
    assert all(n / len(qs) <= cfg.max_type_share for n in by_type.values())
    again = Generator(corpus, seed=0).generate()
    assert [q.to_dict() for q in again] == [q.to_dict() for q in qs]
    # the old greedy (fair turns, least-used paths, first set locks) keeps every rule too;
    # which forms more is a matter of scale (measured over seeds on 1,500 paths in
    # docs/generate.md, not asserted on 240: there either may win)
    _old_greedy(monkeypatch)
    old_gen = Generator(corpus, seed=0)
    old = old_gen.generate()
    assert summarize(check_all(old, corpus, old_gen.organs)) == {}
    assert [q.to_dict() for q in old] != [q.to_dict() for q in qs]


def test_ledger_matches_the_output_so_regenerate_works(corpus):
    gen = Generator(corpus, seed=0)
    qs = gen.generate()
    sets = defaultdict(list)
    for q in qs:
        sets[q.set_id].append(q.path_id)
    assert {sid: sorted(info.paths) for sid, info in gen._ledger.sets.items()} == {
        sid: sorted(p) for sid, p in sets.items()
    }
    flagged = [q for q in qs if q.question_type == "localization"][:1]
    new = gen.regenerate(flagged, round=1)
    assert len(new) % 4 == 0 and not {q.set_id for q in new} & {flagged[0].set_id}
    assert summarize(check_all(gen.questions, corpus, gen.organs)) == {}


@pytest.mark.parametrize("per_pair", [1, 3])
def test_a_candidate_never_forms_more_than_its_sets(corpus, per_pair):
    gen = Generator(corpus, seed=0, config=GeneratorConfig(max_sets_per_pair=per_pair))
    qs = gen.generate()
    per_key: Counter[tuple] = Counter()
    seen = set()
    for q in qs:
        # one candidate per slot pair where pools do not split cells by prior profile
        if q.set_id in seen or (
            q.extra["pool"].split("/")[2] == "*" and q.question_type != "diagnosis"
        ):
            continue
        seen.add(q.set_id)
        per_key[(q.extra["pool"], q.extra["family"], *q.extra["slots"])] += 1
    assert per_key and max(per_key.values()) <= per_pair
    paths = Counter((q.question_type, q.path_id) for q in qs)
    assert max(paths.values()) <= gen.config.max_per_path


def test_diagnosis_questions_offer_each_patient_its_planned_pair(corpus, generated, monkeypatch):
    gen, qs = generated
    plan = gen._former.dx_plan
    offered = defaultdict(set)
    for q in qs:
        if q.question_type == "diagnosis":
            pair = {c[1] for claims in q.extra["claims"] for c in claims if c[0] == DX}
            offered[gen.by_path[q.path_id].group].add(frozenset(pair))
    assert offered and all(len(p) == 1 for p in offered.values())
    assert all(plan[g] in p for g, p in offered.items())
    n_dx = sum(q.question_type == "diagnosis" for q in qs)
    # greedy formation of the same diagnosis pools (first set locks a patient's pair)
    monkeypatch.setattr(SetFormer, "exact_sets", SetFormer.iter_sets)
    greedy = Generator(corpus, seed=0).generate()
    assert n_dx >= sum(q.question_type == "diagnosis" for q in greedy)


def _dx_pool():
    # patients A1 and D1 (diagnosis a), B1 (b), C1 (c), each with a path showing the finding
    # and one without; pairs {a, b} and {a, c}. Locking on the first pair offered, A1, D1
    # and B1 take {a, b} and C1 has no partner: one set; the optimum pairs one a-patient
    # with B1 and the other with C1: two.
    anns = [
        SimpleNamespace(path_id=f"{g}-{s}", group=g, diagnosis=d)
        for g, d in (("A1", "a"), ("B1", "b"), ("C1", "c"), ("D1", "a"))
        for s in ("with", "without")
    ]
    idx = {a.path_id: i for i, a in enumerate(anns)}
    a_cells = [[idx["A1-with"], idx["D1-with"]], [idx["A1-without"], idx["D1-without"]]]
    cands = [
        Candidate(None, (None, None), "ab", [*a_cells, [idx["B1-with"]], [idx["B1-without"]]]),
        Candidate(None, (None, None), "ac", [*a_cells, [idx["C1-with"]], [idx["C1-without"]]]),
    ]
    profiles = {
        c.key: Profile(
            given=frozenset(),
            tested=frozenset({DX, finding[0]}),
            dx_options=frozenset(c.key),
            couplings=frozenset({DX, finding}),
        )
        for c, finding in zip(cands, ("f@low", "g@mid"), strict=True)
    }
    return SimpleNamespace(key="diagnosis/x/*/train", qtype="diagnosis", anns=anns), cands, profiles


def test_pack_finds_the_optimum_the_first_lock_misses_and_seeds_break_ties():
    pool, cands, profiles = _dx_pool()
    outcomes = set()
    for seed in range(8):
        sets = pack(pool, cands, lambda c: profiles[c.key], random.Random(seed), 4, 3)
        assert len(sets) == 2 and {s.candidate for s in sets} == {0, 1}
        used = [i for s in sets for i in s.paths]
        assert len(used) == len(set(used)) == 8  # a path's diagnosis is asked once
        pair_of = defaultdict(set)
        for s in sets:
            for i in s.paths:
                assert i in cands[s.candidate].cells[s.paths.index(i)]
                pair_of[pool.anns[i].group].add(s.candidate)
        assert all(len(p) == 1 for p in pair_of.values())  # one list per patient
        again = pack(pool, cands, lambda c: profiles[c.key], random.Random(seed), 4, 3)
        assert again == sets  # deterministic for a seed
        outcomes.add(tuple(sorted(pair_of["A1"])))
    assert outcomes == {(0,), (1,)}  # both optima occur: the seed, not the data, decides


def test_demand_scarce_types_and_turn_order():
    pool = SimpleNamespace(qtype="t", anns=[SimpleNamespace(path_id=f"p{i}") for i in range(8)])
    prof = Profile(given=frozenset(), tested=frozenset({"f"}), couplings=frozenset({"f"}))
    demand = Demand()
    cands = [
        Candidate(None, (None, None), "c1", [[0, 1], [2], [3], [4]]),
        Candidate(None, (None, None), "c2", [[1], [5], [6], [7]]),
    ]
    demand.add(pool, cands, lambda c, p: prof)
    f = frozenset({"f"})
    assert demand.cost("t", "p0", f) == 0.5 and demand.cost("t", "p1", f) == 1.5
    assert demand.cost("t", "p0", frozenset({"g"})) == 0.0 and demand.cost("u", "p1", f) == 0.0
    pool.qtype = "diagnosis"  # reserved paths carry nothing else: no demand is counted
    demand.add(pool, cands, lambda c, p: prof)
    assert demand.cost("diagnosis", "p1", f) == 0.0
    assert scarce_types({"a": 5, "d": 3, "b": 100, "c": 200}, 0.1) == ["d", "a"]
    assert scarce_types({"a": 5, "b": 100}, None) == [] and scarce_types({}, 0.1) == []

    def q(name: str) -> list[Question]:
        return [Question(name, list("wxyz"), "A", "correspondence")]

    streams = [("y", [q("y1"), q("y2")]), ("x", [q("x1"), q("x2")]), ("z", [q("z1")])]
    order = [r.question for r in interleave(streams, None, first=["x"])]
    assert order == ["x1", "x2", "y1", "z1", "y2"]


def test_sparse_model_relaxation_integer_optimum_and_choice():
    # three items pairwise in conflict: the relaxation takes half of each, the integer
    # programme one of them
    m = SparseModel()
    xs = [m.var(weight=1.0) for _ in range(3)]
    for i, j in ((0, 1), (1, 2), (0, 2)):
        m.le(("conflict", i, j), xs[i])
        m.le(("conflict", i, j), xs[j])
    assert m.solve() == pytest.approx([0.5, 0.5, 0.5])
    assert sorted(m.solve(integral=True)) == [0.0, 0.0, 1.0]
    # a group takes one option: two columns under different options of one group
    c = SparseModel()
    a, b = c.var(weight=1.0), c.var(weight=2.0)
    c.choice("patient", "ab", a)
    c.choice("patient", "ac", b)
    x = c.solve(integral=True)
    assert (x[a], x[b]) == (0.0, 1.0) and c.n_rows == 3


class _Ascending(frozenset):
    """A frozenset that iterates in sorted order (as one hash seed might)."""

    def __iter__(self):
        return iter(sorted(frozenset.__iter__(self)))


class _Descending(frozenset):
    """A frozenset that iterates in reverse sorted order (as another might)."""

    def __iter__(self):
        return iter(sorted(frozenset.__iter__(self), reverse=True))


def test_pack_builds_one_model_whatever_order_a_set_iterates_in(monkeypatch):
    # the solver's answer depends on the order of the rows; a set's iteration order changes
    # with PYTHONHASHSEED, so pack must not build rows in it (a 1,500-path run gave other
    # diagnosis sets in another process before couplings were sorted)
    pool, cands, profiles = _dx_pool()
    built = []

    def record(self, integral=False, options=None):
        built.append((self._rhs, self._ub, self._eq, self.upper))
        return np.zeros(self.n)

    monkeypatch.setattr(SparseModel, "solve", record)
    variants = [
        {k: replace(p, couplings=kind(p.couplings)) for k, p in profiles.items()}
        for kind in (_Ascending, _Descending)
    ]
    assert list(variants[0]["ab"].couplings) != list(variants[1]["ab"].couplings)
    for profs in variants:
        pack(pool, cands, lambda c, profs=profs: profs[c.key], random.Random(0), 4, 3)
    assert built[0] == built[1]
