"""Exports of a built dataset for the harnesses researchers already use.

- :func:`export_vlmevalkit`: a VLMEvalKit custom multiple-choice TSV. VLMEvalKit reads
  ``$LMUData/<NAME>.tsv`` with ``pandas.read_csv(sep="\\t")`` and, for a name it does not
  know, builds a ``CustomMCQDataset`` when the file has ``A`` and ``B`` columns and an
  ``image`` column (``vlmeval/dataset/__init__.py``, ``build_dataset``). Columns written:
  ``index``, ``image``, ``image_path``, ``question``, ``hint``, ``A``.. (one per option
  letter), ``answer``, ``category`` (the question type), ``split``, ``id``, ``set_id``.
  ``image`` is one base64 image, or for several images the Python list literal of them
  (VLMEvalKit's ``toliststr`` evaluates a value that starts with ``[`` and ends with
  ``]``), low -> high magnification; ``image_path`` holds the file names VLMEvalKit writes
  them to, in the same order. A row whose images are exactly those of an earlier row (the
  same zoom path asked again) stores that row's ``index`` instead (VLMEvalKit resolves an
  ``image`` of at most 64 characters as the index of another row,
  ``vlmeval/dataset/image_base.py``, ``ImageBaseDataset.__init__``).
- :func:`export_lmms_eval`: an lmms-eval task folder for ``--include_path``: the task YAML
  (``scale_vqa``), its blind sibling (``scale_vqa_blind``, no images), a group of both, and
  ``utils.py`` (:mod:`scale_vqa.lmms_eval_task`, copied verbatim).

Neither replaces what it did not write: a TSV is replaced only when its first line is the
header an export writes (:func:`is_export_tsv`), a folder only when it holds
:data:`TASK_MARKER`. A split whose answers are withheld (a hidden-test build) is exported
with an empty ``answer``, and :attr:`ExportResult.warnings` says it cannot be scored.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.errors import InputError
from curation.records import LETTERS

FORMATS: tuple[str, ...] = ("vlmevalkit", "lmms-eval")
POINTER_MAX = 64
"""VLMEvalKit reads an ``image`` value of at most this many characters as a row index."""
TASK_MARKER = ".scale_vqa_export.json"
"""File that marks a folder as written by :func:`export_lmms_eval` (safe to replace)."""
TSV_HEAD: tuple[str, ...] = ("index", "image", "image_path", "question", "hint")
TSV_TAIL: tuple[str, ...] = ("answer", "category", "split", "id", "set_id")
"""The TSV's columns: :data:`TSV_HEAD`, one per option letter (``A``, ``B``, ...), then these."""
_TSV_HEADER = re.compile("\t".join(TSV_HEAD) + r"(\t[A-Z])+\t" + "\t".join(TSV_TAIL) + "\n")


@dataclass
class ExportResult:
    """What an export wrote."""

    path: Path
    rows: int
    images: int = 0
    pointers: int = 0
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """What makes the export misleading (answers withheld); the CLI prints each."""


def _not_ours(out: Path, what: str) -> InputError:
    return InputError(
        f"{out}: exists and was not written by `scale-vqa export`; give a new {what} or move "
        "it away first (nothing was replaced)"
    )


def is_export_tsv(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file whose first line is the header :func:`export_vlmevalkit`
    writes (so an export may replace it)."""
    try:
        with Path(path).open("rb") as fh:
            first = fh.readline(4096)
    except OSError:
        return False
    return _TSV_HEADER.fullmatch(first.decode("utf-8", "replace")) is not None


def withheld_warnings(ds: Any, source: Any, split: str, harness: str) -> tuple[str, ...]:
    """A warning when rows of the split have no answer (a hidden-test build), else none."""
    from baselines.answer_key import withheld

    note = withheld(ds, f"{source} split {split!r}")
    if note is None:
        return ()
    return (
        f"{note}. The export's answer is empty in those rows, so {harness} cannot score them "
        "without the key (every reply would count as wrong)",
    )


def _split(source: str | os.PathLike[str], split: str) -> Any:
    from baselines.evaluate import load_split

    return load_split(source, split)


def _raw_images(ds: Any) -> Any:
    """The split with its images as undecoded ``{"bytes", "path"}`` dicts."""
    import datasets

    return ds.cast_column("images", datasets.List(datasets.Image(decode=False)))


def _image_bytes(value: Mapping[str, Any]) -> bytes:
    if value.get("bytes") is not None:
        return bytes(value["bytes"])
    if value.get("path"):
        return Path(value["path"]).read_bytes()
    raise InputError("an image of the dataset has neither bytes nor a path; rebuild it")


def _hint(mags: Sequence[float], n: int) -> str:
    from baselines.prompts import magnification_label

    labels = [magnification_label(m) for m in mags] if len(mags) == n else []
    order = f" ({', '.join(labels)})" if labels else ""
    if n == 1:
        return f"The image is one field of view of a histopathology slide{order}."
    return (
        f"The {n} images are fields of view of the same histopathology slide, ordered from "
        f"low to high magnification{order}."
    )


def vlmevalkit_rows(ds: Any, split: str) -> Iterator[dict[str, Any]]:
    """The TSV rows of one split (see the module docstring for the columns)."""
    raw = _raw_images(ds)
    first_of: dict[tuple[str, ...], int] = {}
    n_letters = max((len(o) for o in ds["options"]), default=0)
    for index, row in enumerate(raw):
        blobs = [_image_bytes(v) for v in row["images"] or []]
        if not blobs:
            raise InputError(
                f"row {index} ({row.get('id', '')}) of split {split!r} has no image; a "
                "VLMEvalKit image MCQ needs images (VLMEvalKit drops rows without one). "
                "Export a build with images (import the release with --images ROOT)"
            )
        digests = tuple(hashlib.sha256(b).hexdigest() for b in blobs)
        mags = list(row.get("magnifications") or [])
        labels = [f"_{m:g}x" for m in mags] if len(mags) == len(blobs) else [""] * len(blobs)
        names = [
            f"scalevqa_{d[:20]}_{k + 1}{lab}.png" for k, (d, lab) in enumerate(zip(digests, labels))
        ]
        if digests in first_of:
            image = str(first_of[digests])
        else:
            first_of[digests] = index
            encoded = [base64.b64encode(b).decode("ascii") for b in blobs]
            image = encoded[0] if len(encoded) == 1 else repr(encoded)
        options = list(row["options"])
        out = {
            "index": index,
            "image": image,
            "image_path": names[0] if len(names) == 1 else repr(names),
            "question": row["question"],
            "hint": _hint(mags, len(blobs)),
        }
        out.update({LETTERS[i]: options[i] if i < len(options) else "" for i in range(n_letters)})
        tail = (row["answer"], row["question_type"], split, row.get("id", ""),
                row.get("set_id", "") or "")  # fmt: skip
        out.update(zip(TSV_TAIL, tail, strict=True))
        yield out


def _atomic_file(path: Path) -> tuple[Any, Path]:
    """An open temporary sibling of ``path`` (normal permissions) to ``os.replace`` later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    return tmp.open("w", encoding="utf-8", newline=""), tmp


def export_vlmevalkit(
    source: str | os.PathLike[str], out: str | os.PathLike[str], split: str = "test"
) -> ExportResult:
    """Write one split of ``source`` (a dataset folder or Hub id) as a VLMEvalKit MCQ TSV.

    Written atomically; the same dataset gives the same bytes. The VLMEvalKit dataset name
    is the file's stem (place it as ``$LMUData/<stem>.tsv``). An existing ``out`` is
    replaced only when an export wrote it (:func:`is_export_tsv`).
    """
    out = Path(out)
    if out.suffix != ".tsv":
        raise InputError(
            f"{out}: VLMEvalKit reads <NAME>.tsv from $LMUData; give --out a path ending in .tsv"
        )
    if out.exists() and not is_export_tsv(out):
        raise _not_ours(out, ".tsv path")
    ds = _split(source, split)
    if len(ds) == 0:
        raise InputError(f"{source}: split {split!r} has no rows to export")
    warnings = withheld_warnings(ds, source, split, "VLMEvalKit")
    fh, tmp = _atomic_file(out)
    rows = images = pointers = 0
    try:
        with fh:
            writer: csv.DictWriter | None = None
            for row in vlmevalkit_rows(ds, split):
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row), delimiter="\t",
                                            lineterminator="\n")  # fmt: skip
                    writer.writeheader()
                writer.writerow(row)
                rows += 1
                if len(row["image"]) <= POINTER_MAX:
                    pointers += 1
                else:
                    images += row["image_path"].count(".png")
        if out.exists() and not is_export_tsv(out):  # it may have appeared meanwhile
            raise _not_ours(out, ".tsv path")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(out, rows, images=images, pointers=pointers, warnings=warnings)


# ------------------------------------------------------------------------------ lmms-eval

_TYPES_METRICS = "\n".join(
    f"  - metric: accuracy_{t}\n    aggregation: !function utils.aggregate_{t}\n"
    "    higher_is_better: true"
    for t in ("correspondence", "corroboration", "localization", "explanation", "diagnosis")
)


def task_yaml(task: str, dataset_path: str, split: str, blind: bool, max_new_tokens: int) -> str:
    """One lmms-eval task YAML (full condition, or ``blind``: no images)."""
    suffix = "_blind" if blind else ""
    what = "blind control: no image" if blind else "every image, low -> high magnification"
    return f"""# Scale-VQA as an lmms-eval task ({what}); written by `scale-vqa export`.
# Run: lmms-eval --include_path THIS_FOLDER --tasks {task}{suffix} --model ...
# utils.py needs scale-vqa installed in the lmms-eval environment.
task: {task}{suffix}
dataset_path: {json.dumps(dataset_path)}
test_split: {split}
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual{suffix}
doc_to_text: !function utils.doc_to_text{suffix}
doc_to_target: answer
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  until:
    - "<|endoftext|>"
metric_list:
  - metric: accuracy
    aggregation: !function utils.aggregate_accuracy
    higher_is_better: true
  - metric: group_accuracy
    aggregation: !function utils.aggregate_group_accuracy
    higher_is_better: true
  - metric: unparsed
    aggregation: !function utils.aggregate_unparsed
    higher_is_better: false
{_TYPES_METRICS}
metadata:
  version: 1.0
"""


def group_yaml(task: str) -> str:
    """An lmms-eval group running the task and its blind sibling."""
    return (
        f"# Scale-VQA with its blind control; written by `scale-vqa export`.\n"
        f"group: {task}_with_blind\ntask:\n  - {task}\n  - {task}_blind\n"
    )


def _is_hub_id(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def export_lmms_eval(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: str = "test",
    dataset_path: str | None = None,
    task: str = "scale_vqa",
    max_new_tokens: int = 256,
) -> ExportResult:
    """Write an lmms-eval task folder for ``source`` (a dataset folder or Hub id).

    The split is loaded once to check it (columns, rows). ``dataset_path`` is what the YAML
    names (default: ``source``, made absolute when it is a local folder). A folder at
    ``out`` is replaced only if an earlier export wrote it.
    """
    from curation.io import atomic_dir

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", task):
        raise InputError(f"task name {task!r}: use letters, digits and underscores")
    ds = _split(source, split)
    if len(ds) == 0:
        raise InputError(f"{source}: split {split!r} has no rows to export")
    warnings = withheld_warnings(ds, source, split, "lmms-eval")
    if dataset_path is None:
        text = str(source)
        dataset_path = text if _is_hub_id(text) else str(Path(text).resolve())
    out = Path(out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / TASK_MARKER).is_file())
    ):
        raise _not_ours(out, "folder")
    files = {
        f"{task}.yaml": task_yaml(task, dataset_path, split, False, max_new_tokens),
        f"{task}_blind.yaml": task_yaml(task, dataset_path, split, True, max_new_tokens),
        f"_{task}_with_blind.yaml": group_yaml(task),
    }
    with atomic_dir(out) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        shutil.copyfile(Path(__file__).with_name("lmms_eval_task.py"), tmp / "utils.py")
        marker = {"format": "lmms-eval", "dataset_path": dataset_path, "split": split,
                  "rows": len(ds), "tasks": [task, f"{task}_blind"]}  # fmt: skip
        (tmp / TASK_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return ExportResult(out, len(ds), files=(*files, "utils.py"), warnings=warnings)


def export(
    source: str | os.PathLike[str],
    fmt: str,
    out: str | os.PathLike[str],
    split: str = "test",
    **kwargs: Any,
) -> ExportResult:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "vlmevalkit":
        return export_vlmevalkit(source, out, split)
    if fmt == "lmms-eval":
        return export_lmms_eval(source, out, split, **kwargs)
    raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
