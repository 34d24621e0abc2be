"""The figures of one generation run (``Generator.stats``, the ``--report``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from curation.annotations import Annotation
from curation.generation.config import NON_DX_TYPES, GeneratorConfig
from curation.records import QUESTION_TYPES, Question


def candidate_slots(
    annotations: Sequence[Annotation], dx_groups: set[str], config: GeneratorConfig
) -> int:
    """Questions the paths could carry at ``max_per_path`` per path and type."""
    slots = 0
    n_types = sum(t in config.question_types for t in NON_DX_TYPES)
    for a in annotations:
        if a.group in dx_groups:
            slots += config.max_per_path if a.diagnosis is not None else 0
        else:
            slots += config.max_per_path * n_types
    return slots


def generation_stats(
    questions: Sequence[Question],
    annotations: Sequence[Annotation],
    splits: Mapping[str, str],
    dx_groups: set[str],
    dx_slides: set[str],
    config: GeneratorConfig,
    *,
    naive: bool,
    seed: int,
    n_cands: int,
    rebalanced: int,
    budget: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per type and split, retention of candidate slots, sets and drops.

    ``budget``: the information budget's figures (``path_skips``, ``sets_blocked`` by rule),
    reported under ``information_budget`` with the questions per path.
    """
    slots = candidate_slots(annotations, dx_groups, config)
    by_type = Counter(q.question_type for q in questions)
    by_split = Counter(q.split for q in questions)
    return {
        "design": "naive" if naive else "square",
        "seed": seed,
        "paths": len(annotations),
        "questions": len(questions),
        "sets": len({q.set_id for q in questions if q.set_id}),
        "candidate_slots": slots,
        "retention": round(len(questions) / slots, 4) if slots else math.nan,
        "candidate_pairs": n_cands,
        "by_type": {t: by_type.get(t, 0) for t in QUESTION_TYPES},
        "by_split": dict(sorted(by_split.items())),
        "paths_by_split": dict(sorted(Counter(splits.values()).items())),
        "diagnosis_slides": len(dx_slides),
        "diagnosis_groups": len(dx_groups),
        "sets_dropped_to_rebalance": rebalanced,
        "per_path": per_path(questions, annotations),
        "information_budget": dict(budget or {"enforced": False}),
    }


def per_path(questions: Sequence[Question], annotations: Sequence[Annotation]) -> dict[str, Any]:
    """Questions per zoom path: over all paths, and per type over the paths carrying it."""
    n = Counter(q.path_id for q in questions)
    by_type: dict[str, Counter[str]] = {t: Counter() for t in QUESTION_TYPES}
    for q in questions:
        by_type[q.question_type][q.path_id] += 1
    counts = [n.get(a.path_id, 0) for a in annotations]
    out: dict[str, Any] = {
        "mean": round(sum(counts) / len(counts), 3) if counts else 0.0,
        "max": max(counts, default=0),
        "histogram": {str(k): v for k, v in sorted(Counter(counts).items())},
        "by_type": {},
    }
    for t, c in by_type.items():
        vals = list(c.values())
        out["by_type"][t] = {
            "paths": len(vals),
            "mean": round(sum(vals) / len(vals), 3) if vals else 0.0,
            "max": max(vals, default=0),
        }
    return out
