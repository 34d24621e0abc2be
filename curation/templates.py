"""The five question types: a facade over :mod:`curation.families` (one module per type).

``TYPES`` (name -> :class:`QuestionType`), :func:`template_ids`, :class:`Family` and
:class:`QuestionType` are importable from here as before.
"""

from __future__ import annotations

from curation.families import TYPES, Family, QuestionType, template_ids
from curation.families.base import SCALE_WORD, be, cap

__all__ = ["SCALE_WORD", "TYPES", "Family", "QuestionType", "be", "cap", "template_ids"]
