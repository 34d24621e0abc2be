"""The text-quality gate: wording faults a pathologist would not sign, found in any question.

Each fault class is a small function ``text -> list[str]`` (or, for a stem with its
options, :func:`yes_no_mismatch`). :func:`question_problems` applies them to a question's
stem, options and rationale; the constraint checker ``text_quality``
(:func:`curation.constraints.check_all`) reports every hit. The generator never emits a
question with a hit. Classes:

- ``article_after_no``: "No a microfollicular pattern", "without an ..." is fine;
- ``doubled_preposition``: "with X with Y" (or "without ... without") in one clause;
- ``yes_no_stem``: a stem asking yes or no ("Do X and Y have ...?") answered by statements;
- ``contradiction``: a preserved state called absent ("an intact myoepithelial layer is
  absent", "no preserved lobular architecture"), or a loss called missing ("loss of nuclear
  polarity is missing");
- ``double_placement``: a phrase that names a place, placed again ("mitotic figures in
  glands within the myometrium");
- ``repeated_word``: "the the", "is is";
- ``unfilled_template``: a ``{FIELD}`` left in the text;
- ``spacing``: doubled spaces, a space before punctuation, leading or trailing spaces;
- ``stem_punctuation``: a stem that ends in neither "?" nor ".";
- ``doubled_scale``: "at low power ... at high power" in one clause of an option.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from curation.records import Question

_NO_ARTICLE = re.compile(r"\bno\s+(a|an|the)\b", re.I)
_DOUBLED_WITH = re.compile(r"\b(with|without)\b(?:(?!\band\b)[^,;.:?])*\b\1\b", re.I)
_YES_NO = re.compile(
    r"^(do|does|did|is|are|was|were|can|could|has|have|had|will|would|should|may)\b", re.I
)
_KEPT = r"(intact|preserved|maintained)"
_CONTRA = (
    re.compile(
        rf"\b{_KEPT}\b(?:(?!\band\b)[^,;.:?])*\b(is|are)\s+(again\s+)?"
        r"(absent|missing|not seen|no longer seen|looked for and absent|lacking|lost)\b",
        re.I,
    ),
    re.compile(rf"\b(no|without|lacking|loss of)\s+(an?\s+|the\s+)?{_KEPT}\b", re.I),
    re.compile(
        r"\b(loss|absence|lack) of\b(?:(?!\band\b)[^,;.:?])*\b(is|are)\s+(again\s+)?"
        r"(absent|missing|not seen|no longer seen|lacking)\b",
        re.I,
    ),
)
_DOUBLE_PLACE = re.compile(
    r"\b(in|above|below|beneath|under|around|inside)\s+(the\s+)?\w+(\s+\w+)?\s+"
    r"(within the|in the same compartment|in another compartment)\b",
    re.I,
)
_REPEAT = re.compile(r"\b(\w+)\s+\1\b", re.I)
_BRACES = re.compile(r"\{[A-Za-z0-9_]*\}")
_SPACING = re.compile(r"  |\s[,;:.?!]|^\s|\s$")
_SCALE = re.compile(r"\bat (low|medium|high) power\b", re.I)


def article_after_no(text: str) -> list[str]:
    """ "no a/an/the ..." """
    return [f"article after 'no': {m.group(0)!r}" for m in _NO_ARTICLE.finditer(text)]


def doubled_preposition(text: str) -> list[str]:
    """ "with X with Y" within one clause."""
    return [f"doubled preposition: {m.group(0)!r}" for m in _DOUBLED_WITH.finditer(text)]


def contradiction(text: str) -> list[str]:
    """A preserved state called absent."""
    return [f"contradiction: {m.group(0)!r}" for rx in _CONTRA for m in rx.finditer(text)]


def double_placement(text: str) -> list[str]:
    """A feature phrase that names a place, placed again ("mitotic figures in glands within
    the myometrium")."""
    return [f"placed twice: {m.group(0)!r}" for m in _DOUBLE_PLACE.finditer(text)]


def repeated_word(text: str) -> list[str]:
    """The same word twice in a row."""
    return [f"repeated word: {m.group(0)!r}" for m in _REPEAT.finditer(text)]


def unfilled_template(text: str) -> list[str]:
    """A template field left unfilled."""
    return [f"unfilled template field {m.group(0)}" for m in _BRACES.finditer(text)]


def spacing(text: str) -> list[str]:
    """Doubled spaces, a space before punctuation, or leading/trailing space."""
    return [f"spacing: {m.group(0)!r} in {text!r}" for m in _SPACING.finditer(text)][:1]


def doubled_scale(text: str) -> list[str]:
    """Two scales named in one clause of an option ("X at low power with Y at high power")."""
    out = []
    for clause in re.split(r"[;,]|\band\b", text):
        if len(_SCALE.findall(clause)) > 1:
            out.append(f"two scales in one clause: {clause.strip()!r}")
    return out


def stem_punctuation(stem: str) -> list[str]:
    """A stem ends with '?' or '.'."""
    return [] if stem.rstrip().endswith(("?", ".")) else [f"stem does not end in ? or .: {stem!r}"]


def yes_no_mismatch(stem: str, options: Sequence[str]) -> list[str]:
    """A yes/no question (its last sentence opens with an auxiliary) needs yes/no options."""
    last = re.split(r"(?<=[.?!:])\s+", stem.strip())[-1]
    if not _YES_NO.match(last):
        return []
    if all(re.match(r"^(yes|no)\b", o.strip(), re.I) for o in options):
        return []
    return [f"yes/no stem answered with statements: {last!r}"]


TEXT_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "article_after_no": article_after_no,
    "doubled_preposition": doubled_preposition,
    "contradiction": contradiction,
    "double_placement": double_placement,
    "repeated_word": repeated_word,
    "unfilled_template": unfilled_template,
    "spacing": spacing,
}
"""Checks of any text (stem, option, rationale)."""

OPTION_CHECKS: dict[str, Callable[[str], list[str]]] = {"doubled_scale": doubled_scale}
"""Checks of option texts only."""


def text_problems(text: str) -> list[str]:
    """Every fault of one text, each ``class: detail``."""
    return [f"{name}: {msg}" for name, fn in TEXT_CHECKS.items() for msg in fn(text)]


def question_problems(q: Question) -> list[str]:
    """Every fault of a question's stem, options and rationale."""
    out = [f"stem {p}" for p in text_problems(q.question)]
    out += [f"stem stem_punctuation: {m}" for m in stem_punctuation(q.question)]
    out += [f"stem yes_no_stem: {m}" for m in yes_no_mismatch(q.question, q.options)]
    for i, o in enumerate(q.options):
        out += [f"option {i + 1} {p}" for p in text_problems(o)]
        out += [f"option {i + 1} {n}: {m}" for n, fn in OPTION_CHECKS.items() for m in fn(o)]
    if q.rationale:
        out += [f"rationale {p}" for p in text_problems(q.rationale)]
    return out
