"""Joint decoding of complementary sets: each set's rows have distinct keys.

A complementary set shows one question and one option list on k zoom paths, each making
a different option the key, so the keys of a set are an assignment (a permutation for
k rows and k options). An attacker who knows this turns any per-row scorer into a
stronger one: take each row's option probabilities (a softmax of its scores), and pick
the assignment of distinct options to the set's rows with the highest joint probability
(Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`). Sets entirely right
then have chance 1/k! rather than (1/k)^k.

:class:`JointDecoder` wraps any adversary (``joint-context`` wraps the context reader;
``joint:<name>`` any registered one); it is learned when its base is, and held out the
same way (folds keep sets whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import perm

import numpy as np

from curation.adversary_base import Adversary, _check_questions
from curation.errors import ConfigError
from curation.records import Question, set_rows


def _probabilities(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    finite = np.isfinite(s)
    if not finite.any():
        return np.full(len(s), 1.0 / max(1, len(s)))
    s = np.where(finite, s, s[finite].min() - 50.0)
    e = np.exp(s - s.max())
    return e / e.sum()


def set_members(questions: Sequence[Question]) -> dict[str, list[int]]:
    """Row indices per ``set_id`` with at least two rows that share one option list
    (as a set of texts) and no more rows than options."""
    sets = set_rows(questions)
    out = {}
    for sid, idx in sets.items():
        first = set(questions[idx[0]].options)
        same = all(set(questions[i].options) == first for i in idx)
        if len(idx) >= 2 and same and len(idx) <= len(first):
            out[sid] = idx
    return out


def decode_sets(questions: Sequence[Question], scores: list[np.ndarray]) -> list[np.ndarray]:
    """Per row: the assigned option scores 2 + p (its probability), the others p; rows
    outside a decodable set keep their probabilities."""
    from scipy.optimize import linear_sum_assignment

    out = [_probabilities(s) for s in scores]
    for idx in set_members(questions).values():
        canon = list(questions[idx[0]].options)
        col = {o: c for c, o in enumerate(canon)}
        cost = np.zeros((len(idx), len(canon)))
        for r, i in enumerate(idx):
            for j, o in enumerate(questions[i].options):
                cost[r, col[o]] = -np.log(max(out[i][j], 1e-300))
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            i = idx[r]
            j = list(questions[i].options).index(canon[c])
            out[i] = out[i].copy()
            out[i][j] += 2.0
    return out


def assignment_chance(n_rows: int, n_options: int) -> float:
    """Chance that a uniformly random assignment of distinct options is entirely right."""
    return 1.0 / perm(n_options, n_rows)


class JointDecoder(Adversary):
    """Any adversary's scores decoded jointly per complementary set (see the module)."""

    reads_dataset = True

    decodes_sets = True

    def __init__(self, base: Adversary, name: str | None = None) -> None:
        if not isinstance(base, Adversary):
            raise ConfigError(f"JointDecoder: base {base!r} is not an Adversary")
        self.base = base
        self.name = name or f"joint-{base.name}"
        self.learned = base.learned

    def clone(self) -> JointDecoder:
        return JointDecoder(self.base.clone(), self.name)

    def fit(self, questions: Sequence[Question]) -> JointDecoder:
        self.base.fit(questions)
        return self

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        return decode_sets(questions, self.base.score(questions))

    def cross_fit(self, questions: Sequence[Question], folds: np.ndarray) -> list[np.ndarray]:
        return decode_sets(questions, self.base.cross_fit(questions, folds))
