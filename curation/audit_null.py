"""The permutation null of the learned adversaries: how high they score when there is
nothing to learn.

A learned adversary fitted on a few hundred complementary sets reaches a few points above
chance on some question type by luck alone (its errors within a set are correlated, and a
report has many cells). To tell that from a leak, the audit refits every learned adversary
(and the joint decoders built on them) ``k`` times on keys permuted *within* each
complementary set, which keeps every set's shape (one key per option) and destroys any link
between the text and the key:

- with ``train``: the training questions' keys are permuted, the test keys are the real
  ones (the adversary learned nothing real, what does it score on this file?);
- cross-fitted: the keys of the audited file itself are permuted before cross-fitting, and
  accuracy is scored against the permuted keys.

Each learned cell (adversary x type, and overall) gets the null's mean, its 95th
percentile and the permutation p-value ``(1 + #null >= observed) / (k + 1)`` (so ``k >= 19``
for a p of 0.05 to be reachable).
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from curation.adversary_base import Adversary, credit
from curation.records import LETTERS, QUESTION_TYPES, Question, set_rows


def permute_keys(questions: Sequence[Question], rng: random.Random) -> list[Question]:
    """Copies of ``questions`` whose keys are shuffled within each complementary set (a row
    outside a set gets a random letter of its options)."""
    by_set = set_rows(questions)
    answers = [q.answer for q in questions]
    for idx in by_set.values():
        if len(idx) < 2:
            continue
        keys = [answers[i] for i in idx]
        rng.shuffle(keys)
        for i, k in zip(idx, keys, strict=True):
            answers[i] = k
    out = []
    for i, q in enumerate(questions):
        a = answers[i]
        if not (q.set_id and len(by_set[q.set_id]) >= 2):
            a = LETTERS[rng.randrange(len(q.options))]
        out.append(dataclasses.replace(q, answer=a))
    return out


def _accuracies(
    questions: Sequence[Question], scores: dict[str, list[np.ndarray]]
) -> dict[tuple[str, str], float]:
    keys = [q.key_index for q in questions]
    types = [q.question_type for q in questions]
    out = {}
    for name, sc in scores.items():
        cr = np.array([credit(s, k) for s, k in zip(sc, keys, strict=True)])
        out[(name, "all")] = float(cr.mean())
        for t in QUESTION_TYPES:
            m = np.array([x == t for x in types])
            if m.any():
                out[(name, t)] = float(cr[m].mean())
    return out


def null_adversaries(adversaries: Sequence[Adversary]) -> list[Adversary]:
    """The adversaries whose score depends on the keys they learn from: learned ones and
    the joint decoders built on one."""
    learned = {a.name for a in adversaries if a.learned}
    return [
        a
        for a in adversaries
        if a.learned or getattr(getattr(a, "base", None), "name", None) in learned
    ]


def permutation_null(
    questions: Sequence[Question],
    adversaries: Sequence[Adversary],
    observed: dict[tuple[str, str], float],
    k: int,
    train: Sequence[Question] | None = None,
    seed: int = 0,
    n_folds: int = 5,
    progress: bool = False,
    evaluate: Callable[..., dict[str, list[np.ndarray]]] | None = None,
) -> dict[str, Any]:
    """``k`` refits of the learned ``adversaries`` on within-set permuted keys.

    ``observed``: accuracy per (adversary, type) on the real keys; ``evaluate``: the
    audit's held-out scorer (:func:`curation.audit.evaluate`, passed in by the audit).
    Returns ``{"k", "mode", "cells": [{"adversary", "question_type", "observed",
    "null_mean", "null_p95", "p"}]}``.
    """
    from tqdm.auto import tqdm

    if evaluate is None:
        raise ValueError("permutation_null needs the audit's evaluate function")
    advs = null_adversaries(adversaries)
    draws: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in tqdm(range(k), desc="permutation null", unit="refit", disable=not progress):
        rng = random.Random(f"scale-vqa-null:{seed}:{r}")
        if train is not None:
            scored = list(questions)
            scores = evaluate(scored, advs, train=permute_keys(train, rng), seed=seed)
        else:
            scored = permute_keys(questions, rng)
            scores = evaluate(scored, advs, seed=seed, n_folds=n_folds)
        for cell, acc in _accuracies(scored, scores).items():
            draws[cell].append(acc)
    cells = []
    for (name, t), null in sorted(draws.items()):
        if (name, t) not in observed:
            continue
        obs = observed[(name, t)]
        arr = np.array(null)
        cells.append(
            {
                "adversary": name,
                "question_type": t,
                "observed": obs,
                "null_mean": float(arr.mean()),
                "null_p95": float(np.quantile(arr, 0.95)),
                "p": float((1 + (arr >= obs - 1e-12).sum()) / (len(arr) + 1)),
            }
        )
    return {"k": k, "mode": "train/test" if train is not None else "cross-fitted", "cells": cells}


def null_summary(report: Mapping[str, Any]) -> str | None:
    """One line on the permutation null of an audit report (None when it has none): the
    learned cells above their null's 95th percentile, and what that figure can mean."""
    nul = report.get("null")
    if not nul:
        return None
    above = [c for c in nul["cells"] if c["observed"] > c["null_p95"] + 1e-9]
    return (
        f"permutation null ({nul['k']} refits on keys permuted within sets, {nul['mode']}): "
        + (
            "cells above its 95th percentile: "
            + ", ".join(
                f"{c['adversary']} on {c['question_type']} {c['observed']:.1%} "
                f"(null 95th percentile {c['null_p95']:.1%}, p {c['p']:.2f})"
                for c in above
            )
            if above
            else "no learned cell is above its 95th percentile"
        )
        + f" ({len(above)} of {len(nul['cells'])} learned cells; about 1 in 20 lands above it "
        f"by chance, and {nul['k']} refits cannot give p below {1 / (nul['k'] + 1):.2f})"
    )
