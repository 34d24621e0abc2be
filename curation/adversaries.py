"""Text-only adversaries: functions of an MCQ's text that try to pick the key.

The interface (``fit`` on records, ``score`` options), held-out fitting and credit live in
:mod:`curation.adversary_base`; the per-option features in :mod:`curation.option_features`.
Both are re-exported here, so ``from curation.adversaries import Adversary, credit, ...``
keeps working. This module holds the single-row adversaries and the registry of every
adversary by name (AFLite from :mod:`curation.aflite`, the dataset-level ones from
:mod:`curation.dataset_adversaries`).

Zero-shot heuristics (``learned = False``) read only the question being scored.
The options-only learners see *relational* features (an option against the other options
of its set: centrality, unique tokens, length rank, its n-grams minus the set's mean),
because the known artifact of the official release is relational: the key is the centre
of its option set.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.adversary_base import (
    Adversary,
    HashedOptionModel,
    LinearOptionModel,
    _check_questions,
    _owner,
    answered,
    credit,
    cross_fit_scores,
    fold_groups,
    group_folds,
)
from curation.aflite import AFLite, AFLiteAdversary
from curation.dataset_adversaries import DATASET_ADVERSARIES, make_dataset_adversary
from curation.errors import ConfigError
from curation.joint_decoding import JointDecoder
from curation.option_features import _CLAUSE as _CLAUSE  # re-exported for older callers
from curation.option_features import (
    DEFAULT_EMBED_UNIT,
    EMBED_UNITS,
    _hasher,
    _jaccard,
    _others_mean,
    embed_options,
    relational_features,
    tokens,
)
from curation.records import LETTERS, Question

__all__ = [
    "ADVERSARY_NAMES",
    "DATASET_ADVERSARIES",
    "EMBED_UNITS",
    "HEURISTICS",
    "LEARNED",
    "Adversary",
    "BagOfWordsOptions",
    "BagOfWordsQA",
    "Centrality",
    "EmbeddingClassifier",
    "Length",
    "LinearOptionModel",
    "Overlap",
    "PositionPrior",
    "answered",
    "credit",
    "cross_fit_scores",
    "default_battery",
    "embed_options",
    "fold_groups",
    "group_folds",
    "make_adversaries",
    "make_adversary",
    "relational_features",
    "tokens",
]

# --------------------------------------------------------------------------- heuristics


class Centrality(Adversary):
    """Pick the option most similar to the other options (token-set Jaccard or TF-IDF cosine).

    This is the official release's artifact: when each distractor is the key with one
    feature swapped, the key is the centre of the option set.
    """

    learned = False

    def __init__(self, measure: str = "jaccard", name: str = "centrality") -> None:
        if measure not in ("jaccard", "tfidf"):
            raise ConfigError(f"Centrality: measure={measure!r}; use 'jaccard' or 'tfidf'")
        self.measure = measure
        self.name = name

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        if self.measure == "tfidf":
            return self._tfidf(questions)
        out = []
        for q in questions:
            sets = [set(tokens(o)) for o in q.options]
            k = len(sets)
            out.append(
                np.array(
                    [
                        sum(_jaccard(sets[i], sets[j]) for j in range(k) if j != i) / (k - 1)
                        for i in range(k)
                    ]
                )
            )
        return out

    def _tfidf(self, questions: Sequence[Question]) -> list[np.ndarray]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [o for q in questions for o in q.options]
        if not texts:
            return []
        x = TfidfVectorizer(token_pattern=r"[a-z0-9]+", lowercase=True).fit_transform(texts)
        out, start = [], 0
        for q in questions:
            k = len(q.options)
            block = x[start : start + k]
            sim = (block @ block.T).toarray()
            np.fill_diagonal(sim, 0.0)
            out.append(sim.sum(axis=1) / (k - 1))
            start += k
        return out


class Length(Adversary):
    """Pick the longest option (``longest=True``) or the shortest, in characters."""

    learned = False

    def __init__(self, longest: bool = True, name: str | None = None) -> None:
        if not isinstance(longest, bool):
            raise ConfigError("Length: longest must be True or False")
        self.longest = longest
        self.name = name or ("longest" if longest else "shortest")

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        sign = 1.0 if self.longest else -1.0
        return [sign * np.array([len(o) for o in q.options], dtype=float) for q in questions]


class Overlap(Adversary):
    """Pick the option sharing the most content words with the question."""

    learned = False

    def __init__(self, name: str = "overlap") -> None:
        self.name = name

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        out = []
        for q in questions:
            qt = set(tokens(q.question, drop_stopwords=True))
            out.append(
                np.array(
                    [len(qt & set(tokens(o, drop_stopwords=True))) for o in q.options],
                    dtype=float,
                )
            )
        return out


class PositionPrior(Adversary):
    """Pick the key letter most frequent in the training questions (a learned prior)."""

    learned = True

    def __init__(self, name: str = "position") -> None:
        self.name = name
        self.counts_: Counter[str] | None = None

    def fit(self, questions: Sequence[Question]) -> PositionPrior:
        super().fit(questions)
        self.counts_ = Counter(q.answer for q in questions)
        return self

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        if self.counts_ is None:
            raise ConfigError(f"{self.name}: call fit() before score()")
        return [
            np.array([self.counts_.get(LETTERS[i], 0) for i in range(len(q.options))], float)
            for q in questions
        ]


class BagOfWordsOptions(HashedOptionModel):
    """Logistic regression on hashed n-grams of the option alone, plus relational features
    (its n-grams minus the mean of the other options', and :func:`relational_features`)."""

    def __init__(
        self,
        n_features: int = 2**16,
        C: float = 1.0,
        max_iter: int = 300,
        name: str = "bow-options",
    ) -> None:
        super().__init__(n_features, C=C, max_iter=max_iter, name=name)

    def features(self, questions: Sequence[Question]) -> Any:
        owner = _owner(questions)
        x = _hasher(self.n_features).transform([o for q in questions for o in q.options])
        rel = x - _others_mean(x, owner, len(questions))
        return sp.hstack([x, rel, sp.csr_matrix(relational_features(questions))]).tocsr()


class BagOfWordsQA(BagOfWordsOptions):
    """Logistic regression on question-token x option-token pairs, option n-grams and the
    relational features (with question overlap)."""

    def __init__(
        self, n_features: int = 2**16, C: float = 1.0, max_iter: int = 300, name: str = "bow-qa"
    ) -> None:
        super().__init__(n_features=n_features, C=C, max_iter=max_iter, name=name)

    def features(self, questions: Sequence[Question]) -> Any:
        owner = _owner(questions)
        opts = _hasher(self.n_features).transform([o for q in questions for o in q.options])
        pairs: list[list[str]] = []
        for q in questions:
            qt = sorted(set(tokens(q.question, drop_stopwords=True)))
            for o in q.options:
                ot = sorted(set(tokens(o, drop_stopwords=True)))
                pairs.append([f"{a}|{b}" for a in qt for b in ot])
        cross = _hasher(self.n_features, analyzer=lambda p: p).transform(pairs)
        rel = opts - _others_mean(opts, owner, len(questions))
        dense = sp.csr_matrix(relational_features(questions, with_question=True))
        return sp.hstack([opts, rel, cross, dense]).tocsr()


class EmbeddingClassifier(LinearOptionModel):
    """Logistic regression on sentence embeddings: the option's, the option minus the mean
    of the others', its cosine with the question, and :func:`relational_features`.

    Each distinct text is embedded once (``curation.embeddings.Embedder`` caches).
    ``unit="clause"`` embeds each distinct clause instead (options split at commas,
    semicolons, "and", "while", "but") and averages them: several times fewer texts when
    options are built from shared clauses, at some loss of word-order information.
    """

    def __init__(
        self,
        embedder: Any = None,
        C: float = 1.0,
        max_iter: int = 300,
        name: str = "embed-lr",
        unit: str = DEFAULT_EMBED_UNIT,
    ) -> None:
        super().__init__(C=C, max_iter=max_iter, name=name)
        if unit not in EMBED_UNITS:
            raise ConfigError(f"{name}: unit={unit!r}; use 'option' or 'clause'")
        self.embedder = embedder
        self.unit = unit

    def clone(self) -> EmbeddingClassifier:
        new = copy.copy(self)  # share the embedder (and its cache), not a fitted model
        new.model_ = None
        return new

    def _embedder(self) -> Any:
        if self.embedder is None:
            from curation.embeddings import Embedder

            self.embedder = Embedder()
        return self.embedder

    def features(self, questions: Sequence[Question]) -> np.ndarray:
        owner = _owner(questions)
        emb = self._embedder()
        opts = embed_options(emb, [o for q in questions for o in q.options], self.unit)
        qs = emb.encode([q.question for q in questions])
        rel = opts - _others_mean(opts, owner, len(questions))
        cos = np.sum(opts * qs[owner], axis=1, keepdims=True)
        return np.hstack([opts, rel, cos, relational_features(questions, with_question=True)])


# --------------------------------------------------------------------------- registry

HEURISTICS: tuple[str, ...] = ("centrality", "longest", "shortest", "overlap")
LEARNED: tuple[str, ...] = ("position", "bow-options", "bow-qa", "embed-lr")
ADVERSARY_NAMES: tuple[str, ...] = (
    *HEURISTICS,
    "centrality-tfidf",
    *LEARNED,
    "aflite",
    *DATASET_ADVERSARIES,
)
"""Every registered name; also ``joint:<name>`` (any of them decoded jointly per set)."""


def make_adversary(
    name: str, embedder: Any = None, embed_unit: str = DEFAULT_EMBED_UNIT
) -> Adversary:
    """One adversary by registry name (see :data:`ADVERSARY_NAMES`); ``joint:<name>`` is
    adversary ``name`` decoded jointly per complementary set."""
    if name.startswith("joint:"):
        base = make_adversary(name[len("joint:") :], embedder, embed_unit)
        return JointDecoder(base, name=name)
    dataset = make_dataset_adversary(name)
    if dataset is not None:
        return dataset
    factories: dict[str, Callable[[], Adversary]] = {
        "centrality": lambda: Centrality(),
        "centrality-tfidf": lambda: Centrality(measure="tfidf", name="centrality-tfidf"),
        "longest": lambda: Length(longest=True),
        "shortest": lambda: Length(longest=False),
        "overlap": lambda: Overlap(),
        "position": lambda: PositionPrior(),
        "bow-options": lambda: BagOfWordsOptions(),
        "bow-qa": lambda: BagOfWordsQA(),
        "embed-lr": lambda: EmbeddingClassifier(embedder=embedder, unit=embed_unit),
        "aflite": lambda: _aflite(embedder, embed_unit),
    }
    if name not in factories:
        raise ConfigError(
            f"unknown adversary {name!r}; choose from {', '.join(ADVERSARY_NAMES)}, or joint:<name>"
        )
    return factories[name]()


def _aflite(embedder: Any, embed_unit: str = DEFAULT_EMBED_UNIT) -> Adversary:
    features = "embeddings" if embedder is not None else "bow"
    return AFLiteAdversary(AFLite(features=features, embedder=embedder, unit=embed_unit))


def make_adversaries(
    names: Sequence[str], embedder: Any = None, embed_unit: str = DEFAULT_EMBED_UNIT
) -> list[Adversary]:
    """Adversaries by name, in order, each once."""
    seen: list[str] = []
    for n in names:
        n = n.strip()
        if n and n not in seen:
            seen.append(n)
    if not seen:
        raise ConfigError(f"no adversary named; choose from {', '.join(ADVERSARY_NAMES)}")
    return [make_adversary(n, embedder, embed_unit) for n in seen]


def default_battery(
    embedder: Any = None,
    include_embeddings: bool = True,
    embed_unit: str = DEFAULT_EMBED_UNIT,
) -> list[Adversary]:
    """The local battery: every heuristic and learner (the embedding one optional)."""
    names = [*HEURISTICS, *LEARNED]
    if not include_embeddings:
        names.remove("embed-lr")
    return make_adversaries(names, embedder, embed_unit)
