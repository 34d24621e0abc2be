"""Type D, explanation as coexistence pairing: which pairing of features across magnifications
can all be true together.

Each option pairs one of two findings at a coarser power with one of two findings at a
finer power; the options differ only in which features are paired, and say nothing causal,
directional or about zooming in (:data:`FORBIDDEN`, checked by
:func:`curation.type_checks.check_explanation_wording`). Each slot is "``a`` here and ``b``
looked for and absent here, or the reverse", so exactly one pairing holds on a path.
Families ``expl:<coarse>:<fine>`` for low/high, medium/high and low/medium.
"""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

from curation.families.base import SCALE_WORD, Family, QuestionType, cap, prob, state_words
from curation.options import Alt, Slot
from curation.organs import Feature, Organ

FORBIDDEN = re.compile(
    r"\b(in keeping with|consistent with|suggest\w*|lead\w* to|leads|led to|because|"
    r"caus\w*|due to|explain\w*|result\w*|therefore|hence|thus|implies|implying|"
    r"zoom\w*\s+(?:in|into|out)|zooming|closer|then|progress\w*|gives? rise|arising|"
    r"accounts? for|reflect\w*|"
    r"indicat\w*|points? to|so that|which means|from .* to)\b",
    re.I,
)
"""Causal, explanatory, directional or zoom-in wording a type D stem or option may not use."""

MAX_PHRASE_GAP = 16
"""Two features share a slot only if their phrases differ by at most this many characters
(option lengths must stay within the generator's length spread)."""

_TEMPLATES = {
    "explanation-fixed-1": "Which pairing of a {SX}-power finding with a {SY}-power finding "
    "is true together in these images?",
    "explanation-fixed-2": "Which option pairs features across the {SX}-power and {SY}-power "
    "images that all coexist here?",
    "explanation-free-1": "Which pairing of a {SX}-power observation with a {SY}-power "
    "observation is borne out by the images?",
    "explanation-free-2": "Which combination of {SX}-power and {SY}-power findings holds "
    "together in these images?",
    "explanation-free-3": "Of these pairings of {SX}-power and {SY}-power features, which one "
    "is present together in these images?",
    "explanation-free-4": "Which option lists a {SX}-power and a {SY}-power finding that "
    "coexist in this image set?",
}


class Explanation(QuestionType):
    """Type D."""

    name = "explanation"
    templates: ClassVar[dict[str, str]] = _TEMPLATES

    @staticmethod
    def _choices(feats: list[Feature], scale: str, tag: str) -> list[Slot]:
        out = []
        w = SCALE_WORD[scale]
        for a, b in itertools.combinations(feats, 2):
            if abs(len(a.phrase) - len(b.phrase)) > MAX_PHRASE_GAP:
                continue
            out.append(
                Slot(
                    f"{tag}:{a.id}|{b.id}:{scale}",
                    (
                        Alt(
                            ((a.id, scale, True), (b.id, scale, False)), f"{a.phrase} at {w} power"
                        ),
                        Alt(
                            ((a.id, scale, False), (b.id, scale, True)), f"{b.phrase} at {w} power"
                        ),
                    ),
                    (a.id, b.id),
                    f"{a.phrase} or {b.phrase}",
                )
            )
        return out

    def families(self, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        fams = []
        for sx, sy in (("low", "high"), ("mid", "high"), ("low", "mid")):
            band = [f for f in organ.features.values() if pmin <= prob(organ, f.id, dx) <= 1 - pmin]
            xs = [f for f in band if sx in f.scales]
            ys = [f for f in band if sy in f.scales]
            if len(xs) < 2 or len(ys) < 2:
                continue
            fams.append(
                Family(
                    f"expl:{sx}:{sy}",
                    (),
                    {"SX": SCALE_WORD[sx], "SY": SCALE_WORD[sy]},
                    self._choices(xs, sx, "expl1"),
                    self._choices(ys, sy, "expl2"),
                )
            )
        return fams

    def rationale(self, ann, organ, fam, slots, key):
        parts = []
        for s in slots:
            scale = s.alts[0].claims[0][1]
            parts.append(" and ".join(state_words(ann, f, scale, organ) for f in s.features))
        return cap("; ".join(parts)) + f". The pairing that holds together is: {key}."
