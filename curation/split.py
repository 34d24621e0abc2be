"""Train/validation/test splits of zoom paths, grouped by patient (else slide).

Splitting happens on annotations, before any question exists, so that a complementary set
(one question on several zoom paths) is always drawn within one split. Groups are
stratified by organ and diagnosis; each stratum is dealt to the splits in chunks of at
least ``min_chunk`` zoom paths (deficits carry over to later strata, in a seeded order):
ratios hold in zoom paths, every group stays whole, and every split's pools are big
enough to form sets.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from curation.annotations import Annotation
from curation.errors import ConfigError
from curation.records import QUESTION_TYPES, SPLITS, Question

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.15, 0.15)
DEFAULT_MIN_CHUNK = 12
"""Fewest zoom paths of one organ x diagnosis stratum dealt to a split (see assign_splits)."""


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"`` (train, validation, test): finite, >= 0, summing to 1."""
    if isinstance(text, str):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError(
                f"--split-ratios {text!r}: give three numbers such as 0.7,0.15,0.15"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) != 3:
        raise ConfigError(
            f"split ratios {values}: give three values (train, validation, test), e.g. "
            "0.7,0.15,0.15"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios {values}: each must be >= 0 and they must sum to 1")
    return (values[0], values[1], values[2])


def assign_splits(
    annotations: Sequence[Annotation],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    min_chunk: int = DEFAULT_MIN_CHUNK,
    reserved: Collection[str] = (),
) -> dict[str, str]:
    """Map each ``path_id`` to train/validation/test; a patient (else slide) never straddles.

    Pool-aware: each organ x diagnosis stratum is dealt to the splits in chunks of at least
    ``min_chunk`` zoom paths (a split whose share of a stratum would be smaller gets none of
    it and its deficit carries over to the next strata), so every split holds pools large
    enough to form complementary sets of four paths and the *question* shares track the
    path shares. ``min_chunk=0`` deals every stratum to every split (the old behaviour).
    Groups named in ``reserved`` (patients, else slides, set aside for diagnosis questions,
    which pool across diagnoses) form one stratum per organ of their own.
    """
    ratios = parse_ratios(ratios)
    groups: dict[str, list[Annotation]] = defaultdict(list)
    for a in annotations:
        groups[a.group].append(a)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for g, members in groups.items():
        organ = Counter(a.organ for a in members).most_common(1)[0][0]
        dx = Counter(a.diagnosis or "" for a in members).most_common(1)[0][0]
        strata[(organ, "@dx" if g in reserved else dx)].append(g)
    rng = random.Random(f"scale-vqa-split:{seed}")
    keys = sorted(strata)
    if min_chunk > 0:
        rng.shuffle(keys)  # the carried deficit lands on strata in a seeded order
    out: dict[str, str] = {}
    assigned_by: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    totals: Counter[str] = Counter()
    for key in keys:
        names = sorted(strata[key])
        rng.shuffle(names)
        # deficits carry over the organ's strata (min_chunk=0), else over every stratum
        scope = key[0] if min_chunk <= 0 else ("@dx" if key[1] == "@dx" else "*")
        assigned = assigned_by[scope]
        size = sum(len(groups[g]) for g in names)
        if min_chunk <= 0:
            for g in names:
                n = len(groups[g])
                totals[scope] += n
                deficit = [ratios[i] * totals[scope] - assigned[i] for i in range(3)]
                best = max(range(3), key=lambda i: (deficit[i], ratios[i], -i))
                assigned[best] += n
                for a in groups[g]:
                    out[a.path_id] = SPLITS[best]
            continue
        totals[scope] += size
        need = [ratios[i] * totals[scope] - assigned[i] for i in range(3)]
        share = _chunk_shares(need, size, min_chunk)
        names.sort(key=lambda g: -len(groups[g]))  # big groups first: shares land closer
        got = [0.0, 0.0, 0.0]
        for g in names:
            n = len(groups[g])
            best = max(
                (i for i in range(3) if share[i] > 0),
                key=lambda i: (share[i] - got[i], ratios[i], -i),
            )
            got[best] += n
            assigned[best] += n
            for a in groups[g]:
                out[a.path_id] = SPLITS[best]
    return out


def _chunk_shares(need: list[float], size: int, min_chunk: int) -> list[float]:
    """Shares of a stratum of ``size`` paths: proportional to positive need, none < min_chunk."""
    live = [i for i in range(3) if need[i] > 0]
    if not live:
        live = [max(range(3), key=lambda i: need[i])]
    while True:
        total = sum(max(need[i], 0.0) for i in live)
        share = [0.0, 0.0, 0.0]
        for i in live:
            share[i] = size * max(need[i], 0.0) / total if total > 0 else size / len(live)
        small = [i for i in live if share[i] < min_chunk]
        if not small or len(live) == 1:
            return share
        live.remove(min(small, key=lambda i: (share[i], i)))


def split_report(questions: Iterable[Question]) -> dict[str, Any]:
    """Counts per split x organ x type, plus totals per split x type and per split."""
    counts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for q in questions:
        counts[q.split or "unsplit"][q.organ or "unknown"][q.question_type] += 1
    by_split_type = {
        s: {t: sum(c[t] for c in organs.values()) for t in QUESTION_TYPES}
        for s, organs in sorted(counts.items())
    }
    return {
        "counts": {
            s: {o: dict(sorted(c.items())) for o, c in sorted(organs.items())}
            for s, organs in sorted(counts.items())
        },
        "by_split_type": by_split_type,
        "by_split": {s: sum(v.values()) for s, v in by_split_type.items()},
    }


def format_split_table(report: dict[str, Any]) -> str:
    """The split x type table of :func:`split_report` as aligned text."""
    header = f"{'split':<11}" + "".join(f"{t:>15}" for t in QUESTION_TYPES) + f"{'total':>8}"
    lines = [header]
    for s, row in report["by_split_type"].items():
        cells = "".join(f"{row.get(t, 0):>15}" for t in QUESTION_TYPES)
        lines.append(f"{s:<11}{cells}{report['by_split'][s]:>8}")
    return "\n".join(lines)
