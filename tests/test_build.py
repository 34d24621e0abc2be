"""The dataset writer: Parquet shards + card, loaded back with datasets.load_dataset."""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
from PIL import Image

from curation.errors import ConfigError, ValidationError
from curation.records import Question
from scale_vqa.build import CardInfo, shard_name, write_dataset
from scale_vqa.card import read_card_metadata, size_category
from scale_vqa.schema import FEATURES, Row

REPO = Path(__file__).resolve().parents[1]
MAGS = [5.0, 10.0, 20.0]


def _png(colour: tuple[int, int, int], size: int = 16, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format=fmt)
    return buf.getvalue()


def make_rows(n: int, split: str, with_images: bool = True, organ: str = "skin") -> list[Row]:
    """Rows with real embedded images: PNG bytes, a JPEG file-like dict and a PIL image."""
    rows = []
    for i in range(n):
        q = Question(
            question=f"{split} question {i}: which feature is present?",
            options=[f"feature {k} {i}" for k in "abcd"],
            answer="ABCD"[i % 4],
            question_type=("correspondence", "diagnosis", "localization")[i % 3],
            rationale="the mid field shows it",
            organ=organ if i % 2 else "lung",
            slide_id=f"s{i % 3}",
            path_id=f"{split}-p{i}",
        )
        geometry = {}
        if with_images:
            geometry = {
                "images": [
                    {"bytes": _png((i % 256, 0, 0)), "path": "low.png"},
                    {"bytes": _png((0, i % 256, 0), fmt="JPEG"), "path": "mid.jpg"},
                    Image.new("RGB", (16 + i % 3, 16), (0, 0, i % 256)),
                ],
                "magnifications": MAGS,
                "mpp": [2.0, 1.0, 0.5],
                "regions": [
                    {"x": i, "y": 0, "width": 64 >> k, "height": 64 >> k} for k in range(3)
                ],
            }
        rows.append(Row.from_question(q, **geometry))
    return rows


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Row]]:
    return {"train": make_rows(9, "train"), "validation": make_rows(4, "validation"),
            "test": make_rows(5, "test")}  # fmt: skip


def test_build_loads_with_features_images_and_counts(tmp_path, splits):
    audit = {
        "n": 18,
        "chance": 0.25,
        "best": {"adversary": "centrality", "question_type": "all", "accuracy": 0.31},
        "table": [
            {"adversary": "centrality", "question_type": "all", "accuracy": 0.31,
             "ci_low": 0.2, "ci_high": 0.4, "n": 18},
            {"adversary": "centrality", "question_type": "diagnosis", "accuracy": 0.5,
             "ci_low": 0.2, "ci_high": 0.8, "n": 6},
        ],
    }  # fmt: skip
    card = {"license": "cc-by-4.0", "leakage_audit": audit, "curation": {"seed": 0, "k": 4}}
    result = write_dataset(tmp_path / "ds", splits, card, progress=False)
    assert result.splits == {"train": 9, "validation": 4, "test": 5} and not result.text_only
    ds = datasets.load_dataset(str(tmp_path / "ds"))
    assert set(ds) == {"train", "validation", "test"}
    for name, rows in splits.items():
        assert ds[name].features == FEATURES
        assert ds[name].num_rows == len(rows)
        assert ds[name]["id"] == [r.id for r in rows]
    row = ds["train"][7]
    low, mid, high = row["images"]
    assert isinstance(low, Image.Image) and low.getpixel((0, 0)) == (7, 0, 0)
    assert mid.format == "JPEG" and abs(mid.getpixel((0, 0))[1] - 7) <= 3
    assert high.size == (17, 16) and high.getpixel((0, 0)) == (0, 0, 7)
    assert row["magnifications"] == MAGS and row["regions"][2]["width"] == 16
    readme = (tmp_path / "ds" / "README.md").read_text()
    meta = read_card_metadata(readme)
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["n<1K"]
    assert {c["split"] for c in meta["configs"][0]["data_files"]} == set(splits)
    assert "## Leakage audit" in readme and "| **centrality** | all | 0.310 |" in readme
    assert readme.index("### All question types") < readme.index("### Per question type")
    assert "| `seed` | 0 |" in readme and "Text-only build" not in readme
    assert "| 20 | 9 | 4 | 5 | 18 |" in readme  # images at 20x per split
    assert "| lung |" in readme and "| skin |" in readme


def test_rebuild_is_byte_identical(tmp_path, splits):
    write_dataset(tmp_path / "a", splits, progress=False)
    write_dataset(tmp_path / "b", splits, progress=False)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")


def test_shards_are_size_bounded_and_keep_order(tmp_path):
    rows = make_rows(30, "train")
    result = write_dataset(tmp_path / "ds", {"train": rows}, max_shard_bytes=3_000, progress=False)
    n = len(result.shards)
    assert n > 1 and [s.path for s in result.shards] == [
        shard_name("train", i, n) for i in range(n)
    ]
    assert all(s.rows >= 1 for s in result.shards)
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train")
    assert ds["id"] == [r.id for r in rows]


def test_text_only_build_says_so_and_omits_empty_sections(tmp_path):
    write_dataset(tmp_path / "ds", {"test": make_rows(3, "test", with_images=False)},
                  progress=False)  # fmt: skip
    readme = (tmp_path / "ds" / "README.md").read_text()
    assert "Text-only build" in readme and "## Magnification" not in readme
    assert "## Leakage audit" not in readme and "## Curation settings" not in readme
    assert 'load_dataset("<hub-repo-id>")' in readme


def test_invalid_rows_name_split_and_row(tmp_path):
    rows = make_rows(3, "train")
    rows[2].answer = "F"
    with pytest.raises(ValidationError, match=r"split 'train' row 2 \(id .*\): field 'answer'"):
        write_dataset(tmp_path / "ds", {"train": rows}, progress=False)
    rows = make_rows(2, "train")
    with pytest.raises(ValidationError, match="already used by split 'train' row 0"):
        write_dataset(tmp_path / "ds", {"train": rows, "test": rows[:1]}, progress=False)
    with pytest.raises(ConfigError, match="has no rows"):
        write_dataset(tmp_path / "ds", {"train": []}, progress=False)
    assert not (tmp_path / "ds").exists()


def test_failure_mid_write_keeps_previous_build(tmp_path, splits):
    out = tmp_path / "ds"
    write_dataset(out, splits, progress=False)
    before = folder_digest(out)

    def boom(shard):
        raise RuntimeError(f"disk full after {shard.path}")

    with pytest.raises(RuntimeError, match="disk full"):
        write_dataset(out, {"train": make_rows(40, "other")}, max_shard_bytes=2_000,
                      on_shard=boom, progress=False)  # fmt: skip
    assert folder_digest(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from tests.test_build import make_rows
    from scale_vqa.build import write_dataset

    def slow(shard):
        print("SHARD", shard.path, flush=True)
        time.sleep(30)

    write_dataset({out!r}, {{"train": make_rows(40, "new")}}, max_shard_bytes=2_000,
                  on_shard=slow, progress=False)
    """
)


def test_killed_build_leaves_previous_build_intact(tmp_path, splits):
    out = tmp_path / "ds"
    write_dataset(out, splits, progress=False)
    before = folder_digest(out)
    script = KILLED_BUILD.format(repo=str(REPO), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("SHARD data/train-00000-of-"), line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert folder_digest(out) == before
    assert datasets.load_dataset(str(out), split="test").num_rows == 5


def test_card_helpers():
    assert size_category(999) == "n<1K" and size_category(4685) == "1K<n<10K"
    assert CardInfo.coerce(None).task_categories == ["visual-question-answering", "multiple-choice"]
    with pytest.raises(ConfigError, match="unknown field"):
        CardInfo.coerce({"licence": "mit"})


def test_packaged_template_is_the_top_level_card():
    from scale_vqa.card import load_template

    top = REPO / "dataset_card.md"
    assert top.read_text() == load_template() and "${yaml}" in load_template()
