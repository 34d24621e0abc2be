"""Train/validation/test splits of zoom paths, grouped by patient (else slide).

Splitting happens on annotations, before any question exists, so that a complementary set
(one question on several zoom paths) is always drawn within one split. Groups are
stratified by organ and diagnosis and dealt to the split with the largest deficit
against its ratio, in a seeded order: ratios hold in zoom paths, every group stays whole.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from curation.annotations import Annotation
from curation.errors import ConfigError
from curation.records import QUESTION_TYPES, SPLITS, Question

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"0.7,0.1,0.2"`` (train, validation, test); they must be >= 0 and sum to 1."""
    if isinstance(text, str):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError(
                f"--split-ratios {text!r}: give three numbers such as 0.7,0.1,0.2"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) != 3:
        raise ConfigError(
            f"split ratios {values}: give three values (train, validation, test), e.g. 0.7,0.1,0.2"
        )
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios {values}: each must be >= 0 and they must sum to 1")
    return (values[0], values[1], values[2])


def assign_splits(
    annotations: Sequence[Annotation],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
) -> dict[str, str]:
    """Map each ``path_id`` to train/validation/test; a patient (else slide) never straddles."""
    ratios = parse_ratios(ratios)
    groups: dict[str, list[Annotation]] = defaultdict(list)
    for a in annotations:
        groups[a.group].append(a)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for g, members in groups.items():
        organ = Counter(a.organ for a in members).most_common(1)[0][0]
        dx = Counter(a.diagnosis or "" for a in members).most_common(1)[0][0]
        strata[(organ, dx)].append(g)
    rng = random.Random(f"scale-vqa-split:{seed}")
    out: dict[str, str] = {}
    assigned_by_organ: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    totals: Counter[str] = Counter()
    for key in sorted(strata):
        names = sorted(strata[key])
        rng.shuffle(names)
        assigned = assigned_by_organ[key[0]]  # deficits carry over the organ's strata
        for g in names:
            size = len(groups[g])
            totals[key[0]] += size
            total = totals[key[0]]
            deficit = [ratios[i] * total - assigned[s] for i, s in enumerate(SPLITS)]
            best = max(range(3), key=lambda i: (deficit[i], ratios[i], -i))
            split = SPLITS[best]
            assigned[split] += size
            for a in groups[g]:
                out[a.path_id] = split
    return out


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
    header = f"{'split':<11}" + "".join(f"{t[:13]:>15}" for t in QUESTION_TYPES) + f"{'total':>8}"
    lines = [header]
    for s, row in report["by_split_type"].items():
        cells = "".join(f"{row.get(t, 0):>15}" for t in QUESTION_TYPES)
        lines.append(f"{s:<11}{cells}{report['by_split'][s]:>8}")
    return "\n".join(lines)
