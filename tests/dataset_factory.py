"""Test helpers: MCQ files with planted (or absent) dataset-level leaks.

- :func:`square_sets`: complementary sets of 2x2 squares ("X is present and Y is absent");
  rows written in cell order (the first row's key is the all-present option, ...) or in a
  seeded order; ids a hash over fields that include the answer, or over content only.
- :func:`premise_paths`: each zoom path has a premise question whose stem states a
  finding as given and a target question that asks for it (the leak), or a stem that
  names one of the target's options at random (no leak).
- :func:`elimination_sets`: complementary sets whose members' keys are stated by the
  premise on their path for all but one member: joint decoding answers the last.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from curation.records import LETTERS, QUESTION_TYPES, Question
from tests.mcq_factory import FEATURES

CELLS = ((1, 1), (1, 0), (0, 1), (0, 0))


def _word(v: int) -> str:
    return "present" if v else "absent"


def _answer_id(q: Question) -> str:
    payload = "|".join([q.question, json.dumps(q.options), q.answer, q.path_id])
    return hashlib.md5(payload.encode()).hexdigest()[:12]


def _content_id(q: Question) -> str:
    payload = json.dumps([q.question, q.options, q.path_id])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def square_sets(
    n_sets: int = 120,
    seed: int = 0,
    order: str = "cell",
    ids: str = "content",
) -> list[Question]:
    """Complementary sets of 4 rows; ``order`` "cell" or "shuffled"; ``ids`` "answer"
    (md5 over question, options, answer, path) or "content" (no answer)."""
    rng = np.random.default_rng(seed)
    names = rng.permutation(n_sets * 4)  # path numbers carry nothing about the cell
    out: list[Question] = []
    for s in range(n_sets):
        qtype = QUESTION_TYPES[s % len(QUESTION_TYPES)]
        x, y = (FEATURES[j] for j in rng.choice(len(FEATURES), 2, replace=False))
        texts = {c: f"{x} is {_word(c[0])} and {y} is {_word(c[1])}" for c in CELLS}
        perm = rng.permutation(4)
        options = [texts[CELLS[j]] for j in perm]
        for r, cell in enumerate(CELLS):
            i = int(names[s * 4 + r])
            q = Question(
                question=f"Which statement about {x} and {y} holds at high power?",
                options=options,
                answer=LETTERS[options.index(texts[cell])],
                question_type=qtype,
                rationale=f"The high-power view shows {texts[cell]}.",
                organ="skin",
                slide_id=f"slide-{i:05d}",
                patient_id=f"pt-{i:05d}",
                path_id=f"path-{i:05d}",
                split="test",
                template_id="square-set",
                set_id=f"set-{seed}-{s:04d}",
            )
            q.id = _answer_id(q) if ids == "answer" else _content_id(q)
            out.append(q)
    if order == "shuffled":
        out = [out[j] for j in rng.permutation(len(out))]
    return out


def _pick(rng: np.random.Generator, n: int, exclude: set[str] = frozenset()) -> list[str]:
    pool = [f for f in FEATURES if f not in exclude]
    return [pool[j] for j in rng.choice(len(pool), n, replace=False)]


def premise_paths(n_paths: int = 200, seed: int = 0, leak: bool = True) -> list[Question]:
    """Two questions per path (own patient): a premise ("Given that F is seen ...") and a
    target asking which finding is seen; ``leak``: F is the target's key, else F is one
    of its options drawn independently of the key."""
    rng = np.random.default_rng(seed)
    out: list[Question] = []
    for p in range(n_paths):
        options = _pick(rng, 4)
        key = int(rng.integers(4))
        stated = options[key] if leak else options[int(rng.integers(4))]
        meta = {
            "organ": "skin",
            "slide_id": f"slide-{seed}-{p:04d}",
            "patient_id": f"pt-{seed}-{p:04d}",
            "path_id": f"path-{seed}-{p:04d}",
            "split": "test",
        }
        other = _pick(rng, 4, set(options))
        out.append(
            Question(
                question=f"Given that {stated} is seen at low power, which finding is seen "
                "at mid power?",
                options=other,
                answer=LETTERS[int(rng.integers(4))],
                question_type="correspondence",
                template_id="premise",
                **meta,
            )
        )
        out.append(
            Question(
                question="Which finding is seen at low power?",
                options=[f"{o} at low power" for o in options],
                answer=LETTERS[key],
                question_type="localization",
                template_id="target",
                **meta,
            )
        )
    return out


def elimination_sets(n_sets: int = 60, seed: int = 0) -> list[Question]:
    """Sets of 4 rows over one option list; the premise on each member's path states that
    member's key, except for the last member (an unrelated finding)."""
    rng = np.random.default_rng(seed)
    out: list[Question] = []
    for s in range(n_sets):
        options = _pick(rng, 4)
        keys = rng.permutation(4)
        for r in range(4):
            i = s * 4 + r
            meta = {
                "organ": "skin",
                "slide_id": f"slide-{seed}-{i:05d}",
                "patient_id": f"pt-{seed}-{i:05d}",
                "path_id": f"path-{seed}-{i:05d}",
                "split": "test",
            }
            stated = options[keys[r]] if r < 3 else _pick(rng, 1, set(options))[0]
            out.append(
                Question(
                    question=f"Given that {stated} is seen at low power, which pattern is seen "
                    "at mid power?",
                    options=[f"pattern {i}-{j}" for j in range(4)],
                    answer=LETTERS[int(rng.integers(4))],
                    question_type="correspondence",
                    template_id="premise",
                    **meta,
                )
            )
            out.append(
                Question(
                    question="Which finding is seen at low power?",
                    options=[f"{o} at low power" for o in options],
                    answer=LETTERS[int(keys[r])],
                    question_type="localization",
                    template_id="target",
                    set_id=f"set-{seed}-{s:04d}",
                    **meta,
                )
            )
    return out
