"""lmms-eval task functions for a Scale-VQA dataset (``scale-vqa export --format lmms-eval``).

This file is copied verbatim as ``utils.py`` into the exported task folder, next to the task
YAML files that name its functions (``!function utils.doc_to_text`` ...). It needs
``scale-vqa`` installed in the lmms-eval environment, because it reuses the exact prompt
(:mod:`baselines.prompts`), answer extraction (:mod:`baselines.answers`) and metrics
(:func:`baselines.evaluate.summarize_condition`) of ``scale-vqa evaluate``, so both
harnesses give the same prompts and the same scores on the same replies.

- ``doc_to_visual``: the row's images as RGB PIL images, low -> high magnification;
  ``doc_to_visual_blind``: none (the blind control).
- ``doc_to_text``: the text of the ``scale-vqa evaluate`` prompt (intro, one ``Image i
  (Mx):`` label per image, question, lettered options, the answer instruction), its text
  parts joined by newlines; lmms-eval places the images itself (before the text for most
  models). ``doc_to_text_blind``: the blind prompt (no intro, no image labels).
- ``process_results``: the deterministic extraction; an unparseable reply counts as wrong
  and is counted, never replaced by a guess.
- aggregations: accuracy, accuracy per question type, group accuracy over complementary
  sets (every question of a ``set_id`` right), and the number of unparseable replies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from baselines.answers import extract_answer
from baselines.evaluate import summarize_condition
from baselines.prompts import content_blocks, to_pil
from curation.records import QUESTION_TYPES


def _example(doc: Mapping[str, Any], blind: bool = False) -> dict[str, Any]:
    images = [] if blind else list(doc.get("images") or [])
    mags = [] if blind else list(doc.get("magnifications") or [])
    if not blind and not images and "images" not in doc:  # a doc without its image column
        images = [None] * len(mags)
    return {"question": doc["question"], "options": list(doc["options"]), "images": images,
            "magnifications": mags}  # fmt: skip


def _text(example: Mapping[str, Any]) -> str:
    return "\n".join(b["text"] for b in content_blocks(example) if b["type"] == "text")


def doc_to_visual(doc: Mapping[str, Any]) -> list[Any]:
    """The row's images, RGB, low -> high magnification."""
    return [to_pil(im).convert("RGB") for im in doc.get("images") or []]


def doc_to_visual_blind(doc: Mapping[str, Any]) -> list[Any]:
    """No image: the blind control."""
    return []


def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Any = None) -> str:
    """The text of the ``scale-vqa evaluate`` prompt for the full condition."""
    return _text(_example(doc))


def doc_to_text_blind(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Any = None) -> str:
    """The text of the ``scale-vqa evaluate`` prompt for the blind condition."""
    return _text(_example(doc, blind=True))


def process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, Any]:
    """Score the first reply with the deterministic extraction of ``scale-vqa evaluate``."""
    reply = results[0] if results else ""
    options = list(doc["options"])
    parsed = extract_answer(reply, len(options), options)
    rec = {
        "id": doc.get("id", ""),
        "question_type": doc.get("question_type", ""),
        "set_id": doc.get("set_id", ""),
        "n_options": len(options),
        "parsed": parsed,
        "correct": parsed == doc["answer"],
    }
    out = {"accuracy": rec, "group_accuracy": rec, "unparsed": rec}
    out.update({f"accuracy_{t}": rec for t in QUESTION_TYPES})
    return out


def summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of ``scale-vqa evaluate`` (one condition) over process_results records."""
    meta = [{"question_type": r["question_type"], "set_id": r["set_id"]} for r in results]
    triples = [(i, bool(r["correct"]), r["parsed"] is None) for i, r in enumerate(results)]
    chance = sum(1 / r["n_options"] for r in results) / max(1, len(results))
    return summarize_condition(triples, meta, chance)


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


def aggregate_accuracy(results: Sequence[Mapping[str, Any]]) -> float:
    """Accuracy over every row (prints the per-type breakdown)."""
    s = summary(results)
    per_type = ", ".join(
        f"{t} {100 * v['accuracy']:.1f}% (n={v['n']})" for t, v in s["by_type"].items()
    )
    print(f"scale-vqa: accuracy {100 * _value(s['accuracy']):.1f}% (n={s['n']}); {per_type}")
    return _value(s["accuracy"])


def aggregate_group_accuracy(results: Sequence[Mapping[str, Any]]) -> float:
    """Share of complementary sets (>= 2 rows) answered right in every row; NaN if none."""
    return _value(summary(results)["group"]["accuracy"])


def aggregate_unparsed(results: Sequence[Mapping[str, Any]]) -> int:
    """How many replies had no parseable answer (each counted wrong)."""
    return int(summary(results)["unparseable"])


def _type_aggregator(question_type: str) -> Any:
    def aggregate(results: Sequence[Mapping[str, Any]]) -> float:
        by_type = summary(results)["by_type"]
        return _value(by_type[question_type]["accuracy"]) if question_type in by_type else math.nan

    aggregate.__name__ = f"aggregate_{question_type}"
    aggregate.__doc__ = f"Accuracy on the {question_type} questions (NaN when there are none)."
    return aggregate


aggregate_correspondence = _type_aggregator("correspondence")
aggregate_corroboration = _type_aggregator("corroboration")
aggregate_localization = _type_aggregator("localization")
aggregate_explanation = _type_aggregator("explanation")
aggregate_diagnosis = _type_aggregator("diagnosis")
