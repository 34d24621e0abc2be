"""Text-only adversaries: functions of an MCQ's text that try to pick the key.

Every adversary has the same small interface (scikit-learn style)::

    adv.fit(questions) -> adv          # no-op for zero-shot heuristics
    adv.score(questions) -> [np.ndarray]   # one score per option, higher = more likely key

Zero-shot heuristics (``learned = False``) read only the question being scored.
Learned adversaries (``learned = True``) are always evaluated cross-fitted with
:func:`cross_fit_scores`: the questions of a patient (else slide) are scored by a model
that never saw that patient or slide.

The options-only learners see *relational* features (an option against the other options
of its set: centrality, unique tokens, length rank, its n-grams minus the set's mean),
because the known artifact of the official release is relational: the key is the centre
of its option set.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.errors import ConfigError
from curation.records import LETTERS, Question

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP_WORDS = (
    "a an the of and or in on at to is are be by with for as from this that these those "
    "it its which what there their than then any all no not"
)
_STOP = frozenset(_STOP_WORDS.split())


def tokens(text: str, drop_stopwords: bool = False) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    toks = _TOKEN.findall(text.lower())
    return [t for t in toks if t not in _STOP] if drop_stopwords else toks


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


# --------------------------------------------------------------------------- heuristics


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


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


# --------------------------------------------------------------------------- learned


def relational_features(questions: Sequence[Question], with_question: bool = False) -> np.ndarray:
    """Dense per-option features of an option against the others in its set.

    Rows follow options question by question. Columns: Jaccard centrality, its z-score and
    is-max flag within the set, tokens unique to the option, tokens shared with every other
    option, length (chars) z-score, is-longest, is-shortest, and (``with_question``)
    question overlap and its is-max flag.
    """
    rows: list[list[float]] = []
    for q in questions:
        sets = [set(tokens(o)) for o in q.options]
        k = len(sets)
        cent = np.array(
            [
                sum(_jaccard(sets[i], sets[j]) for j in range(k) if j != i) / (k - 1)
                for i in range(k)
            ]
        )
        lens = np.array([len(o) for o in q.options], dtype=float)
        counts = Counter(t for s in sets for t in s)
        uniq = np.array([sum(1 for t in s if counts[t] == 1) for s in sets], dtype=float)
        shared = np.array([sum(1 for t in s if counts[t] == k) for s in sets], dtype=float)
        feats = [
            cent,
            _z(cent),
            (cent >= cent.max() - 1e-12).astype(float),
            uniq,
            shared / max(1.0, max(len(s) for s in sets)),
            _z(lens),
            (lens >= lens.max()).astype(float),
            (lens <= lens.min()).astype(float),
        ]
        if with_question:
            qt = set(tokens(q.question, drop_stopwords=True))
            ov = np.array([len(qt & s) for s in sets], dtype=float)
            feats += [ov, (ov >= ov.max()).astype(float) if ov.max() > 0 else np.zeros(k)]
        rows.extend(np.stack(feats, axis=1).tolist())
    return np.asarray(rows, dtype=float).reshape(len(rows), -1)


def _z(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 1e-12 else np.zeros_like(v)


def _owner(questions: Sequence[Question]) -> np.ndarray:
    return np.repeat(np.arange(len(questions)), [len(q.options) for q in questions])


def _others_mean(x: Any, owner: np.ndarray, n: int) -> Any:
    """Per row: mean of the other rows of the same question (sparse or dense)."""
    ind = sp.csr_matrix(
        (np.ones(len(owner)), (np.arange(len(owner)), owner)), shape=(len(owner), n)
    )
    sums = ind.T @ x
    k = np.bincount(owner, minlength=n).astype(float)
    scale = 1.0 / np.maximum(k[owner] - 1, 1)
    if sp.issparse(x):
        return sp.diags(scale) @ (ind @ sums - x)
    return (np.asarray(ind @ sums) - x) * scale[:, None]


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
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="liblinear")
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


def _hasher(n_features: int, analyzer: Callable[[str], list[str]] | str = "word") -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    kw: dict[str, Any] = {"n_features": n_features, "alternate_sign": False, "norm": "l2"}
    if analyzer == "word":
        kw.update(ngram_range=(1, 2), token_pattern=r"[a-z0-9]+", lowercase=True)
    else:
        kw["analyzer"] = analyzer
    return HashingVectorizer(**kw)


class BagOfWordsOptions(LinearOptionModel):
    """Logistic regression on hashed n-grams of the option alone, plus relational features
    (its n-grams minus the mean of the other options', and :func:`relational_features`)."""

    def __init__(
        self,
        n_features: int = 2**16,
        C: float = 1.0,
        max_iter: int = 300,
        name: str = "bow-options",
    ) -> None:
        super().__init__(C=C, max_iter=max_iter, name=name)
        if not (isinstance(n_features, int) and n_features >= 16):
            raise ConfigError(f"{name}: n_features={n_features!r}; use an integer >= 16")
        self.n_features = n_features

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


EMBED_UNITS = ("option", "clause")
DEFAULT_EMBED_UNIT = "clause"
"""Clause level by default: as accurate as whole options on the benchmarks measured
(benchmarks/bench_screen.py) and several times fewer texts to embed."""
_CLAUSE = re.compile(r"[,;:]|\b(?:and|while|but)\b", re.I)


def embed_options(
    embedder: Any, texts: Sequence[str], unit: str = DEFAULT_EMBED_UNIT
) -> np.ndarray:
    """Embeddings of option texts: whole (``"option"``) or mean of clauses (``"clause"``)."""
    if unit == "option":
        return np.asarray(embedder.encode(list(texts)), dtype=np.float32)
    parts = [[c.strip() for c in _CLAUSE.split(t) if c.strip()] or [t] for t in texts]
    uniq = sorted({c for p in parts for c in p})
    index = {c: i for i, c in enumerate(uniq)}
    vecs = np.asarray(embedder.encode(uniq), dtype=np.float32) if uniq else np.zeros((0, 1))
    out = np.stack([vecs[[index[c] for c in p]].mean(axis=0) for p in parts])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


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


# --------------------------------------------------------------------------- evaluation


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


# --------------------------------------------------------------------------- registry

HEURISTICS: tuple[str, ...] = ("centrality", "longest", "shortest", "overlap")
LEARNED: tuple[str, ...] = ("position", "bow-options", "bow-qa", "embed-lr")
ADVERSARY_NAMES: tuple[str, ...] = (*HEURISTICS, "centrality-tfidf", *LEARNED, "aflite")


def make_adversary(
    name: str, embedder: Any = None, embed_unit: str = DEFAULT_EMBED_UNIT
) -> Adversary:
    """One adversary by registry name (see :data:`ADVERSARY_NAMES`)."""
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
        raise ConfigError(f"unknown adversary {name!r}; choose from {', '.join(ADVERSARY_NAMES)}")
    return factories[name]()


def _aflite(embedder: Any, embed_unit: str = DEFAULT_EMBED_UNIT) -> Adversary:
    from curation.aflite import AFLite, AFLiteAdversary

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
