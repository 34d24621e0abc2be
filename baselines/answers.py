"""Deterministic answer extraction from a model's free text.

Rules, first match wins (letters are upper-case and must name one of the options):

1. the last ``<answer>X</answer>`` tag (``X`` may be followed by ``.``, ``)`` or the option
   text, e.g. ``<answer>B. dermis</answer>``);
2. the last explicit statement ``answer: X`` / ``answer is X`` / ``answer is (X)``;
3. a reply that starts with a lettered option, ``B.`` / ``B)`` / ``(B)``, or is exactly one
   option's text;
4. parenthesised letters ``(X)`` when they all name the same option;
5. a lone letter at the very end (``... so B`` / ``B.``).

Anything else is unparseable: :func:`extract_answer` returns ``None`` and the evaluator
counts it as wrong and reports it; no answer is ever guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from curation.records import LETTERS

_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.IGNORECASE | re.DOTALL)
_TAG_LETTER = re.compile(r"^[\(\[]?([A-Z])[\)\]]?(?:[.:)\s]|$)")
_STATED = re.compile(
    r"\banswer(?:\s+is)?\s*[:\-]?\s*(?:option\s+)?[\(\[]?([A-Z])[\)\]]?(?![A-Za-z])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])(?:\s|$)")
_PAREN = re.compile(r"\(([A-Z])\)")
_TRAILING = re.compile(r"(?:^|[\s:])[\(\[]?([A-Z])[\)\]]?[.!]?\s*$")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().lower()


def extract_answer(text: str | None, n_options: int = 4, options: Sequence[str] = ()) -> str | None:
    """The chosen letter in ``text``, or ``None`` when no rule above applies unambiguously.

    ``n_options`` bounds the valid letters (4: ``A``-``D``); ``options`` (the option texts)
    enables rule 3's exact-text match.
    """
    if not text:
        return None
    valid = set(LETTERS[:n_options])

    def ok(letter: str | None) -> str | None:
        return letter if letter in valid else None

    tags = _TAG.findall(text)
    if tags:
        m = _TAG_LETTER.match(tags[-1])
        if m:
            return ok(m.group(1))
        norm = _norm(tags[-1])
        hits = [i for i, opt in enumerate(options) if _norm(opt) == norm]
        return LETTERS[hits[0]] if len(hits) == 1 and hits[0] < n_options else None
    stated = [m.group(1).upper() for m in _STATED.finditer(text) if m.group(1).isupper()]
    if stated:
        return ok(stated[-1])
    m = _LEADING.match(text)
    if m:
        return ok(m.group(1) or m.group(2))
    if options:
        norm = _norm(text)
        hits = [i for i, opt in enumerate(options) if _norm(opt) == norm]
        if len(hits) == 1 and hits[0] < n_options:
            return LETTERS[hits[0]]
    parens = {m.group(1) for m in _PAREN.finditer(text)}
    if len(parens) == 1:
        return ok(parens.pop())
    if parens:
        return None
    m = _TRAILING.search(text.strip())
    if m:
        return ok(m.group(1))
    return None
