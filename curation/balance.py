"""Letter balance (rationale-safe permutation of options) and deduplication.

Complementary sets balance letters by themselves (each option is the key once per set);
single questions get their keys dealt round-robin over the letters within each
split x question type. Permutation moves the per-option provenance in ``extra``
(``claims``, ``values``) with the options; rationales never name a letter, so they need
no rewriting (a rationale that does raises).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from curation.errors import ValidationError
from curation.records import LETTERS, Question, letters_named

PER_OPTION_EXTRA = ("claims", "values")


def permute_question(q: Question, order: Sequence[int]) -> Question:
    """``q`` with options reordered (new position i holds old option ``order[i]``)."""
    if sorted(order) != list(range(len(q.options))):
        raise ValueError(f"order {list(order)} is not a permutation of {len(q.options)} options")
    named = letters_named(q.rationale)
    if named:
        raise ValidationError(
            f"question {q.id}: rationale names option letter(s) {sorted(named)}; rewrite it "
            "without letters before permuting options"
        )
    extra = dict(q.extra)
    for key in PER_OPTION_EXTRA:
        if isinstance(extra.get(key), list) and len(extra[key]) == len(q.options):
            extra[key] = [extra[key][i] for i in order]
    new_key = list(order).index(q.key_index)
    return Question(
        question=q.question,
        options=[q.options[i] for i in order],
        answer=LETTERS[new_key],
        question_type=q.question_type,
        rationale=q.rationale,
        organ=q.organ,
        slide_id=q.slide_id,
        patient_id=q.patient_id,
        path_id=q.path_id,
        split=q.split,
        template_id=q.template_id,
        set_id=q.set_id,
        source=q.source,
        extra=extra,
    )


def balance_letters(questions: Sequence[Question], seed: int = 0) -> list[Question]:
    """Deal keys round-robin over letters within split x type (distractor order shuffled).

    Questions of a complementary set (non-empty ``set_id``) are left as they are: their
    shared option order already makes every letter the key once per set.
    """
    rng = random.Random(f"scale-vqa-balance:{seed}")
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        if not q.set_id:
            groups[(q.split, q.question_type, len(q.options))].append(i)
    out = list(questions)
    for (_, _, k), idx in sorted(groups.items()):
        targets = [i % k for i in range(len(idx))]
        rng.shuffle(targets)
        for i, target in zip(idx, targets):
            q = out[i]
            others = [j for j in range(k) if j != q.key_index]
            rng.shuffle(others)
            order = [*others[:target], q.key_index, *others[target:]]
            out[i] = permute_question(q, order)
    return out


def dedup(questions: Iterable[Question]) -> list[Question]:
    """Drop repeats of the same question and options on the same zoom path (first kept).

    A repeat inside a complementary set drops the whole set, so sets stay complete.
    """
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    questions = list(questions)
    drop_ids: set[str] = set()
    drop_sets: set[str] = set()
    for q in questions:
        key = (q.path_id, q.question, tuple(sorted(q.options)))
        if key in seen:
            drop_ids.add(q.id)
            if q.set_id:
                drop_sets.add(q.set_id)
            continue
        seen.add(key)
    return [
        q for q in questions if q.id not in drop_ids and not (q.set_id and q.set_id in drop_sets)
    ]


def letter_counts(questions: Iterable[Question]) -> dict[str, dict[str, dict[str, int]]]:
    """Key letters per split x type."""
    counts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for q in questions:
        counts[q.split][q.question_type][q.answer] += 1
    return {s: {t: dict(sorted(c.items())) for t, c in ts.items()} for s, ts in counts.items()}
