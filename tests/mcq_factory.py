"""Test helpers: MCQ sets with known (planted or absent) text-only artifacts.

- :func:`release_style`: the official release's "one-feature edit" rule (each distractor is
  the key with one feature swapped), so the key is the centre of its option set.
- :func:`longest_key`: the key is always the longest option (a length artifact).
- :func:`symmetric_square`: 2x2 factorial option sets (every option equally far from the
  others), key drawn uniformly: no text-only signal by construction.
- :func:`complementary`: symmetric squares repeated on k zoom paths, each making a
  different option the key (``set_id`` shared).
- :func:`square_regenerator`: a ``regenerate(flagged, round)`` callback that replaces each
  flagged question by a symmetric square on the same slide and type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from curation.records import LETTERS, QUESTION_TYPES, Question

FEATURES = [
    "epidermal hyperplasia",
    "parakeratosis",
    "dermal fibrosis",
    "solar elastosis",
    "peripheral palisading",
    "retraction clefts",
    "nuclear pleomorphism",
    "mitotic figures",
    "lymphocytic infiltrate",
    "granuloma formation",
    "necrosis",
    "haemorrhage",
    "keratin pearls",
    "intercellular bridges",
    "melanin pigment",
    "junctional nests",
    "pagetoid spread",
    "vascular proliferation",
    "stromal desmoplasia",
    "mucin pools",
    "gland formation",
    "cribriform pattern",
    "perineural invasion",
    "calcification",
    "foamy macrophages",
    "plasma cells",
    "eosinophils",
    "neutrophilic abscess",
    "spindle cells",
    "multinucleated giant cells",
    "prominent nucleoli",
    "clear cells",
]

QUESTIONS = {
    "correspondence": "Which findings seen at low power are confirmed at high power?",
    "corroboration": "Which pair of findings does the closer view corroborate?",
    "localization": "Which findings lie in the region outlined at mid power?",
    "explanation": "Which findings best explain the architecture seen at low power?",
    "diagnosis": "Which combination of findings across the three views supports the diagnosis?",
}


def _opt(a: str, b: str) -> str:
    return f"{a} together with {b}"


def _meta(i: int, n_slides: int, qtype: str) -> dict:
    slide = f"slide-{i % n_slides:03d}"
    return {
        "question_type": qtype,
        "slide_id": slide,
        "patient_id": f"pt-{i % n_slides:03d}",
        "path_id": f"{slide}-p{i:05d}",
        "organ": "skin",
        "split": "test",
    }


def _place(options: list[str], key: int, rng: np.random.Generator) -> tuple[list[str], str]:
    perm = rng.permutation(len(options))
    placed = [options[j] for j in perm]
    return placed, LETTERS[int(np.flatnonzero(perm == key)[0])]


def release_style(n: int = 400, n_slides: int = 40, seed: int = 0) -> list[Question]:
    """The release rule: key (a, b); distractors (a', b), (a, b'), (a'', b) -> key is central."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        qtype = QUESTION_TYPES[i % len(QUESTION_TYPES)]
        a, b, a1, b1, a2 = (FEATURES[j] for j in rng.choice(len(FEATURES), 5, replace=False))
        opts = [_opt(a, b), _opt(a1, b), _opt(a, b1), _opt(a2, b)]
        placed, ans = _place(opts, 0, rng)
        out.append(
            Question(
                question=QUESTIONS[qtype],
                options=placed,
                answer=ans,
                template_id="release-edit",
                **_meta(i, n_slides, qtype),
            )
        )
    return out


def longest_key(n: int = 300, n_slides: int = 30, seed: int = 0) -> list[Question]:
    """Symmetric squares, except that the key always gets a longer qualifier."""
    rng = np.random.default_rng(seed)
    out = []
    for q in symmetric_square(n, n_slides, seed):
        opts = list(q.options)
        opts[q.key_index] = opts[q.key_index] + ", clearly and diffusely present"
        out.append(
            Question(**{**q.to_dict(), "options": opts, "id": "", "template_id": "longest-key"})
        )
    rng.random()
    return out


def square_options(rng: np.random.Generator) -> list[str]:
    """A 2x2 option square over two feature pairs."""
    a, a1, b, b1 = (FEATURES[j] for j in rng.choice(len(FEATURES), 4, replace=False))
    return [_opt(a, b), _opt(a, b1), _opt(a1, b), _opt(a1, b1)]


def symmetric_square(
    n: int = 400, n_slides: int = 40, seed: int = 0, start: int = 0
) -> list[Question]:
    """2x2 factorial option sets with a uniformly drawn key: no text-only signal."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        qtype = QUESTION_TYPES[i % len(QUESTION_TYPES)]
        opts = square_options(rng)
        placed, ans = _place(opts, int(rng.integers(4)), rng)
        out.append(
            Question(
                question=QUESTIONS[qtype],
                options=placed,
                answer=ans,
                template_id="square",
                **_meta(i, n_slides, qtype),
            )
        )
    return out


def complementary(n_sets: int = 100, n_slides: int = 40, seed: int = 0) -> list[Question]:
    """Each set: one question and option list on 4 zoom paths, each key a different option."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_sets):
        qtype = QUESTION_TYPES[s % len(QUESTION_TYPES)]
        opts = [square_options(rng)[j] for j in range(4)]
        opts = [opts[j] for j in rng.permutation(4)]
        set_id = f"set-{s:04d}"
        for j in range(4):
            i = s * 4 + j
            out.append(
                Question(
                    question=QUESTIONS[qtype],
                    options=opts,
                    answer=LETTERS[j],
                    template_id="square-set",
                    set_id=set_id,
                    **_meta(i, n_slides, qtype),
                )
            )
    return out


def square_regenerator(seed: int = 0):
    """A ``regenerate(flagged, round)`` callback: same slide and type, a symmetric square."""
    calls: list[int] = []

    def regenerate(flagged: Sequence[Question], round: int) -> list[Question]:
        calls.append(len(flagged))
        out = []
        for q in flagged:
            h = int(hashlib.sha256(f"{seed}:{round}:{q.id}".encode()).hexdigest()[:8], 16)
            rng = np.random.default_rng(h)
            placed, ans = _place(square_options(rng), int(rng.integers(4)), rng)
            d = q.to_dict()
            d.update(options=placed, answer=ans, template_id=f"square-r{round}", id="")
            out.append(Question.from_dict(d))
        return out

    regenerate.calls = calls  # type: ignore[attr-defined]
    return regenerate


def write_release_json(path: Path, questions: Sequence[Question]) -> Path:
    """Write questions in the official release's JSON format (options as a dict A-D)."""
    types = {t: f"type_{LETTERS[i]}" for i, t in enumerate(QUESTION_TYPES)}
    rows = []
    for n, q in enumerate(questions, start=1):
        rows.append(
            {
                "question": q.question,
                "options": {LETTERS[i]: o for i, o in enumerate(q.options)},
                "answer": q.answer,
                "rationale": "",
                "image_path": {
                    "low_mag": f"{q.slide_id}/rois/10_{n}.jpg",
                    "mid_mag": f"{q.slide_id}/rois/40_{n}.jpg",
                    "high_mag": f"{q.slide_id}/rois/200_{n}.jpg",
                },
                "extra_info": {
                    "wsi_name": q.slide_id,
                    "path_id": q.path_id,
                    "question_type": types[q.question_type],
                },
                "No": n,
            }
        )
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path
