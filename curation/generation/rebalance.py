"""Dropping whole complementary sets so split shares track path shares and no type dominates."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from curation.records import Question


def sets_to_drop(
    questions: Sequence[Question],
    splits: Mapping[str, str],
    seed: int,
    split_tolerance: float | None,
    max_type_share: float | None,
    min_type_share: float | None = None,
) -> set[str]:
    """Set ids to drop (seeded, greedy; see below); empty when nothing is out of line.

    Small splits form fewer sets per path than train (fewer paths per pool), and some
    types form sets more easily than others. Dropping *whole* complementary sets keeps
    every set property (one true key per path, each option the key once per set, one
    split per set). While a split's question share exceeds its path share by more than
    ``split_tolerance``, or a type's share exceeds ``max_type_share``, or a type's share is
    below ``min_type_share`` (then the largest type counts as over), one set (a random
    one) is dropped from the split x type cell that relieves a violation and whose split
    and type are most over-represented together. The type cap is at least ``1 / k`` and
    the floor at most ``1 / k`` for ``k`` types present, and type trimming stops once a
    quarter of the questions is gone
    (split tracking does not; it stops when a drop would not lower the largest excess,
    and a split without questions is left out of its targets).
    """
    tol, cap, least = split_tolerance, max_type_share, min_type_share
    if tol is None and cap is None and not least:
        return set()
    # a split without questions cannot be helped by dropping others' sets: the targets
    # are the path shares among the splits that have questions
    present = {q.split for q in questions}
    path_share = Counter(s for s in splits.values() if s in present)
    n_paths = sum(path_share.values())
    target = {s: path_share[s] / n_paths for s in path_share}
    sets: dict[tuple[str, str], list[str]] = defaultdict(list)
    size: Counter[str] = Counter()
    for q in questions:
        if not q.set_id:
            continue
        if size[q.set_id] == 0:
            sets[(q.split, q.question_type)].append(q.set_id)
        size[q.set_id] += 1
    rng = random.Random(f"scale-vqa-rebalance:{seed}")
    for key in sorted(sets):
        rng.shuffle(sets[key])
    by_split = Counter(q.split for q in questions)
    by_type = Counter(q.question_type for q in questions)
    cell = Counter((q.split, q.question_type) for q in questions if q.set_id)
    total = len(questions)
    # a cap below 1/k cannot hold with k types; type trimming stops at a quarter lost
    if cap is not None:
        cap = max(cap, 1.0 / max(len(by_type), 1))
    if least:
        least = min(least, 1.0 / max(len(by_type), 1))
    floor = 0.75 * total
    dropped: set[str] = set()
    while total > 0:
        excess_s = {s: by_split[s] / total - target.get(s, 0.0) for s in by_split}
        excess_t = {t: by_type[t] / total - (cap if cap is not None else 1.0) for t in by_type}
        over_s = {s for s, e in excess_s.items() if tol is not None and e > tol}
        over_t = {t for t, e in excess_t.items() if e > 0 and total > floor}
        if least and total > floor and min(n for n in by_type.values() if n) / total < least:
            over_t.add(max(by_type, key=lambda t: (by_type[t], t)))
        if not over_s and not over_t:
            break
        # most over-represented split x type cell among those that relieve a violation
        choices = [
            (excess_s[s] + excess_t[t], s, t)
            for (s, t), n in cell.items()
            if n > 0 and sets[(s, t)] and (s in over_s or t in over_t)
        ]
        if not choices:
            break
        _, s, t = max(choices)
        if not over_t and _worst_after(by_split, target, s, size[sets[(s, t)][-1]]) >= max(
            excess_s.values()
        ):
            break  # too few questions for the tolerance: a drop would only move the excess
        sid = sets[(s, t)].pop()
        dropped.add(sid)
        n = size[sid]
        by_split[s] -= n
        by_type[t] -= n
        cell[(s, t)] -= n
        total -= n
    return dropped


def _worst_after(by_split: Counter[str], target: Mapping[str, float], split: str, n: int) -> float:
    """The largest split excess once ``n`` questions of ``split`` are gone."""
    total = sum(by_split.values()) - n
    if total <= 0:
        return float("inf")
    return max(
        (by_split[s] - (n if s == split else 0)) / total - target.get(s, 0.0) for s in by_split
    )
