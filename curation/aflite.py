"""AFLite (Le Bras et al., 2020, "Adversarial Filters of Dataset Biases") for MCQs.

Many linear models are trained on random partitions of the data (by patient, else slide,
merged over complementary sets, when there are at least two groups) over fixed features of
each option; each item's
*predictability* is the fraction of the models that held it out and picked its key.
Items whose predictability is at or above ``tau`` are flagged.

Features per option: its sentence embedding, the embedding minus the mean of the other
options' (relational), and :func:`curation.option_features.relational_features`; without an
embedder, hashed n-grams of the option (and the same relational parts) reduced by SVD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation.adversary_base import Adversary, _check_questions, _owner, fold_groups
from curation.errors import ConfigError
from curation.option_features import (
    DEFAULT_EMBED_UNIT,
    _hasher,
    _others_mean,
    embed_options,
    relational_features,
)
from curation.records import Question


@dataclass
class AFLiteResult:
    """Per-item predictability (NaN where no model held the item out) and summary."""

    predictability: np.ndarray
    heldout: np.ndarray
    accuracy: float
    """Held-out accuracy over every (model, held-out item) pair."""
    tau: float
    scores: list[np.ndarray] | None = None
    """Per question: each option's mean held-out score (the ensemble's vote)."""

    @property
    def flagged(self) -> np.ndarray:
        """Boolean mask: predictability >= tau."""
        p = np.nan_to_num(self.predictability, nan=-1.0)
        return p >= self.tau


class AFLite:
    """Predictability scores from an ensemble of linear models over random partitions.

    Parameters (defaults in the paper's range): ``n_models`` (64) linear models, each
    trained on a random ``train_fraction`` of the groups; items with predictability
    >= ``tau`` (0.75) are flagged. ``n_components`` caps the feature dimension (SVD),
    ``l2`` is the ridge penalty, ``features`` is "embeddings" or "bow", ``unit`` how
    options are embedded (see :func:`curation.option_features.embed_options`).
    """

    name = "aflite"
    learned = True

    def __init__(
        self,
        n_models: int = 64,
        train_fraction: float = 0.5,
        tau: float = 0.75,
        n_components: int = 128,
        l2: float = 1.0,
        features: str = "embeddings",
        embedder: Any = None,
        seed: int = 0,
        unit: str = DEFAULT_EMBED_UNIT,
    ) -> None:
        if not (isinstance(n_models, int) and n_models >= 1):
            raise ConfigError(f"AFLite: n_models={n_models!r}; use a positive integer (e.g. 64)")
        if not (0.0 < train_fraction < 1.0):
            raise ConfigError(
                f"AFLite: train_fraction={train_fraction!r}; use a fraction strictly between "
                "0 and 1 (e.g. 0.5)"
            )
        if not (0.0 < tau <= 1.0):
            raise ConfigError(f"AFLite: tau={tau!r}; use a threshold in (0, 1] (e.g. 0.75)")
        if not (isinstance(n_components, int) and n_components >= 2):
            raise ConfigError(f"AFLite: n_components={n_components!r}; use an integer >= 2")
        if l2 <= 0:
            raise ConfigError(f"AFLite: l2={l2!r}; use a positive ridge penalty")
        if features not in ("embeddings", "bow"):
            raise ConfigError(f"AFLite: features={features!r}; use 'embeddings' or 'bow'")
        if unit not in ("option", "clause"):
            raise ConfigError(f"AFLite: unit={unit!r}; use 'option' or 'clause'")
        self.unit = unit
        self.n_models = n_models
        self.train_fraction = float(train_fraction)
        self.tau = float(tau)
        self.n_components = n_components
        self.l2 = float(l2)
        self.features = features
        self.embedder = embedder
        self.seed = seed

    def _features(self, questions: Sequence[Question]) -> np.ndarray:
        owner = _owner(questions)
        texts = [o for q in questions for o in q.options]
        rel = relational_features(questions)
        if self.features == "embeddings":
            if self.embedder is None:
                from curation.embeddings import Embedder

                self.embedder = Embedder()
            x = embed_options(self.embedder, texts, self.unit).astype(np.float64)
            x = np.hstack([x, x - _others_mean(x, owner, len(questions))])
        else:
            h = _hasher(2**10).transform(texts)
            h = (h - _others_mean(h, owner, len(questions))).tocsr()
            gram = np.asarray((h.T @ h).todense())
            _, vecs = np.linalg.eigh(gram)
            x = np.asarray(h @ vecs[:, ::-1][:, : self.n_components])
        x = x - x.mean(axis=0)
        if x.shape[1] > self.n_components and x.shape[0] > self.n_components:
            _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 4000)], full_matrices=False)
            x = x @ vt[: self.n_components].T
        rel = (rel - rel.mean(axis=0)) / np.maximum(rel.std(axis=0), 1e-9)
        return np.hstack([x, rel, np.ones((len(x), 1))])

    def predictability(self, questions: Sequence[Question]) -> AFLiteResult:
        """Run the ensemble; see :class:`AFLiteResult`."""
        _check_questions(questions, "AFLite.predictability")
        n = len(questions)
        if n == 0:
            return AFLiteResult(np.zeros(0), np.zeros(0, int), float("nan"), self.tau)
        x = self._features(questions)
        owner = _owner(questions)
        y = np.concatenate(
            [(np.arange(len(q.options)) == q.key_index).astype(float) for q in questions]
        )
        groups = fold_groups(questions)
        uniq = sorted(set(groups))
        gidx = _index(groups)
        units = len(uniq) if len(uniq) >= 2 else n
        unit_of = gidx if len(uniq) >= 2 else np.arange(n)
        rng = np.random.default_rng(self.seed)
        hits = np.zeros(n)
        held = np.zeros(n, dtype=int)
        score_sum = np.zeros(len(owner))
        n_train = min(units - 1, max(1, round(self.train_fraction * units)))
        eye = self.l2 * np.eye(x.shape[1])
        for _ in range(self.n_models):
            train_units = rng.choice(units, size=n_train, replace=False)
            in_train = np.zeros(units, dtype=bool)
            in_train[train_units] = True
            q_train = in_train[unit_of]
            rows = q_train[owner]
            xt = x[rows]
            w = np.linalg.solve(xt.T @ xt + eye, xt.T @ (y[rows] - 0.25))
            test_q = np.flatnonzero(~q_train)
            test_rows = ~rows
            s = x[test_rows] @ w
            score_sum[test_rows] += s
            # per held-out question (rows are grouped by question, in order)
            starts = np.flatnonzero(np.r_[True, np.diff(owner[test_rows]) != 0])
            seg = np.cumsum(np.r_[True, np.diff(owner[test_rows]) != 0]) - 1
            top = s >= np.maximum.reduceat(s, starts)[seg] - 1e-12
            n_top = np.add.reduceat(top.astype(float), starts)
            key_top = np.add.reduceat((top & (y[test_rows] == 1)).astype(float), starts)
            hits[test_q] += key_top / n_top
            held[test_q] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            pred = np.where(held > 0, hits / np.maximum(held, 1), np.nan)
        acc = float(hits.sum() / held.sum()) if held.sum() else float("nan")
        mean = score_sum / np.maximum(held[owner], 1)
        bounds = np.concatenate([[0], np.cumsum([len(q.options) for q in questions])])
        scores = [mean[bounds[i] : bounds[i + 1]] for i in range(n)]
        return AFLiteResult(pred, held, acc, self.tau, scores)


class AFLiteAdversary(Adversary):
    """AFLite's ensemble as an adversary: each option's mean held-out score.

    Only meaningful held out, so :func:`curation.adversary_base.cross_fit_scores` runs the
    ensemble (its own random group partitions) instead of the usual folds.
    """

    learned = True

    def __init__(self, aflite: AFLite | None = None, name: str = "aflite") -> None:
        self.aflite = aflite or AFLite()
        self.name = name
        self.result_: AFLiteResult | None = None

    def clone(self) -> AFLiteAdversary:
        return AFLiteAdversary(self.aflite, self.name)

    def fit(self, questions: Sequence[Question]) -> AFLiteAdversary:
        raise ConfigError(
            "aflite cannot be fitted on a separate train set; it scores held-out partitions "
            "of the questions themselves (leave it out when using --train)"
        )

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        return self.cross_fit(questions, np.zeros(len(questions), dtype=int))

    def cross_fit(self, questions: Sequence[Question], folds: np.ndarray) -> list[np.ndarray]:
        self.result_ = self.aflite.predictability(questions)
        return list(self.result_.scores or [])


def _index(groups: list[str]) -> np.ndarray:
    lookup = {g: i for i, g in enumerate(sorted(set(groups)))}
    return np.array([lookup[g] for g in groups])
