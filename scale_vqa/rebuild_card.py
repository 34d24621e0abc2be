"""The dataset card's content for a rebuild: metadata, audit, curation settings, notes.

Functions over the rebuild's state (:class:`scale_vqa.stages.context.RebuildContext`: its
config, work files and counts), kept apart from the stages that produce them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scale_vqa.stages.context import RebuildContext

HIDDEN_TEST_SECTION = (
    "This is a **hidden-test build**: in the `test` split, `answer` and `rationale` are "
    "empty in every row (rationales are solutions: they state the key's findings). The key "
    "is kept apart from this folder by whoever built it. Row ids, set ids and row order "
    "carry nothing about the key. To score a model on the test split, the key holder runs "
    "`scale-vqa evaluate DATASET --split test --key test_key.jsonl`, which gives the same "
    "figures as on a full build; `train` and `validation` keep their answers."
)


def card_info(rb: RebuildContext) -> Any:
    """The dataset card's content: metadata, audit, curation settings."""
    from scale_vqa.card import CardInfo
    from scale_vqa.extract import padded_note

    cfg = rb.cfg
    audit = json.loads(rb.audit.read_text(encoding="utf-8")) if rb.audit.is_file() else None
    screen = (
        json.loads(rb.screen_report.read_text(encoding="utf-8"))
        if rb.screen_report.is_file()
        else {}
    )
    if audit is not None and rb.shared_tissue_note:
        audit = {**audit, "shared_tissue": {"note": rb.shared_tissue_note}}
    sections: list[tuple[str, str]] = []
    if cfg.card.citation:
        sections.append(
            ("Citation of this build", "```bibtex\n" + cfg.card.citation.strip() + "\n```")
        )
    curation = {
        "seed": cfg.seed,
        "magnifications": ", ".join(f"{m:g}x" for m in cfg.magnifications),
        "crop size (px)": cfg.size,
        "options per question": cfg.generation.options,
        "question types asked for": ", ".join(cfg.generation.question_types),
        "naive generation": cfg.generation.naive,
        "split ratios (train/validation/test)": (
            f"{cfg.split.train:g}/{cfg.split.validation:g}/{cfg.split.test:g}"
        ),
        "annotations": rb.counts.get("annotations", ""),
        "zoom paths": rb.counts.get("zoom_paths", ""),
        "questions generated": rb.counts.get("generated", ""),
        "questions kept after the screen": rb.counts.get("kept", ""),
        "screen": (
            f"{cfg.screen.rounds} round(s), adversaries: "
            + (", ".join(cfg.screen.adversaries) if cfg.screen.adversaries else "default")
            + (" with embed-lr" if cfg.screen.embeddings and not cfg.screen.adversaries else "")
            + (", AFLite" if cfg.screen.aflite else "")
            + (f", {len(cfg.screen.llm)} LLM endpoint(s)" if cfg.screen.llm else "")
            if cfg.screen.enabled
            else "disabled"
        ),
    }
    curation.update(_encoding_rows(rb.zoom))
    if isinstance(screen, dict) and "n_input" in screen:
        curation["screen: questions in / out"] = f"{screen['n_input']} / {screen['n_output']}"
        curation["screen: regenerated / dropped"] = (
            f"{screen.get('regenerated', 0)} / {screen.get('dropped', 0)}"
        )
    kw: dict[str, Any] = {
        "pretty_name": cfg.card.name,
        "license": cfg.card.license,
        "repo_id": cfg.card.repo_id,
        "source": (
            "Rebuilt with `scale-vqa build` from slides and zoom-path annotations "
            f"({rb.counts.get('slides', '?')} slide file(s))."
        ),
        "leakage_audit": audit,
        "curation": curation,
        "limitations": list(cfg.card.limitations)
        + ([f"Empty splits: {rb.empty_note}"] if rb.empty_note else [])
        + ([f"Shared tissue across splits: {note}."] if (note := rb.shared_tissue_note) else [])
        + ([f"Padded fields: {padded}."] if (padded := padded_note(rb.zoom)) else []),
        "sections": sections,
    }
    if cfg.hidden_test:
        text = HIDDEN_TEST_SECTION
        if rb.shared_tissue_test:
            text += (
                f" **But {rb.shared_tissue_test} test rows share tissue with the other "
                "splits** (see Limitations): there the public keys of train and validation "
                "rows state what test images show, so withholding the test key does not "
                "hide it."
            )
        sections.append(("Hidden test split", text))
    if cfg.card.description:
        kw["summary"] = cfg.card.description
    if rb.review_card is not None:
        kw["clinical_validation"] = rb.review_card
    return CardInfo(**kw)


def empty_splits_note(rb: RebuildContext, splits: dict[str, int]) -> str | None:
    """Why a split the ratios ask for got no rows, and what to change; None if none."""
    from curation.annotations import read_annotations

    sp = rb.cfg.split
    wanted = {"train": sp.train, "validation": sp.validation, "test": sp.test}
    empty = [s for s, r in wanted.items() if r > 0 and not splits.get(s)]
    if not empty or not rb.annotations.is_file():
        return None
    anns = read_annotations(rb.annotations, rb.cfg.organs_dir)
    groups = {a.group for a in anns}
    unit = "patient(s)" if all(a.patient_id for a in anns) else "patient/slide group(s)"
    chunk = rb.cfg.generation.split_min_chunk
    return (
        f"split(s) {', '.join(empty)} came out empty: {len(anns)} zoom paths from "
        f"{len(groups)} {unit}, split {sp.train:g}/{sp.validation:g}/{sp.test:g} with "
        f"whole {unit.split('(')[0]}s per split and at least generation.split_min_chunk="
        f"{chunk} paths per split and stratum; lower generation.split_min_chunk (0 deals "
        "every stratum to every split), change the split ratios, or annotate more patients"
    )


def _encoding_rows(zoom: Path) -> dict[str, str]:
    """The card's rows on how crops are stored and their measured PSNR."""
    from scale_vqa.extract import read_encoding

    enc = read_encoding(zoom) if zoom.is_dir() else None
    if not enc:
        return {}
    p = enc["psnr"]
    if p["mean_db"] == "lossless":
        quality = f"lossless ({p['n']} crops checked)"
    elif p["n"]:
        quality = (
            f"mean {p['mean_db']} dB, min {p['min_db']} dB over {p['n']} crops ({p['sample']})"
        )
    else:
        quality = "no crop sampled"
    return {"crop encoding": enc["description"], "crop PSNR against the slide read": quality}
