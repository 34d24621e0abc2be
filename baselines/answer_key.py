"""Hidden-test splits: answers and rationales withheld from the rows, kept in a key file.

A hidden-test build publishes its test split with ``answer`` and ``rationale`` empty in
every row (rationales are solutions: they name the key's claims) and writes the key to a
JSONL file outside the published folder, one line per row::

    {"id": "...", "answer": "C", "rationale": "..."}

``scale-vqa evaluate --key FILE`` joins the key back by ``id`` (:func:`apply_key`) and
scores exactly as on a full build.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from curation.errors import InputError, ValidationError
from curation.io import atomic_write_jsonl, read_jsonl
from curation.records import LETTERS

KEY_FIELDS: tuple[str, ...] = ("id", "answer", "rationale")
HIDDEN_NOTE = (
    "answers and rationales are withheld (a hidden-test split); score it with "
    "`scale-vqa evaluate --key FILE`, FILE being the key the build wrote outside its folder"
)


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def withhold(rows: Sequence[Any]) -> tuple[list[Any], list[dict[str, str]]]:
    """The rows with ``answer`` and ``rationale`` emptied, and the key records (by id).

    Rows are :class:`~scale_vqa.schema.Row`-like objects or dicts; they are copied, never
    changed in place.
    """
    import copy

    public, key = [], []
    for row in rows:
        key.append({k: str(_get(row, k)) for k in KEY_FIELDS})
        out = dict(row) if isinstance(row, Mapping) else copy.copy(row)
        if isinstance(out, dict):
            out["answer"], out["rationale"] = "", ""
        else:
            out.answer, out.rationale = "", ""
        public.append(out)
    return public, sorted(key, key=lambda r: r["id"])


def write_key(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """Write key records atomically as JSONL, sorted by id; return how many."""
    recs = sorted(({k: str(r[k]) for k in KEY_FIELDS} for r in records), key=lambda r: r["id"])
    return atomic_write_jsonl(Path(path), recs)


def read_key(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``id -> {"answer", "rationale"}`` from a key file; every line checked."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: no such key file; give the test_key.jsonl a hidden-test build wrote "
            "(in its work folder, or where build.yaml's key_file says)"
        )
    out: dict[str, dict[str, str]] = {}
    for lineno, obj in read_jsonl(p):
        where = f"{p}:{lineno}"
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise ValidationError(f"{where}: a key line needs a non-empty string 'id'")
        ans = obj.get("answer")
        if not isinstance(ans, str) or len(ans) != 1 or ans not in LETTERS:
            raise ValidationError(f"{where}: 'answer' is {ans!r}; use the key's letter (A, B, ...)")
        if obj["id"] in out:
            raise ValidationError(f"{where}: id {obj['id']!r} appears twice in the key")
        out[obj["id"]] = {"answer": ans, "rationale": str(obj.get("rationale") or "")}
    if not out:
        raise InputError(f"{p}: the key file is empty")
    return out


def hidden_rows(answers: Sequence[Any]) -> int:
    """How many rows have no answer (withheld)."""
    return sum(1 for a in answers if not a)


def withheld(ds: Any, where: str) -> str | None:
    """``"<where>: N of M row(s) have no answer: ..."`` when rows of ``ds`` (a
    ``datasets.Dataset``; no ``answer`` column: every row) have their answer withheld, else
    None: what evaluate stops on without ``--key`` and export warns about."""
    n = hidden_rows(ds["answer"]) if "answer" in ds.column_names else len(ds)
    return f"{where}: {n} of {len(ds)} row(s) have no answer: {HIDDEN_NOTE}" if n else None


def apply_key(examples: Any, key: Mapping[str, Mapping[str, str]], source: str = "dataset") -> Any:
    """``examples`` with ``answer`` and ``rationale`` filled from ``key`` by row id.

    ``examples`` is a ``datasets.Dataset`` (images are not decoded) or a list of row dicts.
    Every row must be in the key, and each key letter must name one of the row's options.
    """
    if hasattr(examples, "select_columns"):
        meta = examples.select_columns(["id", "options"]).to_list()
    else:
        meta = [{"id": r["id"], "options": r["options"]} for r in examples]
    missing = [m["id"] for m in meta if m["id"] not in key]
    if missing:
        raise ValidationError(
            f"{source}: {len(missing)} of {len(meta)} row(s) are not in the key (first: "
            f"{', '.join(map(str, missing[:3]))}); pass the key file of this build"
        )
    answers, rationales = [], []
    for m in meta:
        rec = key[m["id"]]
        if rec["answer"] not in LETTERS[: len(m["options"])]:
            raise ValidationError(
                f"{source}: the key gives {rec['answer']!r} for row {m['id']}, which has "
                f"{len(m['options'])} options; the key belongs to another build"
            )
        answers.append(rec["answer"])
        rationales.append(rec["rationale"])
    if hasattr(examples, "select_columns"):
        ds = examples.remove_columns(["answer", "rationale"])
        return ds.add_column("answer", answers).add_column("rationale", rationales)
    return [
        {**r, "answer": a, "rationale": why}
        for r, a, why in zip(examples, answers, rationales, strict=True)
    ]
