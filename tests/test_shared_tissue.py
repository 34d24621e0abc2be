"""Shared tissue across splits: found from field boxes, the build stops on it (or warns and
the card says so), and the audit of a published folder reports it."""

from __future__ import annotations

import json
from pathlib import Path

from scale_vqa.cli import main
from scale_vqa.pipeline import DEMO_DIR
from scale_vqa.shared_tissue import Field, overlap_share, shared_tissue

DEMO_ANNOTATIONS = DEMO_DIR / "annotations.jsonl"


def test_overlap_share_is_the_share_of_the_smaller_box():
    assert overlap_share((0, 0, 100, 100), (50, 0, 100, 100)) == 0.5
    assert overlap_share((0, 0, 100, 100), (25, 25, 50, 50)) == 1.0  # nested
    assert overlap_share((0, 0, 100, 100), (100, 0, 100, 100)) == 0.0  # edges touch
    assert overlap_share((0, 0, 100, 100), (0, 300, 100, 100)) == 0.0


def test_only_fields_of_different_splits_on_one_slide_count():
    low, high = (0, 0, 400, 400), (150, 150, 100, 100)
    fields = [
        Field("a", "train", "s1", (low, high), ("5x", "20x")),
        Field("b", "test", "s1", ((300, 0, 400, 400), (450, 150, 100, 100)), ("5x", "20x")),
        Field("c", "train", "s1", (low, high), ("5x", "20x")),  # same split as a: fine
        Field("d", "test", "s2", (low, high), ("5x", "20x")),  # another slide: fine
        Field("e", "validation", "s1", ((2000, 0, 400, 400), (2150, 150, 100, 100))),
    ]
    found = shared_tissue(fields)
    # b's 5x field overlaps a's and c's by a quarter; their 20x fields are apart
    assert sorted(found.pairs) == [("a", "b", "5x", 0.25), ("b", "c", "5x", 0.25)]
    assert found.paths == {"a", "b", "c"}
    assert found.rows_by_split({"train": ["a", "a", "c"], "test": ["b", "d"]}) == {
        "train": 3,
        "test": 1,
    }
    assert "a (train) and b (test): their 5x fields overlap by 25%" in found.first()
    assert shared_tissue(f for f in fields if f.path_id != "b").pairs == []


def _config(tmp_path: Path, split: str) -> Path:
    cfg = tmp_path / "build.yaml"
    cfg.write_text(
        f"annotations: {DEMO_ANNOTATIONS}\nsize: 32\nscreen: {{enabled: false}}\n"
        "generation: {question_types: [correspondence], split_min_chunk: 4}\n"
        f"split: {split}\n"
    )
    return cfg


def test_build_stops_on_shared_tissue_and_says_how_on(tmp_path, capsys):
    """The demo's pseudo-patients are regions of one slide: their fields overlap across
    splits, so a build with the default policy stops before writing anything."""
    cfg = _config(tmp_path, "{train: 0.34, validation: 0.33, test: 0.33}")
    out = tmp_path / "o"
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert "test rows lie on zoom paths whose fields overlap fields of another split" in line
    assert "one patient_id" in line and "split: {shared_tissue: warn}" in line
    assert "Traceback" not in err
    assert not out.exists()


def test_shared_tissue_warn_builds_and_the_card_and_audit_say_so(tmp_path, capsys):
    cfg = _config(tmp_path, "{train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}")
    out, work = tmp_path / "o", tmp_path / "w"
    assert (
        main(["build", "--config", str(cfg), "--quiet", "--out", str(out), "--work", str(work)])
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: shared tissue: " in err
    card = (out / "README.md").read_text(encoding="utf-8")
    limitation = next(x for x in card.splitlines() if "Shared tissue across splits" in x)
    assert " test rows lie on zoom paths whose fields overlap" in limitation
    report = json.loads((work / "build.json").read_text())["shared_tissue"]
    assert report["pairs"] > 0 and report["first_pairs"][0]["overlap"] > 0
    # the generator was told which paths share tissue: each question carries its path's
    # overlapping paths, and no premise states what an overlapping field tests
    from curation.constraints import check_all
    from curation.records import read_questions

    qs = list(read_questions(work / "screened.jsonl"))
    assert qs and all(q.extra["tissue"]["low"] for q in qs)
    assert check_all(qs, only=["premise_conflicts", "key_coupling"]) == []
    # `scale-vqa generate --zoom` is told the same from the extraction folder
    gen = tmp_path / "gen.jsonl"
    argv = ["generate", str(work / "annotations.jsonl"), "--out", str(gen), "--no-progress"]
    argv += ["--split-ratios", "0.34,0.33,0.33", "--split-min-chunk", "4"]
    assert main([*argv, "--zoom", str(work / "zoom")]) == 0
    assert all(q.extra["tissue"] for q in read_questions(gen))
    assert main([*argv, "--zoom", str(tmp_path / "no-such-zoom")]) == 1
    assert "error: " in capsys.readouterr().err

    # the published folder alone (slide_id + regions) shows it to `scale-vqa audit`
    rep = tmp_path / "audit.json"
    assert main(["audit", str(out), "--adversaries", "centrality", "--json", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert "shared tissue across splits: " in printed and "same slide_id" in printed
    audit = json.loads(rep.read_text())["shared_tissue"]
    assert audit["pairs"] == report["pairs"]
    assert audit["rows"]["test"] == sum(1 for _ in _rows(out, "test"))


def _rows(out: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    return [
        r
        for shard in sorted((out / "data").glob(f"{split}-*.parquet"))
        for r in pq.read_table(shard, columns=["path_id"]).to_pylist()
    ]


def test_shared_tissue_policy_is_checked(tmp_path, capsys):
    cfg = _config(tmp_path, "{train: 0.34, validation: 0.33, test: 0.33, shared_tissue: maybe}")
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "key 'split.shared_tissue' is 'maybe'; use one of error, warn" in err
