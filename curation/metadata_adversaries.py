"""Metadata against the key: identifiers and row order read as an attacker would.

Two adversaries that read only :class:`curation.published.PublicRow` views:

- :class:`IdHashRule` (``meta-hash``, zero-shot): the exhaustive rule an attacker tries
  first on hex identifiers: "the id is a hash over fields that include the answer". It
  searches common payloads (subsets of the published columns in schema order with the
  answer inserted as the letter, the index or the option text; JSON list or joined with a
  separator; sha256, sha1, md5, blake2b; the id a prefix of the digest) on a few rows,
  keeps the rule that matches one candidate letter on each of them, then answers every row
  with the letter whose payload hashes to the row's id.
- :class:`MetadataClassifier` (``meta-lr``, learned): logistic regression on hashed
  features that cross *where the row is* (its rank among the rows of its complementary
  set, of its zoom path and of its patient, by position; its absolute position modulo the
  option count) with *what each option is* (its letter, its distinctive words, which of
  its clauses are negated), plus character n-grams of ``id``, ``set_id``, ``path_id`` and
  ``template_id`` crossed with the letter. It learns rules such as "a set's rows are in
  cell order and the first cell's key is the all-positive wording" without being told
  them; cross-fitted, or trained on another benchmark.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from curation.adversary_base import (
    Adversary,
    HashedOptionModel,
    _check_questions,
)
from curation.errors import ConfigError
from curation.option_features import _CLAUSE, tokens
from curation.published import PUBLISHED_FIELDS, PublicRow, public_rows, ranks_in
from curation.records import LETTERS, Question

_HEX = re.compile(r"^[0-9a-f]{8,}$")
_ANSWER = "<answer>"
_OPTIONAL = tuple(f for f in PUBLISHED_FIELDS if f not in ("id", "question", "options"))
_DIGESTS: tuple[str, ...] = ("sha256", "sha1", "md5", "blake2b")
_ENCODINGS: tuple[str, ...] = ("json", "json-ascii", "|", "\t", "")
_ANSWER_FORMS: tuple[str, ...] = ("letter", "index", "text")

_NEGATION_WORDS = (
    "no not absent without lacks lack lacking none negative nor never cannot neither "
    "longer missing unremarkable free"
)
NEGATIONS = frozenset(_NEGATION_WORDS.split())
"""Words that mark a clause as negated (the context reader and ``meta-lr`` use them)."""


def clause_polarity(text: str) -> list[tuple[list[str], bool]]:
    """Clauses of ``text`` (split at commas, semicolons, "and", "while", "but") as
    (content tokens, negated) pairs."""
    out = []
    for part in _CLAUSE.split(text):
        toks = tokens(part)
        if toks:
            neg = any(t in NEGATIONS for t in toks)
            out.append(([t for t in tokens(part, drop_stopwords=True) if t not in NEGATIONS], neg))
    return out


# --------------------------------------------------------------------------- id hash rule


def _value(row: PublicRow, field: str) -> Any:
    value = getattr(row, field)
    return list(value) if isinstance(value, tuple) else value


def _encode(parts: list[Any], encoding: str) -> bytes:
    if encoding == "json":
        return json.dumps(parts, ensure_ascii=False).encode("utf-8")
    if encoding == "json-ascii":
        return json.dumps(parts).encode("utf-8")
    text = [p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in parts]
    return encoding.join(text).encode("utf-8")


def _answer_value(row: PublicRow, j: int, form: str) -> Any:
    if form == "letter":
        return LETTERS[j]
    if form == "index":
        return j
    return row.options[j]


class HashRule:
    """One candidate payload: fields (with the answer placeholder), answer form, encoding,
    digest. :meth:`letters` gives the option indices whose payload hashes to the id."""

    def __init__(self, fields: tuple[str, ...], form: str, encoding: str, digest: str) -> None:
        self.fields, self.form, self.encoding, self.digest = fields, form, encoding, digest

    def payload(self, row: PublicRow, j: int) -> bytes:
        parts = [
            _answer_value(row, j, self.form) if f == _ANSWER else _value(row, f)
            for f in self.fields
        ]
        return _encode(parts, self.encoding)

    def letters(self, row: PublicRow) -> list[int]:
        rid = row.id.lower()
        return [
            j
            for j in range(len(row.options))
            if hashlib.new(self.digest, self.payload(row, j)).hexdigest().startswith(rid)
        ]

    def describe(self) -> str:
        fields = ", ".join("answer" if f == _ANSWER else f for f in self.fields)
        enc = {"|": "'|'-joined", "\t": "tab-joined", "": "concatenated"}.get(
            self.encoding, f"{self.encoding} list"
        )
        return f"{self.digest} of the {enc} [{fields}] (answer as {self.form})"


def _candidate_payloads() -> list[tuple[tuple[str, ...], str, str]]:
    out = []
    for n in range(len(_OPTIONAL) + 1):
        for extra in itertools.combinations(_OPTIONAL, n):
            fields = ("question", "options", _ANSWER, *extra)
            out += [(fields, form, enc) for form in _ANSWER_FORMS for enc in _ENCODINGS]
    return out


def find_hash_rule(rows: Sequence[PublicRow], probes: int = 4) -> HashRule | None:
    """The first candidate rule that gives exactly one letter on each of up to ``probes``
    rows with hex ids (None when ids are not hex or no candidate matches).

    Candidates: the question and options, the answer, and any subset of the other
    published columns in schema order (512 field lists) x 3 answer forms x 5 encodings x 4
    digests, about 30,000 rules, each tried with every letter on the first row.
    """
    hexed = [r for r in rows if _HEX.match(r.id.lower())][:probes]
    if not hexed:
        return None
    first = hexed[0]
    rid = first.id.lower()
    for fields, form, enc in _candidate_payloads():
        probe = HashRule(fields, form, enc, "sha256")
        payloads = [probe.payload(first, j) for j in range(len(first.options))]
        for digest in _DIGESTS:
            if any(hashlib.new(digest, p).hexdigest().startswith(rid) for p in payloads):
                rule = HashRule(fields, form, enc, digest)
                if all(len(rule.letters(r)) == 1 for r in hexed):
                    return rule
    return None


class IdHashRule(Adversary):
    """``meta-hash``: answer with the letter whose payload hashes to the row's id.

    ``rule_`` (after :meth:`score`) is the :class:`HashRule` found, or None; rows where
    it matches no letter score every option equally (chance).
    """

    reads_dataset = True

    learned = False

    def __init__(self, probes: int = 4, name: str = "meta-hash") -> None:
        if not (isinstance(probes, int) and probes >= 1):
            raise ConfigError(f"{name}: probes={probes!r}; use a positive integer")
        self.probes = probes
        self.name = name
        self.rule_: HashRule | None = None

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        rows = public_rows(questions)
        self.rule_ = find_hash_rule(rows, self.probes)
        out = []
        for r in rows:
            s = np.zeros(len(r.options))
            if self.rule_ is not None and _HEX.match(r.id.lower()):
                s[self.rule_.letters(r)] = 1.0
            out.append(s)
        return out


# --------------------------------------------------------------------------- learned


def _char_grams(text: str, n_max: int = 3) -> list[str]:
    text = text.lower()
    return [text[i : i + n] for n in range(1, n_max + 1) for i in range(len(text) - n + 1)]


def _rank_tag(rank: int, cap: int = 7) -> str:
    return "none" if rank < 0 else str(min(rank, cap))


def _option_parts(options: Sequence[str]) -> list[list[str]]:
    """Per option: its distinctive words (not in every option), clause polarity tags and
    its negation count."""
    toks = [set(tokens(o, drop_stopwords=True)) for o in options]
    common = set.intersection(*toks) if toks else set()
    out = []
    for o, t in zip(options, toks):
        clauses = clause_polarity(o)
        parts = [f"t:{w}" for w in sorted(t - common)]
        parts += [f"c{c}n{int(neg)}" for c, (_, neg) in enumerate(clauses)]
        parts.append(f"neg{sum(neg for _, neg in clauses)}")
        out.append(parts)
    return out


def metadata_tokens(rows: Sequence[PublicRow]) -> list[list[str]]:
    """Per option (question by question): the crossed metadata tokens of ``meta-lr``."""
    set_rank, set_size = ranks_in(rows, "set_id")
    path_rank, _ = ranks_in(rows, "path_id")
    unit_rank, _ = ranks_in(rows, "unit")
    out: list[list[str]] = []
    for i, r in enumerate(rows):
        k = len(r.options)
        where = {
            "set": _rank_tag(int(set_rank[i])),
            "path": _rank_tag(int(path_rank[i])),
            "unit": _rank_tag(int(unit_rank[i])),
            "pos": str(r.position % k),
        }
        ids = [f"id:{g}" for g in _char_grams(r.id)[:64]]
        ids += [f"set:{g}" for g in _char_grams(r.set_id)[:48]]
        ids += [f"path:{g}" for g in _char_grams(r.path_id)[:48]]
        ids.append(f"tpl:{r.template_id}")
        ids.append(f"size:{int(set_size[i])}")
        for j, parts in enumerate(_option_parts(r.options)):
            letter = f"L{j}"
            feats = [letter]
            for kind, tag in where.items():
                feats.append(f"{kind}{tag}|{letter}")
                feats += [f"{kind}{tag}|{p}" for p in parts]
            feats += [f"{t}|{letter}" for t in ids]
            out.append(feats)
    return out


def _hashed(docs: list[list[str]], n_features: int) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    analyzer: Callable[[list[str]], list[str]] = lambda d: d  # noqa: E731
    vec = HashingVectorizer(
        n_features=n_features, analyzer=analyzer, alternate_sign=False, norm="l2"
    )
    return vec.transform(docs)


class MetadataClassifier(HashedOptionModel):
    """``meta-lr``: logistic regression on :func:`metadata_tokens` (hashed)."""

    reads_dataset = True

    def __init__(
        self, n_features: int = 2**18, C: float = 1.0, max_iter: int = 300, name: str = "meta-lr"
    ) -> None:
        super().__init__(n_features, C=C, max_iter=max_iter, name=name)

    def features(self, questions: Sequence[Question]) -> Any:
        return sp.csr_matrix(_hashed(metadata_tokens(public_rows(questions)), self.n_features))
