"""Diagnosis pools packed exactly: the most complementary sets their reserved paths allow.

A diagnosis-reserved path carries nothing but diagnosis questions, so a diagnosis pool
(one organ and split) is a packing problem of its own: choose, per candidate slot pair, a
number of sets and, per value cell, that many distinct paths, such that every path is
used within its budget (:attr:`curation.budget.Profile.couplings`: a zoom path's
diagnosis is asked once), ``max_per_path``, a path at most once per slot pair, and each
patient (else slide) offers one pair of diagnoses (``diagnosis_narrowing``). Greedy
formation with a planned pair per patient reached about two thirds of this optimum
(seed 7: 172 of 220 questions over the same candidates).

:func:`pack` solves that integer programme (:class:`.flow.SparseModel`, HiGHS). No time
limit, so the result depends on nothing but its input; a relative gap of 1e-3 (far less
than one question on any pool) keeps the number of sets optimal. Ties between optima
are broken by a seeded weight per path and slot pair, together less than one question, so
which optimal packing is taken varies with the generator seed, not with anything the
published rows show.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from curation.budget import Profile
from curation.errors import ValidationError
from curation.generation.candidates import Candidate
from curation.generation.flow import SparseModel, add_candidate
from curation.generation.pools import Pool


@dataclass(frozen=True)
class PlannedSet:
    """One set of the optimum: a candidate and the pool index of its path per value cell."""

    candidate: int
    paths: tuple[int, int, int, int]


def pack(
    pool: Pool,
    cands: Sequence[Candidate],
    profile: Callable[[Candidate], Profile],
    rng: random.Random,
    max_per_path: int,
    per_pair: int,
) -> list[PlannedSet]:
    """The sets of an optimal packing of the diagnosis pool ``pool`` (see the module doc)."""
    model = SparseModel()
    # each path is used at most once, so the jitter sums to under half a question
    scale = 1.0 / (2 * max(len(pool.anns), 1))
    order = {i: rng.random() for i in range(len(pool.anns))}
    y_of: list[tuple[int, int, int, int]] = []  # (column, candidate, cell, path index)
    z_cols: list[int] = []
    for ci, c in enumerate(cands):
        prof = profile(c)
        if prof.given or prof.dx_options is None:
            raise ValidationError(f"internal: {c.key} is not a diagnosis candidate")
        z, shares = add_candidate(
            model, pool, c, prof, per_pair, max_per_path, lambda: scale * rng.random()
        )
        z_cols.append(z)
        y_of.extend((y, ci, k, i) for y, k, i in shares)
    if not z_cols:
        return []
    x = model.solve(integral=True, options={"mip_rel_gap": 1e-3})
    chosen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for y, ci, k, i in y_of:
        if x[y] > 0.5:
            chosen[(ci, k)].append(i)
    out = []
    for ci, z in enumerate(z_cols):
        cells = [sorted(chosen[(ci, k)], key=order.__getitem__) for k in range(4)]
        for s in range(round(x[z])):
            out.append(PlannedSet(ci, (cells[0][s], cells[1][s], cells[2][s], cells[3][s])))
    return out
