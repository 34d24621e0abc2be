"""The context reader: each option scored against the other questions of its zoom path
and patient.

A published split shows every question of a zoom path and of a patient together. When
one question states a fact as given ("Given that horn cysts are seen at low power ...")
that another question on the path tests, or when a patient's diagnosis questions offer
option lists that intersect to one diagnosis, the other rows answer the row. This
adversary reads, for each row, the stems and options of the *other* rows of the same
``path_id`` and of the same patient (else slide), never their answers or rationales
(:class:`curation.published.PublicRow`), and computes per option, for each of the two
contexts:

- TF-IDF cosine of the option with the context stems (pooled, and the best single stem);
- the share of the option's distinctive words (those not in every option of its row)
  found in the context stems; words in agreeing polarity (both in negated clauses, or
  both not) and in disagreeing polarity;
- recurrence of the option among the context rows' options (the best cosine per context
  row, averaged; the share of context rows with a near-identical option);
- recurrence of each of its distinctive clauses (with its polarity) among the context
  rows' option clauses, over all rows and over rows of the same question type (a
  patient's diagnosis questions whose option lists intersect in one diagnosis), and the
  share of the clause's word bigrams found in context stems in agreeing and in
  disagreeing polarity (a premise stated as given elsewhere, negation handled);

each also centred on the row's options and as an is-top flag, and crossed with the
question type. No word identities enter the model (only overlaps), so nothing names this
package's templates: it works on any MCQ file with ``path_id`` (the official release has
it) or a patient/slide column. Logistic regression, cross-fitted by patient and set or
trained on another benchmark (``--train``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.adversary_base import LinearOptionModel
from curation.metadata_adversaries import clause_polarity
from curation.option_features import tokens
from curation.published import PublicRow, groups_of, public_rows
from curation.records import QUESTION_TYPES, Question

CONTEXTS: tuple[str, ...] = ("path_id", "unit")
"""The two contexts: the zoom path, and the patient (else slide)."""

_BASE = (
    "cos_pooled",
    "cos_best",
    "words",
    "agree",
    "disagree",
    "recur_mean",
    "recur_exact",
    "clause_recur_max",
    "clause_recur_mean",
    "clause_recur_type",
    "phrase_agree",
    "phrase_disagree",
)

Clause = tuple[str, bool]  # (content words joined, negated)


def _polar_sets(text: str) -> tuple[set[str], set[str]]:
    pos, neg = set(), set()
    for toks, negated in clause_polarity(text):
        (neg if negated else pos).update(toks)
    return pos, neg


def _bigrams(words: list[str]) -> set[str]:
    if len(words) < 2:
        return set(words)
    return {f"{a} {b}" for a, b in pairwise(words)}


def _tfidf(rows: Sequence[PublicRow]) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    stems = [r.question for r in rows]
    opts = [o for r in rows for o in r.options]
    vec = TfidfVectorizer(token_pattern=r"[a-z0-9]+", lowercase=True, stop_words="english")
    try:
        vec.fit(stems + opts)
    except ValueError:  # only stop words
        return sp.csr_matrix((len(stems), 1)), sp.csr_matrix((len(opts), 1))
    return vec.transform(stems).tocsr(), vec.transform(opts).tocsr()


class _Prepared:
    """Per-row and per-option token sets, polarity and TF-IDF rows of a split."""

    def __init__(self, rows: Sequence[PublicRow]) -> None:
        self.rows = rows
        self.stem_tfidf, self.opt_tfidf = _tfidf(rows)
        self.starts = np.concatenate([[0], np.cumsum([len(r.options) for r in rows])])
        self.stem_polar = [_polar_sets(r.question) for r in rows]
        self.opt_polar: list[tuple[set[str], set[str]]] = []
        self.distinct: list[set[str]] = []
        self.opt_clauses: list[list[Clause]] = []
        self.opt_distinct_clauses: list[list[Clause]] = []
        self.row_clauses: list[set[Clause]] = []
        self.stem_grams: list[tuple[set[str], set[str]]] = []
        for r in rows:
            pos_g: set[str] = set()
            neg_g: set[str] = set()
            for words, negated in clause_polarity(r.question):
                (neg_g if negated else pos_g).update(_bigrams(words))
            self.stem_grams.append((pos_g, neg_g))
            clauses = [
                [(" ".join(w), neg) for w, neg in clause_polarity(o) if w] for o in r.options
            ]
            shared = set.intersection(*(set(c) for c in clauses)) if clauses else set()
            self.row_clauses.append({c for cs in clauses for c in cs})
            for cs in clauses:
                self.opt_clauses.append(cs)
                self.opt_distinct_clauses.append([c for c in cs if c not in shared])
            toks = [set(tokens(o, drop_stopwords=True)) for o in r.options]
            common = set.intersection(*toks) if toks else set()
            for o, t in zip(r.options, toks):
                self.opt_polar.append(_polar_sets(o))
                self.distinct.append(t - common)


def _context_block(prep: _Prepared, column: str) -> np.ndarray:
    """Dense :data:`_BASE` features per option for one context."""
    rows = prep.rows
    n_opts = int(prep.starts[-1])
    dense = np.zeros((n_opts, len(_BASE)))
    for members in groups_of(rows, column).values():
        if len(members) < 2:
            continue
        stems = prep.stem_tfidf[members]
        opt_idx = np.concatenate([np.arange(prep.starts[i], prep.starts[i + 1]) for i in members])
        opt_owner = np.concatenate(
            [np.full(prep.starts[i + 1] - prep.starts[i], m) for m, i in enumerate(members)]
        )
        opts = prep.opt_tfidf[opt_idx]
        cos_stem = np.asarray((opts @ stems.T).todense())  # option x member stem
        cos_opt = np.asarray((opts @ opts.T).todense())  # option x member option
        gram = np.asarray((stems @ stems.T).todense())
        tot_sq = gram.sum()
        # |sum of the other stems| per member, from the Gram matrix
        ctx_norm = np.sqrt(np.maximum(tot_sq - 2 * gram.sum(axis=1) + np.diag(gram), 0.0))
        pooled = (cos_stem.sum(axis=1) - cos_stem[np.arange(len(opt_idx)), opt_owner]) / (
            np.maximum(ctx_norm[opt_owner], 1e-12)
        )
        starts = np.flatnonzero(np.r_[True, np.diff(opt_owner) != 0])
        best_opt = np.maximum.reduceat(cos_opt, starts, axis=1)  # option x member
        self_mask = np.arange(len(members))[None, :] == opt_owner[:, None]
        cos_stem_o = np.where(self_mask, -np.inf, cos_stem).max(axis=1)
        best_others = np.where(self_mask, 0.0, best_opt)
        recur_mean = best_others.sum(axis=1) / (len(members) - 1)
        recur_exact = ((best_opt >= 0.999) & ~self_mask).sum(axis=1) / (len(members) - 1)
        pos_count: Counter[str] = Counter()
        neg_count: Counter[str] = Counter()
        for i in members:
            pos, neg = prep.stem_polar[i]
            pos_count.update(pos)
            neg_count.update(neg)
        clause_rows: Counter[Clause] = Counter()
        clause_type: Counter[tuple[str, Clause]] = Counter()
        type_rows: Counter[str] = Counter()
        gram_pos: Counter[str] = Counter()
        gram_neg: Counter[str] = Counter()
        for i in members:
            qt = rows[i].question_type
            type_rows[qt] += 1
            clause_rows.update(prep.row_clauses[i])
            clause_type.update((qt, c) for c in prep.row_clauses[i])
            gram_pos.update(prep.stem_grams[i][0])
            gram_neg.update(prep.stem_grams[i][1])
        for a, (row_o, m) in enumerate(zip(opt_idx, opt_owner)):
            i = members[m]
            qt = rows[i].question_type
            own_clauses = prep.row_clauses[i]
            recs, recs_type, agree_p, disagree_p = [], [], [0.0], [0.0]
            own_gp, own_gn = prep.stem_grams[i]
            for c in prep.opt_distinct_clauses[row_o]:
                own = int(c in own_clauses)
                recs.append((clause_rows[c] - own) / (len(members) - 1))
                n_type = type_rows[qt] - 1
                if n_type > 0:
                    recs_type.append((clause_type[(qt, c)] - own) / n_type)
                grams = _bigrams(c[0].split())
                if grams:
                    same = gram_neg if c[1] else gram_pos
                    other = gram_pos if c[1] else gram_neg
                    own_same = own_gn if c[1] else own_gp
                    own_other = own_gp if c[1] else own_gn
                    agree_p.append(sum(same[g] - (g in own_same) > 0 for g in grams) / len(grams))
                    disagree_p.append(
                        sum(other[g] - (g in own_other) > 0 for g in grams) / len(grams)
                    )
            clause_feats = [
                max(recs, default=0.0),
                float(np.mean(recs)) if recs else 0.0,
                max(recs_type, default=0.0),
                max(agree_p),
                max(disagree_p),
            ]
            own_pos, own_neg = prep.stem_polar[members[m]]
            dist = prep.distinct[row_o]
            o_pos, o_neg = prep.opt_polar[row_o]
            o_pos, o_neg = o_pos & dist, o_neg & dist
            ctx_pos = {t for t in o_pos | o_neg if pos_count[t] - (t in own_pos) > 0}
            ctx_neg = {t for t in o_pos | o_neg if neg_count[t] - (t in own_neg) > 0}
            agree = (o_pos & ctx_pos) | (o_neg & ctx_neg)
            disagree = (o_pos & ctx_neg) | (o_neg & ctx_pos)
            found = dist & (ctx_pos | ctx_neg)
            dense[row_o] = [
                pooled[a],
                cos_stem_o[a],
                len(found) / max(1, len(dist)),
                len(agree),
                len(disagree),
                recur_mean[a],
                recur_exact[a],
                *clause_feats,
            ]
    return dense


def _relative(x: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(owner, minlength=n).astype(float)
    sums = np.zeros((n, x.shape[1]))
    np.add.at(sums, owner, x)
    centred = x - sums[owner] / counts[owner, None]
    top = np.full((n, x.shape[1]), -np.inf)
    np.maximum.at(top, owner, x)
    is_top = ((x >= top[owner] - 1e-12) & (x > 0)).astype(float)
    return centred, is_top


def context_features(rows: Sequence[PublicRow]) -> np.ndarray:
    """Dense features per option (both contexts, raw / centred / is-top, crossed with the
    question type), rows question by question."""
    n = len(rows)
    owner = np.repeat(np.arange(n), [len(r.options) for r in rows])
    n_cols = len(CONTEXTS) * 3 * len(_BASE) * (1 + len(QUESTION_TYPES))
    if n == 0:
        return np.zeros((0, n_cols))
    prep = _Prepared(rows)
    blocks = []
    for column in CONTEXTS:
        dense = _context_block(prep, column)
        centred, is_top = _relative(dense, owner, n)
        blocks += [dense, centred, is_top]
    base = np.hstack(blocks)
    qtypes = np.array([rows[i].question_type for i in owner])
    crossed = [base] + [base * (qtypes == t)[:, None] for t in QUESTION_TYPES]
    return np.hstack(crossed)


class ContextReader(LinearOptionModel):
    """``context-lr``: logistic regression on :func:`context_features`."""

    reads_dataset = True

    def __init__(self, C: float = 1.0, max_iter: int = 500, name: str = "context-lr") -> None:
        super().__init__(C=C, max_iter=max_iter, name=name)

    def features(self, questions: Sequence[Question]) -> np.ndarray:
        return context_features(public_rows(questions))
