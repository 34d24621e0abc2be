"""Splits by patient before generation; the split report."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from curation.errors import ConfigError
from curation.records import Question
from curation.simulate import simulate
from curation.split import assign_splits, format_split_table, parse_ratios, split_report


def test_groups_never_straddle_and_ratios_hold():
    anns = simulate(900, ["skin", "colon", "lung"], seed=1)
    splits = assign_splits(anns, (0.6, 0.2, 0.2), seed=5)
    assert splits == assign_splits(anns, (0.6, 0.2, 0.2), seed=5)
    assert splits != assign_splits(anns, (0.6, 0.2, 0.2), seed=6)
    by_patient = defaultdict(set)
    for a in anns:
        by_patient[a.patient_id].add(splits[a.path_id])
    assert all(len(s) == 1 for s in by_patient.values())
    counts = Counter(splits.values())
    for name, ratio in zip(("train", "validation", "test"), (0.6, 0.2, 0.2)):
        assert abs(counts[name] / len(anns) - ratio) < 0.05, counts
    for organ in ("skin", "colon", "lung"):
        assert {splits[a.path_id] for a in anns if a.organ == organ} == {
            "train",
            "validation",
            "test",
        }
    # without patient ids the slide is the group
    for a in anns:
        a.patient_id = ""
    slide_splits = assign_splits(anns, seed=5)
    by_slide = defaultdict(set)
    for a in anns:
        by_slide[a.slide_id].add(slide_splits[a.path_id])
    assert all(len(s) == 1 for s in by_slide.values())


def test_parse_ratios_and_report():
    assert parse_ratios("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    for bad in ("0.5,0.5", "a,b,c", "0.7,0.2,0.2", "-0.1,0.6,0.5", "nan,0.5,0.5", "inf,-inf,1"):
        with pytest.raises(ConfigError):
            parse_ratios(bad)
    qs = [
        Question("q?", ["a", "b"], "A", "diagnosis", organ="skin", split="test"),
        Question("q?", ["a", "b"], "B", "diagnosis", organ="skin", split="test"),
        Question("r?", ["a", "b"], "A", "localization", organ="colon", split="train"),
    ]
    rep = split_report(qs)
    assert rep["counts"]["test"]["skin"] == {"diagnosis": 2}
    assert rep["by_split"] == {"test": 2, "train": 1}
    assert "localization" in format_split_table(rep)


def test_strata_are_dealt_in_chunks_large_enough_for_sets():
    anns = simulate(900, ["skin", "colon", "lung"], seed=1)
    cells = {}
    for mc in (0, 12):
        splits = assign_splits(anns, (0.6, 0.2, 0.2), seed=5, min_chunk=mc)
        cells[mc] = Counter((a.organ, a.diagnosis, splits[a.path_id]) for a in anns)
        counts = Counter(splits.values())
        for name, ratio in zip(("train", "validation", "test"), (0.6, 0.2, 0.2)):
            assert abs(counts[name] / len(anns) - ratio) < 0.03, (mc, counts)
    # the old recipe leaves splits with a handful of paths of a stratum; chunks do not
    assert min(cells[0].values()) < 8
    assert min(cells[12].values()) >= 8 and len(cells[12]) < len(cells[0])
    # reserved groups (diagnosis questions) form one stratum per organ of their own
    reserved = {a.patient_id for a in anns if a.organ == "skin"}
    splits = assign_splits(anns, (0.6, 0.2, 0.2), seed=5, reserved=reserved)
    skin = Counter(splits[a.path_id] for a in anns if a.organ == "skin")
    assert len(skin) >= 2 and sum(skin.values()) == sum(a.organ == "skin" for a in anns)
