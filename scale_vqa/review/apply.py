"""The build obeys the review: resolve each item's decisions, drop or edit, re-check.

Resolution of one item: the latest decision of an adjudicator, if any; else the reviewers'
latest decisions when they all agree (an edit agrees with another edit only if both give
the same options and key); else the item is *disagreed*. Then, over the questions to
build: a rejected item condemns its whole complementary set (as the screen does); a
disagreed one too unless ``disagreement: keep``; an unreviewed one is kept unless
``unreviewed: drop``; an edit is applied (new option text to every member of the set, the
new key to the item) and re-checked with the per-question constraint checkers and the
complementary-set checker; an edit that fails the re-check condemns its set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.constraints import PER_QUESTION, check_all
from curation.errors import ScaleVQAError
from curation.records import Question, set_rows
from scale_vqa.review.checks import SET_CHECKS, apply_edit, edit_set
from scale_vqa.review.store import ReviewStore

POLICY_VALUES = {"unreviewed": ("keep", "drop"), "disagreement": ("drop", "keep")}


@dataclass
class Resolution:
    """What the review decided about one item."""

    status: str  # accept, reject, edit, disagreed
    by: list[str]
    reason: str = ""
    edit: dict[str, Any] | None = None


@dataclass
class ReviewOutcome:
    """The questions to build and what the review removed or changed."""

    kept: list[Question]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def resolve(store: ReviewStore) -> dict[str, Resolution]:
    """item_id -> :class:`Resolution` for every item with at least one decision."""
    roles = {r.name: r.role for r in store.reviewers()}
    out: dict[str, Resolution] = {}
    for item_id, per in store.latest_decisions().items():
        adjudications = [d for r, d in per.items() if roles.get(r) == "adjudicator"]
        if adjudications:
            final = max(adjudications, key=lambda d: d["seq"])
            out[item_id] = _resolution(final, [final["reviewer"]])
            continue
        kinds = {(d["verdict"], _edit_key(d.get("edit"))) for d in per.values()}
        if len(kinds) == 1:
            first = next(iter(per.values()))
            out[item_id] = _resolution(first, sorted(per))
        else:
            out[item_id] = Resolution("disagreed", sorted(per))
    return out


def _edit_key(edit: Any) -> str:
    import json

    return json.dumps(edit, sort_keys=True) if edit else ""


def _resolution(d: dict[str, Any], by: list[str]) -> Resolution:
    return Resolution(d["verdict"], by, d.get("reason") or "", d.get("edit"))


def _violations(group: list[Question], annotations: Any, organs: Any) -> list[Any]:
    out = check_all(group, annotations, organs, only=list(PER_QUESTION))
    if len(group) > 1:
        out += check_all(group, None, None, only=list(SET_CHECKS))
    return out


def _new(before: list[Any], after: list[Any]) -> list[Any]:
    """Violations of ``after`` beyond what ``before`` already had (per constraint)."""
    from collections import Counter

    allowed = Counter(v.constraint for v in before)
    out = []
    for v in after:
        if allowed[v.constraint] > 0:
            allowed[v.constraint] -= 1
        else:
            out.append(v)
    return out


def apply_review(
    questions: Sequence[Question],
    store: ReviewStore,
    unreviewed: str = "keep",
    disagreement: str = "drop",
    annotations: Mapping[str, Any] | None = None,
    organs: Mapping[str, Any] | None = None,
) -> ReviewOutcome:
    """The questions the review lets through (edited where adjudicated); see the module."""
    res = resolve(store)
    questions = list(questions)
    sets = set_rows(questions)
    current = list(questions)
    condemned: dict[int, str] = {}
    counts = {"rejected": 0, "edited": 0, "disagreed": 0, "unreviewed": 0, "accepted": 0}
    edits: list[tuple[int, dict]] = []
    for i, q in enumerate(questions):
        r = res.get(q.id)
        if r is None:
            counts["unreviewed"] += 1
            if unreviewed == "drop":
                condemned[i] = "not reviewed (review.unreviewed: drop)"
        elif r.status == "reject":
            counts["rejected"] += 1
            condemned[i] = f"rejected by {', '.join(r.by)}: {r.reason}"
        elif r.status == "disagreed":
            counts["disagreed"] += 1
            if disagreement == "drop":
                condemned[i] = f"reviewers disagree ({', '.join(r.by)}) and no adjudicator decided"
        elif r.status == "edit" and r.edit:
            edits.append((i, r.edit))
        else:
            counts["accepted"] += 1
    touched: set[int] = set()
    for i, edit in edits:
        members = sets.get(questions[i].set_id, [i]) if questions[i].set_id else [i]
        try:
            edited = apply_edit(current[i], edit)
        except ScaleVQAError as exc:
            condemned[i] = f"edit cannot be applied: {exc}"
            continue
        pairs = edit_set(current[i], edited, [current[j] for j in members])
        by_id = {old.id: new for old, new in pairs}
        for j in members:
            current[j] = by_id.get(current[j].id, current[j])
            touched.add(j)
        counts["edited"] += 1
    groups = [m for m in sets.values() if touched & set(m)]
    groups += [[j] for j in touched if not questions[j].set_id]
    for members in groups:
        before = _violations([questions[j] for j in members], annotations, organs)
        bad = _new(before, _violations([current[j] for j in members], annotations, organs))
        if bad:
            for j in members:
                condemned.setdefault(j, f"edit failed the re-check: {bad[0]}")
    for i in list(condemned):
        sid = questions[i].set_id
        for j in sets.get(sid, []) if sid else []:
            condemned.setdefault(j, f"set-mate of {questions[i].id}")
    kept = [current[i] for i in range(len(questions)) if i not in condemned]
    dropped = [
        {"id": questions[i].id, "set_id": questions[i].set_id, "reason": why}
        for i, why in sorted(condemned.items())
    ]
    summary = counts | {
        "questions_in": len(questions),
        "questions_out": len(kept),
        "dropped_items": len(dropped),
        "sets_dropped": len({d["set_id"] for d in dropped if d["set_id"]}),
        "edited_questions": sum(
            1 for i in touched if i not in condemned and current[i].id != questions[i].id
        ),
    }
    return ReviewOutcome(kept, dropped, summary)


def review_fingerprint(cfg: Any) -> dict[str, str]:
    """What of a build.yaml ``review:`` enters the build stage's fingerprint."""
    store = ReviewStore(cfg.db, create=False)
    try:
        return {
            "digest": store.digest(),
            "unreviewed": cfg.unreviewed,
            "disagreement": cfg.disagreement,
        }
    finally:
        store.close()


def review_step(
    questions: Sequence[Question],
    cfg: Any,
    work: Any,
    annotations: Any = None,
    organs_dir: Any = (),
) -> tuple[list[Question], dict[str, Any]]:
    """The pipeline's review step: (questions to build, the card's Clinical validation data).

    Writes ``review_dropped.jsonl`` and ``review_report.json`` (figures + outcome) into
    ``work``.
    """
    import json
    from pathlib import Path

    from curation.io import atomic_write_jsonl, atomic_write_text
    from scale_vqa.review.figures import card_section, compute_figures

    ann = None
    if annotations is not None and Path(annotations).is_file():
        from curation.annotations import read_annotations

        ann = {a.path_id: a for a in read_annotations(annotations, organs_dir)}
    organs = _organs({q.organ for q in questions if q.organ}, organs_dir)
    store = ReviewStore(cfg.db, create=False)
    try:
        outcome = apply_review(questions, store, cfg.unreviewed, cfg.disagreement, ann, organs)
        figures = compute_figures(store)
    finally:
        store.close()
    work = Path(work)
    atomic_write_jsonl(work / "review_dropped.jsonl", outcome.dropped)
    report = {"outcome": outcome.summary, "figures": figures}
    atomic_write_text(
        work / "review_report.json", json.dumps(report, indent=1, sort_keys=True) + "\n"
    )
    return outcome.kept, card_section(figures, outcome.summary)


def _organs(names: set[str], organs_dir: Any) -> dict[str, Any]:
    from curation.organs import get_organ

    out = {}
    for n in sorted(names):
        try:
            out[n] = get_organ(n, organs_dir)
        except ScaleVQAError:
            continue
    return out
