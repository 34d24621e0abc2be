"""Diagnosis pairs by plan: which pair of diagnoses each patient's diagnosis questions offer.

The information budget lets one patient's diagnosis questions offer one list of diagnoses
only (``diagnosis_narrowing``), and a diagnosis set needs two paths of each of its two
diagnoses. Left to the first set formed, patients lock onto pairs that can leave others
with no partner (seed 7: 180 of 367 reserved paths carried a question). Diagnosis-reserved
paths carry nothing else, so a diagnosis pool's sets can be formed on a scratch ledger
exactly as they will be: :func:`plan_pairs` starts from the pairs the first sets lock,
then moves one patient at a time to another pair (or back to none) while that forms more
sets, and the set former offers each path only its patient's planned pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from curation.generation.candidates import Candidate
from curation.generation.pools import Pool

Pair = frozenset[str]
Plan = dict[str, Pair]


def plan_pairs(
    pool: Pool,
    cands: Sequence[Candidate],
    pair_of: Callable[[Candidate], Pair | None],
    form: Callable[[Pool, list[Candidate], Plan], tuple[int, Plan]],
    rounds: int = 3,
) -> Plan:
    """Patient (else slide) -> diagnosis pair, for the reserved paths of ``pool``.

    ``form(pool, cands, plan)`` forms the pool's sets on a scratch ledger under ``plan``
    (a group missing from it takes the pair its first set offers) and returns how many
    sets it formed and the pair each group ended with. Deterministic: groups and pairs are
    tried in sorted order and a move is kept only when it forms strictly more sets.
    """
    pairs = sorted({p for p in map(pair_of, cands) if p is not None and len(p) == 2}, key=sorted)
    dx = {a.group: a.diagnosis for a in pool.anns if a.diagnosis is not None}
    options = {g: [p for p in pairs if dx[g] in p] for g in sorted(dx)}

    def run(plan: Plan) -> tuple[int, Plan]:
        return form(pool, [replace(c, members=set()) for c in cands], plan)

    best, locked = run({})
    plan = {g: p for g, p in locked.items() if g in options}
    for _ in range(rounds):
        moved = False
        for g in sorted(options):
            for p in [None, *options[g]]:
                if p == plan.get(g):
                    continue
                trial = {h: q for h, q in plan.items() if h != g}
                if p is not None:
                    trial[g] = p
                n, _ = run(trial)
                if n > best:
                    best, plan, moved = n, trial, True
        if not moved:
            break
    return plan
