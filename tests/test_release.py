"""Import of the official Scale-VQA JSON release: rows, integrity report, CLI, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest

from curation.errors import InputError
from curation.records import Question
from scale_vqa.cli import main
from scale_vqa.release import infer_split, load_release, rationale_letter_claims
from scale_vqa.schema import FEATURES
from tests.conftest import REFERENCE_SAMPLE
from tests.release_factory import make_record, make_release, write_images, write_release


def test_reference_sample_maps_to_canonical_rows():
    imp = load_release(REFERENCE_SAMPLE, split="validation")
    assert len(imp.rows) == 5 and imp.text_only
    first = imp.rows[0]
    assert first.question_type == "correspondence"
    assert first.options[0].startswith("A matching feature is present: inflammatory")
    assert first.options[3].startswith("No clearly matching structure")
    assert first.slide_id == "01K46JNMVW0MT1HZQ89SNSKBSH"
    assert first.path_id == "32558caa-7aae-4e14-a49a-c204742f1e92"
    assert first.source == "scale-vqa-release"
    assert first.images == [] and first.magnifications == [] and first.mpp == []
    assert [r.question_type for r in imp.rows] == [
        "correspondence", "corroboration", "diagnosis", "explanation", "localization"
    ]  # fmt: skip
    assert all(isinstance(q, Question) and q.split == "validation" for q in imp.questions)
    assert [q.id for q in imp.questions] == [r.id for r in imp.rows]
    assert len({r.id for r in imp.rows}) == 5
    # record No 8 (key C) says "A preserves ..." and "from A (B swaps ...; C swaps ...)"
    conflicts = imp.report["rationale_letter_conflicts"]
    assert conflicts["count"] == 1
    assert conflicts["rows"][0]["No"] == 8 and conflicts["rows"][0]["named"] == ["A"]
    assert imp.report["answer_letters"]["all"] == {"A": 2, "B": 0, "C": 2, "D": 1}


@pytest.mark.parametrize(
    ("text", "endorsed"),
    [
        ("Only A matches the features listed at both magnifications.", {"A"}),
        ("Option B pairs the low-view features with the mid-view features.", {"B"}),
        ("A best matches the combined observations.", {"A"}),
        ("A only pairs low-power epithelial thickening with mid-power hyperchromasia.", {"A"}),
        ("Only option A pairs the low-view features exactly as listed.", {"A"}),
        ("Option A preserves a specific cross-magnification pairing.", {"A"}),
        ("A pairs fibrosis-related features across low and mid magnification.", {"A"}),
        ("The correct answer is C.", {"C"}),
        ("D is correct because the stroma is fibrotic.", {"D"}),
        # English article "A", not a letter
        ("A matching feature is present at low and mid magnification.", set()),
        ("A pink homogeneous material deposition is described at low magnification.", set()),
        ("A smooth muscle component is described at low and mid magnification.", set()),
        ("A disorganized cellular arrangement is visible in more than one view.", set()),
        ("B cells and hepatitis B serology; vitamin D levels.", set()),
        # letters named, but as wrong
        ("The features favour the stroma; option B contradicts the reduced stroma.", set()),
        ("Each option changes one feature from A (B swaps x; C swaps y; D swaps z).", set()),
    ],
)
def test_rationale_letter_claims(text, endorsed):
    assert set(rationale_letter_claims(text).endorsed) == endorsed


def test_letter_mentions_include_rejected_letters():
    claims = rationale_letter_claims(
        "Each option changes one feature from A (B swaps x; C swaps y)"
    )
    assert claims.mentioned == {"A", "B", "C"} and claims.rejected == {"B", "C"}
    assert rationale_letter_claims("A matching feature is present.").mentioned == frozenset()


def test_split_inference(tmp_path):
    assert infer_split("data/val.json") == "validation"
    assert infer_split("scale_vqa_test.json") == "test"
    assert infer_split("train.json") == "train"
    with pytest.raises(InputError, match="pass --split"):
        infer_split(tmp_path / "release.json")


def test_faults_are_flagged_and_rows_kept(tmp_path):
    records = make_release(40, missing_high=[3, 17], conflicts=[5, 22], duplicates=[(2, 30)])
    path = write_release(tmp_path / "val.json", records)
    imp = load_release(path)
    rep = imp.report
    assert imp.split == "validation" and rep["records"] == 40 and len(imp.rows) == 40
    assert [r["No"] for r in rep["missing_images"]["rows"]] == [3, 17]
    assert rep["missing_images"]["rows"][0]["missing"] == ["high_mag"]
    assert [r["No"] for r in rep["rationale_letter_conflicts"]["rows"]] == [5, 22]
    assert rep["rationale_letter_mentions"]["count"] == 2  # the article "A" rationales don't count
    dup = rep["duplicate_questions"]
    assert dup["count"] == 1 and [r["No"] for r in dup["groups"][0]["rows"]] == [2, 30]
    per_type = rep["answer_letters"]
    assert sum(per_type["all"].values()) == 40
    assert sum(sum(v.values()) for k, v in per_type.items() if k != "all") == 40


def test_cli_text_only_import_loads_and_reports(tmp_path, capsys):
    path = write_release(tmp_path / "test.json", make_release(12, missing_high=[4], conflicts=[6]))
    out, report = tmp_path / "ds", tmp_path / "report.json"
    assert main(["import-release", str(path), "--out", str(out), "--report", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert "12 records (test)" in stdout and "text-only" in stdout
    assert "No 6" in stdout and "No 4" in stdout
    rep = json.loads(report.read_text())
    assert rep["records"] == 12 and rep["missing_images"]["rows"][0]["No"] == 4
    assert rep["output"]["shards"][0]["path"] == "data/test-00000-of-00001.parquet"
    ds = datasets.load_dataset(str(out))
    assert list(ds) == ["test"] and ds["test"].num_rows == 12
    assert ds["test"].features == FEATURES
    assert ds["test"][0]["images"] == [] and ds["test"][0]["source"] == "scale-vqa-release"
    card = (out / "README.md").read_text()
    assert "Text-only build" in card and "## Integrity of the source release" in card


def test_cli_with_images_embeds_them_and_records_levels(tmp_path, capsys):
    records = make_release(6, missing_high=[2])
    path = write_release(tmp_path / "val.json", records)
    write_images(tmp_path / "imgs", records)
    out = tmp_path / "ds"
    assert (
        main(["import-release", str(path), "--out", str(out), "--images", str(tmp_path / "imgs")])
        == 0
    )
    assert "text-only" not in capsys.readouterr().out
    ds = datasets.load_dataset(str(out))["validation"]
    by_no = {r["No"]: r for r in records}
    first = ds[0]
    assert first["magnifications"] == [10.0, 40.0, 200.0] and first["mpp"] == []
    assert [im.size for im in first["images"]] == [(24, 24)] * 3
    assert ds[1]["magnifications"] == [10.0, 40.0] and len(ds[1]["images"]) == 2
    assert ds[1]["path_id"] == by_no[2]["extra_info"]["path_id"]
    card = (out / "README.md").read_text()
    assert "nominal release levels" in card and "| 200 |" in card


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (
            [{k: v for k, v in make_record(7).items() if k != "options"}],
            "record 0 (No 7): no 'options'",
        ),
        ([make_record(1), make_record(9, answer="E")], "record 1 (No 9): answer 'E' is not one of"),
        ([make_record(3, qtype="type_F")], "extra_info.question_type is 'type_F'"),
        ("missing-image", "record 1 (No 2): image_path.low_mag"),
    ],
)
def test_cli_bad_input_fails_cleanly_under_strict(tmp_path, capsys, content, message):
    args = ["--strict"]
    if content == "missing-image":
        records = [make_record(1), make_record(2)]
        write_images(tmp_path / "imgs", records[:1])
        content = records
        args = ["--images", str(tmp_path / "imgs")]  # a missing file: refused even lenient
    path = write_release(tmp_path / "val.json", content)
    out = tmp_path / "ds"
    assert main(["import-release", str(path), "--out", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_split_is_an_error_that_says_what_to_do(tmp_path, capsys):
    path = write_release(tmp_path / "release.json", [make_record(1)])
    assert main(["import-release", str(path), "--out", str(tmp_path / "ds")]) == 1
    assert "pass --split" in capsys.readouterr().err
    assert (
        main(["import-release", str(path), "--out", str(tmp_path / "ds"), "--split", "train"]) == 0
    )


def test_import_of_1500_records_takes_seconds(tmp_path, capsys):
    path = write_release(tmp_path / "val.json", make_release(1500, missing_high=range(1, 1500, 50)))
    start = time.perf_counter()
    assert main(["import-release", str(path), "--out", str(tmp_path / "ds")]) == 0
    elapsed = time.perf_counter() - start
    capsys.readouterr()
    assert elapsed < 15, elapsed
    print(f"text-only import of 1500 records: {elapsed:.2f} s")


def test_rows_are_identical_across_imports(tmp_path):
    path = write_release(tmp_path / "val.json", make_release(20))
    a, b = load_release(path), load_release(Path(str(path)))
    assert [r.to_dict() for r in a.rows] == [r.to_dict() for r in b.rows]


def test_exact_repeats_get_unique_ids_and_are_reported(tmp_path):
    rec = make_record(4)
    path = write_release(tmp_path / "val.json", [rec, dict(rec, No=5)])
    imp = load_release(path)
    assert imp.rows[1].id == f"{imp.rows[0].id}-2"
    group = imp.report["duplicate_questions"]["groups"][0]
    assert [r["No"] for r in group["rows"]] == [4, 5] and group["same_answer"]
