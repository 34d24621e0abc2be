"""What is reviewed: questions with their zoom path's images, from a work folder or a build.

Two sources give the same :class:`ReviewItem` list:

* a questions JSONL file (``screened.jsonl``, ``questions.jsonl``) plus a zoom folder
  (``zoom_paths.jsonl`` and the crops it names; found next to the file as ``zoom/`` when
  not given);
* a built dataset folder (``data/<split>-*.parquet``, images embedded), read with pyarrow
  one row group at a time.

A line or row that cannot be read, or a question whose zoom path or image is missing,
becomes an item with an ``error`` (shown in the page), never an exception.
"""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import InputError, ScaleVQAError
from curation.records import Question

SCALE_BAR_STEPS = (1, 2, 5)


@dataclass
class ImageRef:
    """One field of view: where its bytes are and its physical geometry."""

    magnification: float
    mpp: float | None
    region: dict[str, int] | None = None
    path: Path | None = None  # a crop file
    parquet: tuple[Path, int, int, int] | None = None  # (shard, row group, row, index)
    error: str = ""


@dataclass
class ReviewItem:
    """One question under review (``question`` is None when its line could not be read)."""

    item_id: str
    question: Question | None
    images: list[ImageRef] = field(default_factory=list)
    error: str = ""
    where: str = ""


def nice_bar(field_um: float, fraction: float = 0.25) -> float:
    """A 1/2/5 x 10^k micrometre length near ``fraction`` of the field width."""
    target = max(field_um * fraction, 1e-9)
    k = math.floor(math.log10(target))
    best = 1.0 * 10**k
    for base in (1, 2, 5, 10):
        if base * 10**k <= target:
            best = base * 10**k
    return float(best)


def fmt_length(um: float) -> str:
    """'1.8 mm', '450 um' (micrometres shown as um, like the rest of the package)."""
    if um >= 1000:
        return f"{um / 1000:.3g} mm"
    return f"{um:.3g} um"


def geometry(ref: ImageRef, width_px: int, height_px: int) -> dict[str, Any]:
    """Field size and scale bar of one image, for the page."""
    out: dict[str, Any] = {"width_px": width_px, "height_px": height_px}
    if ref.mpp:
        w_um, h_um = width_px * ref.mpp, height_px * ref.mpp
        bar = nice_bar(w_um)
        out |= {
            "field_um": [w_um, h_um],
            "field": f"{fmt_length(w_um)} x {fmt_length(h_um)}",
            "bar_um": bar,
            "bar_label": fmt_length(bar),
            "bar_fraction": bar / w_um,
        }
    return out


def _question(obj: Any, where: str) -> Question:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return Question.from_dict(obj, where=where)


class ItemSource:
    """Items by id, in file order, with their image bytes on demand."""

    def __init__(self, items: list[ReviewItem], description: str, annotations: Any = None):
        self.items = items
        self.by_id = {it.item_id: it for it in items}
        self.description = description
        self.annotations = annotations  # path_id -> Annotation, when known
        self._cache: dict[tuple[Path, int], Any] = {}
        self._lock = threading.Lock()

    @property
    def questions(self) -> list[Question]:
        return [it.question for it in self.items if it.question is not None]

    def image_bytes(self, item_id: str, index: int) -> tuple[bytes, str]:
        """(bytes, mime type) of an item's image; InputError naming what is missing."""
        it = self.by_id.get(item_id)
        if it is None:
            raise InputError(f"no item {item_id!r}")
        if not 0 <= index < len(it.images):
            raise InputError(f"item {item_id} has {len(it.images)} image(s), not #{index}")
        ref = it.images[index]
        if ref.error:
            raise InputError(ref.error)
        if ref.path is not None:
            if not ref.path.is_file():
                raise InputError(f"image file {ref.path} is missing (item {item_id})")
            data = ref.path.read_bytes()
        else:
            data = self._parquet_image(ref)
        return data, _mime(data)

    def image_size(self, item_id: str, index: int) -> tuple[int, int]:
        from PIL import Image

        data, _ = self.image_bytes(item_id, index)
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.size
        except Exception as exc:  # PIL raises many types on bad bytes
            raise InputError(
                f"item {item_id} image #{index} is not a readable image: {exc}"
            ) from None

    def _parquet_image(self, ref: ImageRef) -> bytes:
        import pyarrow.parquet as pq

        assert ref.parquet is not None
        shard, group, row, index = ref.parquet
        with self._lock:
            table = self._cache.get((shard, group))
            if table is None:
                table = pq.ParquetFile(shard).read_row_group(group, columns=["images"])
                self._cache = {(shard, group): table}  # keep one group in memory
        img = table.column("images")[row].as_py()[index]
        data = img.get("bytes") if isinstance(img, dict) else None
        if not data:
            raise InputError(f"{shard}: row {row} image #{index} has no embedded bytes")
        return data


def _mime(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def load_items(
    path: str | Path, zoom: str | Path | None = None, annotations: str | Path | None = None
) -> ItemSource:
    """Items from a questions file (+ zoom folder) or a built dataset folder."""
    path = Path(path)
    if path.is_dir():
        if not list(path.glob("data/*.parquet")):
            raise InputError(
                f"{path}: a folder without data/*.parquet shards; give a built dataset folder "
                "or a questions JSONL file (with --zoom)"
            )
        return _from_dataset(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder; give a questions file or a build")
    return _from_questions(path, zoom, annotations)


def _from_questions(path: Path, zoom: str | Path | None, annotations: str | Path | None):
    zoom_dir = Path(zoom) if zoom else path.parent / "zoom"
    zp_file = zoom_dir / "zoom_paths.jsonl" if zoom_dir.is_dir() else zoom_dir
    paths: dict[str, dict] = {}
    zoom_error = ""
    if zp_file.is_file():
        for line in zp_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    obj = json.loads(line)
                    paths[obj["path_id"]] = obj
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a bad zoom line: its questions show "no zoom path"
    else:
        zoom_error = f"no zoom paths at {zp_file}; pass --zoom DIR (with zoom_paths.jsonl)"
    base = zp_file.parent
    items: list[ReviewItem] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            q = _question(json.loads(line), where)
        except (json.JSONDecodeError, ScaleVQAError, TypeError) as exc:
            msg = str(exc) if isinstance(exc, ScaleVQAError) else f"{where}: not JSON ({exc})"
            items.append(ReviewItem(f"line-{lineno}", None, error=msg, where=where))
            continue
        it = ReviewItem(q.id, q, where=where)
        z = paths.get(q.path_id)
        if z is None:
            it.error = zoom_error or f"zoom path {q.path_id!r} is not in {zp_file}"
        else:
            crops = sorted(z.get("crops", []), key=lambda c: float(c.get("magnification", 0)))
            for c in crops:
                ref = ImageRef(
                    float(c.get("magnification", 0)),
                    float(c["mpp"]) if c.get("mpp") else None,
                    c.get("region"),
                    path=base / c.get("image", ""),
                )
                if not ref.path.is_file():
                    ref.error = f"image file {ref.path} is missing"
                it.images.append(ref)
        items.append(it)
    ann = _annotations(annotations or path.parent / "annotations.jsonl")
    return ItemSource(items, f"{path} + {zp_file}", ann)


def _annotations(path: str | Path) -> Any:
    """path_id -> Annotation from a canonical annotations file, or None if unusable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        from curation.annotations import read_annotations

        return {a.path_id: a for a in read_annotations(p)}
    except ScaleVQAError:
        return None


def _from_dataset(folder: Path) -> ItemSource:
    import pyarrow.parquet as pq

    items: list[ReviewItem] = []
    text_cols = [
        "id", "question", "options", "answer", "question_type", "rationale", "organ",
        "slide_id", "patient_id", "path_id", "source", "template_id", "set_id",
    ]  # fmt: skip
    for shard in sorted(folder.glob("data/*.parquet")):
        split = shard.name.split("-")[0]
        try:
            pf = pq.ParquetFile(shard)
            names = set(pf.schema_arrow.names)
        except Exception as exc:  # pyarrow raises several types on a broken file
            items.append(ReviewItem(f"{shard.name}", None, error=f"{shard}: {exc}"))
            continue
        cols = [c for c in [*text_cols, "magnifications", "mpp", "regions"] if c in names]
        for g in range(pf.num_row_groups):
            rows = pf.read_row_group(g, columns=cols).to_pylist()
            for r, row in enumerate(rows):
                where = f"{shard.name} group {g} row {r}"
                try:
                    data = {k: row.get(k) for k in text_cols if row.get(k) is not None}
                    q = _question({**data, "split": split}, where)
                except (ScaleVQAError, TypeError) as exc:
                    items.append(ReviewItem(f"{shard.stem}-{g}-{r}", None, error=str(exc)))
                    continue
                mags = row.get("magnifications") or []
                mpps = row.get("mpp") or []
                regs = row.get("regions") or []
                imgs = [
                    ImageRef(
                        float(m),
                        float(mpps[i]) if i < len(mpps) else None,
                        regs[i] if i < len(regs) else None,
                        parquet=(shard, g, r, i),
                    )
                    for i, m in enumerate(mags)
                ]
                items.append(ReviewItem(q.id, q, imgs, where=where))
    return ItemSource(items, str(folder))
