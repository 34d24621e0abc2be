"""Shard layout of a build: seeded, key-independent row order; each crop stored once per row
group; JPEG crops stated in the card; extraction of a build split over shards."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from curation.io import atomic_write_jsonl, read_jsonl
from curation.records import Question
from scale_vqa.build import order_rows, write_dataset
from scale_vqa.cli import main
from scale_vqa.pipeline import DEMO_DIR
from scale_vqa.schema import Row

from .conftest import CMU_SLIDE

LETTERS = "ABCD"


def _jpeg(seed: int, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90, subsampling=0
    )
    return buf.getvalue()


def _rows(n_paths: int, per_path: int, answers: list[str] | None = None) -> list[Row]:
    """``per_path`` questions on each of ``n_paths`` zoom paths; a path's rows share crops."""
    crops = {p: [_jpeg(3 * p + k) for k in range(3)] for p in range(n_paths)}
    rows = []
    for i in range(n_paths * per_path):
        p = i % n_paths  # interleaved on input: the writer must group them
        q = Question(
            question=f"question {i} on path {p}: which feature is present?",
            options=[f"feature {k} {i}" for k in "abcd"],
            answer=answers[i] if answers else LETTERS[i % 4],
            question_type="localization",
            rationale="seen at mid power",
            organ="skin",
            slide_id=f"s{p % 3}",
            path_id=f"path-{p:03d}",
        )
        q.id = f"q-{i:04d}"  # an id that does not depend on the answer
        rows.append(
            Row.from_question(
                q,
                images=[{"bytes": b, "path": None} for b in crops[p]],
                magnifications=[5.0, 10.0, 20.0],
                mpp=[2.0, 1.0, 0.5],
                regions=[{"x": p, "y": 0, "width": 64 >> k, "height": 64 >> k} for k in range(3)],
            )
        )
    return rows


def _ids(folder: Path, split: str = "test") -> list[str]:
    files = sorted((folder / "data").glob(f"{split}-*.parquet"))
    return [i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]


def test_row_order_is_grouped_seeded_and_independent_of_answers(tmp_path: Path) -> None:
    rows = _rows(12, 4)
    write_dataset(tmp_path / "a", {"test": rows}, order_seed=0, progress=False)
    order = _ids(tmp_path / "a")
    rng = random.Random(1)
    permuted = _rows(12, 4, answers=[rng.choice(LETTERS) for _ in rows])
    assert [r.answer for r in permuted] != [r.answer for r in rows]
    write_dataset(tmp_path / "b", {"test": permuted}, order_seed=0, progress=False)
    assert _ids(tmp_path / "b") == order  # answers changed, order did not
    assert order != [r.id for r in rows]  # not the input order
    by_id = {r.id: r for r in rows}
    paths = [by_id[i].path_id for i in order]
    runs = [p for k, p in enumerate(paths) if k == 0 or paths[k - 1] != p]
    assert len(runs) == 12 and runs != sorted(runs)  # one run per path, not sorted by name
    write_dataset(tmp_path / "c", {"test": rows}, order_seed=1, progress=False)
    assert _ids(tmp_path / "c") != order  # the seed decides
    assert [r["id"] for r in order_rows([r.to_dict() for r in rows[::-1]], 0)] == order


def test_each_crop_is_stored_once_per_row_group(tmp_path: Path) -> None:
    rows = _rows(40, 4)
    distinct = sum(len(img["bytes"]) for r in rows[:40] for img in r.images)
    write_dataset(tmp_path / "grouped", {"test": rows}, order_seed=0, progress=False)
    write_dataset(tmp_path / "given", {"test": rows}, progress=False)  # paths interleaved
    grouped = sum(f.stat().st_size for f in (tmp_path / "grouped" / "data").glob("*.parquet"))
    given = sum(f.stat().st_size for f in (tmp_path / "given" / "data").glob("*.parquet"))
    assert grouped < 1.1 * distinct  # one copy of each crop (noise does not compress)
    assert given > 2.5 * distinct  # the same rows in input order: copies in many groups
    meta = pq.ParquetFile(next((tmp_path / "grouped" / "data").glob("*.parquet"))).metadata
    col = next(
        meta.row_group(0).column(i)
        for i in range(meta.num_columns)
        if meta.row_group(0).column(i).path_in_schema.startswith("images.list.element.bytes")
    )
    assert "RLE_DICTIONARY" in col.encodings
    import datasets

    ds = datasets.load_dataset(str(tmp_path / "grouped"), split="test")
    first = ds[0]
    source = next(r for r in rows if r.id == first["id"])
    assert [im.size for im in first["images"]] == [(96, 96)] * 3  # rows stay self-contained
    expected = Image.open(io.BytesIO(source.images[2]["bytes"])).convert("RGB")
    assert np.array_equal(np.asarray(first["images"][2].convert("RGB")), np.asarray(expected))


def _two_slide_inputs(tmp_path: Path) -> Path:
    """The demo annotations spread over two slide files (both the CMU slide)."""
    slides = tmp_path / "slides"
    slides.mkdir()
    (slides / "CMU-1-Small-Region.svs").symlink_to(CMU_SLIDE)
    (slides / "cmu-twin.svs").symlink_to(CMU_SLIDE)
    rows = []
    for i, obj in read_jsonl(DEMO_DIR / "annotations.jsonl"):
        obj["slide_id"] = "cmu-twin" if i % 2 else "CMU-1-Small-Region"
        obj.pop("slide_path", None)
        rows.append(obj)
    atomic_write_jsonl(tmp_path / "ann.jsonl", rows)
    cfg = tmp_path / "build.yaml"
    cfg.write_text(
        "slides: [slides]\nannotations: ann.jsonl\nsize: 64\n"
        "generation: {question_types: [localization, correspondence]}\n"
        "split: {train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}\n"
        "screen: {adversaries: [centrality], rounds: 1}\n"
    )
    return cfg


def test_build_extracts_in_shards_then_merges_with_jpeg_in_shards_and_card(
    tmp_path: Path, capsys
) -> None:
    cfg = _two_slide_inputs(tmp_path)
    work = tmp_path / "work"
    for k in (1, 2):
        assert main(["build", "--config", str(cfg), "--quiet", "--shard", f"{k}/2"]) == 0
        assert f"shard {k}/2:" in capsys.readouterr().out
    assert not (work / "questions.jsonl").exists()  # a shard run only extracts
    manifests = [
        json.loads((work / "zoom/.parts" / f"shard-{k}-of-2.json").read_text()) for k in (1, 2)
    ]
    assert [m["slides"] for m in manifests] == [["CMU-1-Small-Region"], ["cmu-twin"]]
    images = sorted((work / "zoom" / "images").rglob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in images]
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert [p.stat().st_mtime_ns for p in images] == stamps  # merged, nothing re-extracted
    zoom = [z for _, z in read_jsonl(work / "zoom" / "zoom_paths.jsonl")]
    assert sorted(z["slide_id"] for z in zoom)[0] == "CMU-1-Small-Region" and len(zoom) > 10
    readme = (tmp_path / "o" / "README.md").read_text()
    assert "JPEG quality 90, 4:4:4 chroma" in readme and "dB" in readme
    shard = next((tmp_path / "o" / "data").glob("train-*.parquet"))
    table = pq.read_table(shard)
    cells = [img for imgs in table["images"].to_pylist() for img in imgs]
    assert cells and all(c["bytes"].startswith(b"\xff\xd8\xff") for c in cells)
    import datasets

    row = datasets.load_dataset(str(tmp_path / "o"), split="train")[0]
    assert [(im.format, im.size) for im in row["images"]] == [("JPEG", (64, 64))] * 3
    paths = table["path_id"].to_pylist()
    runs = [p for k, p in enumerate(paths) if k == 0 or paths[k - 1] != p]
    assert len(runs) == len(set(paths))  # grouped by zoom path
    # a broken splitting is refused by the full build with one clear line
    (work / "zoom/.parts/shard-2-of-2.json").unlink()
    assert main(["build", "--config", str(cfg), "--quiet", "--force-stage", "extract"]) != 0
    assert "shard(s) 2/2 have not finished" in capsys.readouterr().err
