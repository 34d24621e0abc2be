"""Import of the official Scale-VQA JSON release (iMVR-PL/ScaleReasoner-R1, ``data/*.json``).

A release file is a JSON list of records::

    {"question": "...", "options": {"A": "...", "B": "...", "C": "...", "D": "..."},
     "answer": "A", "rationale": "...",
     "image_path": {"low_mag": "WSI/rois/10_....jpg", "mid_mag": "WSI/rois/40_....jpg",
                    "high_mag": "WSI/rois/200_....jpg" | null},
     "extra_info": {"wsi_name": "WSI", "path_id": "uuid", "question_type": "type_A"},
     "No": 1}

:func:`load_release` turns it into canonical rows (:class:`scale_vqa.schema.Row`) and
question records plus an integrity report; :func:`import_release` also writes the dataset
folder with :func:`scale_vqa.build.write_dataset`.

Magnifications: the release does not state objective powers or mpp. Its image names start
with a level number (``10_``, ``40_``, ``200_`` for low, mid, high). With images, those
numbers are recorded as ``magnifications`` when they ascend low -> high (the card says
they are the release's nominal labels, not measured objective powers); text-only imports
leave every geometry list empty. ``mpp`` and ``regions`` are unknown and stay empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from curation.errors import InputError, ValidationError
from curation.records import LETTERS, Question, validate_question
from scale_vqa.schema import Row

SOURCE = "scale-vqa-release"
TYPE_MAP: dict[str, str] = {
    "type_A": "correspondence",
    "type_B": "corroboration",
    "type_C": "localization",
    "type_D": "explanation",
    "type_E": "diagnosis",
}
IMAGE_KEYS: tuple[str, ...] = ("low_mag", "mid_mag", "high_mag")
_SPLIT_WORDS = {
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "train": "train",
}
_LEVEL = re.compile(r"^(\d+(?:\.\d+)?)_")


# --- rationale letter claims ------------------------------------------------------------

_ENDORSE_VERBS = frozenset(
    [
        "match",
        "matches",
        "pairs",
        "pair",
        "preserves",
        "keeps",
        "retains",
        "maintains",
        "fits",
        "captures",
        "reflects",
        "describes",
        "aligns",
        "corresponds",
        "satisfies",
        "reproduces",
        "combines",
        "mirrors",
        "integrates",
        "supports",
        "summarizes",
        "summarises",
    ]
)
_REJECT_VERBS = frozenset(
    [
        "swaps",
        "changes",
        "replaces",
        "substitutes",
        "alters",
        "contradicts",
        "adds",
        "removes",
        "drops",
        "omits",
        "introduces",
        "misstates",
        "misattributes",
        "misplaces",
        "fails",
        "lacks",
        "conflicts",
        "overstates",
        "understates",
        "differs",
        "deviates",
        "exchanges",
        "inverts",
        "reverses",
        "negates",
        "excludes",
    ]
)
_ADVERBS = frozenset(
    [
        "only",
        "best",
        "most",
        "more",
        "closely",
        "also",
        "alone",
        "uniquely",
        "fully",
        "directly",
        "exactly",
        "still",
        "clearly",
        "explicitly",
        "specifically",
        "simply",
        "instead",
        "likewise",
        "similarly",
        "therefore",
        "thus",
        "again",
        "precisely",
        "faithfully",
    ]
)
_POSITIVE_ADVERBS = frozenset({"correctly", "accurately", "properly", "appropriately"})
_NEGATIVE_ADVERBS = frozenset({"incorrectly", "wrongly", "falsely", "erroneously", "not"})
_COPULAS = frozenset({"is", "remains", "was", "appears", "seems", "stays"})
_POSITIVE_PREDICATES = frozenset(
    [
        "correct",
        "right",
        "best",
        "only",
        "key",
        "answer",
        "true",
        "accurate",
        "valid",
        "supported",
        "consistent",
        "compatible",
        "preferred",
        "appropriate",
    ]
)
_NEGATIVE_PREDICATES = frozenset(
    [
        "incorrect",
        "wrong",
        "false",
        "invalid",
        "unsupported",
        "inconsistent",
        "incompatible",
        "not",
        "excluded",
        "ruled",
        "implausible",
    ]
)
_PREFIXES = frozenset({"option", "options", "choice", "choices", "answer", "answers"})
_NOT_LETTER_AFTER = frozenset(
    [
        "type",
        "types",
        "grade",
        "grades",
        "class",
        "group",
        "stage",
        "zone",
        "level",
        "hepatitis",
        "vitamin",
        "protein",
        "complex",
        "category",
        "pattern",
        "panel",
        "figure",
        "fig",
        "table",
        "appendix",
        "lane",
        "site",
        "area",
        "part",
        "section",
    ]
)
_LETTER = re.compile(r"(?<![\w\-/])([A-D])(?![\w\-/])")
_WORD = re.compile(r"[A-Za-z]+")
_CORRECT_IS = re.compile(
    r"\b(?:correct|right|best|true)\s+(?:answer|option|choice)\s*(?:is|:|=)\s*"
    r"(?:option\s+)?\(?([A-D])\b",
    re.I,
)


@dataclass(frozen=True)
class LetterClaims:
    """Option letters a rationale names: all of them, those it calls right, those it rejects."""

    mentioned: frozenset[str]
    endorsed: frozenset[str]
    rejected: frozenset[str]


def _classify_after(after: str) -> str | None:
    """'endorse', 'reject', 'mention' (letter followed by punctuation) or None (not a letter)."""
    stripped = after.lstrip(")")
    if not stripped.strip() or re.match(r"\s*[,;:.!?()\[\]'\"]", stripped):
        return "mention"
    words = [w.lower() for w in _WORD.findall(stripped[:120])][:6]
    negative = False
    i = 0
    while i < len(words) and (
        words[i] in _ADVERBS or words[i] in _POSITIVE_ADVERBS or words[i] in _NEGATIVE_ADVERBS
    ):
        if words[i] in _NEGATIVE_ADVERBS:
            negative = True
        elif words[i] in _POSITIVE_ADVERBS and i + 1 < len(words):
            return "reject" if negative else "endorse"
        i += 1
    if i >= len(words):
        return None
    verb = words[i]
    if verb in _ENDORSE_VERBS:
        return "reject" if negative else "endorse"
    if verb in _REJECT_VERBS:
        return "reject"
    if verb in {"does", "do", "did", "cannot"}:
        return "reject" if verb == "cannot" or "not" in words[i + 1 : i + 2] else "mention"
    if verb in _COPULAS:
        for w in words[i + 1 :]:
            if w in {"the", "a", "an", "also", "clearly", "most", "still"}:
                continue
            if w in _NEGATIVE_PREDICATES:
                return "reject"
            if w in _POSITIVE_PREDICATES:
                return "endorse"
            return "mention"
        return "mention"
    return None


def rationale_letter_claims(text: str) -> LetterClaims:
    """Which option letters ``text`` names, and which it names as the right/matching one.

    Matches the patterns of the release ("Only A matches", "Option B pairs", "A best
    matches ...", "A preserves ...", "from A (B swaps ...)", "the correct answer is C").
    A capital "A" used as an article ("A matching feature is present", "A smooth muscle
    component ...") is not a letter: a bare letter counts only when a prefix (option,
    choice, answer, only), brackets, punctuation or a verb from a fixed list follows
    or precedes it.
    """
    text = text or ""
    mentioned: set[str] = set()
    endorsed: set[str] = set()
    rejected: set[str] = set()
    for m in _CORRECT_IS.finditer(text):
        mentioned.add(m.group(1))
        endorsed.add(m.group(1))
    for m in _LETTER.finditer(text):
        letter = m.group(1)
        before = text[: m.start()]
        prev_words = [w.lower() for w in _WORD.findall(before[-40:])]
        prev = prev_words[-1] if prev_words else ""
        prefixed = prev in _PREFIXES and not before.endswith(("_", "-"))
        bracketed = before.endswith("(") and text[m.end() : m.end() + 1] == ")"
        only = prev == "only" or (prefixed and len(prev_words) > 1 and prev_words[-2] == "only")
        if prev in _NOT_LETTER_AFTER and not prefixed:
            continue
        kind = _classify_after(text[m.end() :])
        if kind is None and not (prefixed or bracketed or only):
            continue
        mentioned.add(letter)
        if kind == "reject":
            rejected.add(letter)
        elif kind == "endorse" or only:
            endorsed.add(letter)
    return LetterClaims(frozenset(mentioned), frozenset(endorsed), frozenset(rejected))


# --- reading the release ------------------------------------------------------------------


@dataclass
class ReleaseImport:
    """A release file as canonical rows and question records, plus its integrity report."""

    path: Path
    split: str
    rows: list[Row]
    questions: list[Question]
    report: dict[str, Any]
    text_only: bool = True
    record_numbers: list[Any] = field(default_factory=list)


def infer_split(path: str | os.PathLike[str]) -> str:
    """``validation``/``test``/``train`` from the file name (``val.json`` -> validation)."""
    tokens = {t for t in re.split(r"[^a-z0-9]+", Path(path).stem.lower()) if t}
    found = {_SPLIT_WORDS[t] for t in tokens if t in _SPLIT_WORDS}
    if len(found) == 1:
        return found.pop()
    why = "names several splits" if found else "does not name a split (val, test or train)"
    raise InputError(
        f"{path}: cannot tell the split: the file name {why}; pass --split "
        "(train, validation or test)"
    )


def _where(path: Path, index: int, record: Any) -> str:
    no = record.get("No") if isinstance(record, Mapping) else None
    return f"{path.name} record {index}" + (f" (No {no})" if no is not None else "")


def _options(record: Mapping[str, Any], where: str) -> list[str]:
    opts = record.get("options")
    if opts is None:
        raise ValidationError(
            f"{where}: no 'options'; every record needs options as a dict "
            '{"A": ..., "B": ..., ...}; fix or remove the record'
        )
    if isinstance(opts, Mapping):
        keys = list(opts)
        expected = list(LETTERS[: len(keys)])
        if sorted(keys) != expected:
            raise ValidationError(
                f"{where}: option keys {keys} are not consecutive letters from A "
                f"(expected {', '.join(expected)}); fix the record"
            )
        values = [opts[k] for k in expected]
    elif isinstance(opts, list):
        values = opts
    else:
        raise ValidationError(
            f"{where}: 'options' is a {type(opts).__name__}; give a dict of letter -> text"
        )
    if not all(isinstance(v, str) for v in values):
        raise ValidationError(f"{where}: every option must be a string")
    return values


def _image_paths(
    record: Mapping[str, Any], where: str, root: Path | None
) -> tuple[list[str], list[str], list[str]]:
    """(present keys, missing keys, relative paths of present images)."""
    raw = record.get("image_path") or {}
    if not isinstance(raw, Mapping):
        raise ValidationError(
            f"{where}: 'image_path' must be an object with {', '.join(IMAGE_KEYS)}"
        )
    present, missing, rels = [], [], []
    for key in IMAGE_KEYS:
        rel = raw.get(key)
        if rel in (None, ""):
            missing.append(key)
            continue
        if not isinstance(rel, str):
            raise ValidationError(f"{where}: image_path.{key} must be a string or null")
        present.append(key)
        rels.append(rel)
        if root is not None and not (root / rel).is_file():
            raise InputError(
                f"{where}: image_path.{key} {rel!r} not found under {root}; point --images at "
                "the folder that holds the release's slide folders, or import text-only "
                "(without --images)"
            )
    return present, missing, rels


def _levels(rels: list[str], keys: list[str], where: str) -> list[float]:
    levels = []
    for key, rel in zip(keys, rels):
        m = _LEVEL.match(os.path.basename(rel))
        if not m:
            raise ValidationError(
                f"{where}: cannot read the release's magnification level from image_path.{key} "
                f"{rel!r}; release images are named '<level>_...' (10_, 40_, 200_)"
            )
        levels.append(float(m.group(1)))
    if any(b <= a for a, b in pairwise(levels)):
        raise ValidationError(
            f"{where}: image levels {levels} do not ascend from low_mag to high_mag; the "
            "image_path entries look swapped"
        )
    return levels


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _read_json(path: Path) -> list[Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path to a release JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; give the release's JSON file") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "give the release's JSON file (a list of records)"
        ) from None
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got a {type(data).__name__}")
    return data


def load_release(
    path: str | os.PathLike[str],
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
) -> ReleaseImport:
    """Read a release JSON file into rows, question records and an integrity report.

    ``split`` defaults to :func:`infer_split`. With ``images_root`` each row's images are
    the present ``low_mag``/``mid_mag``/``high_mag`` files (paths under the root; the
    writer reads them) and ``magnifications`` the release's level numbers; without it the
    rows are text-only. Bad records raise :class:`ValidationError`/:class:`InputError`
    naming the record (index and ``No``) and what to do.
    """
    path = Path(path)
    split = split or infer_split(path)
    root = Path(images_root) if images_root is not None else None
    if root is not None and not root.is_dir():
        raise InputError(f"{root}: --images must be an existing folder")
    records = _read_json(path)
    rows: list[Row] = []
    questions: list[Question] = []
    numbers: list[Any] = []
    missing_rows: list[dict[str, Any]] = []
    level_counts: dict[str, Counter] = {k: Counter() for k in IMAGE_KEYS}
    id_counts: Counter = Counter()
    for index, record in enumerate(records):
        where = _where(path, index, record)
        if not isinstance(record, Mapping):
            raise ValidationError(f"{where}: expected a JSON object, got {type(record).__name__}")
        options = _options(record, where)
        extra = record.get("extra_info") or {}
        if not isinstance(extra, Mapping):
            raise ValidationError(f"{where}: 'extra_info' must be an object")
        raw_type = extra.get("question_type")
        if raw_type not in TYPE_MAP:
            raise ValidationError(
                f"{where}: extra_info.question_type is {raw_type!r}; expected one of "
                f"{', '.join(TYPE_MAP)}; fix or remove the record"
            )
        answer = record.get("answer")
        if not isinstance(answer, str) or answer.strip() not in LETTERS[: len(options)]:
            raise ValidationError(
                f"{where}: answer {answer!r} is not one of the options "
                f"{', '.join(LETTERS[: len(options)])}; fix the key or remove the record"
            )
        present, missing, rels = _image_paths(record, where, root)
        q = Question(
            question=record.get("question") or "",
            options=options,
            answer=answer.strip(),
            question_type=TYPE_MAP[raw_type],
            rationale=record.get("rationale") or "",
            slide_id=str(extra.get("wsi_name") or ""),
            path_id=str(extra.get("path_id") or ""),
            split=split,
            source=SOURCE,
            extra={"release_no": record.get("No"), "release_index": index},
        )
        validate_question(q, where)
        id_counts[q.id] += 1
        if id_counts[q.id] > 1:  # an exact repeat of an earlier record: keep ids unique
            q.id = f"{q.id}-{id_counts[q.id]}"
        if missing:
            missing_rows.append(
                {"index": index, "No": record.get("No"), "id": q.id, "missing": missing}
            )
        geometry: dict[str, Any] = {}
        if root is not None and rels:
            geometry = {
                "images": [str(root / r) for r in rels],
                "magnifications": _levels(rels, present, where),
            }
            for key, level in zip(present, geometry["magnifications"]):
                level_counts[key][f"{level:g}"] += 1
        rows.append(Row.from_question(q, **geometry))
        questions.append(q)
        numbers.append(record.get("No"))
    if not records:
        raise InputError(f"{path}: the release holds no records")
    report = _report(path, split, questions, numbers, missing_rows, root is not None)
    if root is not None:
        report["magnification_levels"] = {
            k: dict(sorted(v.items())) for k, v in level_counts.items()
        }
    return ReleaseImport(
        path=path,
        split=split,
        rows=rows,
        questions=questions,
        report=report,
        text_only=root is None or not any(r.images for r in rows),
        record_numbers=numbers,
    )


def _report(
    path: Path,
    split: str,
    questions: list[Question],
    numbers: list[Any],
    missing_rows: list[dict[str, Any]],
    with_images: bool,
) -> dict[str, Any]:
    conflicts, mentions = [], []
    for i, q in enumerate(questions):
        claims = rationale_letter_claims(q.rationale)
        ref = {"index": i, "No": numbers[i], "id": q.id, "answer": q.answer}
        if claims.mentioned:
            mentions.append(ref | {"letters": sorted(claims.mentioned)})
        wrong = sorted(claims.endorsed - {q.answer})
        if wrong:
            conflicts.append(ref | {"named": wrong, "rationale": q.rationale})
    letters: dict[str, dict[str, int]] = {}
    for qtype in [*TYPE_MAP.values(), "all"]:
        subset = [q for q in questions if qtype in ("all", q.question_type)]
        if subset:
            counts = Counter(q.answer for q in subset)
            letters[qtype] = {k: counts.get(k, 0) for k in sorted(set(LETTERS[:4]) | set(counts))}
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[(_norm(q.question), tuple(_norm(o) for o in q.options))].append(i)
    duplicates = [
        {
            "question": questions[idx[0]].question,
            "same_answer": len({questions[i].answer for i in idx}) == 1,
            "rows": [
                {
                    "index": i,
                    "No": numbers[i],
                    "id": questions[i].id,
                    "path_id": questions[i].path_id,
                    "answer": questions[i].answer,
                }
                for i in idx
            ],
        }
        for idx in groups.values()
        if len(idx) > 1
    ]
    return {
        "source": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "split": split,
        "records": len(questions),
        "images": "embedded" if with_images else "none (text-only import)",
        "question_types": dict(Counter(q.question_type for q in questions)),
        "slides": len({q.slide_id for q in questions}),
        "paths": len({q.path_id for q in questions}),
        "missing_images": {"count": len(missing_rows), "rows": missing_rows},
        "rationale_letter_conflicts": {"count": len(conflicts), "rows": conflicts},
        "rationale_letter_mentions": {"count": len(mentions), "rows": mentions},
        "answer_letters": letters,
        "duplicate_questions": {
            "count": len(duplicates),
            "rows_involved": sum(len(d["rows"]) for d in duplicates),
            "groups": duplicates,
        },
    }


def summarize(report: Mapping[str, Any]) -> str:
    """A short human summary of an integrity report."""

    def refs(rows: list[dict[str, Any]], limit: int = 8) -> str:
        names = [f"No {r['No']}" if r.get("No") is not None else f"#{r['index']}" for r in rows]
        more = f", ... (+{len(names) - limit})" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more

    lines = [
        f"{report['records']} records ({report['split']}), {report['slides']} slides, "
        f"{report['paths']} zoom paths; images: {report['images']}",
    ]
    mi = report["missing_images"]
    lines.append(
        f"missing images: {mi['count']} row(s) lack a magnification (kept, flagged)"
        + (f": {refs(mi['rows'])}" if mi["count"] else "")
    )
    rc = report["rationale_letter_conflicts"]
    lines.append(
        f"rationale/key conflicts: {rc['count']} rationale(s) name another letter than the key"
        + (f": {refs(rc['rows'])}" if rc["count"] else "")
    )
    lines.append(
        f"rationales naming a letter at all: {report['rationale_letter_mentions']['count']}"
    )
    dq = report["duplicate_questions"]
    lines.append(
        f"duplicate questions (same question + options): {dq['count']} group(s), "
        f"{dq['rows_involved']} row(s)"
    )
    letters = report["answer_letters"].get("all", {})
    lines.append("answer letters: " + ", ".join(f"{k} {v}" for k, v in letters.items()))
    return "\n".join(lines)


def release_card(imp: ReleaseImport) -> Any:
    """The :class:`~scale_vqa.card.CardInfo` of an imported release."""
    from scale_vqa.card import CardInfo, md_table

    rep = imp.report
    known = md_table(
        ["check", "rows", "what it means"],
        [
            [
                "missing images",
                rep["missing_images"]["count"],
                "rows lacking one of low/mid/high magnification (kept; no image invented)",
            ],
            [
                "rationale names another letter than the key",
                rep["rationale_letter_conflicts"]["count"],
                "answer balancing permuted the options but not the rationale text",
            ],
            [
                "rationale names a letter at all",
                rep["rationale_letter_mentions"]["count"],
                "a letter in the rationale leaks the answer (or misleads after a permutation)",
            ],
            [
                "duplicate question + options",
                rep["duplicate_questions"]["rows_involved"],
                "the same question text and options appear more than once",
            ],
        ],
    )
    letters = rep["answer_letters"]
    letter_keys = sorted({k for v in letters.values() for k in v})
    letter_table = md_table(
        ["question_type", *letter_keys],
        [[t, *(v.get(k, 0) for k in letter_keys)] for t, v in letters.items()],
    )
    source = (
        f"Imported from the official Scale-VQA release file `{imp.path.name}` "
        f"(sha256 `{rep['sha256'][:16]}...`, {rep['records']} records) with "
        "`scale-vqa import-release`. Question types `type_A`..`type_E` map to "
        "correspondence, corroboration, localization, explanation, diagnosis; `slide_id` is "
        "the release's `wsi_name`, `path_id` its `path_id`; organ and patient are not stated "
        "by the release and are left empty."
    )
    mag_note = (
        "The release does not state objective powers or pixel sizes. Its image files are named "
        "with a level number (`10_`, `40_`, `200_` for the low-, mid- and high-magnification "
        "field); `magnifications` records these **nominal release levels as given**, ordered "
        "low -> high. They are not verified objective powers, so do not read them with the "
        "10 / mpp convention. `mpp` and `regions` are unknown and empty."
    )
    limitations = [
        "Organ, patient and geometry (mpp, regions) are not stated by the release.",
        "Splits are the release's own; it does not document whether they are grouped by patient.",
        "Known faults of the release are reported above, not repaired: rationales may name "
        "letters that no longer match the key; some rows lack the high-magnification image.",
        "The release's distractors were built by changing one feature of the key, which leaves "
        "an options-only shortcut (the key tends to be the option most similar to the others); "
        "run `scale-vqa audit` before trusting scores.",
    ]
    return CardInfo(
        pretty_name=f"Scale-VQA ({imp.split}, imported release)",
        source=source,
        magnification_note=mag_note,
        limitations=limitations,
        sections=[
            (
                "Integrity of the source release",
                known + "\n\nRow-level lists are in the import report (`--report`).",
            ),
            ("Answer letters", letter_table),
        ],
    )


def import_release(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    max_shard_bytes: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[ReleaseImport, Any]:
    """:func:`load_release` then :func:`scale_vqa.build.write_dataset`; returns both results.

    ``overwrite``: replace an ``out_dir`` holding files scale-vqa did not write.
    """
    from scale_vqa.build import DEFAULT_MAX_SHARD_BYTES, write_dataset

    imp = load_release(path, split=split, images_root=images_root)
    result = write_dataset(
        out_dir,
        {imp.split: imp.rows},
        release_card(imp),
        max_shard_bytes=max_shard_bytes or DEFAULT_MAX_SHARD_BYTES,
        progress=progress,
        overwrite=overwrite,
    )
    return imp, result
