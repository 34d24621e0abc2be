"""Dataset-level adversaries: what a published split gives away across its rows.

The threat model is a hidden test split (or a leaderboard): the adversary sees every
published column of every test row except ``answer`` and ``rationale``
(:mod:`curation.published`), the order of the rows, and the other rows. Single-row
adversaries (:mod:`curation.adversaries`) cannot see what is spread over rows; these can:

| name | reads | kind |
|---|---|---|
| ``meta-hash`` | ``id``: the exhaustive "hash over fields with the answer" rule | zero-shot |
| ``meta-lr`` | ids, set ids, path ids, template, row position in set / path / patient | learned |
| ``context-lr`` | the other questions (stems, options) of the zoom path and patient | learned |
| ``joint-context`` | the context reader, decoded jointly per complementary set | learned |

Any adversary can be decoded jointly with ``joint:<name>``. :func:`dataset_battery`
picks those the rows' columns allow and says which were left out and why.
"""

from __future__ import annotations

from collections.abc import Sequence

from curation.adversary_base import Adversary
from curation.context_reader import ContextReader
from curation.joint_decoding import JointDecoder, set_members
from curation.metadata_adversaries import IdHashRule, MetadataClassifier
from curation.published import column_coverage
from curation.records import Question

DATASET_ADVERSARIES: tuple[str, ...] = ("meta-hash", "meta-lr", "context-lr", "joint-context")


def make_dataset_adversary(name: str) -> Adversary | None:
    """A dataset-level adversary by name (None for a name that is not one)."""
    if name == "meta-hash":
        return IdHashRule()
    if name == "meta-lr":
        return MetadataClassifier()
    if name == "context-lr":
        return ContextReader()
    if name == "joint-context":
        return JointDecoder(ContextReader(), name="joint-context")
    return None


def dataset_battery(
    questions: Sequence[Question], names: Sequence[str] = DATASET_ADVERSARIES
) -> tuple[list[Adversary], list[str]]:
    """The dataset-level adversaries of ``names`` that the columns of ``questions``
    allow, and notes on what was left out or runs on less (missing columns)."""
    notes: list[str] = []
    has_path = column_coverage(questions, "path_id") > 0
    has_unit = any(q.patient_id or q.slide_id for q in questions)
    has_sets = bool(set_members(questions))
    out: list[Adversary] = []
    for name in names:
        if name == "context-lr" and not (has_path or has_unit):
            notes.append(
                "context-lr not run: no path_id, patient_id or slide_id, so no question has "
                "a context of other questions"
            )
            continue
        if name == "joint-context" and not has_sets:
            notes.append(
                "joint-context not run: no complementary sets (no set_id shared by rows with "
                "one option list)"
            )
            continue
        adv = make_dataset_adversary(name)
        if adv is not None:
            out.append(adv)
    if not has_path and any(a.name in ("context-lr", "meta-lr") for a in out):
        notes.append(
            "no path_id column: the context reader reads only the patient (else slide) "
            "context and meta-lr has no within-path ranks"
        )
    if column_coverage(questions, "set_id") == 0 and any(a.name == "meta-lr" for a in out):
        notes.append("no set_id column: meta-lr has no within-set ranks")
    return out, notes
