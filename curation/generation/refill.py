"""Refill: form more sets on the budget the rebalance frees, then rebalance again.

The rebalance drops whole sets of the types over their cap (and of over-represented
splits); the features those sets had spent on their paths are then free, and the types it
did not trim can often form more sets there. :func:`refill` gives those types more passes
over their own candidates (a candidate never forms more than ``max_sets_per_pair`` sets
in all, nor takes a path it had before: :class:`curation.generation.candidates.Candidate`
counts them), each pass followed by a rebalance. Every rule holds as in the first pass:
the same set former, budget ledger, floors, caps and split tolerance decide.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

from curation.balance import dedup
from curation.generation.candidates import Candidate
from curation.generation.order import interleave
from curation.generation.pools import Pool
from curation.generation.sets import SetFormer
from curation.records import Question

Job = tuple[Pool, list[Candidate], str]
"""A pool, its candidates (as the first pass left them) and its generator's seed key."""


def refill(
    formed: list[Question],
    kept: list[Question],
    former: SetFormer,
    jobs: Sequence[Job],
    rebalance: Callable[[list[Question]], list[Question]],
    cap: float | None,
    first: Sequence[str] = (),
    rounds: int = 2,
) -> list[Question]:
    """``kept`` (the rebalance of ``formed``) with up to ``rounds`` refills.

    Each round draws fresh set streams (seeded per pool and round) from every job whose
    type the last rebalance did not trim, in the first pass's order; it stops early when
    a round forms nothing.
    """
    for r in range(1, rounds + 1):
        lost = Counter(q.question_type for q in formed) - Counter(q.question_type for q in kept)
        trimmed = set(lost)
        streams = [
            (p.qtype, former.iter_sets(p, c, random.Random(f"{key}:refill{r}")))
            for p, c, key in jobs
            if p.qtype not in trimmed
        ]
        new = interleave(streams, cap, [t for t in first if t not in trimmed])
        if not new:
            break
        formed = dedup([*kept, *new])
        kept = rebalance(formed)
    return kept
