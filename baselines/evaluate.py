"""Evaluation with honest controls, over any multi-image MCQ dataset.

Columns used: ``question``, ``options`` (letter order), ``answer`` (a letter),
``question_type``, ``images`` (low -> high magnification), ``magnifications``, ``set_id``
(complementary set, empty when none), ``slide_id``; ``id`` when present (else the row
number). Conditions, all run on the same rows with the same prompt:

- ``full``: every image;
- ``blind``: no image (what the text alone gives);
- ``shuffled``: the images of a row on another slide (a seeded derangement across slides);
- ``single:k``: the k-th image alone (1 = lowest magnification);
- ``circular:r``: options rotated r places, the key's letter remapped; the derived
  ``circular`` condition (CircularEval) counts a question right only when ``full`` and
  every rotation are right.

Per condition: accuracy with a Wilson 95% interval, per question type and overall;
unparseable replies (counted wrong, never guessed); group accuracy over complementary
sets (every question of a ``set_id`` right). Derived: vision gain = full - blind;
cross-scale gain = full - best single-scale. Predictions go to a JSONL file (one line per
id x condition x model), rewritten atomically after each batch; a rerun reuses them.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from baselines.answer_key import HIDDEN_NOTE
from baselines.answers import extract_answer
from baselines.infer import Predictor
from curation.audit import wilson
from curation.errors import ConfigError, HubError, InputError, RecordError, ValidationError
from curation.io import atomic_write_jsonl, read_jsonl
from curation.records import LETTERS, LeftOut, option_set_fault

CONTROLS: tuple[str, ...] = ("full", "blind", "shuffled", "single", "circular")
"""Every control, in report order (``full`` is always run: the others compare to it)."""

REQUIRED_COLUMNS: tuple[str, ...] = (
    "question",
    "options",
    "answer",
    "question_type",
    "images",
    "magnifications",
    "set_id",
    "slide_id",
)


# ----------------------------------------------------------------------------- loading


def check_columns(columns: Sequence[str], source: str) -> None:
    """Raise :class:`ValidationError` when a required column is missing."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValidationError(
            f"{source}: missing column(s) {', '.join(missing)}; an evaluable dataset has "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )


def is_dataset_folder(path: Path) -> bool:
    """Whether ``path`` looks loadable by ``load_dataset(folder)``: a README.md or Parquet files."""
    return (path / "README.md").is_file() or any(path.rglob("*.parquet"))


def _why(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), and of its root cause."""

    def line(e: BaseException) -> str:
        text = str(e).strip()
        return f"{type(e).__name__}: {text.splitlines()[0][:200] if text else ''}".rstrip(": ")

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return line(exc) if root is exc else f"{line(exc)}; cause: {line(root)}"


def check_shards(path: Path) -> None:
    """Read every Parquet footer under ``path``: a damaged shard is an InputError naming it.

    Cheap (footers only), and needed: ``datasets`` may answer from its cache of an earlier,
    intact copy of the same folder.
    """
    import pyarrow.parquet as pq

    for shard in sorted(path.rglob("*.parquet")):
        if any(part.startswith(".") for part in shard.relative_to(path).parts):
            continue
        try:
            pq.read_metadata(shard)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InputError(
                f"{path}: shard {shard.relative_to(path)} is damaged ({_why(exc)}); the "
                "folder is damaged or incomplete: rebuild it"
            ) from None


def load_folder(path: str | os.PathLike[str]) -> Any:
    """``datasets.load_dataset(folder)`` (all splits), or :class:`InputError` saying why not.

    A damaged build (truncated, random, empty or missing shard; broken card) is an
    :class:`InputError` naming the folder and the cause, never a library traceback.
    """
    import datasets

    path = Path(path)
    if not is_dataset_folder(path):
        raise InputError(
            f"{path}: not a dataset folder (no README.md with configs and no Parquet "
            "files); build one with `scale-vqa build` or pass a Hub id"
        )
    check_shards(path)
    try:
        return datasets.load_dataset(str(path))
    except Exception as exc:  # datasets raises many kinds for a broken folder
        raise InputError(
            f"{path}: cannot load as a dataset ({_why(exc)}); the folder is damaged or "
            "incomplete: rebuild it"
        ) from None


def load_hub_dataset(repo_id: str) -> Any:
    """``datasets.load_dataset(repo_id)`` (all splits) for a Hub id ``owner/name``.

    Raises :class:`HubError` saying what to check when it cannot be loaded (no network, no
    such dataset).
    """
    import datasets

    try:
        return datasets.load_dataset(repo_id)
    except Exception as exc:  # datasets raises many kinds for a missing or broken repo
        raise HubError(
            f"cannot load Hub dataset {repo_id!r} ({_why(exc)}); check the id and "
            "the network, or download it and pass the local folder"
        ) from None


def is_hub_dataset_id(text: str) -> bool:
    """Whether ``text`` (not an existing path) reads as a Hub dataset id ``owner/name``."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).suffix


def load_split(source: str | os.PathLike[str], split: str = "test") -> Any:
    """One split of a dataset folder (``load_dataset(folder)``) or a Hub id, columns checked.

    Raises :class:`InputError` for a path that is not a dataset, :class:`HubError` when a
    Hub id cannot be loaded (e.g. no network), :class:`InputError` for an unknown split.
    """

    path = Path(source)
    text = str(source)
    if path.is_dir():
        dsd = load_folder(path)
    elif path.exists():
        raise InputError(f"{path}: is a file; give a dataset folder or a Hub id (owner/name)")
    elif is_hub_dataset_id(text):
        dsd = load_hub_dataset(text)
    else:
        raise InputError(f"{source}: no such dataset folder (and not a Hub id owner/name)")
    if split not in dsd:
        raise InputError(f"{source}: no split {split!r}; it has {', '.join(dsd.keys())}")
    ds = dsd[split]
    check_columns(ds.column_names, f"{source} split {split}")
    return ds


# --------------------------------------------------------------------------- controls


def slide_derangement(slide_ids: Sequence[str], seed: int = 0) -> list[int | None]:
    """For each row, the row whose images it borrows in the ``shuffled`` control.

    Never a row of the same slide (an empty slide id is a slide of its own). When no slide
    holds more than half the rows, the result is a permutation (every row's images used
    exactly once); otherwise donors are drawn with replacement from the other slides.
    ``None`` for every row when there is only one slide. Seeded, deterministic.
    """
    n = len(slide_ids)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(slide_ids):
        groups[s if s else f"\0row{i}"].append(i)
    if len(groups) < 2:
        return [None] * n
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    for k in keys:
        rng.shuffle(groups[k])
    order = [i for k in keys for i in groups[k]]
    biggest = max(len(g) for g in groups.values())
    donor: list[int | None] = [None] * n
    if 2 * biggest <= n:  # contiguous groups shifted by the largest group: a derangement
        for pos, i in enumerate(order):
            donor[i] = order[(pos + biggest) % n]
        return donor
    for k in keys:
        own = set(groups[k])
        others = [i for i in order if i not in own]
        for i in groups[k]:
            donor[i] = rng.choice(others)
    return donor


def rotate(options: Sequence[str], answer: str, r: int) -> tuple[list[str], str]:
    """Options rotated ``r`` places to the left and the key's new letter."""
    n = len(options)
    rotated = [options[(j + r) % n] for j in range(n)]
    key = LETTERS.index(answer)
    return rotated, LETTERS[(key - r) % n]


def _parse_controls(controls: Sequence[str] | str) -> list[str]:
    if isinstance(controls, str):
        controls = [c.strip() for c in controls.split(",") if c.strip()]
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise ConfigError(
            f"unknown control(s) {', '.join(unknown)}; choose from {', '.join(CONTROLS)}"
        )
    return [c for c in CONTROLS if c == "full" or c in controls]


# ------------------------------------------------------------------------------ rows


def _row_ids(meta: Sequence[Mapping[str, Any]]) -> list[str]:
    ids = [str(r.get("id") or f"row-{i}") for i, r in enumerate(meta)]
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in seen:
            raise ValidationError(f"rows {seen[x]} and {i} share id {x!r}; ids must be unique")
        seen[x] = i
    return ids


def _metadata(examples: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows without images (never decoded) and the number of images of each row."""
    if hasattr(examples, "select_columns") and hasattr(examples, "column_names"):
        import pyarrow.compute as pc

        cols = [c for c in examples.column_names if c != "images"]
        meta = examples.select_columns(cols).to_list()
        table = examples.select_columns(["images"]).with_format("arrow")[:]
        lengths = pc.list_value_length(table["images"]).to_pylist()
        return meta, [int(x or 0) for x in lengths]
    rows = list(examples)
    meta = [{k: v for k, v in r.items() if k != "images"} for r in rows]
    return meta, [len(r.get("images") or []) for r in rows]


def check_row(row: Mapping[str, Any], n_images: int, where: str) -> None:
    """Raise :class:`RecordError` (with a reason code) when a row cannot be asked."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RecordError(f"{where}: no question text", reason="no_question")
    opts = row.get("options") or []
    if not 2 <= len(opts) <= len(LETTERS) or not all(isinstance(o, str) for o in opts):
        raise RecordError(
            f"{where}: {len(opts)} options; an MCQ needs 2 to 10 strings", reason="option_count"
        )
    fault = option_set_fault(list(opts))
    if fault is not None:
        message = {
            "empty_option": "an option is empty",
            "identical_options": f"all {len(opts)} options are identical",
            "duplicate_options": "the same option appears twice",
        }[fault]
        raise RecordError(f"{where}: {message}", reason=fault)
    if not row.get("answer"):  # never left out quietly: the whole split would vanish
        raise InputError(f"{where} ({row.get('id', '')}): no answer: {HIDDEN_NOTE}")
    if row.get("answer") not in LETTERS[: len(opts)]:
        raise RecordError(
            f"{where}: answer {row.get('answer')!r} is not one of {LETTERS[: len(opts)]}",
            reason="answer_not_in_options",
        )
    mags = row.get("magnifications") or []
    if n_images and len(mags) not in (0, n_images):
        raise RecordError(
            f"{where}: {n_images} image(s) but {len(mags)} magnification(s)",
            reason="image_count_mismatch",
        )


def usable_rows(
    meta: Sequence[Mapping[str, Any]], n_images: Sequence[int], strict: bool = False
) -> tuple[list[int], LeftOut]:
    """Indices of the rows that can be asked, and the others with row number and reason
    (``strict``: the first unusable row raises instead)."""
    keep: list[int] = []
    left = LeftOut()
    for i, r in enumerate(meta):
        try:
            check_row(r, n_images[i], f"row {i}")
        except RecordError as exc:
            if strict:
                raise
            left.add(exc, index=i, id=str(r.get("id") or ""))
            continue
        keep.append(i)
    return keep, left


def plan(
    meta: Sequence[Mapping[str, Any]],
    n_images: Sequence[int],
    controls: Sequence[str],
    donors: Sequence[int | None],
) -> list[tuple[str, list[int]]]:
    """The prediction conditions and the rows each covers, in report order."""
    n = len(meta)
    out: list[tuple[str, list[int]]] = [("full", list(range(n)))]
    if "blind" in controls:
        out.append(("blind", list(range(n))))
    if "shuffled" in controls:
        rows = [i for i in range(n) if donors[i] is not None]
        if rows:
            out.append(("shuffled", rows))
    if "single" in controls:
        for k in range(1, max(n_images, default=0) + 1):
            rows = [i for i in range(n) if n_images[i] >= k and n_images[i] >= 2]
            if rows:
                out.append((f"single:{k}", rows))
    if "circular" in controls:
        for r in range(1, max((len(m["options"]) for m in meta), default=0)):
            out.append((f"circular:{r}", [i for i in range(n) if len(meta[i]["options"]) > r]))
    return out


def make_variant(
    row: Mapping[str, Any], condition: str, donor: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The example a predictor sees under ``condition`` and the key's letter there."""
    images = list(row.get("images") or [])
    mags = list(row.get("magnifications") or [])
    options, answer = list(row["options"]), str(row["answer"])
    if condition == "blind":
        images, mags = [], []
    elif condition == "shuffled":
        if donor is None:
            raise ConfigError("the shuffled control needs a donor row from another slide")
        images, mags = list(donor.get("images") or []), list(donor.get("magnifications") or [])
    elif condition.startswith("single:"):
        k = int(condition.split(":")[1]) - 1
        images, mags = images[k : k + 1], mags[k : k + 1]
    elif condition.startswith("circular:"):
        options, answer = rotate(options, answer, int(condition.split(":")[1]))
    elif condition != "full":
        raise ConfigError(f"unknown condition {condition!r}")
    example = {
        "question": row["question"],
        "options": options,
        "images": images,
        "magnifications": mags,
    }
    return example, answer


# ------------------------------------------------------------------------ predictions


def _score(raw: str, example: Mapping[str, Any], answer: str) -> tuple[str | None, bool]:
    parsed = extract_answer(raw, len(example["options"]), example["options"])
    return parsed, parsed == answer


def load_predictions(path: Path | None) -> list[dict[str, Any]]:
    """The records of a predictions JSONL (empty when the file does not exist)."""
    if path is None or not path.is_file():
        return []
    return [rec for _, rec in read_jsonl(path)]


def collect_predictions(
    examples: Any,
    meta: Sequence[Mapping[str, Any]],
    predictor: Predictor,
    conditions: Sequence[tuple[str, list[int]]],
    ids: Sequence[str],
    donors: Sequence[int | None],
    predictions_path: Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Raw replies per (id, condition): reused from ``predictions_path`` when there, asked
    otherwise; the file is rewritten atomically after each batch. Reused replies are parsed
    again (extraction is deterministic), so ``parsed`` and ``correct`` follow the current
    rules."""
    from tqdm.auto import tqdm

    model = predictor.name
    previous = load_predictions(predictions_path)
    donor_of = {ids[i]: ids[d] for i, d in enumerate(donors) if d is not None}

    def reusable(r: Mapping[str, Any]) -> bool:  # a shuffled reply is only valid for its donor
        if r.get("model") != model or not isinstance(r.get("raw"), str):
            return False
        return r.get("condition") != "shuffled" or r.get("donor") == donor_of.get(r.get("id"))

    mine = {(r["id"], r["condition"]): r for r in previous if reusable(r)}
    foreign = [r for r in previous if r.get("model") != model]
    wanted = [(ids[i], c) for c, rows in conditions for i in rows]
    wanted_set = set(wanted)

    def save() -> None:
        if predictions_path is None:
            return
        ordered = [mine[k] for k in wanted if k in mine]
        extra = [r for k, r in mine.items() if k not in wanted_set]
        atomic_write_jsonl(predictions_path, [*ordered, *extra, *foreign])

    total = len(wanted)
    with tqdm(total=total, desc=f"evaluate {model}", unit="q", disable=not progress) as bar:
        bar.update(sum(1 for k in wanted if k in mine))
        for condition, rows in conditions:
            todo = [i for i in rows if (ids[i], condition) not in mine]
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                variants = []
                for i in chunk:
                    row = meta[i] if condition == "blind" else examples[i]  # no image decoding
                    donor = examples[donors[i]] if condition == "shuffled" else None
                    variants.append(make_variant(row, condition, donor))
                raws = predictor.predict([v[0] for v in variants])
                if len(raws) != len(variants):
                    raise ConfigError(
                        f"predictor {model!r} returned {len(raws)} replies for "
                        f"{len(variants)} examples"
                    )
                for i, (example, answer), raw in zip(chunk, variants, raws):
                    parsed, correct = _score(raw, example, answer)
                    mine[(ids[i], condition)] = {
                        "id": ids[i],
                        "condition": condition,
                        "model": model,
                        "raw": raw,
                        "parsed": parsed,
                        "answer": answer,
                        "correct": correct,
                    }
                    if condition == "shuffled":
                        mine[(ids[i], condition)]["donor"] = donor_of[ids[i]]
                save()
                bar.update(len(chunk))
    for condition, rows in conditions:  # re-score every reply with the current rules
        for i in rows:
            rec = mine[(ids[i], condition)]
            donor = meta[donors[i]] if condition == "shuffled" else None  # type: ignore[index]
            example, answer = make_variant(meta[i], condition, donor)
            rec["parsed"], rec["correct"] = _score(rec["raw"], example, answer)
            rec["answer"] = answer
    save()
    return mine


# ---------------------------------------------------------------------------- metrics


def _rate(correct: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(correct, n)
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "ci_low": lo if n else None,
        "ci_high": hi if n else None,
    }


def summarize_condition(
    results: Sequence[tuple[int, bool, bool]],
    meta: Sequence[Mapping[str, Any]],
    chance: float,
) -> dict[str, Any]:
    """Metrics of one condition from ``(row, correct, unparseable)`` triples."""
    out = _rate(sum(c for _, c, _ in results), len(results))
    out["unparseable"] = sum(u for _, _, u in results)
    out["chance"] = chance
    by_type: dict[str, list[bool]] = defaultdict(list)
    sets: dict[str, list[bool]] = defaultdict(list)
    for i, c, _ in results:
        by_type[str(meta[i]["question_type"])].append(c)
        if meta[i].get("set_id"):
            sets[str(meta[i]["set_id"])].append(c)
    out["by_type"] = {t: _rate(sum(v), len(v)) for t, v in sorted(by_type.items())}
    full_sets = [all(v) for v in sets.values() if len(v) >= 2]
    out["group"] = _rate(sum(full_sets), len(full_sets))
    return out


def summarize(
    predictions: Mapping[tuple[str, str], Mapping[str, Any]],
    conditions: Sequence[tuple[str, list[int]]],
    meta: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    n_images: Sequence[int],
) -> dict[str, Any]:
    """Per-condition metrics, CircularEval and the derived gains."""
    per: dict[str, dict[str, Any]] = {}
    outcome: dict[str, dict[int, tuple[bool, bool]]] = {}
    for condition, rows in conditions:
        res = {}
        for i in rows:
            rec = predictions[(ids[i], condition)]
            res[i] = (bool(rec["correct"]), rec["parsed"] is None)
        outcome[condition] = res
        chance = sum(1 / len(meta[i]["options"]) for i in rows) / len(rows)
        per[condition] = summarize_condition([(i, c, u) for i, (c, u) in res.items()], meta, chance)
        if condition.startswith("single:"):
            k = int(condition.split(":")[1]) - 1
            mags = {
                float(meta[i]["magnifications"][k])
                for i in rows
                if len(meta[i].get("magnifications") or []) > k
            }
            per[condition]["magnifications"] = sorted(mags)
    rotations = [c for c, _ in conditions if c.startswith("circular:")]
    if rotations:
        triples = []
        for i in range(len(meta)):
            k = len(meta[i]["options"])
            names = ["full", *(f"circular:{r}" for r in range(1, k))]
            got = [outcome[c][i] for c in names if i in outcome.get(c, {})]
            if len(got) == len(names):
                triples.append((i, all(c for c, _ in got), any(u for _, u in got)))
        chance = sum(
            (1 / len(meta[i]["options"])) ** len(meta[i]["options"]) for i, _, _ in triples
        )
        per["circular"] = summarize_condition(triples, meta, chance / max(1, len(triples)))
    derived: dict[str, Any] = {}
    full = per["full"]["accuracy"]
    if "blind" in per:
        derived["vision_gain"] = full - per["blind"]["accuracy"]
    singles = {c: v["accuracy"] for c, v in per.items() if c.startswith("single:")}
    if singles:
        best = max(sorted(singles), key=lambda c: singles[c])
        derived["best_single"] = best
        derived["cross_scale_gain"] = full - singles[best]
    if "shuffled" in per:
        derived["shuffle_gap"] = full - per["shuffled"]["accuracy"]
    if "circular" in per:
        derived["circular_drop"] = full - per["circular"]["accuracy"]
    return {"conditions": per, "derived": derived}


# ------------------------------------------------------------------------------- entry


def evaluate(
    examples: Any,
    predictor: Predictor,
    controls: Sequence[str] | str = CONTROLS,
    *,
    seed: int = 0,
    predictions_path: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    on_warning: Callable[[str], None] | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Run ``predictor`` under ``controls`` on ``examples``; return the report dict.

    Args:
        examples: a ``datasets.Dataset`` (images decoded only for the rows being asked) or
            a sequence of row dicts with the columns in :data:`REQUIRED_COLUMNS`.
        predictor: any :class:`~baselines.infer.Predictor`.
        controls: a subset of :data:`CONTROLS` (list or ``"full,blind,..."``).
        seed: seeds the shuffled control's derangement.
        predictions_path: JSONL of predictions; reused on a rerun, rewritten atomically.
        batch_size: examples per ``predictor.predict`` call (and per file rewrite).
        on_warning: called, before any prediction, with what makes the report
            misleading (a text-only dataset, rows left out); it is also kept in the
            report's notes.
        strict: refuse the dataset at its first unusable row (identical or repeated
            options, answer outside the options, no question) instead of leaving such
            rows out; left-out rows are listed in ``report["left_out"]``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be at least 1")
    chosen = _parse_controls(controls)
    if hasattr(examples, "column_names"):
        check_columns(examples.column_names, "dataset")
    meta, n_images = _metadata(examples)
    if not meta:
        raise InputError("the dataset has no rows to evaluate")
    keep, left = usable_rows(meta, n_images, strict)
    notes = []
    if left:
        from curation.records import describe_left_out

        if not keep:
            raise InputError(
                f"no row of the dataset can be asked; {describe_left_out(left.report())}"
            )
        examples = (
            examples.select(keep) if hasattr(examples, "select") else [examples[i] for i in keep]
        )
        meta, n_images = [meta[i] for i in keep], [n_images[i] for i in keep]
        notes.append(describe_left_out(left.report()) + " (row numbers of the split)")
        if on_warning is not None:
            on_warning(notes[-1])
    if not any(n_images):
        notes.append(TEXT_ONLY_NOTE)
        if on_warning is not None:
            on_warning(TEXT_ONLY_NOTE)
    ids = _row_ids(meta)
    donors = slide_derangement([str(m.get("slide_id") or "") for m in meta], seed)
    conditions = plan(meta, n_images, chosen, donors)
    path = Path(predictions_path) if predictions_path is not None else None
    predictions = collect_predictions(
        examples, meta, predictor, conditions, ids, donors, path, batch_size, progress
    )
    report = summarize(predictions, conditions, meta, ids, n_images)
    if "shuffled" in chosen and not any(c == "shuffled" for c, _ in conditions):
        notes.append("shuffled control skipped: every row comes from one slide")
    if "single" in chosen and not any(c.startswith("single:") for c, _ in conditions):
        notes.append("single-scale control skipped: no row has two or more images")
    return {
        "model": predictor.name,
        "n": len(meta),
        "seed": seed,
        "controls": chosen,
        **report,
        "left_out": left.report(),
        "notes": notes,
    }


TEXT_ONLY_NOTE = (
    "the dataset has no images (text-only, e.g. imported without --images): the blind, "
    "shuffled and single-scale controls equal the full condition, so vision gain is 0 by "
    "construction and measures nothing; evaluate a dataset with images for those controls"
)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(c: Mapping[str, Any]) -> str:
    return f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"


def format_table(report: Mapping[str, Any]) -> str:
    """The report as a fixed-width table (accuracy in %, Wilson 95% interval)."""
    labels = {}
    for name, c in report["conditions"].items():
        mags = c.get("magnifications")
        labels[name] = f"{name} ({'/'.join(f'{m:g}x' for m in mags)})" if mags else name
    w = max(12, *(len(x) for x in labels.values()))
    types = {t for c in report["conditions"].values() for t in c["by_type"]}
    tw = max(14, *(len(t) for t in types)) if types else 14
    head = (
        f"{'condition':<{w}} {'question type':<{tw}} {'n':>5} {'acc':>7} {'95% CI':>17} "
        f"{'chance':>7} {'unparsed':>8} {'group acc':>9} {'sets':>5}"
    )
    lines = [head, "-" * len(head)]
    for name, c in report["conditions"].items():
        grp = c["group"]
        lines.append(
            f"{labels[name]:<{w}} {'all':<{tw}} {c['n']:>5} {_pct(c['accuracy']):>7} "
            f"{_ci(c):>17} {_pct(c['chance']):>7} {c['unparseable']:>8} "
            f"{_pct(grp['accuracy']):>9} {grp['n']:>5}"
        )
        for t, v in c["by_type"].items():
            lines.append(f"{'':<{w}} {t:<{tw}} {v['n']:>5} {_pct(v['accuracy']):>7} {_ci(v):>17}")
    d = report["derived"]
    derived = []
    if "vision_gain" in d:
        derived.append(("vision gain (full - blind)", d["vision_gain"]))
    if "cross_scale_gain" in d:
        derived.append((f"cross-scale gain (full - {d['best_single']})", d["cross_scale_gain"]))
    if "shuffle_gap" in d:
        derived.append(("shuffle gap (full - shuffled)", d["shuffle_gap"]))
    if "circular_drop" in d:
        derived.append(("circular drop (full - circular)", d["circular_drop"]))
    if derived:
        lw = max(len(k) for k, _ in derived)
        lines.append("")
        lines.extend(f"{k + ':':<{lw + 1}} {100 * v:+.1f} points" for k, v in derived)
    lines.extend(f"note: {n}" for n in report.get("notes", []))
    return "\n".join(lines)
