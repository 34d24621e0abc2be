"""Diagnosis pools packed exactly: the most complementary sets their reserved paths allow.

A diagnosis-reserved path carries nothing but diagnosis questions, so a diagnosis pool
(one organ and split) is a packing problem of its own: choose, per candidate slot pair, a
number of sets and, per value cell, that many distinct paths, such that every path is
used within its budget (:attr:`curation.budget.Profile.couplings`: a zoom path's
diagnosis is asked once), ``max_per_path``, a path at most once per slot pair, and each
patient (else slide) offers one pair of diagnoses (``diagnosis_narrowing``). Greedy
formation with a planned pair per patient reached about two thirds of this optimum
(seed 7: 172 of 220 questions over the same candidates).

:func:`pack` solves that integer programme with HiGHS (``scipy.optimize.milp``). No time
limit, so the result depends on nothing but its input; a relative gap of 1e-3 (a tenth of
a question on the largest pools) keeps the number of sets optimal. Ties between optima
are broken by a seeded weight per path and slot pair, together less than one question, so
which optimal packing is taken varies with the generator seed, not with anything the
published rows show.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from curation.budget import Profile
from curation.errors import ValidationError
from curation.generation.candidates import Candidate
from curation.generation.pools import Pool


@dataclass(frozen=True)
class PlannedSet:
    """One set of the optimum: a candidate and the pool index of its path per value cell."""

    candidate: int
    paths: tuple[int, int, int, int]


class _Rows:
    """Sparse ``<=`` rows keyed by name."""

    def __init__(self) -> None:
        self.index: dict[tuple, int] = {}
        self.rhs: list[float] = []
        self.entries: list[tuple[int, int, float]] = []

    def add(self, key: tuple, col: int, coef: float = 1.0, rhs: float = 1.0) -> None:
        if key not in self.index:
            self.index[key] = len(self.rhs)
            self.rhs.append(rhs)
        self.entries.append((self.index[key], col, coef))


def pack(
    pool: Pool,
    cands: Sequence[Candidate],
    profile: Callable[[Candidate], Profile],
    rng: random.Random,
    max_per_path: int,
    per_pair: int,
) -> list[PlannedSet]:
    """The sets of an optimal packing of the diagnosis pool ``pool`` (see the module doc)."""
    rows = _Rows()
    eq: list[list[tuple[int, float]]] = []
    upper: list[float] = []
    weight: list[float] = []
    y_of: list[tuple[int, int, int, int]] = []  # (column, candidate, cell, path index)
    z_cols: list[int] = []
    pair_cols: dict[tuple[str, frozenset[str]], int] = {}
    # each path is used at most once, so the jitter sums to under half a question
    scale = 1.0 / (2 * len(pool.anns))
    jitter = {i: rng.random() for i in range(len(pool.anns))}

    def col(ub: float, w: float) -> int:
        upper.append(ub)
        weight.append(w)
        return len(upper) - 1

    for ci, c in enumerate(cands):
        prof = profile(c)
        if prof.given or prof.dx_options is None:
            raise ValidationError(f"internal: {c.key} is not a diagnosis candidate")
        z = col(per_pair, 4.0)
        z_cols.append(z)
        rows.add(("pair", c.key), z, rhs=per_pair)
        for k, cell in enumerate(c.cells):
            terms = [(z, -1.0)]
            for i in cell:
                a = pool.anns[i]
                y = col(1.0, scale * rng.random())
                y_of.append((y, ci, k, i))
                terms.append((y, 1.0))
                for key in prof.couplings:
                    rows.add(("kc", a.path_id, key), y)
                rows.add(("cap", a.path_id), y, rhs=max_per_path)
                rows.add(("once", a.path_id, c.key), y)
                pk = (a.group, prof.dx_options)
                if pk not in pair_cols:
                    pair_cols[pk] = col(1.0, 0.0)
                    rows.add(("one-list", a.group), pair_cols[pk])
                rows.add(("list", *pk, y), y, rhs=0.0)
                rows.add(("list", *pk, y), pair_cols[pk], coef=-1.0, rhs=0.0)
            eq.append(terms)
    if not z_cols:
        return []
    n = len(upper)
    r, cidx, v = zip(*rows.entries, strict=True)
    a_ub = coo_matrix((v, (r, cidx)), shape=(len(rows.rhs), n)).tocsr()
    er, ec, ev = zip(
        *((i, col_, coef) for i, terms in enumerate(eq) for col_, coef in terms), strict=True
    )
    a_eq = coo_matrix((ev, (er, ec)), shape=(len(eq), n)).tocsr()
    res = milp(
        -np.array(weight),
        constraints=[
            LinearConstraint(a_ub, -np.inf, np.array(rows.rhs)),
            LinearConstraint(a_eq, 0.0, 0.0),
        ],
        bounds=Bounds(np.zeros(n), np.array(upper)),
        integrality=np.ones(n),
        options={"mip_rel_gap": 1e-3},
    )
    if res.x is None:  # pragma: no cover - the empty packing is always feasible
        raise ValidationError(f"internal: packing {pool.key} failed: {res.message}")
    chosen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for y, ci, k, i in y_of:
        if res.x[y] > 0.5:
            chosen[(ci, k)].append(i)
    out = []
    for ci, z in enumerate(z_cols):
        for s in range(round(res.x[z])):
            cells = [sorted(chosen[(ci, k)], key=lambda i: jitter[i]) for k in range(4)]
            out.append(PlannedSet(ci, (cells[0][s], cells[1][s], cells[2][s], cells[3][s])))
    return out
