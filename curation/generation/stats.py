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
) -> dict[str, Any]:
    """Counts per type and split, retention of candidate slots, sets and drops."""
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
    }
