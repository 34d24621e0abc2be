"""Machine checks shown next to the reviewer's verdict.

:class:`Checker` holds the local text-only adversaries (curation.adversaries' default
battery, without embeddings) cross-fitted over every item under review (folds keep
patients and complementary sets whole, as the audit does), and the per-question
constraint checkers of curation.constraints. For each item it gives the *flags* (the
adversaries that answer it from the text alone, the constraints it breaks); for an edit it
re-runs the checkers and the adversaries (learned ones from the item's own held-out fold)
on the edited question and its complementary set.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from curation.constraints import PER_QUESTION, check_all
from curation.errors import ValidationError
from curation.records import LETTERS, Question, validate_question

SET_CHECKS: tuple[str, ...] = ("complementary_sets",)
FLAG_MIN_ANSWERING = 3
"""An item is flagged when it breaks a constraint or this many adversaries answer it."""


def _top_letter(scores: np.ndarray) -> str | None:
    s = np.asarray(scores, dtype=float)
    if not np.isfinite(s).any():
        return None
    top = np.flatnonzero(s >= np.nanmax(s) - 1e-9)
    return LETTERS[int(top[0])] if len(top) == 1 else None


def apply_edit(q: Question, edit: Mapping[str, Any]) -> Question:
    """``q`` with the edit's options and key; validated; a new content id."""
    options = edit.get("options", q.options)
    answer = edit.get("answer", q.answer)
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValidationError("edit: 'options' must be a list of strings")
    if len(options) != len(q.options):
        raise ValidationError(
            f"edit: {len(options)} option(s) given; keep the {len(q.options)} options "
            "(edit their text, not their number)"
        )
    new = replace(
        q, options=[o.strip() for o in options], answer=str(answer).strip().upper(), id="x"
    )
    validate_question(new, "edit")
    new.id = new.content_id()
    return new


def edit_set(
    q: Question, edited: Question, members: Sequence[Question]
) -> list[tuple[Question, Question]]:
    """(old, new) for every member of ``q``'s set: option text changes apply to them all."""
    changed = {i: t for i, (o, t) in enumerate(zip(q.options, edited.options)) if o != t}
    out = []
    for m in members:
        if m.id == q.id:
            out.append((m, edited))
        elif changed and len(m.options) == len(q.options):
            opts = [changed.get(i, o) for i, o in enumerate(m.options)]
            new = replace(m, options=opts, id="x")
            new.id = new.content_id()
            out.append((m, new))
    return out


class Checker:
    """Adversaries cross-fitted over ``questions``; flags per item; edit re-checks."""

    def __init__(
        self,
        questions: Sequence[Question],
        annotations: Mapping[str, Any] | None = None,
        organs: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        from curation.adversaries import default_battery, group_folds

        self.questions = list(questions)
        self.annotations = annotations
        self.organs = organs if organs is not None else self._organs()
        self.index = {q.id: i for i, q in enumerate(self.questions)}
        self.sets: dict[str, list[Question]] = {}
        for q in self.questions:
            if q.set_id:
                self.sets.setdefault(q.set_id, []).append(q)
        self.adversaries = default_battery(include_embeddings=False)
        self.lock = threading.Lock()
        n = len(self.questions)
        self.folds = group_folds(self.questions, n_folds=5, seed=seed) if n >= 2 else np.zeros(n)
        self.models: dict[str, dict[int, Any]] = {}
        self.picks: dict[str, dict[str, str | None]] = {q.id: {} for q in self.questions}
        for adv in self.adversaries:
            if not adv.learned:
                scores = adv.score(self.questions) if n else []
                for q, s in zip(self.questions, scores):
                    self.picks[q.id][adv.name] = _top_letter(s)
                continue
            self.models[adv.name] = {}
            for f in np.unique(self.folds):
                test = np.flatnonzero(self.folds == f)
                train = [self.questions[i] for i in np.flatnonzero(self.folds != f)]
                if not train:
                    continue
                model = adv.clone().fit(train)
                self.models[adv.name][int(f)] = model
                for i, s in zip(test, model.score([self.questions[i] for i in test])):
                    self.picks[self.questions[i].id][adv.name] = _top_letter(s)
        self.violations: dict[str, list[dict[str, str]]] = {q.id: [] for q in self.questions}
        for v in check_all(self.questions, annotations, self.organs, only=list(PER_QUESTION)):
            if v.question_id in self.violations:
                self.violations[v.question_id].append(
                    {"constraint": v.constraint, "message": v.message}
                )

    def _organs(self) -> dict[str, Any]:
        from curation.organs import get_organ

        out = {}
        for name in {q.organ for q in self.questions if q.organ}:
            try:
                out[name] = get_organ(name)
            except Exception:  # an organ without a vocabulary: plausibility skips it
                continue
        return out

    def flags(self, q: Question) -> dict[str, Any]:
        """What the machine says about a stored item: adversaries that answer it, violations."""
        picks = self.picks.get(q.id, {})
        answering = sorted(a for a, p in picks.items() if p == q.answer)
        return {
            "adversaries": [
                {"name": a, "pick": p, "answers_key": p == q.answer} for a, p in picks.items()
            ],
            "answering": answering,
            "violations": self.violations.get(q.id, []),
            "flagged": bool(len(answering) >= FLAG_MIN_ANSWERING or self.violations.get(q.id)),
        }

    def check_edit(self, q: Question, edit: Mapping[str, Any]) -> dict[str, Any]:
        """Re-run checkers and adversaries on the edited question (and its set)."""
        edited = apply_edit(q, edit)
        members = self.sets.get(q.set_id, [q]) if q.set_id else [q]
        pairs = edit_set(q, edited, members)
        new_set = [n for _, n in pairs]
        violations = [
            {"constraint": v.constraint, "question_id": v.question_id, "message": v.message}
            for v in check_all(new_set, self.annotations, self.organs, only=list(PER_QUESTION))
        ]
        if q.set_id and len(new_set) > 1:
            violations += [
                {"constraint": v.constraint, "question_id": v.question_id, "message": v.message}
                for v in check_all(new_set, None, None, only=list(SET_CHECKS))
            ]
        fold = int(self.folds[self.index[q.id]]) if q.id in self.index else None
        advs = []
        with self.lock:
            for adv in self.adversaries:
                model = self.models.get(adv.name, {}).get(fold) if adv.learned else adv
                if model is None:
                    continue
                pick = _top_letter(model.score([edited])[0])
                advs.append({"name": adv.name, "pick": pick, "answers_key": pick == edited.answer})
        return {
            "ok": not violations,
            "annotated": bool(self.annotations) and q.path_id in (self.annotations or {}),
            "question": edited.to_dict(),
            "set_members_changed": len(pairs) - 1,
            "violations": violations,
            "adversaries": advs,
            "answering": sorted(a["name"] for a in advs if a["answers_key"]),
        }
