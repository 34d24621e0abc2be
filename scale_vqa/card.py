"""The dataset card: README.md rendered from the packaged ``dataset_card.md`` template.

The template (``scale_vqa/dataset_card.md``; the repository's top-level ``dataset_card.md``
links to it) uses :class:`string.Template` placeholders. :class:`CardInfo` holds what a
caller knows (licence, provenance, leakage audit, curation settings); :class:`DatasetStats`
holds what the writer counts. Sections without data are left out; rendering is
deterministic (no dates).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from string import Template
from typing import Any

import yaml

from curation.audit_null import null_summary
from curation.errors import ConfigError
from curation.records import QUESTION_TYPES

HUB_ID_PLACEHOLDER = "<hub-repo-id>"
"""Stands for the Hub repository id in the loading lines until ``scale-vqa publish`` fills it."""

COLUMN_DOCS: dict[str, str] = {
    "id": "stable content hash of the question",
    "question": "the question text",
    "options": "answer options in letter order (A, B, C, ...)",
    "answer": "the key's letter",
    "question_type": "correspondence, corroboration, localization, explanation or diagnosis "
    "(the paper's types A-E)",
    "rationale": "why the key is right (should never name a letter)",
    "images": "the zoom path's fields of view, low -> high magnification",
    "magnifications": "magnification of each image (see the Magnification section)",
    "mpp": "micrometres per pixel of each image; empty when unknown",
    "regions": "level-0 slide box {x, y, width, height} of each image; empty when unknown",
    "organ": "organ (empty when unknown)",
    "slide_id": "whole-slide image the fields come from",
    "patient_id": "patient (empty when unknown); splits group on it, else on slide_id",
    "path_id": "zoom path (one low/mid/high sequence of fields) the question is about",
    "source": "where the row comes from",
    "template_id": "question template that produced it (empty when unknown)",
    "set_id": "complementary set it belongs to (empty when none)",
}


@dataclass
class CardInfo:
    """What the card says beyond the counts the writer computes.

    ``leakage_audit`` is the audit JSON (``{"n", "chance", "best", "table": [...]}``) or just
    its table rows (``adversary, question_type, accuracy, ci_low, ci_high, n``).
    ``curation`` is a flat dict of settings; ``sections`` adds ``(title, markdown)`` pairs.
    ``clinical_validation`` is the expert review's section as data (``{"intro", "facts",
    "tables": [{"title", "header", "rows"}]}``, from scale_vqa.review.figures.card_section).
    """

    pretty_name: str = "Scale-VQA"
    summary: str = (
        "Multiple-choice visual question answering over several magnifications of the same "
        "pathology slide: each question needs the low-, mid- and high-power fields together."
    )
    license: str = "unknown"
    language: list[str] = field(default_factory=lambda: ["en"])
    task_categories: list[str] = field(
        default_factory=lambda: ["visual-question-answering", "multiple-choice"]
    )
    tags: list[str] = field(
        default_factory=lambda: [
            "pathology",
            "histopathology",
            "medical",
            "whole-slide-images",
            "multi-image",
            "cross-scale",
        ]
    )
    repo_id: str = ""
    source: str = ""
    magnification_note: str = ""
    text_only_note: str = ""
    leakage_audit: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    curation: Mapping[str, Any] | None = None
    limitations: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    clinical_validation: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, card: CardInfo | Mapping[str, Any] | None) -> CardInfo:
        """A :class:`CardInfo` from itself, a dict of its fields, or ``None`` (defaults)."""
        if card is None:
            return cls()
        if isinstance(card, CardInfo):
            return card
        if not isinstance(card, Mapping):
            raise ConfigError(f"card must be a CardInfo or a dict, got {type(card).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(card) - known)
        if unknown:
            raise ConfigError(
                f"card: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(card))


def _mag_label(m: float) -> str:
    return f"{m:g}"


@dataclass
class DatasetStats:
    """Counts over the written rows, per split."""

    rows: dict[str, int]
    shards: dict[str, int]
    bytes: dict[str, int]
    by_type: dict[str, Counter]
    by_organ: dict[str, Counter]
    by_magnification: dict[str, Counter]
    images: int
    field_mm: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per magnification: the stored field of view, width x height in mm (first row seen)."""

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    @property
    def text_only(self) -> bool:
        return self.images == 0

    @classmethod
    def from_rows(
        cls, splits: Mapping[str, Sequence[Mapping[str, Any]]], shards: Sequence
    ) -> DatasetStats:
        """Counts from row dicts per split and the written :class:`~scale_vqa.build.ShardInfo`."""
        n_shards: Counter = Counter(s.split for s in shards)
        n_bytes: Counter = Counter()
        for s in shards:
            n_bytes[s.split] += s.bytes
        by_type, by_organ, by_mag = {}, {}, {}
        field_mm: dict[str, tuple[float, float]] = {}
        images = 0
        for split, rows in splits.items():
            by_type[split] = Counter(r["question_type"] for r in rows)
            by_organ[split] = Counter(r["organ"] or "(not stated)" for r in rows)
            mags: Counter = Counter()
            for r in rows:
                images += len(r["images"])
                if r["images"]:
                    mags.update(_mag_label(m) for m in r["magnifications"])
                    _note_fields(field_mm, r)
            by_mag[split] = mags
        return cls(
            rows={s: len(r) for s, r in splits.items()},
            shards=dict(n_shards),
            bytes=dict(n_bytes),
            by_type=by_type,
            by_organ=by_organ,
            by_magnification=by_mag,
            images=images,
            field_mm=field_mm,
        )


def _pixels(img: Any) -> tuple[int, int] | None:
    """Width and height of a row image (PIL image, array, file path or encoded bytes)."""
    import io

    from PIL import Image

    if isinstance(img, dict):
        img = img.get("bytes") or img.get("path")
    if hasattr(img, "size") and not isinstance(img, (bytes, str)) and hasattr(img, "mode"):
        return tuple(img.size)  # type: ignore[return-value]
    if hasattr(img, "shape"):
        return int(img.shape[1]), int(img.shape[0])
    try:
        src = io.BytesIO(img) if isinstance(img, bytes) else img
        with Image.open(src) as im:  # reads the header only
            return tuple(im.size)  # type: ignore[return-value]
    except (OSError, TypeError, ValueError):
        return None


def _note_fields(out: dict[str, tuple[float, float]], row: Mapping[str, Any]) -> None:
    """Record the field of view in mm of each magnification of ``row`` not yet seen."""
    for img, mag, mpp in zip(row["images"], row["magnifications"], row.get("mpp") or []):
        label = _mag_label(mag)
        if label in out or not mpp:
            continue
        px = _pixels(img)
        if px is not None:
            out[label] = (px[0] * float(mpp) / 1000.0, px[1] * float(mpp) / 1000.0)


def field_lines(field_mm: Mapping[str, tuple[float, float]]) -> str:
    """A small table: magnification -> field of view in mm."""
    if not field_mm:
        return ""
    rows = [
        (f"{k}x", f"{w:.2f} x {h:.2f}")
        for k, (w, h) in sorted(field_mm.items(), key=lambda kv: float(kv[0]))
    ]
    return "Field of view of each image (width x height, mm):\n\n" + md_table(
        ["magnification", "field (mm)"], rows
    )


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return label
    return "n>10M"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, dict))
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _count_table(
    title: str, counts: Mapping[str, Counter], splits: Sequence[str], order: Sequence[str] = ()
) -> str:
    keys = sorted({k for c in counts.values() for k in c}, key=lambda k: _sort_key(k, order))
    rows = [
        [k, *(counts[s].get(k, 0) for s in splits), sum(counts[s][k] for s in splits)] for k in keys
    ]
    rows.append(
        [
            "**total**",
            *(sum(counts[s].values()) for s in splits),
            sum(sum(counts[s].values()) for s in splits),
        ]
    )
    return md_table([title, *splits, "all"], rows)


def _sort_key(key: str, order: Sequence[str] = ()) -> tuple:
    if key in order:
        return (0, float(list(order).index(key)), key)
    try:
        return (1, float(key), key)
    except ValueError:
        return (2, 0.0, key)


def _yaml_block(card: CardInfo, stats: DatasetStats) -> str:
    from scale_vqa.schema import FEATURES

    meta: dict[str, Any] = {
        "license": card.license,
        "language": list(card.language),
        "task_categories": list(card.task_categories),
        "tags": list(card.tags),
        "pretty_name": card.pretty_name,
        "size_categories": [size_category(stats.total)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in stats.rows],
            }
        ],
        "dataset_info": {
            "config_name": "default",
            "features": FEATURES._to_yaml_list(),
            "splits": [
                {"name": s, "num_bytes": stats.bytes.get(s, 0), "num_examples": n}
                for s, n in stats.rows.items()
            ],
            "download_size": sum(stats.bytes.values()),
            "dataset_size": sum(stats.bytes.values()),
        },
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100).rstrip()


def _audit_section(audit: Any) -> str:
    if not audit:
        return ""
    if isinstance(audit, Mapping):
        table = list(audit.get("table") or [])
        chance, n, best = audit.get("chance"), audit.get("n"), audit.get("best")
        dataset = list(audit.get("dataset_adversaries") or [])
    else:
        table, chance, n, best, dataset = list(audit), None, None, None, []
    if not table:
        return ""
    cols = ["adversary", "question_type", "accuracy", "ci_low", "ci_high", "n"]
    for i, row in enumerate(table):
        missing = [c for c in cols if c not in row]
        if missing:
            raise ConfigError(
                f"card: leakage_audit row {i} lacks {', '.join(missing)}; rows need "
                f"{', '.join(cols)}"
            )
    overall = [r for r in table if r["question_type"] == "all"]
    per_type = [r for r in table if r["question_type"] != "all"]
    parts = [
        "## Leakage audit (text-only adversaries)",
        "",
        "Accuracy of adversaries that see only the text (no image) with 95% intervals. "
        "An adversary near chance cannot read the answer off the text; one well above "
        "chance marks a shortcut.",
    ]
    facts = []
    if chance is not None:
        facts.append(f"chance = **{chance:.3f}**")
    if n is not None:
        facts.append(f"n = {n}")
    if best:
        facts.append(
            f"best adversary: **{best.get('adversary')}** on {best.get('question_type')} "
            f"({best.get('accuracy', float('nan')):.3f})"
        )
    if facts:
        parts += ["", "; ".join(facts)]
    if dataset:
        parts += [
            "",
            "Dataset-level adversaries (marked *): they read what a user of a hidden test "
            "split sees across rows (ids, set ids, row order, the other questions of the same "
            "zoom path and patient; never answers or rationales): "
            + ", ".join(f"`{a}`" for a in dataset)
            + ".",
        ]
    tissue = audit.get("shared_tissue") if isinstance(audit, Mapping) else None
    if isinstance(tissue, Mapping) and tissue.get("note"):
        parts += [
            "",
            f"**Shared tissue across splits.** {tissue['note']}. The text adversaries here "
            "read one split at a time, so they do not see it; "
            "`benchmarks/attack_shared_tissue.py` does.",
        ]
    mark = {a: f"{a}*" for a in dataset}
    null_line = null_summary(audit) if isinstance(audit, Mapping) else None
    if null_line:
        parts += [
            "",
            f"A learned adversary is refitted on keys permuted within each complementary set "
            f"(what it reaches on data with no signal): columns `null_p95` (the 95th percentile "
            f"of those refits) and `null_p`. {null_line[:1].upper()}{null_line[1:]}.",
        ]
        cols = [*cols, "null_p95", "null_p"]
    if overall:
        parts += [
            "",
            "### All question types",
            "",
            md_table(
                cols,
                [
                    [f"**{mark.get(r['adversary'], r['adversary'])}**", *_cells(r, cols)]
                    for r in overall
                ],
            ),
        ]
    if per_type:
        parts += [
            "",
            "### Per question type",
            "",
            md_table(
                cols,
                [[mark.get(r["adversary"], r["adversary"]), *_cells(r, cols)] for r in per_type],
            ),
        ]
    return "\n".join(parts)


def _cells(row: Mapping[str, Any], cols: Sequence[str]) -> list[Any]:
    """A table row's cells after the adversary ("" where a rule-based row has no null)."""
    return [row.get(c, "") for c in cols[1:]]


def _clinical_validation_section(cv: Mapping[str, Any] | None) -> str:
    if not cv:
        return ""
    parts = ["## Clinical validation", "", str(cv.get("intro", "")).strip()]
    facts = list(cv.get("facts") or [])
    if facts:
        parts += ["", *(f"- {f}" for f in facts)]
    for t in cv.get("tables") or []:
        parts += ["", f"### {t['title']}", "", md_table(t["header"], t["rows"])]
    return "\n".join(parts)


def _curation_section(curation: Mapping[str, Any] | None) -> str:
    if not curation:
        return ""
    rows = [[f"`{k}`", v] for k, v in curation.items()]
    return "## Curation settings\n\n" + md_table(["setting", "value"], rows)


def _schema_table() -> str:
    from scale_vqa.schema import FEATURES

    rows = [
        [f"`{name}`", _feature_type(feat), COLUMN_DOCS.get(name, "")]
        for name, feat in FEATURES.items()
    ]
    return md_table(["column", "type", "meaning"], rows)


def _feature_type(feat: Any) -> str:
    import datasets

    if isinstance(feat, datasets.Value):
        return feat.dtype
    if isinstance(feat, datasets.Image):
        return "Image"
    if isinstance(feat, datasets.List):
        return f"list of {_feature_type(feat.feature)}"
    if isinstance(feat, dict):
        return "{" + ", ".join(f"{k}: {_feature_type(v)}" for k, v in feat.items()) + "}"
    return type(feat).__name__


def load_template() -> str:
    """The packaged card template (``scale_vqa/dataset_card.md``)."""
    return resources.files("scale_vqa").joinpath("dataset_card.md").read_text(encoding="utf-8")


def render_card(card: CardInfo, stats: DatasetStats) -> str:
    """README.md text: YAML metadata + the card, from the template."""
    from scale_vqa import __version__

    splits = list(stats.rows)
    counts = [
        "## Contents",
        "",
        md_table(
            ["split", "rows", "shards", "bytes"],
            [[s, stats.rows[s], stats.shards.get(s, 0), stats.bytes.get(s, 0)] for s in splits]
            + [["**all**", stats.total, sum(stats.shards.values()), sum(stats.bytes.values())]],
        ),
        "",
        "### Question types",
        "",
        _count_table("question_type", stats.by_type, splits, QUESTION_TYPES),
        "",
        "### Organs",
        "",
        _count_table("organ", stats.by_organ, splits),
    ]
    if stats.text_only:
        mag_section = ""
        text_only = card.text_only_note or (
            "> **Text-only build.** This folder has no images: the `images`, "
            "`magnifications`, `mpp` and `regions` lists are empty in every row. Use it for "
            "text-only audits, not to evaluate vision models."
        )
    else:
        text_only = ""
        mag_section = "\n".join(
            [
                "## Magnification",
                "",
                card.magnification_note
                or "`magnifications` holds the nominal objective power of each image "
                "(10 / mpp convention: 40x = 0.25 um/px).",
                "",
                f"Images by magnification ({stats.images} images in all):",
                "",
                _count_table("magnification", stats.by_magnification, splits),
                "",
                field_lines(stats.field_mm),
            ]
        )
    repo = card.repo_id or HUB_ID_PLACEHOLDER
    load_lines = (
        f'ds = load_dataset("{repo}")  # from the Hub\n'
        'ds = load_dataset("path/to/this/folder")  # or a local copy of this folder\n'
        f'print(ds["{splits[0]}"][0]["question"])'
    )
    extra = "\n\n".join(
        part
        for part in [_clinical_validation_section(card.clinical_validation)]
        + [f"## {title}\n\n{body.strip()}" for title, body in card.sections]
        if part
    )
    limitations = list(card.limitations)
    if stats.text_only:
        limitations.insert(0, "Text-only build: no images are included.")
    limitations.append(
        "Questions, options and rationales may contain errors; treat the key as the "
        "dataset's claim, not a diagnosis. Not for clinical use."
    )
    values = {
        "yaml": _yaml_block(card, stats),
        "pretty_name": card.pretty_name,
        "summary": card.summary.strip(),
        "text_only_note": text_only,
        "source_section": f"## Source\n\n{card.source.strip()}" if card.source.strip() else "",
        "load_lines": load_lines,
        "counts_section": "\n".join(counts),
        "magnification_section": mag_section,
        "audit_section": _audit_section(card.leakage_audit),
        "curation_section": _curation_section(card.curation),
        "extra_sections": extra,
        "schema_table": _schema_table(),
        "limitations": "\n".join(f"- {item}" for item in limitations),
        "tool_version": __version__,
    }
    text = Template(load_template()).substitute(values)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip() + "\n"


def read_card_metadata(text: str) -> dict[str, Any]:
    """The YAML front matter of a README.md (empty dict when there is none)."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    meta = yaml.safe_load(text[3:end]) or {}
    return meta if isinstance(meta, dict) else {}
