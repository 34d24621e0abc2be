"""curation: constraint-guided question generation and text-only leakage screening.

The ground floor of Scale-VQA: it imports neither ``baselines`` nor ``scale_vqa``.
"""

from curation.errors import ScaleVQAError
from curation.records import QUESTION_TYPES, Question

__all__ = ["QUESTION_TYPES", "Question", "ScaleVQAError"]
