"""The dataset writer: Parquet shards with embedded images plus a README dataset card.

One function, :func:`write_dataset`, turns rows per split into a folder that
``datasets.load_dataset(folder)`` (or the Hub, once published) reads with no custom code::

    DIR/README.md                               # YAML metadata (configs, features) + card
    DIR/data/<split>-00000-of-00002.parquet     # size-bounded shards, images embedded
    DIR/data/<split>-00001-of-00002.parquet

Guarantees: every row is validated against :data:`scale_vqa.schema.FEATURES` first (errors
name the split and row); the same rows give byte-identical shards and card (no timestamps,
fixed writer settings); the folder is built in a temporary sibling and swapped in only when
complete, so a failed or killed build leaves the previous build (or nothing) in place.

Layout: with ``order_seed`` (what ``scale-vqa build`` passes) each split's rows are grouped
by zoom path, paths in a seeded order of their ids and a path's questions in a seeded order
of theirs (:func:`order_rows`): the order says nothing about keys, set cells or option
positions. Without it the given order is kept. Either way a row group holds whole runs of
rows that share a zoom path, and the dictionary page is sized to hold the group's distinct
images, so Parquet's dictionary encoding stores each crop once per row group rather than
once per question (measured in docs/release-build-hub.md). Rows stay self-contained:
``load_dataset(...)[split][i]["images"]`` are that row's images.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError, ValidationError
from curation.io import atomic_write_text, file_sha256
from curation.published import order_key
from scale_vqa.card import CardInfo, DatasetStats, render_card
from scale_vqa.outdir import staged_output
from scale_vqa.schema import COLUMNS, Row, validate_row

__all__ = [
    "DEFAULT_MAX_SHARD_BYTES",
    "BuildResult",
    "CardInfo",
    "ShardInfo",
    "order_rows",
    "shard_name",
    "write_dataset",
]

DEFAULT_MAX_SHARD_BYTES = 256 * 2**20
"""Upper bound (estimated) on one Parquet shard; the Hub recommends shards under ~500 MB."""

PARQUET_COMPRESSION = "zstd"
IMAGE_ROW_GROUP_ROWS = 64
IMAGE_ROW_GROUP_BYTES = 64 * 2**20
"""A row group's distinct image bytes stay under this (one path's run may exceed it)."""
TEXT_ROW_GROUP_ROWS = 1000
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ShardInfo:
    """One written shard; ``path`` is relative to the dataset folder (POSIX separators)."""

    split: str
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class BuildResult:
    """What :func:`write_dataset` wrote."""

    out_dir: Path
    shards: list[ShardInfo] = field(default_factory=list)
    text_only: bool = True
    stats: DatasetStats | None = None

    @property
    def splits(self) -> dict[str, int]:
        """Rows per split, in the order written."""
        out: dict[str, int] = {}
        for s in self.shards:
            out[s.split] = out.get(s.split, 0) + s.rows
        return out

    @property
    def total_bytes(self) -> int:
        """Bytes of all shards together."""
        return sum(s.bytes for s in self.shards)


def shard_name(split: str, index: int, count: int) -> str:
    """``data/<split>-00000-of-00002.parquet`` (the Hub's naming convention)."""
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def _as_dict(row: Row | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(row, Row):
        return row.to_dict()
    if isinstance(row, Mapping):
        return dict(row)
    raise ValidationError(f"expected a scale_vqa.schema.Row or a dict, got {type(row).__name__}")


def _image_size_estimate(img: Any) -> int:
    if isinstance(img, Mapping):
        if img.get("bytes") is not None:
            return len(img["bytes"])
        img = img.get("path")
    if isinstance(img, (str, os.PathLike)):
        try:
            return os.path.getsize(img)
        except OSError:
            return 0
    size = getattr(img, "size", None)  # PIL image: PNG of an H&E field is ~half the raw size
    if isinstance(size, tuple) and len(size) == 2:
        return size[0] * size[1] * 3 // 2
    return 0


def _text_size(row: dict[str, Any]) -> int:
    return 64 + sum(len(str(row[c])) for c in COLUMNS if c not in ("images", "regions"))


def _image_key(img: Any) -> Any:
    """What makes two cells the same image, for size estimates (not for correctness)."""
    if isinstance(img, Mapping):
        if img.get("bytes") is not None:
            return hashlib.sha1(bytes(img["bytes"])).hexdigest()
        img = img.get("path")
    if isinstance(img, (str, os.PathLike)):
        return os.fspath(img)
    return id(img)


def order_rows(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Rows grouped by zoom path: paths in a seeded order, a path's rows by a seeded hash of id
    (:func:`curation.published.order_key`: never the answer, the options, their positions or
    which cell of a complementary set a path got)."""
    return sorted(rows, key=lambda r: order_key(r.get("path_id") or "", r["id"], seed))


def _run_cost(rows: Sequence[dict[str, Any]], seen: set[Any]) -> tuple[int, set[Any]]:
    """Estimated bytes ``rows`` add to a group that already holds the images ``seen``."""
    new: set[Any] = set()
    cost = 0
    for row in rows:
        cost += _text_size(row)
        for img in row["images"]:
            key = _image_key(img)
            if key not in seen and key not in new:
                new.add(key)
                cost += _image_size_estimate(img)
    return cost, new


def _plan_groups(
    rows: Sequence[dict[str, Any]], max_rows: int, max_bytes: int
) -> list[tuple[int, int, int]]:
    """Row groups ``(start, stop, estimated bytes)`` that never cut a run of one zoom path.

    A group closes before a run that would take it past ``max_rows`` rows or ``max_bytes``
    (at most :data:`IMAGE_ROW_GROUP_BYTES`); the estimate counts each distinct image once.
    """
    max_bytes = min(max_bytes, IMAGE_ROW_GROUP_BYTES)
    runs: list[tuple[int, int]] = []
    for i, row in enumerate(rows):
        if runs and row.get("path_id") and rows[i - 1].get("path_id") == row.get("path_id"):
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    groups: list[tuple[int, int, int]] = []
    start, acc, seen = 0, 0, set()
    for run_start, run_stop in runs:
        cost, new = _run_cost(rows[run_start:run_stop], seen)
        if run_start > start and (run_stop - start > max_rows or acc + cost > max_bytes):
            groups.append((start, run_start, acc))
            start, acc, seen = run_start, 0, set()
            cost, new = _run_cost(rows[run_start:run_stop], seen)
        seen |= new
        acc += cost
    if rows:
        groups.append((start, len(rows), acc))
    return groups


def _plan_shards(groups: Sequence[tuple[int, int, int]], max_bytes: int) -> list[list[int]]:
    """Greedy contiguous runs of row groups (indices) whose estimate stays under ``max_bytes``."""
    shards: list[list[int]] = []
    acc = 0
    for g, (_, _, size) in enumerate(groups):
        if shards and shards[-1] and acc + size > max_bytes:
            shards.append([])
            acc = 0
        if not shards:
            shards.append([])
        shards[-1].append(g)
        acc += size
    return shards


def _encode_image(img: Any, where: str) -> dict[str, Any]:
    """The ``{"bytes", "path"}`` struct ``datasets.Image`` stores, with the bytes embedded."""
    path: str | None = None
    if isinstance(img, Mapping):
        data, path = img.get("bytes"), img.get("path")
        if data is not None:
            return {"bytes": bytes(data), "path": os.path.basename(path) if path else None}
        if not path:
            raise ValidationError(f"{where}: image dict has neither 'bytes' nor 'path'")
        img = path
    if isinstance(img, (str, os.PathLike)):
        try:
            data = Path(img).read_bytes()
        except OSError as exc:
            raise InputError(
                f"{where}: cannot read image file {img} ({exc.strerror or exc}); "
                "check that it exists"
            ) from None
        return {"bytes": data, "path": os.path.basename(os.fspath(img))}
    import datasets  # PIL images and arrays: let datasets pick the lossless encoding

    encoded = datasets.Image().encode_example(img)
    if encoded.get("bytes") is None:
        raise ValidationError(f"{where}: unsupported image value of type {type(img).__name__}")
    return {"bytes": encoded["bytes"], "path": None}


def _encode_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    out = {c: row[c] for c in COLUMNS}
    out["images"] = [
        _encode_image(img, f"{where} image {i}") for i, img in enumerate(row["images"])
    ]
    out["magnifications"] = [float(m) for m in row["magnifications"]]
    out["mpp"] = [float(m) for m in row["mpp"]]
    out["regions"] = [{k: int(r[k]) for k in ("x", "y", "width", "height")} for r in row["regions"]]
    return out


def _write_shard(
    path: Path,
    rows: Sequence[dict[str, Any]],
    groups: Sequence[tuple[int, int, int]],
    where: Callable[[int], str],
) -> None:
    """One Parquet file: ``groups`` (absolute row ranges) as row groups, images embedded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scale_vqa.schema import FEATURES

    schema = FEATURES.arrow_schema
    path.parent.mkdir(parents=True, exist_ok=True)
    # room for every distinct image of the largest group: the dictionary keeps one copy
    dict_limit = max(1 << 20, max(size for _, _, size in groups) * 5 // 4 + (1 << 20))
    with pq.ParquetWriter(
        path,
        schema,
        compression=PARQUET_COMPRESSION,
        version="2.6",
        write_statistics=True,
        store_schema=True,
        dictionary_pagesize_limit=dict_limit,
    ) as writer:
        for start, stop, _ in groups:
            batch = [_encode_row(rows[i], where(i)) for i in range(start, stop)]
            writer.write_table(
                pa.Table.from_pylist(batch, schema=schema), row_group_size=len(batch)
            )


def _validated(
    rows_by_split: Mapping[str, Sequence[Row | Mapping[str, Any]]],
    hidden_splits: Sequence[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    if not rows_by_split:
        raise ConfigError("no splits given; pass at least one split with rows")
    seen: dict[str, str] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for split, rows in rows_by_split.items():
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
            raise ConfigError(
                f"split name {split!r} is not valid; use lower-case letters, digits and '_' "
                "(e.g. train, validation, test)"
            )
        if not rows:
            raise ConfigError(f"split {split!r} has no rows; drop it or give it rows")
        dicts = []
        for i, raw in enumerate(rows):
            row = _as_dict(raw)
            where = f"split {split!r} row {i}" + (f" (id {row['id']})" if row.get("id") else "")
            validate_row(row, where, hidden=split in hidden_splits)
            if not isinstance(row["id"], str) or not row["id"]:
                raise ValidationError(f"{where}: field 'id' must be a non-empty string")
            if row["id"] in seen:
                raise ValidationError(
                    f"{where}: id {row['id']!r} already used by {seen[row['id']]}; ids must be "
                    "unique across the dataset"
                )
            seen[row["id"]] = where
            dicts.append(row)
        out[split] = dicts
    return out


def write_dataset(
    out_dir: str | os.PathLike[str],
    rows_by_split: Mapping[str, Sequence[Row | Mapping[str, Any]]],
    card: CardInfo | Mapping[str, Any] | None = None,
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    on_shard: Callable[[ShardInfo], None] | None = None,
    progress: bool = True,
    hidden_splits: Sequence[str] = (),
    overwrite: bool = False,
    order_seed: int | None = None,
) -> BuildResult:
    """Write ``rows_by_split`` as a Hub-ready dataset folder at ``out_dir``; return what it wrote.

    Args:
        out_dir: the dataset folder; replaced as a whole, atomically, on success.
        rows_by_split: split name (``train``, ``validation``, ``test``, ...) -> rows, each a
            :class:`~scale_vqa.schema.Row` or a dict with the schema's columns. Images may be
            ``{"bytes", "path"}`` dicts, file paths (read while writing, so large datasets
            never sit in memory) or PIL images. Row order is kept unless ``order_seed``.
        card: what the dataset card says beyond the counts it computes itself
            (:class:`~scale_vqa.card.CardInfo` or a dict of its fields).
        max_shard_bytes: estimated upper bound of one shard (at least one row per shard).
        on_shard: called after each shard is written and closed (progress, tests).
        progress: show a tqdm bar on stderr.
        hidden_splits: splits whose rows have their answers and rationales withheld
            (empty; a hidden-test build, see :mod:`baselines.answer_key`).
        overwrite: replace ``out_dir`` even when scale-vqa did not write it (see
            :mod:`scale_vqa.outdir`); without it such a folder is refused.
        order_seed: group each split's rows by zoom path in a seeded, key-independent
            order (:func:`order_rows`); None keeps the given order.

    Raises:
        ValidationError: a row breaks the schema (the message names split and row) or an
            id repeats.
        ConfigError: a bad split name, an empty split, a non-positive ``max_shard_bytes``
            or an ``out_dir`` holding files scale-vqa did not write.
    """
    if max_shard_bytes <= 0:
        raise ConfigError(f"max_shard_bytes is {max_shard_bytes}; give a positive byte count")
    card = CardInfo.coerce(card)
    splits = _validated(rows_by_split, hidden_splits)
    text_only = not any(r["images"] for rows in splits.values() for r in rows)
    group_rows = TEXT_ROW_GROUP_ROWS if text_only else IMAGE_ROW_GROUP_ROWS
    out_dir = Path(out_dir)
    result = BuildResult(out_dir=out_dir, text_only=text_only)

    from tqdm.auto import tqdm

    total = sum(len(r) for r in splits.values())
    with (
        staged_output(out_dir, overwrite=overwrite) as tmp,
        tqdm(total=total, desc="writing shards", unit="row", disable=not progress) as bar,
    ):
        for split, rows in splits.items():
            if order_seed is not None:
                rows = splits[split] = order_rows(rows, order_seed)
            groups = _plan_groups(rows, group_rows, max_shard_bytes)
            plan = _plan_shards(groups, max_shard_bytes)
            for index, members in enumerate(plan):
                rel = shard_name(split, index, len(plan))
                target = tmp / rel
                mine = [groups[g] for g in members]

                def where(i: int, _s: str = split) -> str:
                    return f"split {_s!r} row {i}"

                _write_shard(target, rows, mine, where)
                info = ShardInfo(
                    split=split,
                    path=rel,
                    rows=mine[-1][1] - mine[0][0],
                    bytes=target.stat().st_size,
                    sha256=file_sha256(target),
                )
                result.shards.append(info)
                bar.update(info.rows)
                if on_shard is not None:
                    on_shard(info)
        result.stats = DatasetStats.from_rows(splits, result.shards)
        atomic_write_text(tmp / "README.md", render_card(card, result.stats))
    return result
