"""Which question types an organ vocabulary can feed, and why not where it cannot.

The requirements are not restated here: each type's slot families
(:meth:`curation.templates.QuestionType.families`) are built for the organ under each of its
diagnoses (and none) and a type counts as fed when some family offers a slot pair. The
messages then say, in the vocabulary's terms, what that type needs.
"""

from __future__ import annotations

from curation.organs import SCALES, Organ
from curation.records import QUESTION_TYPES
from curation.templates import TYPES

NEEDS: dict[str, str] = {
    "correspondence": "a feature visible at two scales (e.g. at low and mid)",
    "corroboration": "a feature seen below high power at P(feature | diagnosis) >= 0.5 under "
    "some diagnosis, and two high-power features that go with it (P >= 0.3 under such a "
    "diagnosis) with P between {pmin} and {pmax}",
    "localization": "a feature that can lie in two or more compartments (field "
    "'features[].compartments') and another that can share one of them",
    "explanation": "two features at a coarser scale and two visible only at a finer one "
    "(low/high, mid/high or low/mid), each with P(feature | diagnosis) between {pmin} and "
    "{pmax}",
    "diagnosis": "at least two diagnoses",
}
"""What each question type needs of a vocabulary (``{pmin}``/``{pmax}``: the plausibility band)."""


def fed_types(organ: Organ, pmin: float = 0.05) -> dict[str, bool]:
    """Per question type: does some diagnosis (or none) give a family with a slot pair?"""
    dxs: list[str | None] = [None, *organ.diagnoses]
    out = {}
    for t in QUESTION_TYPES:
        qtype = TYPES[t]
        out[t] = any(fam.pairs() for dx in dxs for fam in qtype.families(organ, dx, pmin))
    return out


def coverage_warnings(organ: Organ, pmin: float = 0.05) -> list[str]:
    """Warnings for a valid vocabulary that cannot feed every question type (empty: fine)."""
    out = []
    band = {"pmin": f"{pmin:g}", "pmax": f"{1 - pmin:g}"}
    for t, ok in fed_types(organ, pmin).items():
        if not ok:
            out.append(f"no {t} questions possible: needs {NEEDS[t].format(**band)}")
    for s in SCALES:
        n = len(organ.visible_at(s))
        if n < 2:
            out.append(
                f"only {n} feature(s) visible at {s} power (field 'features[].scales'); "
                f"give at least two"
            )
    return out


def unfed_summary(organ: Organ, pmin: float = 0.05) -> str:
    """One clause: the types ``organ`` cannot feed and what they need (empty if none)."""
    band = {"pmin": f"{pmin:g}", "pmax": f"{1 - pmin:g}"}
    missing = [t for t, ok in fed_types(organ, pmin).items() if not ok]
    if not missing:
        return ""
    return f"organ {organ.name!r} cannot feed " + "; ".join(
        f"{t} (needs {NEEDS[t].format(**band)})" for t in missing
    )
