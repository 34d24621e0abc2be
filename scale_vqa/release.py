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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from curation.errors import InputError, RecordError
from curation.records import (
    LETTERS,
    LeftOut,
    Question,
    describe_left_out,
    normalise_option,
    validate_question,
)
from scale_vqa.rationale_letters import LetterClaims, rationale_letter_claims
from scale_vqa.schema import Row

__all__ = ["LetterClaims", "rationale_letter_claims"]

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
KNOWN_UNUSABLE: tuple[str, ...] = (
    "identical_options",
    "duplicate_options",
    "answer_not_in_options",
    "no_question",
)
"""Reasons the official release's unusable records have; cards list them even at zero."""
_LEVEL = re.compile(r"^(\d+(?:\.\d+)?)_")


# --- reading the release ------------------------------------------------------------------


@dataclass
class ReleaseImport:
    """A release file as canonical rows and question records, plus its integrity report.

    ``left_out`` lists the records that could not be used (lenient policy), each with its
    index, ``No`` and reason; they are in neither ``rows`` nor ``questions``.
    """

    path: Path
    split: str
    rows: list[Row]
    questions: list[Question]
    report: dict[str, Any]
    text_only: bool = True
    record_numbers: list[Any] = field(default_factory=list)
    left_out: LeftOut = field(default_factory=LeftOut)


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
        raise RecordError(
            f"{where}: no 'options'; every record needs options as a dict "
            '{"A": ..., "B": ..., ...}; fix or remove the record',
            reason="bad_options",
        )
    if isinstance(opts, Mapping):
        keys = list(opts)
        expected = list(LETTERS[: len(keys)])
        if sorted(keys) != expected:
            raise RecordError(
                f"{where}: option keys {keys} are not consecutive letters from A "
                f"(expected {', '.join(expected)}); fix the record",
                reason="bad_options",
            )
        values = [opts[k] for k in expected]
    elif isinstance(opts, list):
        values = opts
    else:
        raise RecordError(
            f"{where}: 'options' is a {type(opts).__name__}; give a dict of letter -> text",
            reason="bad_options",
        )
    if not all(isinstance(v, str) for v in values):
        raise RecordError(f"{where}: every option must be a string", reason="bad_options")
    return values


def confined_path(root: Path, rel: str, where: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refused unless it stays inside ``root``.

    An absolute ``rel``, a ``..`` that climbs out, or a symlink that points out of the root
    raise :class:`InputError`: a release must never make the importer read other files.
    """
    if os.path.isabs(rel) or Path(rel).drive:
        raise InputError(
            f"{where}: image path {rel!r} is absolute; release image paths must be relative "
            "to --images ROOT (refused: nothing outside ROOT is read)"
        )
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise InputError(
            f"{where}: image path {rel!r} resolves to {target}, outside --images {root} "
            "(through '..' or a symbolic link); refused: nothing outside ROOT is read"
        )
    return target


def _check_image(path: Path, rel: str, key: str, where: str) -> None:
    """Raise :class:`RecordError` (``not_an_image``) unless PIL can identify ``path``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RecordError(
            f"{where}: image_path.{key} {rel!r} is not a readable image "
            f"({type(exc).__name__}); replace the file or remove the record",
            reason="not_an_image",
        ) from None


def _image_paths(
    record: Mapping[str, Any], where: str, root: Path | None
) -> tuple[list[str], list[str], list[str], list[Path]]:
    """(present keys, missing keys, relative paths, resolved files under ``root``)."""
    raw = record.get("image_path") or {}
    if not isinstance(raw, Mapping):
        raise RecordError(
            f"{where}: 'image_path' must be an object with {', '.join(IMAGE_KEYS)}",
            reason="bad_image_path",
        )
    present, missing, rels, files = [], [], [], []
    for key in IMAGE_KEYS:
        rel = raw.get(key)
        if rel in (None, ""):
            missing.append(key)
            continue
        if not isinstance(rel, str):
            raise RecordError(
                f"{where}: image_path.{key} must be a string or null", reason="bad_image_path"
            )
        present.append(key)
        rels.append(rel)
        if root is None:
            continue
        target = confined_path(root, rel, where)
        if not target.is_file():
            raise InputError(
                f"{where}: image_path.{key} {rel!r} not found under {root}; point --images at "
                "the folder that holds the release's slide folders, or import text-only "
                "(without --images)"
            )
        _check_image(target, rel, key, where)
        files.append(target)
    return present, missing, rels, files


def _levels(rels: list[str], keys: list[str], where: str) -> list[float]:
    levels = []
    for key, rel in zip(keys, rels):
        m = _LEVEL.match(os.path.basename(rel))
        if not m:
            raise RecordError(
                f"{where}: cannot read the release's magnification level from image_path.{key} "
                f"{rel!r}; release images are named '<level>_...' (10_, 40_, 200_)",
                reason="bad_image_path",
            )
        levels.append(float(m.group(1)))
    if any(b <= a for a, b in pairwise(levels)):
        raise RecordError(
            f"{where}: image levels {levels} do not ascend from low_mag to high_mag; the "
            "image_path entries look swapped",
            reason="bad_image_path",
        )
    return levels


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


@dataclass
class _Record:
    """One usable release record, converted."""

    question: Question
    geometry: dict[str, Any]
    present: list[str]
    missing: list[str]


def _convert(
    record: Any, index: int, where: str, path: Path, split: str, root: Path | None
) -> _Record:
    """One release record -> question + geometry; :class:`RecordError` when unusable."""
    if not isinstance(record, Mapping):
        raise RecordError(
            f"{where}: expected a JSON object, got {type(record).__name__}",
            reason="not_an_object",
        )
    options = _options(record, where)
    extra = record.get("extra_info") or {}
    if not isinstance(extra, Mapping):
        raise RecordError(f"{where}: 'extra_info' must be an object", reason="invalid_record")
    raw_type = extra.get("question_type")
    if raw_type not in TYPE_MAP:
        raise RecordError(
            f"{where}: extra_info.question_type is {raw_type!r}; expected one of "
            f"{', '.join(TYPE_MAP)}; fix or remove the record",
            reason="unknown_question_type",
        )
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RecordError(
            f"{where}: no question text (field 'question' is {question!r}); fix or remove "
            "the record",
            reason="no_question",
        )
    answer = record.get("answer")
    if not isinstance(answer, str) or answer.strip() not in LETTERS[: len(options)]:
        raise RecordError(
            f"{where}: answer {answer!r} is not one of the options "
            f"{', '.join(LETTERS[: len(options)])}; fix the key or remove the record",
            reason="answer_not_in_options",
        )
    q = Question(
        question=question,
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
    present, missing, rels, files = _image_paths(record, where, root)
    geometry: dict[str, Any] = {}
    if root is not None and rels:
        geometry = {
            "images": [str(f) for f in files],
            "magnifications": _levels(rels, present, where),
        }
    return _Record(q, geometry, present, missing)


def load_release(
    path: str | os.PathLike[str],
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> ReleaseImport:
    """Read a release JSON file into rows, question records and an integrity report.

    ``split`` defaults to :func:`infer_split`. With ``images_root`` each row's images are
    the present ``low_mag``/``mid_mag``/``high_mag`` files (resolved and confined to the
    root, symbolic links included; each checked to be an image) and ``magnifications`` the
    release's level numbers; without it the rows are text-only.

    Unusable records (no question, identical or repeated options, answer outside the
    options, unknown type, a file that is not an image, ...) are left out and listed in
    ``report["left_out"]`` with index, ``No`` and reason; with ``strict`` the first one
    raises its :class:`RecordError` instead. A malformed file, a missing image file or an
    image path that leaves the root always raises.
    """
    path = Path(path)
    split = split or infer_split(path)
    root = Path(images_root) if images_root is not None else None
    if root is not None and not root.is_dir():
        raise InputError(f"{root}: --images must be an existing folder")
    records = _read_json(path)
    if not records:
        raise InputError(f"{path}: the release holds no records")
    rows: list[Row] = []
    questions: list[Question] = []
    numbers: list[Any] = []
    left = LeftOut()
    missing_rows: list[dict[str, Any]] = []
    level_counts: dict[str, Counter] = {k: Counter() for k in IMAGE_KEYS}
    id_counts: Counter = Counter()
    for index, record in enumerate(records):
        where = _where(path, index, record)
        no = record.get("No") if isinstance(record, Mapping) else None
        try:
            rec = _convert(record, index, where, path, split, root)
        except RecordError as exc:
            if strict:
                raise RecordError(
                    f"{exc} (--strict refuses the file; without it the record is left out "
                    "and reported)",
                    reason=exc.reason,
                ) from None
            left.add(exc, index=index, No=no)
            continue
        q = rec.question
        id_counts[q.id] += 1
        if id_counts[q.id] > 1:  # an exact repeat of an earlier record: keep ids unique
            q.id = f"{q.id}-{id_counts[q.id]}"
        if rec.missing:
            missing_rows.append({"index": index, "No": no, "id": q.id, "missing": rec.missing})
        for key, level in zip(rec.present, rec.geometry.get("magnifications", [])):
            level_counts[key][f"{level:g}"] += 1
        rows.append(Row.from_question(q, **rec.geometry))
        questions.append(q)
        numbers.append(no)
    if not questions:
        raise InputError(
            f"{path}: none of its {len(records)} records is usable (first: "
            f"{left.rows[0]['message']}); " + describe_left_out(left.report())
        )
    report = _report(path, split, questions, numbers, missing_rows, root is not None)
    report["records_in_file"] = len(records)
    report["left_out"] = left.report()
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
        left_out=left,
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
        groups[
            (normalise_option(q.question), tuple(normalise_option(o) for o in q.options))
        ].append(i)
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

    name = Path(str(report["source"])).name
    lines = [
        f"{name}: {report['records']} records ({report['split']}), {report['slides']} slides, "
        f"{report['paths']} zoom paths; images: {report['images']}",
    ]
    if "left_out" in report:
        lines.append(describe_left_out(report["left_out"]))
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


def fault_counts(report: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """Every integrity fault class of one file's report: (check, rows, what it means).

    Unusable records come first, one line per reason (zero rows for the release's known
    reasons, so a clean file says so), then the faults of the records that were kept.
    """
    from curation.records import REASONS

    left = report.get("left_out") or {"by_reason": {}}
    by = dict(left["by_reason"])
    out = []
    for reason in (
        "identical_options",
        "duplicate_options",
        "answer_not_in_options",
        "no_question",
    ):
        by.setdefault(reason, 0)
    for reason, n in by.items():
        out.append((f"left out: {REASONS.get(reason, reason)}", n, "unusable record, not imported"))
    out += [
        (
            "missing images",
            report["missing_images"]["count"],
            "rows lacking one of low/mid/high magnification (kept; no image invented)",
        ),
        (
            "rationale names another letter than the key",
            report["rationale_letter_conflicts"]["count"],
            "answer balancing permuted the options but not the rationale text",
        ),
        (
            "rationale names a letter at all",
            report["rationale_letter_mentions"]["count"],
            "a letter in the rationale leaks the answer (or misleads after a permutation)",
        ),
        (
            "duplicate question + options",
            report["duplicate_questions"]["rows_involved"],
            "the same question text and options appear more than once (kept)",
        ),
    ]
    return out


def release_card(imports: ReleaseImport | Sequence[ReleaseImport]) -> Any:
    """The :class:`~scale_vqa.card.CardInfo` of one or several imported release files."""
    from scale_vqa.card import CardInfo, md_table

    imps = [imports] if isinstance(imports, ReleaseImport) else list(imports)
    names = [f"`{i.path.name}` ({i.split})" for i in imps]
    faults = [fault_counts(i.report) for i in imps]
    checks: list[str] = []
    meaning: dict[str, str] = {}
    for per in faults:
        for check, _, what in per:
            if check not in meaning:
                checks.append(check)
                meaning[check] = what
    counts = [{c: n for c, n, _ in per} for per in faults]
    known = md_table(
        ["check", *names, "what it means"],
        [[c, *(cnt.get(c, 0) for cnt in counts), meaning[c]] for c in checks],
    )
    letter_rows = []
    for imp in imps:
        for t, v in imp.report["answer_letters"].items():
            letter_rows.append((imp.split, t, v))
    letter_keys = sorted({k for _, _, v in letter_rows for k in v})
    letter_table = md_table(
        ["split", "question_type", *letter_keys],
        [[s, t, *(v.get(k, 0) for k in letter_keys)] for s, t, v in letter_rows],
    )
    files = ", ".join(
        f"`{i.path.name}` (sha256 `{i.report['sha256'][:16]}...`, "
        f"{i.report.get('records_in_file', i.report['records'])} records, "
        f"{i.report['records']} imported as {i.split})"
        for i in imps
    )
    source = (
        f"Imported from the official Scale-VQA release: {files}, with "
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
        "Records that cannot be used (identical or repeated options, an answer outside the "
        "options, no question) are left out and counted above; the import report lists each "
        "by its `No` and reason.",
        "Other known faults of the release are reported above, not repaired: rationales may "
        "name letters that no longer match the key; some rows lack the high-magnification "
        "image.",
        "The release's distractors were built by changing one feature of the key, which leaves "
        "an options-only shortcut (the key tends to be the option most similar to the others); "
        "run `scale-vqa audit` before trusting scores.",
    ]
    splits = sorted({i.split for i in imps})
    return CardInfo(
        pretty_name=f"Scale-VQA ({', '.join(splits)}, imported release)",
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


def load_releases(
    paths: Sequence[str | os.PathLike[str]],
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> list[ReleaseImport]:
    """:func:`load_release` on each file; splits from the file names.

    ``split`` names the split of a single file (several files take theirs from their names:
    val/validation/dev -> validation, test, train). A file whose name names no split is an
    error that says to pass ``--split``. Ids stay unique across files.
    """
    if not paths:
        raise InputError("give at least one release JSON file")
    if split is not None and len(paths) > 1:
        raise InputError(
            f"--split names the split of one file, but {len(paths)} files were given; each "
            "file's split comes from its name (val.json -> validation, test.json -> test): "
            "rename the files or import them one at a time"
        )
    seen_files: set[Path] = set()
    imps = []
    for p in paths:
        resolved = Path(p).resolve()
        if resolved in seen_files:
            raise InputError(f"{p}: given twice; give each release file once")
        seen_files.add(resolved)
        imps.append(load_release(p, split=split, images_root=images_root, strict=strict))
    ids: Counter = Counter()
    for imp in imps:
        for q, row in zip(imp.questions, imp.rows):
            ids[q.id] += 1
            if ids[q.id] > 1:  # the same record in two files (e.g. val and test)
                q.id = row.id = f"{q.id}-{ids[q.id]}"
    return imps


def import_release(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    max_shard_bytes: int | None = None,
    progress: bool = True,
    strict: bool = False,
    overwrite: bool = False,
) -> tuple[list[ReleaseImport], Any]:
    """:func:`load_releases` then :func:`scale_vqa.build.write_dataset`; returns both results.

    Files that map to the same split are concatenated into it, in the order given.
    ``overwrite``: replace an ``out_dir`` holding files scale-vqa did not write.
    """
    from scale_vqa.build import DEFAULT_MAX_SHARD_BYTES, write_dataset

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    imps = load_releases(paths, split=split, images_root=images_root, strict=strict)
    splits: dict[str, list[Row]] = {}
    for imp in imps:
        splits.setdefault(imp.split, []).extend(imp.rows)
    result = write_dataset(
        out_dir,
        splits,
        release_card(imps),
        max_shard_bytes=max_shard_bytes or DEFAULT_MAX_SHARD_BYTES,
        progress=progress,
        overwrite=overwrite,
    )
    return imps, result
