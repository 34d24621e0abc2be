"""Annotation format: round trip and validation naming file, line and field."""

from __future__ import annotations

import json

import pytest

from curation.annotations import Annotation, parse_annotation, read_annotations, write_annotations
from curation.errors import ValidationError


def _ann(**kw) -> dict:
    base = {
        "path_id": "p1",
        "slide_id": "s1",
        "patient_id": "pt1",
        "organ": "skin",
        "diagnosis": "basal_cell_carcinoma",
        "centre": {"x": 10, "y": 20},
        "findings": {
            "low": ["basaloid_nests"],
            "mid": ["peripheral_palisading"],
            "high": ["mitotic_figures"],
        },
        "negatives": {"low": ["horn_cysts"], "mid": [], "high": ["keratin_pearls"]},
        "compartments": ["dermis"],
    }
    base.update(kw)
    return base


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_round_trip_and_state(tmp_path):
    path = tmp_path / "ann.jsonl"
    _write(path, [_ann(), _ann(path_id="p2", diagnosis=None, centre=None, source="lab")])
    anns = read_annotations(path)
    assert [a.path_id for a in anns] == ["p1", "p2"]
    a = anns[0]
    assert a.state("mitotic_figures", "high") is True
    assert a.state("keratin_pearls", "high") is False
    assert a.state("nuclear_pleomorphism", "high") is None  # not looked for
    assert a.group == "pt1"
    out = tmp_path / "copy.jsonl"
    write_annotations(out, anns)
    assert read_annotations(out)[1].to_dict() == anns[1].to_dict()
    assert out.read_text().splitlines()[0] == json.dumps(anns[0].to_dict())


def test_every_problem_is_named_with_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        _ann(organ="heart"),
        _ann(path_id="p2", findings={"low": ["ghost_feature"]}),
        _ann(path_id="p3", findings={"low": ["mitotic_figures"]}),
        _ann(path_id="p4", negatives={"high": ["mitotic_figures"]}),
        _ann(path_id="p5", diagnosis="glioma"),
        _ann(path_id="p6", findings={"low": ["hyperkeratosis", "surface_ulceration"]}),
        _ann(path_id="p6"),
        _ann(path_id="p8", compartments=["cortex"]),
        {"path_id": "p9", "organ": "skin"},
    ]
    _write(path, rows)
    with pytest.raises(ValidationError) as info:
        read_annotations(path)
    msg = str(info.value)
    expected = [
        f"{path}:1: field 'organ': unknown organ 'heart'",
        f"{path}:2: field 'findings.low': unknown feature 'ghost_feature' for organ 'skin'",
        f"{path}:3: field 'findings.low': feature 'mitotic_figures' is not visible at low",
        f"{path}:4: field 'findings.high'/'negatives.high': feature 'mitotic_figures' is both",
        f"{path}:5: field 'diagnosis': 'glioma' is not a diagnosis of organ 'skin'",
        f"{path}:6: field 'findings.low': features 'surface_ulceration' and 'hyperkeratosis' "
        "cannot co-occur",
        f"{path}:7: field 'path_id': 'p6' already used on line 6",
        f"{path}:8: field 'compartments': 'cortex' is not a compartment of 'skin'",
        f"{path}:9: field 'slide_id' is required",
    ]
    for e in expected:
        assert e in msg, (e, msg)


def test_raw_captions_are_parsed_but_not_canonical(tmp_path):
    raw = _ann(findings=None, negatives=None, captions={"low": "basaloid islands"})
    ann = parse_annotation(raw, "x")
    assert isinstance(ann, Annotation) and ann.captions["low"] == "basaloid islands"
    path = tmp_path / "raw.jsonl"
    _write(path, [raw])
    with pytest.raises(ValidationError, match="raw captions are not canonical"):
        read_annotations(path)
    with pytest.raises(ValidationError, match="field 'centre'"):
        parse_annotation(_ann(centre=[1, 2]), "y")
