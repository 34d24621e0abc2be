"""The five question types (the paper's reasoning dimensions A..E), one module per type.

- A :mod:`~curation.families.correspondence`: whether a matching structure appears at more
  than one magnification, and at which;
- B :mod:`~curation.families.corroboration`: a weak, non-diagnostic implication raised at one
  scale is supported or contradicted at another (no diagnosis named);
- C :mod:`~curation.families.localization`: compartment attribution (options differ only by
  compartment or spatial relationship);
- D :mod:`~curation.families.explanation`: coexistence pairing of features across
  magnifications (no causal, directional or zoom-in wording);
- E :mod:`~curation.families.diagnosis`: the diagnosis most consistent with all the images.

Each type has two fixed templates (``<type>-fixed-1/2``) and four free phrasings
(``<type>-free-1..4``); the chosen one is recorded as ``template_id``.
"""

from __future__ import annotations

from curation.families.base import Family, QuestionType
from curation.families.correspondence import Correspondence
from curation.families.corroboration import Corroboration
from curation.families.diagnosis import DiagnosisType
from curation.families.explanation import Explanation
from curation.families.localization import Localization

TYPES: dict[str, QuestionType] = {
    t.name: t
    for t in (Correspondence(), Corroboration(), Localization(), Explanation(), DiagnosisType())
}
"""The five question types by name, in the paper's order A..E."""


def template_ids(question_type: str) -> list[str]:
    """Template ids of a type (two fixed, then the free phrasings)."""
    return list(TYPES[question_type].templates)


__all__ = ["TYPES", "Family", "QuestionType", "template_ids"]
