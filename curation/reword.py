"""Optional LLM rewording of complementary sets (off by default; nothing else calls it).

A complementary set is one stem and one option list on several zoom paths, each path
making a different option the key. :func:`reword_questions` asks an OpenAI-compatible
model (through :class:`curation.llm.LLMClient`: cache, retries, concurrency) once per set
to reword the stem and the options, applies the answer to every row of the set, and
re-checks it (:func:`curation.reword_checks.rejection`); a refused answer leaves the set's
text as it was and its reason is counted. Options keep their order and meaning, so the
provenance in ``extra`` (``claims``, ``premise``), which the information budget reads,
stays true. Ids are recomputed as the generator computes them
(:meth:`curation.records.Question.content_id`,
:func:`curation.generation.sets.set_identifier`); a reworded row records the model
(``extra["reworded_by"]``, never a key) and its original text
(``extra["original_question"]``, ``extra["original_options"]``). The key's text quoted in
a rationale is replaced by its rewording.

:func:`rescreen` runs the text-only screen's first pass (:func:`curation.screen.flag_round`)
on the questions before and after, for the report. Same input and same cached answers give
the same output, byte for byte.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from curation.errors import ScaleVQAError
from curation.generation.config import GeneratorConfig
from curation.generation.sets import set_identifier
from curation.llm import LLMClient, Messages
from curation.organs import Organ, get_organ
from curation.records import Question
from curation.reword_checks import TermMatcher, rejection

SYSTEM_PROMPT = (
    "You edit multiple-choice questions of a pathology benchmark for fluent, natural "
    "English. You get one question stem and its numbered options as JSON. Reword them "
    "lightly, keeping the meaning exactly:\n"
    "- keep every feature, structure, compartment and magnification named, with the same "
    "words (e.g. 'low power', 'medium power', 'high power');\n"
    "- keep every negation ('no', 'not', 'absent', 'missing', 'without') and whether each "
    "finding is present or absent;\n"
    "- keep the options in the same order, one rewording per option, each about as long "
    "as the others;\n"
    "- add no finding, no diagnosis name and no causal, explanatory or directional word "
    "('because', 'due to', 'suggests', 'consistent with', 'leads to', 'then', 'from ... "
    "to');\n"
    "- do not make the options more or less alike: reword them the same way.\n"
    'Answer with JSON only: {"question": "...", "options": ["...", ...]} with exactly as '
    "many options as given."
)
"""The system message sent with every set (part of each answer's cache key)."""

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


@dataclass
class RewordResult:
    """The questions (input order, reworded where accepted) and the report (JSON-ready)."""

    questions: list[Question]
    report: dict[str, Any] = field(default_factory=dict)


def set_groups(questions: Sequence[Question]) -> dict[str, list[int]]:
    """Row indices per complementary set, in first-seen order (a row without a set id is
    a set of its own)."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        groups.setdefault(q.set_id or f"row:{i}", []).append(i)
    return groups


def messages_for(q: Question) -> Messages:
    """The chat that asks for one set's rewording (stem and numbered options as JSON)."""
    payload = {
        "question_type": q.question_type,
        "organ": q.organ,
        "question": q.question,
        "options": {str(i + 1): o for i, o in enumerate(q.options)},
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(payload, ensure_ascii=False, indent=1)},
    ]


def parse_answer(text: str) -> tuple[str, list[str]] | None:
    """``(question, options)`` from the model's answer, or None when it is not the JSON
    object asked for (a ```json fence around it is allowed)."""
    body = _FENCE.sub("", text.strip())
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    question, options = obj.get("question"), obj.get("options")
    if not isinstance(question, str) or not isinstance(options, list):
        return None
    if not all(isinstance(o, str) for o in options):
        return None
    return " ".join(question.split()), [" ".join(o.split()) for o in options]


def apply_text(
    rows: Sequence[Question], question: str, options: Sequence[str], model: str
) -> list[Question]:
    """``rows`` (one set) with the new stem and options, ids and set id recomputed."""
    out: list[Question] = []
    for q in rows:
        rationale = q.rationale
        if len(options) == len(q.options):
            rationale = rationale.replace(q.options[q.key_index], options[q.key_index])
        extra = {  # a second rewording keeps the generator's text as the original
            **q.extra,
            "reworded_by": model,
            "original_question": q.extra.get("original_question", q.question),
            "original_options": list(q.extra.get("original_options", q.options)),
        }
        new = replace(q, question=question, options=list(options), rationale=rationale)
        new.extra = extra
        new.id = new.content_id()
        out.append(new)
    if rows[0].set_id:
        sid = set_identifier(question, list(options), [q.path_id for q in rows])
        for q in out:
            q.set_id = sid
    return out


def organs_of(questions: Sequence[Question], organs_dir: Sequence[str] = ()) -> dict[str, Organ]:
    """The vocabulary of every organ the questions name that the registry (and
    ``organs_dir``) knows; an unknown organ is left out."""
    out: dict[str, Organ] = {}
    for name in sorted({q.organ for q in questions}):
        try:
            out[name] = get_organ(name, organs_dir)
        except ScaleVQAError:
            continue
    return out


def reword_questions(
    questions: Sequence[Question],
    client: LLMClient,
    organs_dir: Sequence[str] = (),
    max_length_spread: float = GeneratorConfig.max_length_spread,
    progress: bool = True,
) -> RewordResult:
    """Reword each complementary set of ``questions`` once; see the module docstring.

    ``organs_dir``: extra vocabulary folders (the meaning check reads each organ's terms).
    ``max_length_spread``: the most option-length spread a rewording may have (the
    generator's, unless the original already spread more).
    """
    groups = set_groups(questions)
    kept: Counter[str] = Counter()
    kept_sets: list[dict[str, str]] = []
    asked: dict[str, Question] = {}
    for sid, idx in groups.items():
        first = questions[idx[0]]
        if any(
            (questions[i].question, questions[i].options) != (first.question, first.options)
            for i in idx
        ):
            kept["inconsistent_set"] += 1
            kept_sets.append({"set_id": sid, "reason": "inconsistent_set"})
        else:
            asked[sid] = first
    answers = client.chat_many(
        [messages_for(q) for q in asked.values()], desc="reword sets", progress=progress
    )
    out = list(questions)
    used = {q.id for q in questions} | {q.set_id for q in questions if q.set_id}
    n_rows = 0
    organs = organs_of(questions, organs_dir)
    matchers = {name: TermMatcher(organ) for name, organ in organs.items()}
    examples: list[dict[str, Any]] = []
    for (sid, first), answer in zip(asked.items(), answers, strict=True):
        rows = [questions[i] for i in groups[sid]]
        parsed = parse_answer(answer)
        why: str | None = "not_json"
        ids: set[str] = set()
        if parsed is not None:
            new = apply_text(rows, *parsed, model=client.config.model)
            why = rejection(
                rows, new, matchers.get(first.organ), organs, max_length_spread=max_length_spread
            )
            ids = {q.id for q in new} | ({new[0].set_id} - {""})
            if why is None and ids & used:
                why = "id_collision"
        if why is not None:
            kept[why] += 1
            kept_sets.append({"set_id": sid, "reason": why})
            continue
        used |= ids
        n_rows += len(new)
        for i, q in zip(groups[sid], new, strict=True):
            out[i] = q
        if len(examples) < 5:
            examples.append(
                {
                    "set_id": [sid, new[0].set_id],
                    "question_type": first.question_type,
                    "question": [first.question, new[0].question],
                    "options": [first.options, new[0].options],
                }
            )
    n_reworded = len(asked) - sum(v for k, v in kept.items() if k != "inconsistent_set")
    report = {
        "model": client.config.model,
        "base_url": client.config.base_url,
        "rows": len(questions),
        "sets": len(groups),
        "reworded_sets": n_reworded,
        "reworded_rows": n_rows,
        "kept_sets": sum(kept.values()),
        "kept_by_reason": dict(sorted(kept.items())),
        "kept": kept_sets,
        "examples": examples,
        "llm": client.usage.as_dict(),
    }
    return RewordResult(out, report)


def rescreen(
    before: Sequence[Question],
    after: Sequence[Question],
    adversaries: Sequence[Any],
    dataset_level: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The text-only screen's first pass on ``before`` and ``after`` the rewording.

    For each: accuracy of every adversary overall against chance, the strongest one, how
    many questions the screen would flag and in how many leaking cells. ``dataset_level``
    adds the dataset-level adversaries the columns allow (ids, row order, context, joint
    decoding), as the audit does.
    """
    from curation.dataset_adversaries import dataset_battery
    from curation.screen import flag_round

    def one(qs: Sequence[Question], label: str) -> dict[str, Any]:
        battery = [a.clone() for a in adversaries]
        if dataset_level:
            names = {a.name for a in battery}
            battery += [a for a in dataset_battery(qs)[0] if a.name not in names]
        flags, details = flag_round(
            qs, battery, seed=seed, progress=progress, desc=f"re-screen {label}"
        )
        audit = details["audit"]
        return {
            "n": audit["n"],
            "chance": audit["chance"],
            "accuracy": {
                r["adversary"]: r["accuracy"] for r in audit["table"] if r["question_type"] == "all"
            },
            "best": audit["best"],
            "flagged": len(flags),
            "leaking_cells": len(details["active"]),
        }

    return {"before": one(before, "before"), "after": one(after, "after")}
