"""The audit: accuracy per adversary x type with Wilson intervals, the CLI, inputs, plot."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from curation.adversaries import make_adversaries
from curation.audit import audit, clustered_wilson, format_table, wilson
from curation.records import write_questions
from scale_vqa.cli import main
from tests import mcq_factory as F
from tests.conftest import REFERENCE_SAMPLE

FAST = ["--no-embeddings"]


def test_clustered_interval_widens_for_sets_decoded_together():
    rng = np.random.default_rng(0)
    n_sets = 50
    clusters = np.repeat(np.arange(n_sets), 4)
    # a joint decoder: each set entirely right (1 in 4) or entirely wrong
    together = np.repeat((rng.random(n_sets) < 0.25).astype(float), 4)
    lo, hi, deff = clustered_wilson(together, clusters)
    assert deff == pytest.approx(4.0)
    assert (lo, hi) == pytest.approx(wilson(together.mean() * 50, 50))
    # a row-level rule right once per set has no between-set variance: never narrower
    # than Wilson on the rows
    once = np.tile([1.0, 0.0, 0.0, 0.0], n_sets)
    assert clustered_wilson(once, clusters)[:2] == pytest.approx(wilson(50, 200))
    # independent rows: the design effect stays near 1
    iid = (rng.random(4000) < 0.25).astype(float)
    assert clustered_wilson(iid, np.repeat(np.arange(1000), 4))[2] < 1.3


def test_wilson_interval_known_values():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_cli_audit_finds_planted_artifact_in_release_file(tmp_path, capsys):
    release = F.write_release_json(tmp_path / "val.json", F.release_style(250, 25))
    out, plot = tmp_path / "report.json", tmp_path / "audit.png"
    rc = main(["audit", str(release), "--json", str(out), "--plot", str(plot), *FAST])
    text = capsys.readouterr().out
    assert rc == 0
    assert "best adversary: centrality 100.0% overall, chance 25.0%, excess +75.0 points" in text
    assert "text-only shortcut: centrality" in text
    report = json.loads(out.read_text())
    assert report["n"] == 250 and report["chance"] == 0.25
    assert report["best"]["adversary"] == "centrality"
    assert report["best"]["question_type"] == "all" and report["best"]["accuracy"] == 1.0
    row = next(
        r for r in report["table"] if r["adversary"] == "longest" and r["question_type"] == "all"
    )
    assert {"adversary", "question_type", "accuracy", "ci_low", "ci_high", "n"} <= set(row)
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"] and row["n"] == 250
    types = {r["question_type"] for r in report["table"]}
    assert types == {
        "all",
        "correspondence",
        "corroboration",
        "localization",
        "explanation",
        "diagnosis",
    }
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


def test_audit_names_a_length_shortcut():
    report = audit(
        F.longest_key(200, 20), make_adversaries(["centrality", "shortest", "longest", "position"])
    )
    assert report["best"]["adversary"] == "longest"
    assert report["best"]["excess"] == pytest.approx(0.75)


def test_audit_runs_on_the_reference_release_sample(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["audit", str(REFERENCE_SAMPLE), "--json", str(out), *FAST]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 5 and report["best"]["adversary"]
    assert "best adversary:" in capsys.readouterr().out


def test_complementary_sets_are_held_out_whole_and_report_group_accuracy():
    qs = F.complementary(60, 30)
    report = audit(qs, make_adversaries(["centrality", "bow-options"]))
    rows = {(r["adversary"], r["question_type"]): r for r in report["table"]}
    bow = rows[("bow-options", "all")]
    assert bow["ci_low"] <= 0.25 <= bow["ci_high"], bow
    assert "below chance" not in " ".join(report["notes"])
    group = {g["adversary"]: g for g in report["group"]}
    assert group["centrality"]["n_sets"] == 60 and group["centrality"]["accuracy"] == 0.0
    assert "group accuracy over complementary sets" in format_table(report)


def test_folds_that_split_sets_push_learners_below_chance_and_the_audit_explains():
    hidden = [dataclasses.replace(q, set_id="") for q in F.complementary(60, 30)]
    notes = " ".join(audit(hidden, make_adversaries(["bow-options"]))["notes"])
    assert "below chance, as expected, not an alarm: bow-options" in notes


def test_train_mode_and_questions_jsonl(tmp_path, capsys):
    test = write_questions(tmp_path / "test.jsonl", F.release_style(100, 10, seed=1))
    assert test == 100
    write_questions(tmp_path / "train.jsonl", F.release_style(150, 15, seed=2))
    out = tmp_path / "r.json"
    rc = main(
        [
            "audit",
            str(tmp_path / "test.jsonl"),
            "--train",
            str(tmp_path / "train.jsonl"),
            "--adversaries",
            "centrality,bow-options",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "train/test" and report["n_train"] == 150
    bow = next(r for r in report["table"] if r["adversary"] == "bow-options")
    assert bow["accuracy"] > 0.9
    assert "train/test" in capsys.readouterr().out


def test_audit_reads_a_built_dataset_folder_without_images(tmp_path, capsys):
    from scale_vqa.build import write_dataset
    from scale_vqa.schema import Row

    qs = F.release_style(60, 6)
    rows = {
        "test": [Row.from_question(q) for q in qs[:40]],
        "validation": [Row.from_question(q) for q in qs[40:]],
    }
    write_dataset(tmp_path / "ds", rows, progress=False)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "audit",
                str(tmp_path / "ds"),
                "--json",
                str(out),
                "--adversaries",
                "centrality,longest",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["n"] == 60
    assert (
        main(
            [
                "audit",
                str(tmp_path / "ds"),
                "--split",
                "validation",
                "--json",
                str(out),
                "--adversaries",
                "centrality",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["n"] == 20
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "nobody/no-such-dataset", *FAST], "cannot load Hub dataset 'nobody/no-such"),
        (["audit", "missing.jsonl", *FAST], "missing.jsonl: no such file"),
        (
            ["audit", str(REFERENCE_SAMPLE), "--adversaries", "centrality,oracle"],
            "unknown adversary 'oracle'",
        ),
    ],
)
def test_audit_errors_say_what_to_do(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_help_texts_have_no_doubled_percent(capsys):
    from scale_vqa.cli import COMMANDS

    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text, name
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "Wilson 95% intervals" in " ".join(capsys.readouterr().out.split())


def test_permutation_null_calibrates_learned_cells():
    import random

    from curation.audit_null import permute_keys
    from curation.generate import Generator
    from curation.simulate import simulate

    anns = simulate(300, ["skin", "colon"], seed=4)
    square = Generator(anns, seed=0).generate()
    perm = permute_keys(square, random.Random(1))
    assert perm == permute_keys(square, random.Random(1))  # seeded
    assert [q.id for q in perm] == [q.id for q in square]
    by_set: dict[str, list[str]] = {}
    for q in perm:
        by_set.setdefault(q.set_id, []).append(q.answer)
    assert all(sorted(v) == list("ABCD") for v in by_set.values())  # one key per option
    assert sum(a.answer != b.answer for a, b in zip(square, perm)) > len(square) / 2

    from curation.adversaries import BagOfWordsOptions

    naive = Generator(anns, seed=0, naive=True).generate()
    leak = audit(naive, [BagOfWordsOptions()], null=3, dataset_level=False)
    cell = next(c for c in leak["null"]["cells"] if c["question_type"] == "all")
    assert cell["observed"] > 0.8 and cell["null_p95"] < 0.5 and cell["p"] == 0.25
    assert "cells above it" in format_table(leak)
    n_cells = len(leak["null"]["cells"])
    assert f"of {n_cells} learned cells" in format_table(leak)
    assert "cannot give p below 0.25" in format_table(leak)
    row = next(r for r in leak["table"] if r["question_type"] == "all")
    assert row["null_p"] == 0.25
    clean = audit(square, [BagOfWordsOptions()], null=3, dataset_level=False)
    cell = next(c for c in clean["null"]["cells"] if c["question_type"] == "all")
    assert cell["observed"] == pytest.approx(0.25) and cell["null_mean"] == pytest.approx(0.25)
    assert "no learned cell is above it" in format_table(clean)


def test_cli_null_must_not_be_negative(tmp_path, capsys):
    from curation.generate import Generator
    from curation.records import write_questions
    from curation.simulate import simulate
    from scale_vqa.cli import main

    path = tmp_path / "q.jsonl"
    write_questions(path, Generator(simulate(120, ["skin"], seed=1), seed=0).generate())
    assert main(["audit", str(path), "--null", "-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --null -1") and "\n" not in err


def test_cli_a_file_with_no_usable_record_says_why(tmp_path, capsys):
    qs = F.complementary(1)[:2]
    path = tmp_path / "q.jsonl"
    write_questions(path, qs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["answer"] = "E"
    rows[1]["options"] = ["same"] * 4
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["audit", str(path), "--no-embeddings"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: no usable record to audit: left out 2")
    assert "answer outside the options 1 (line 1)" in err and "all options identical 1" in err
