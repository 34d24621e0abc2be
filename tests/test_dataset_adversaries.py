"""Dataset-level adversaries: planted leaks found, leak-free files at chance, the audit
rows, the CLI and the card, and the threat model (answers and rationales never read)."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

from curation.adversaries import make_adversaries, make_adversary
from curation.audit import audit, format_table
from curation.dataset_adversaries import DATASET_ADVERSARIES, dataset_battery
from curation.errors import ConfigError
from curation.joint_decoding import assignment_chance, decode_sets
from curation.published import PUBLISHED_FIELDS, public_rows
from curation.records import LETTERS, write_questions
from scale_vqa.card import _audit_section
from scale_vqa.cli import main
from tests import dataset_factory as D


def _rows(report: dict) -> dict[tuple[str, str], dict]:
    return {(r["adversary"], r["question_type"]): r for r in report["table"]}


def _near_chance(row: dict, slack: float = 0.02) -> bool:
    return row["ci_low"] - slack <= row["chance"] <= row["ci_high"] + slack


def test_published_view_has_no_answer_or_rationale():
    qs = D.square_sets(2)
    rows = public_rows(qs)
    assert "answer" not in PUBLISHED_FIELDS and "rationale" not in PUBLISHED_FIELDS
    assert not hasattr(rows[0], "answer") and not hasattr(rows[0], "rationale")
    assert [r.position for r in rows] == list(range(len(qs)))
    assert rows[3].options == tuple(qs[3].options)
    # a position counts the rows of the row's own split, as in that split's shards
    mixed = [dataclasses.replace(q, split="test" if i % 2 else "train") for i, q in enumerate(qs)]
    assert [r.position for r in public_rows(mixed)] == [i // 2 for i in range(len(qs))]


def test_meta_hash_finds_ids_hashed_with_the_answer_and_nothing_in_content_ids():
    leaky = D.square_sets(40, order="shuffled", ids="answer")
    report = audit(leaky, make_adversaries(["meta-hash"]))
    assert _rows(report)[("meta-hash", "all")]["accuracy"] == 1.0
    notes = " ".join(report["notes"])
    assert "meta-hash: the ids are md5 of the '|'-joined [question, options, answer, path_id]" in (
        notes
    )
    clean = D.square_sets(40, order="shuffled", ids="content")
    adv = make_adversary("meta-hash")
    scores = adv.score(clean)
    assert adv.rule_ is None and all(np.all(s == 0) for s in scores)
    assert _rows(audit(clean, [adv]))[("meta-hash", "all")]["accuracy"] == pytest.approx(0.25)


def test_meta_lr_learns_that_rows_are_in_cell_order_and_not_a_seeded_order():
    ordered = D.square_sets(150, seed=1, order="cell")
    crossfit = _rows(audit(ordered, make_adversaries(["meta-lr"])))[("meta-lr", "all")]
    assert crossfit["accuracy"] > 0.8, crossfit
    other = D.square_sets(150, seed=2, order="cell")
    trained = audit(ordered, make_adversaries(["meta-lr"]), train=other)
    assert _rows(trained)[("meta-lr", "all")]["accuracy"] > 0.8
    shuffled = D.square_sets(150, seed=1, order="shuffled")
    row = _rows(audit(shuffled, make_adversaries(["meta-lr"])))[("meta-lr", "all")]
    assert _near_chance(row), row
    trained = audit(shuffled, make_adversaries(["meta-lr"]), train=D.square_sets(150, seed=2))
    assert _near_chance(_rows(trained)[("meta-lr", "all")])


def test_context_reader_reads_a_premise_on_the_same_path():
    leaky = D.premise_paths(200, seed=0, leak=True)
    rows = _rows(audit(leaky, make_adversaries(["context-lr"])))
    assert rows[("context-lr", "localization")]["accuracy"] > 0.9, rows
    assert _near_chance(rows[("context-lr", "correspondence")])
    trained = _rows(
        audit(leaky, make_adversaries(["context-lr"]), train=D.premise_paths(200, seed=1))
    )
    assert trained[("context-lr", "localization")]["accuracy"] > 0.9
    clean = D.premise_paths(200, seed=0, leak=False)
    for train in (None, D.premise_paths(200, seed=1, leak=False)):
        rows = _rows(audit(clean, make_adversaries(["context-lr"]), train=train))
        assert _near_chance(rows[("context-lr", "all")]), rows[("context-lr", "all")]
        assert _near_chance(rows[("context-lr", "localization")], slack=0.04)


def test_joint_decoding_answers_the_last_member_of_a_set_by_elimination():
    qs = D.elimination_sets(60)
    report = audit(qs, make_adversaries(["context-lr", "joint-context"]))
    rows = _rows(report)
    single = rows[("context-lr", "localization")]["accuracy"]
    joint = rows[("joint-context", "localization")]["accuracy"]
    assert 0.7 < single < 0.9 and joint > 0.95, (single, joint)
    group = {g["adversary"]: g for g in report["group"]}
    assert group["joint-context"]["accuracy"] > 0.9
    assert group["joint-context"]["chance"] == pytest.approx(1 / 24)
    assert group["joint-context"]["chance_rule"].startswith("1/k!")
    assert group["context-lr"]["chance"] == pytest.approx(0.25**4)
    assert "joint-context" in format_table(report)


def test_decode_sets_is_the_best_assignment():
    qs = D.square_sets(1, order="cell")
    k = [q.key_index for q in qs]
    scores = [np.zeros(4) for _ in qs]
    for r in range(3):  # three rows sure of their key; the last one prefers a taken option
        scores[r][k[r]] = 5.0
    scores[3][k[0]], scores[3][k[3]] = 3.0, 2.0
    decoded = decode_sets(qs, scores)
    assert [int(np.argmax(s)) for s in decoded] == k
    assert assignment_chance(4, 4) == pytest.approx(1 / 24)
    assert assignment_chance(2, 4) == pytest.approx(1 / 12)


def test_leak_free_file_is_at_chance_for_every_dataset_adversary():
    clean = D.square_sets(150, seed=3, order="shuffled", ids="content")
    report = audit(clean, make_adversaries(list(DATASET_ADVERSARIES)))
    for name in DATASET_ADVERSARIES:
        row = _rows(report)[(name, "all")]
        assert abs(row["accuracy"] - 0.25) < 0.06 and _near_chance(row), row


def test_scores_never_read_answers_or_rationales_of_scored_rows():
    train = D.square_sets(60, seed=4)
    test = D.premise_paths(40, seed=5) + D.square_sets(30, seed=6)
    rng = np.random.default_rng(0)
    scrambled = [
        dataclasses.replace(
            q,
            answer=LETTERS[int(rng.integers(len(q.options)))],
            rationale="The key is whatever this says.",
        )
        for q in test
    ]
    for name in DATASET_ADVERSARIES:
        adv = make_adversary(name)
        if adv.learned:
            adv.fit(train + D.premise_paths(40, seed=7))
        a, b = adv.score(test), adv.score(scrambled)
        assert all(np.allclose(x, y) for x, y in zip(a, b)), name


def test_default_audit_adds_dataset_rows_and_notes_missing_columns():
    qs = D.square_sets(30, ids="answer")
    report = audit(qs, include_embeddings=False)
    assert report["dataset_adversaries"] == list(DATASET_ADVERSARIES)
    names = {r["adversary"] for r in report["table"]}
    assert set(DATASET_ADVERSARIES) <= names and "centrality" in names
    assert report["best"]["adversary"] == "meta-hash"
    bare = [dataclasses.replace(q, path_id="", set_id="") for q in qs]
    advs, notes = dataset_battery(bare)
    assert [a.name for a in advs] == ["meta-hash", "meta-lr", "context-lr"]
    text = " ".join(notes)
    assert "joint-context not run: no complementary sets" in text
    assert "no path_id column" in text and "no set_id column" in text
    explicit = audit(qs, make_adversaries(["centrality"]))
    assert {r["adversary"] for r in explicit["table"]} == {"centrality"}


def test_cli_audit_runs_them_by_default_and_the_card_marks_them(tmp_path, capsys):
    path = tmp_path / "q.jsonl"
    write_questions(path, D.square_sets(40, ids="answer"))
    out = tmp_path / "r.json"
    assert main(["audit", str(path), "--no-embeddings", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "meta-hash       100.0" in text and "joint-context" in text
    report = json.loads(out.read_text())
    section = _audit_section(report)
    assert "| **meta-hash*** | all | 1.000 |" in section
    assert "Dataset-level adversaries (marked *)" in section
    out2 = tmp_path / "r2.json"
    argv = ["audit", str(path), "--no-embeddings", "--no-dataset-adversaries", "--json", str(out2)]
    assert main(argv) == 0
    assert not {"meta-hash", "context-lr"} & {
        r["adversary"] for r in json.loads(out2.read_text())["table"]
    }


def test_joint_wraps_any_adversary_by_name_and_rejects_unknown_names():
    adv = make_adversary("joint:bow-options")
    assert adv.name == "joint:bow-options" and adv.learned and adv.reads_dataset
    with pytest.raises(ConfigError, match=r"unknown adversary 'nope'.*joint:<name>"):
        make_adversary("joint:nope")


def test_dataset_adversaries_are_fast_enough():
    qs = D.premise_paths(600, seed=8) + D.square_sets(200, seed=9, order="shuffled")
    assert len(qs) == 2000
    t0 = time.perf_counter()
    audit(qs, make_adversaries(list(DATASET_ADVERSARIES)))
    assert time.perf_counter() - t0 < 60


def test_screen_flags_with_a_dataset_adversary_and_condemns_whole_sets():
    from curation.screen import screen

    leaky = D.square_sets(100, seed=10, order="cell", ids="answer")
    result = screen(leaky, make_adversaries(["meta-hash"]), rounds=0)
    assert result.report["dropped"] == len(leaky) and not result.kept
    ordered = D.square_sets(100, seed=11, order="cell")
    result = screen(ordered, make_adversaries(["meta-lr"]), rounds=0)
    dropped_sets = {d["set_id"] for d in result.dropped}
    assert result.report["dropped"] > len(ordered) // 2
    assert all(q.set_id not in dropped_sets for q in result.kept)  # sets go whole
    clean = D.square_sets(100, seed=12, order="shuffled")
    assert (
        screen(clean, make_adversaries(["meta-lr", "meta-hash"]), rounds=0).report["dropped"] == 0
    )
