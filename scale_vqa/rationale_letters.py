"""Which option letters a rationale names, and which it calls right (release integrity check).

The official release balanced answer letters by permuting options without rewriting the
rationales, so a rationale may endorse a letter other than the key. :func:`rationale_letter_claims`
finds those claims without mistaking the English article "A" for a letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENDORSE_VERBS = frozenset(
    [
        "match",
        "matches",
        "pairs",
        "pair",
        "preserves",
        "keeps",
        "retains",
        "maintains",
        "fits",
        "captures",
        "reflects",
        "describes",
        "aligns",
        "corresponds",
        "satisfies",
        "reproduces",
        "combines",
        "mirrors",
        "integrates",
        "supports",
        "summarizes",
        "summarises",
    ]
)
_REJECT_VERBS = frozenset(
    [
        "swaps",
        "changes",
        "replaces",
        "substitutes",
        "alters",
        "contradicts",
        "adds",
        "removes",
        "drops",
        "omits",
        "introduces",
        "misstates",
        "misattributes",
        "misplaces",
        "fails",
        "lacks",
        "conflicts",
        "overstates",
        "understates",
        "differs",
        "deviates",
        "exchanges",
        "inverts",
        "reverses",
        "negates",
        "excludes",
    ]
)
_ADVERBS = frozenset(
    [
        "only",
        "best",
        "most",
        "more",
        "closely",
        "also",
        "alone",
        "uniquely",
        "fully",
        "directly",
        "exactly",
        "still",
        "clearly",
        "explicitly",
        "specifically",
        "simply",
        "instead",
        "likewise",
        "similarly",
        "therefore",
        "thus",
        "again",
        "precisely",
        "faithfully",
    ]
)
_POSITIVE_ADVERBS = frozenset({"correctly", "accurately", "properly", "appropriately"})
_NEGATIVE_ADVERBS = frozenset({"incorrectly", "wrongly", "falsely", "erroneously", "not"})
_COPULAS = frozenset({"is", "remains", "was", "appears", "seems", "stays"})
_POSITIVE_PREDICATES = frozenset(
    [
        "correct",
        "right",
        "best",
        "only",
        "key",
        "answer",
        "true",
        "accurate",
        "valid",
        "supported",
        "consistent",
        "compatible",
        "preferred",
        "appropriate",
    ]
)
_NEGATIVE_PREDICATES = frozenset(
    [
        "incorrect",
        "wrong",
        "false",
        "invalid",
        "unsupported",
        "inconsistent",
        "incompatible",
        "not",
        "excluded",
        "ruled",
        "implausible",
    ]
)
_PREFIXES = frozenset({"option", "options", "choice", "choices", "answer", "answers"})
_NOT_LETTER_AFTER = frozenset(
    [
        "type",
        "types",
        "grade",
        "grades",
        "class",
        "group",
        "stage",
        "zone",
        "level",
        "hepatitis",
        "vitamin",
        "protein",
        "complex",
        "category",
        "pattern",
        "panel",
        "figure",
        "fig",
        "table",
        "appendix",
        "lane",
        "site",
        "area",
        "part",
        "section",
    ]
)
_LETTER = re.compile(r"(?<![\w\-/])([A-D])(?![\w\-/])")
_WORD = re.compile(r"[A-Za-z]+")
_CORRECT_IS = re.compile(
    r"\b(?:correct|right|best|true)\s+(?:answer|option|choice)\s*(?:is|:|=)\s*"
    r"(?:option\s+)?\(?([A-D])\b",
    re.I,
)


@dataclass(frozen=True)
class LetterClaims:
    """Option letters a rationale names: all of them, those it calls right, those it rejects."""

    mentioned: frozenset[str]
    endorsed: frozenset[str]
    rejected: frozenset[str]


def _classify_after(after: str) -> str | None:
    """'endorse', 'reject', 'mention' (letter followed by punctuation) or None (not a letter)."""
    stripped = after.lstrip(")")
    if not stripped.strip() or re.match(r"\s*[,;:.!?()\[\]'\"]", stripped):
        return "mention"
    words = [w.lower() for w in _WORD.findall(stripped[:120])][:6]
    negative = False
    i = 0
    while i < len(words) and (
        words[i] in _ADVERBS or words[i] in _POSITIVE_ADVERBS or words[i] in _NEGATIVE_ADVERBS
    ):
        if words[i] in _NEGATIVE_ADVERBS:
            negative = True
        elif words[i] in _POSITIVE_ADVERBS and i + 1 < len(words):
            return "reject" if negative else "endorse"
        i += 1
    if i >= len(words):
        return None
    verb = words[i]
    if verb in _ENDORSE_VERBS:
        return "reject" if negative else "endorse"
    if verb in _REJECT_VERBS:
        return "reject"
    if verb in {"does", "do", "did", "cannot"}:
        return "reject" if verb == "cannot" or "not" in words[i + 1 : i + 2] else "mention"
    if verb in _COPULAS:
        for w in words[i + 1 :]:
            if w in {"the", "a", "an", "also", "clearly", "most", "still"}:
                continue
            if w in _NEGATIVE_PREDICATES:
                return "reject"
            if w in _POSITIVE_PREDICATES:
                return "endorse"
            return "mention"
        return "mention"
    return None


def rationale_letter_claims(text: str) -> LetterClaims:
    """Which option letters ``text`` names, and which it names as the right/matching one.

    Matches the patterns of the release ("Only A matches", "Option B pairs", "A best
    matches ...", "A preserves ...", "from A (B swaps ...)", "the correct answer is C").
    A capital "A" used as an article ("A matching feature is present", "A smooth muscle
    component ...") is not a letter: a bare letter counts only when a prefix (option,
    choice, answer, only), brackets, punctuation or a verb from a fixed list follows
    or precedes it.
    """
    text = text or ""
    mentioned: set[str] = set()
    endorsed: set[str] = set()
    rejected: set[str] = set()
    for m in _CORRECT_IS.finditer(text):
        mentioned.add(m.group(1))
        endorsed.add(m.group(1))
    for m in _LETTER.finditer(text):
        letter = m.group(1)
        before = text[: m.start()]
        prev_words = [w.lower() for w in _WORD.findall(before[-40:])]
        prev = prev_words[-1] if prev_words else ""
        prefixed = prev in _PREFIXES and not before.endswith(("_", "-"))
        bracketed = before.endswith("(") and text[m.end() : m.end() + 1] == ")"
        only = prev == "only" or (prefixed and len(prev_words) > 1 and prev_words[-2] == "only")
        if prev in _NOT_LETTER_AFTER and not prefixed:
            continue
        kind = _classify_after(text[m.end() :])
        if kind is None and not (prefixed or bracketed or only):
            continue
        mentioned.add(letter)
        if kind == "reject":
            rejected.add(letter)
        elif kind == "endorse" or only:
            endorsed.add(letter)
    return LetterClaims(frozenset(mentioned), frozenset(endorsed), frozenset(rejected))
