"""Per-option text features shared by the option-reading adversaries and AFLite.

Tokens, the relational features of an option against the other options of its set, a
hashed n-gram vectoriser, the mean of the other options' rows, and option embeddings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.records import Question

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


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


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


def _hasher(n_features: int, analyzer: Callable[[str], list[str]] | str = "word") -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    kw: dict[str, Any] = {"n_features": n_features, "alternate_sign": False, "norm": "l2"}
    if analyzer == "word":
        kw.update(ngram_range=(1, 2), token_pattern=r"[a-z0-9]+", lowercase=True)
    else:
        kw["analyzer"] = analyzer
    return HashingVectorizer(**kw)


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
