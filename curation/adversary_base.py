"""The adversary interface, held-out fitting and credit, shared by every adversary module.

Every adversary has the same small interface (scikit-learn style)::

    adv.fit(questions) -> adv          # no-op for zero-shot heuristics
    adv.score(questions) -> [np.ndarray]   # one score per option, higher = more likely key

Zero-shot heuristics (``learned = False``) read only what they are given. Learned
adversaries (``learned = True``) are always evaluated held out with
:func:`cross_fit_scores`: the questions of a patient (else slide), merged over
complementary sets, are scored by a model that never saw that patient, slide or set.

This module is the bottom of the adversary modules: :mod:`curation.adversaries`,
:mod:`curation.aflite`, :mod:`curation.dataset_adversaries` and
:mod:`curation.llm_adversary` import it, never the other way round.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.errors import ConfigError
from curation.records import Question


def _check_questions(questions: Sequence[Question], where: str) -> None:
    if isinstance(questions, (str, bytes)) or not hasattr(questions, "__len__"):
        raise ConfigError(f"{where}: pass a sequence of Question records")
    for i, q in enumerate(questions):
        if not isinstance(q, Question):
            raise ConfigError(
                f"{where}: item {i} is a {type(q).__name__}, not a Question; read records "
                "with curation.records.read_questions"
            )


class Adversary:
    """Base class: a text-only answerer that scores each option of each question."""

    name: str = "adversary"
    learned: bool = False
    reads_dataset: bool = False
    """True for dataset-level adversaries: they read other rows, ids and row order."""

    def fit(self, questions: Sequence[Question]) -> Adversary:
        """Learn from ``questions`` (their keys included); heuristics ignore it."""
        _check_questions(questions, f"{self.name}.fit")
        return self

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        """One float per option per question; higher means more likely the key."""
        raise NotImplementedError

    def clone(self) -> Adversary:
        """An unfitted copy with the same parameters."""
        return copy.deepcopy(self)

    def cross_fit(self, questions: Sequence[Question], folds: np.ndarray) -> list[np.ndarray]:
        """Scores where fold ``f`` is scored by a clone fitted on the other folds."""
        out: list[np.ndarray | None] = [None] * len(questions)
        for f in np.unique(folds):
            test = np.flatnonzero(folds == f)
            train = np.flatnonzero(folds != f)
            model = self.clone().fit([questions[i] for i in train])
            for i, s in zip(test, model.score([questions[i] for i in test])):
                out[i] = s
        return [s if s is not None else np.zeros(len(q.options)) for s, q in zip(out, questions)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _owner(questions: Sequence[Question]) -> np.ndarray:
    return np.repeat(np.arange(len(questions)), [len(q.options) for q in questions])


class LinearOptionModel(Adversary):
    """Logistic regression over per-option features; the base of the learned adversaries.

    Subclasses implement :meth:`features` (one row per option, question by question).
    Features are computed once per call of :meth:`cross_fit`, then sliced per fold.
    """

    learned = True

    def __init__(self, C: float = 1.0, max_iter: int = 300, name: str = "linear") -> None:
        if not (isinstance(C, (int, float)) and C > 0):
            raise ConfigError(f"{name}: C={C!r}; use a positive regularisation strength")
        if not (isinstance(max_iter, int) and max_iter > 0):
            raise ConfigError(f"{name}: max_iter={max_iter!r}; use a positive integer")
        self.C = float(C)
        self.max_iter = max_iter
        self.name = name
        self.model_: Any = None

    def features(self, questions: Sequence[Question]) -> Any:
        raise NotImplementedError

    def _fit_matrix(self, x: Any, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        if len(np.unique(y)) < 2:
            self.model_ = float(y[0]) if len(y) else 0.0  # degenerate: constant
            return
        # the dual problem is ~10x faster when features outnumber rows (hashed n-grams)
        dual = bool(x.shape[1] > x.shape[0])
        self.model_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, solver="liblinear", dual=dual, random_state=0
        )  # random_state: the dual solver shuffles; fixed, the same inputs give the same bytes
        self.model_.fit(x, y)

    def _score_matrix(self, x: Any, questions: Sequence[Question]) -> list[np.ndarray]:
        if self.model_ is None:
            raise ConfigError(f"{self.name}: call fit() before score()")
        if isinstance(self.model_, float):
            flat = np.zeros(x.shape[0])
        else:
            flat = self.model_.decision_function(x)
        return _split(flat, questions)

    def fit(self, questions: Sequence[Question]) -> LinearOptionModel:
        super().fit(questions)
        if not questions:
            self.model_ = 0.0
            return self
        self._fit_matrix(self.features(questions), _labels(questions))
        return self

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        if not questions:
            return []
        return self._score_matrix(self.features(questions), questions)

    def cross_fit(self, questions: Sequence[Question], folds: np.ndarray) -> list[np.ndarray]:
        if not questions:
            return []
        x = _as_rows(self.features(questions))
        y = _labels(questions)
        owner = _owner(questions)
        row_fold = folds[owner]
        flat = np.zeros(len(owner))
        for f in np.unique(folds):
            model = self.clone()
            tr, te = row_fold != f, row_fold == f
            model._fit_matrix(x[tr], y[tr])
            if isinstance(model.model_, float):
                flat[te] = 0.0
            else:
                flat[te] = model.model_.decision_function(x[te])
        return _split(flat, questions)


class HashedOptionModel(LinearOptionModel):
    """A :class:`LinearOptionModel` over ``n_features`` hashed features."""

    def __init__(
        self, n_features: int, C: float = 1.0, max_iter: int = 300, name: str = "hashed"
    ) -> None:
        super().__init__(C=C, max_iter=max_iter, name=name)
        if not (isinstance(n_features, int) and n_features >= 16):
            raise ConfigError(f"{name}: n_features={n_features!r}; use an integer >= 16")
        self.n_features = n_features


def _as_rows(x: Any) -> Any:
    return x.tocsr() if sp.issparse(x) else np.asarray(x)


def _labels(questions: Sequence[Question]) -> np.ndarray:
    return np.concatenate(
        [(np.arange(len(q.options)) == q.key_index).astype(int) for q in questions]
    )


def _split(flat: np.ndarray, questions: Sequence[Question]) -> list[np.ndarray]:
    out, start = [], 0
    for q in questions:
        k = len(q.options)
        out.append(np.asarray(flat[start : start + k], dtype=float))
        start += k
    return out


def fold_groups(questions: Sequence[Question]) -> list[str]:
    """Grouping key per question for held-out fitting.

    The unit is the patient (else slide; else the zoom path or the question itself), and
    units joined by a complementary set (``set_id``) merge into one group: a set's questions
    share their text, so a model that saw one member must not score another. This mirrors
    how splits are made (no patient and no set straddles two splits).
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    units = [f"u:{q.group or q.path_id or q.id}" for q in questions]
    for unit, q in zip(units, questions):
        root = find(unit)
        if q.set_id:
            other = find(f"s:{q.set_id}")
            if other != root:
                parent[max(root, other)] = min(root, other)
    return [find(u) for u in units]


def group_folds(questions: Sequence[Question], n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per question; each group of :func:`fold_groups` shares a fold.

    Groups are shuffled with ``seed`` and dealt largest first to the smallest fold.
    """
    if not (isinstance(n_folds, int) and n_folds >= 2):
        raise ConfigError(f"n_folds={n_folds!r}; use an integer >= 2")
    keys = fold_groups(questions)
    sizes = Counter(keys)
    groups = sorted(sizes)
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    order.sort(key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    n = min(n_folds, len(groups))
    load = [0] * max(n, 1)
    assign: dict[str, int] = {}
    for g in order:
        f = int(np.argmin(load))
        assign[g] = f
        load[f] += sizes[g]
    return np.array([assign[k] for k in keys], dtype=int)


def cross_fit_scores(
    adv: Adversary, questions: Sequence[Question], n_folds: int = 5, seed: int = 0
) -> list[np.ndarray]:
    """Held-out scores: learned adversaries cross-fitted over :func:`fold_groups` groups.

    Zero-shot heuristics are simply scored. With fewer than two groups a learned
    adversary cannot be held out and scores every option equally (chance).
    """
    _check_questions(questions, "cross_fit_scores")
    if not isinstance(adv, Adversary):
        raise ConfigError(f"cross_fit_scores: {adv!r} is not an Adversary")
    if not adv.learned:
        return adv.score(questions)
    folds = group_folds(questions, n_folds, seed)
    if len(np.unique(folds)) < 2:
        return [np.zeros(len(q.options)) for q in questions]
    return adv.cross_fit(questions, folds)


def _top(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    finite = np.isfinite(s)
    if not finite.any():
        return np.zeros(0, dtype=int)
    s = np.where(finite, s, -np.inf)
    return np.flatnonzero(s >= s.max() - 1e-9)


def credit(scores: np.ndarray, key_index: int) -> float:
    """Expected accuracy of picking the top-scored option, ties broken at random.

    All-NaN scores mean the adversary gave no answer (e.g. an unparseable LLM reply):
    that is wrong (0), never a guess.
    """
    top = _top(scores)
    return 1.0 / len(top) if len(top) and key_index in top else 0.0


def answered(scores: np.ndarray, key_index: int) -> bool:
    """True when the key is the unique top-scored option."""
    top = _top(scores)
    return len(top) == 1 and int(top[0]) == key_index
