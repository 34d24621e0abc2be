"""The official release as it is: every fault class, several files, paths kept inside ROOT.

The release files are built by ``tests/release_factory.py`` with each fault class the real
``data/val.json`` and ``data/test.json`` have (three records with four identical options,
a repeated option, an answer outside the options, an empty question, missing high_mag,
rationale letter conflicts, duplicate questions); nothing is fetched.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import datasets
import pytest

from curation.errors import RecordError
from curation.records import load_questions_file
from scale_vqa.cli import main
from scale_vqa.release import load_release
from tests.openai_server import OpenAIServer
from tests.release_factory import (
    FAULTS,
    faulty_release,
    make_record,
    make_release,
    write_images,
    write_release,
)

FAST = ["--no-embeddings", "--adversaries", "centrality,longest,overlap,position,bow-options"]
UNUSABLE_NOS = {
    **{no: "identical_options" for no in FAULTS["identical"]},
    **{no: "duplicate_options" for no in FAULTS["repeated_option"]},
    **{no: "answer_not_in_options" for no in FAULTS["answer_outside"]},
    **{no: "no_question" for no in FAULTS["no_question"]},
}


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_every_fault_class_is_reported_and_unusable_records_left_out(tmp_path, capsys):
    records, cleaned = faulty_release()
    path = write_release(tmp_path / "val.json", records)
    out, report = tmp_path / "ds", tmp_path / "report.json"
    assert main(["import-release", str(path), "--out", str(out), "--report", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert "left out 6 unusable record(s): all options identical 3 (No 11, No 47, No 90)" in stdout
    assert "the same option twice 1 (No 19)" in stdout
    assert (
        "answer outside the options 1 (No 33)" in stdout and "no question text 1 (No 52)" in stdout
    )
    rep = json.loads(report.read_text())
    assert rep["records_in_file"] == 120 and rep["records"] == 114 == len(cleaned)
    left = rep["left_out"]
    assert {r["No"]: r["reason"] for r in left["rows"]} == UNUSABLE_NOS
    assert left["by_reason"] == {"identical_options": 3, "duplicate_options": 1,
                                 "answer_not_in_options": 1, "no_question": 1}  # fmt: skip
    assert all(f"(No {r['No']})" in r["message"] for r in left["rows"])
    assert [r["No"] for r in rep["missing_images"]["rows"]] == FAULTS["missing_high"]
    assert [r["No"] for r in rep["rationale_letter_conflicts"]["rows"]] == FAULTS["conflicts"]
    assert rep["duplicate_questions"]["count"] == 2
    ds = datasets.load_dataset(str(out))["validation"]
    assert ds.num_rows == 114
    assert all(len(set(o)) == 4 for o in ds["options"]) and "" not in ds["question"]
    card = (out / "README.md").read_text()
    for line in (
        "| left out: all options identical | 3 |",
        "| left out: the same option twice | 1 |",
        "| left out: answer outside the options | 1 |",
        "| left out: no question text | 1 |",
        "| missing images | 3 |",
        "| rationale names another letter than the key | 3 |",
        "| duplicate question + options | 4 |",
    ):
        assert line in card, line


def test_clean_release_card_still_lists_the_unusable_classes_at_zero(tmp_path, capsys):
    path = write_release(tmp_path / "test.json", make_release(10))
    assert main(["import-release", str(path), "--out", str(tmp_path / "ds")]) == 0
    assert "left out: none (every record is usable)" in capsys.readouterr().out
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "| left out: all options identical | 0 |" in card


def test_strict_refuses_the_file_at_its_first_unusable_record(tmp_path, capsys):
    records, _ = faulty_release()
    path = write_release(tmp_path / "val.json", records)
    out = tmp_path / "ds"
    assert main(["import-release", str(path), "--out", str(out), "--strict"]) == 1
    err = _last_line(capsys.readouterr().err)
    assert err.startswith("error: val.json record 10 (No 11): ") and "all options identical" in err
    assert "--strict" in err and not out.exists()
    with pytest.raises(RecordError) as info:
        load_release(path, strict=True)
    assert info.value.reason == "identical_options"


def test_audit_finishes_reports_left_out_and_matches_the_cleaned_file(tmp_path, capsys):
    records, cleaned = faulty_release()
    raw = write_release(tmp_path / "test.json", records)
    clean = write_release(tmp_path / "clean" / "test.json", cleaned)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["audit", str(raw), "--json", str(a), *FAST]) == 0
    stdout = capsys.readouterr().out
    assert "114 questions" in stdout
    assert "left out 6 unusable record(s): all options identical 3 (No 11, No 47, No 90)" in stdout
    assert main(["audit", str(clean), "--json", str(b), *FAST]) == 0
    capsys.readouterr()
    got, want = json.loads(a.read_text()), json.loads(b.read_text())
    assert got["n"] == want["n"] == 114
    assert got["table"] == want["table"] and got["best"] == want["best"]
    assert {r["No"] for r in got["left_out"]["rows"]} == set(UNUSABLE_NOS)
    assert want["left_out"]["count"] == 0
    assert main(["audit", str(raw), "--strict", *FAST]) == 1
    assert "(No 11)" in _last_line(capsys.readouterr().err)


def test_jsonl_questions_follow_the_same_policy(tmp_path, capsys):
    _, cleaned = faulty_release()
    good = load_release(write_release(tmp_path / "val.json", cleaned)).questions
    lines = [json.dumps(q.to_dict()) for q in good]
    bad = dict(good[3].to_dict(), options=["same"] * 4, id="bad-identical")
    lines.insert(5, json.dumps(bad))
    lines.insert(9, json.dumps(dict(good[4].to_dict(), answer="F", id="bad-answer")))
    q_all = tmp_path / "questions.jsonl"
    q_all.write_text("\n".join(lines) + "\n")
    q_good = tmp_path / "good.jsonl"
    q_good.write_text("\n".join(json.dumps(q.to_dict()) for q in good) + "\n")
    kept, left = load_questions_file(q_all)
    assert len(kept) == len(good) and [(r["line"], r["reason"]) for r in left.rows] == [
        (6, "identical_options"),
        (10, "answer_not_in_options"),
    ]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["audit", str(q_all), "--json", str(a), *FAST]) == 0
    assert "left out 2 unusable record(s)" in capsys.readouterr().out
    assert main(["audit", str(q_good), "--json", str(b), *FAST]) == 0
    assert json.loads(a.read_text())["table"] == json.loads(b.read_text())["table"]
    capsys.readouterr()
    assert main(["audit", str(q_all), "--strict", *FAST]) == 1
    assert f"{q_all}:6: field 'options'" in _last_line(capsys.readouterr().err)
    screen = ["screen", str(q_all), "--out", str(tmp_path / "s.jsonl"), "--no-embeddings",
              "--no-aflite", "--adversaries", "centrality,longest", "--rounds", "0"]  # fmt: skip
    assert main([*screen, "--report", str(tmp_path / "screen.json")]) == 0
    assert "left out 2 unusable record(s)" in capsys.readouterr().out
    left = json.loads((tmp_path / "screen.json").read_text())["left_out"]
    assert [r["line"] for r in left["rows"]] == [6, 10]
    assert main([*screen, "--strict"]) == 1
    assert f"{q_all}:6: " in _last_line(capsys.readouterr().err)


def test_several_files_become_splits_named_from_the_file_names(tmp_path, capsys):
    val = make_release(8)
    test = [make_record(100 + i, answer="ABCD"[i % 4]) for i in range(6)]
    test.append(dict(val[0], No=200))  # the same record in both files
    pv = write_release(tmp_path / "data" / "val.json", val)
    pt = write_release(tmp_path / "data" / "scale_vqa_test.json", test)
    out, report = tmp_path / "ds", tmp_path / "report.json"
    assert (
        main(["import-release", str(pv), str(pt), "--out", str(out), "--report", str(report)]) == 0
    )
    stdout = capsys.readouterr().out
    assert "'validation' <- val.json, 'test' <- scale_vqa_test.json" in stdout
    dsd = datasets.load_dataset(str(out))
    assert {k: v.num_rows for k, v in dsd.items()} == {"validation": 8, "test": 7}
    ids = list(dsd["validation"]["id"]) + list(dsd["test"]["id"])
    assert len(set(ids)) == len(ids)
    rep = json.loads(report.read_text())
    assert [f["split"] for f in rep["files"]] == ["validation", "test"]
    card = (out / "README.md").read_text()
    assert "| check | `val.json` (validation) | `scale_vqa_test.json` (test) |" in card
    assert main(["import-release", str(pv), str(pt), "--out", str(out), "--split", "test"]) == 1
    assert "--split names the split of one file" in _last_line(capsys.readouterr().err)
    combined = write_release(tmp_path / "release.json", val + test[:-1])
    assert main(["import-release", str(combined), "--out", str(tmp_path / "c")]) == 1
    assert "pass --split" in _last_line(capsys.readouterr().err)


# ------------------------------------------------------- image paths confined to ROOT


@pytest.fixture
def release_with_images(tmp_path):
    records = [make_record(1), make_record(2)]
    root = tmp_path / "imgs"
    write_images(root, records)
    outside = tmp_path / "outside"
    write_images(outside, [make_record(3)])
    return records, root, next(outside.rglob("10_*.jpg"))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_image_paths_outside_root_are_refused(tmp_path, capsys, release_with_images, kind):
    records, root, secret = release_with_images
    low = records[1]["image_path"]["low_mag"]
    if kind == "dotdot":
        records[1]["image_path"]["low_mag"] = f"../outside/{secret.relative_to(secret.parents[2])}"
        message = "outside --images"
    elif kind == "absolute":
        records[1]["image_path"]["low_mag"] = str(secret)
        message = "is absolute"
    else:
        (root / low).unlink()
        (root / low).symlink_to(secret)
        message = "symbolic link"
    path = write_release(tmp_path / "val.json", records)
    out = tmp_path / "ds"
    assert main(["import-release", str(path), "--out", str(out), "--images", str(root)]) == 1
    err = _last_line(capsys.readouterr().err)
    assert err.startswith("error: val.json record 1 (No 2): ") and message in err
    assert "Traceback" not in err and not out.exists()


def test_a_non_image_under_root_is_left_out_or_refused_with_its_record(
    tmp_path, capsys, release_with_images
):
    records, root, _ = release_with_images
    (root / records[1]["image_path"]["mid_mag"]).write_text("not an image, a note")
    path = write_release(tmp_path / "val.json", records)
    out, report = tmp_path / "ds", tmp_path / "r.json"
    args = ["import-release", str(path), "--out", str(out), "--images", str(root)]
    assert main([*args, "--report", str(report)]) == 0
    assert "an image file that is not an image 1 (No 2)" in capsys.readouterr().out
    left = json.loads(report.read_text())["left_out"]["rows"]
    assert [(r["No"], r["reason"]) for r in left] == [(2, "not_an_image")]
    assert datasets.load_dataset(str(out))["validation"].num_rows == 1
    assert main([*args[:3], str(tmp_path / "ds2"), *args[4:], "--strict"]) == 1
    err = _last_line(capsys.readouterr().err)
    assert "record 1 (No 2): image_path.mid_mag" in err and "not a readable image" in err


# ----------------------------------------------------------------------- evaluate


def test_evaluate_leaves_unusable_rows_out_and_strict_refuses():
    from baselines.evaluate import evaluate
    from baselines.infer import EndpointPredictor
    from curation.llm import LLMClient, LLMConfig
    from tests.test_evaluate import make_rows

    rows = [asdict(r) for r in make_rows()]
    rows[2]["options"] = ["same finding"] * 4
    rows[5]["answer"] = "E"
    with OpenAIServer(responder=lambda m, model: "<answer>A</answer>") as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="vlm", max_retries=0))
        predictor = EndpointPredictor(client)
        report = evaluate(rows, predictor, "full", progress=False)
        assert report["n"] == 14 and report["left_out"]["count"] == 2
        assert [(r["index"], r["reason"]) for r in report["left_out"]["rows"]] == [
            (2, "identical_options"),
            (5, "answer_not_in_options"),
        ]
        assert any("left out 2 unusable" in n for n in report["notes"])
        asked = server.n_ok
        with pytest.raises(RecordError, match="row 2: all 4 options are identical"):
            evaluate(rows, predictor, "full", progress=False, strict=True)
        assert server.n_ok == asked
