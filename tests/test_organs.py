"""Organ vocabularies: shipped files, validation messages, registry folders, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curation.errors import ValidationError
from curation.organs import (
    ENV_VAR,
    get_organ,
    list_organs,
    load_organ_file,
    load_registry,
    validate_organ_file,
)
from scale_vqa.cli import main

SHIPPED = {
    "skin",
    "breast",
    "colon",
    "lung",
    "prostate",
    "kidney",
    "liver",
    "stomach",
    "thyroid",
    "lymph_node",
    "urinary_bladder",
    "cervix",
    "endometrium",
    "ovary",
    "pancreas",
}
CYTOLOGY = {"nuclear_pleomorphism", "mitotic_figures", "prominent_nucleoli"}

NEW_ORGAN = {
    "name": "tongue",
    "display_name": "Tongue",
    "compartments": ["mucosa", "muscle"],
    "features": [
        {
            "id": "acanthosis",
            "phrase": "acanthosis",
            "scales": ["low", "mid"],
            "compartment": "mucosa",
            "synonyms": ["thick epithelium"],
            "prevalence": 0.3,
        },
        {
            "id": "invasive_nests",
            "phrase": "invasive nests",
            "scales": ["low", "mid"],
            "compartment": "muscle",
            "prevalence": 0.2,
        },
        {"id": "ulcer", "phrase": "an ulcer", "scales": ["low", "mid"], "prevalence": 0.2},
        {
            "id": "keratin_pearls",
            "phrase": "keratin pearls",
            "scales": ["mid", "high"],
            "compartment": "mucosa",
            "prevalence": 0.2,
        },
        {"id": "koilocytes", "phrase": "koilocytes", "scales": ["mid", "high"], "prevalence": 0.2},
        {"id": "mitoses", "phrase": "mitotic figures", "scales": ["high"], "prevalence": 0.2},
        {
            "id": "pleomorphism",
            "phrase": "nuclear pleomorphism",
            "scales": ["high"],
            "prevalence": 0.2,
        },
        {"id": "nucleoli", "phrase": "prominent nucleoli", "scales": ["high"], "prevalence": 0.2},
        {"id": "candida", "phrase": "fungal hyphae", "scales": ["high"], "prevalence": 0.1},
    ],
    "diagnoses": [
        {
            "id": "scc",
            "name": "squamous cell carcinoma",
            "prevalence": 0.5,
            "features": {
                "invasive_nests": 0.8,
                "keratin_pearls": 0.6,
                "pleomorphism": 0.6,
                "mitoses": 0.5,
                "nucleoli": 0.4,
            },
        },
        {
            "id": "papilloma",
            "name": "squamous papilloma",
            "prevalence": 0.5,
            "features": {
                "acanthosis": 0.8,
                "koilocytes": 0.5,
                "invasive_nests": 0.02,
                "pleomorphism": 0.1,
            },
        },
    ],
    "exclusive": [["ulcer", "acanthosis"]],
}


def write_organ(folder: Path, data: dict | None = None) -> Path:
    data = data or NEW_ORGAN
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_shipped_organs_are_valid_and_sensible():
    assert set(list_organs()) == SHIPPED
    for name, organ in load_registry().items():
        assert validate_organ_file(organ.path) == [], name
        assert 12 <= len(organ.features) <= 20, name
        assert 3 <= len(organ.diagnoses) <= 5, name
        for f in organ.features.values():
            assert f.phrase and f.synonyms, (name, f.id)
            if f.id in CYTOLOGY:
                assert f.scales == ("high",), (name, f.id)
        for d in organ.diagnoses.values():
            assert max(d.features.values()) >= 0.7, (name, d.id)
    skin = get_organ("skin")
    bcc = skin.diagnoses["basal_cell_carcinoma"]
    assert bcc.features["peripheral_palisading"] > 0.7
    assert skin.probability("keratin_pearls", "squamous_cell_carcinoma") > 0.5
    assert skin.probability("peripheral_palisading", None) < 0.1
    assert "horn_cysts" in skin.diagnoses["seborrhoeic_keratosis"].features
    assert skin.are_exclusive("hyperkeratosis", "surface_ulceration")


def test_validate_reports_every_problem_with_field_paths(tmp_path):
    bad = {
        "name": "Bad Name",
        "colour": "blue",
        "features": [
            {"id": "a", "phrase": "a thing", "scales": ["low", "huge"], "prevalence": 1.5},
            {"id": "a", "phrase": "again", "scales": ["mid"], "shape": "round"},
            {"phrase": "no id", "scales": ["high"]},
        ],
        "diagnoses": [
            {"id": "d1", "name": "dx one", "prevalence": 0.5, "features": {"ghost": 0.5, "a": 2}},
            {"id": "d1", "name": "dx two", "features": {}},
        ],
        "exclusive": [["a", "phantom"]],
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    problems = validate_organ_file(path)
    text = "\n".join(problems)
    assert all(p.startswith(str(path)) for p in problems)
    expected = [
        "name: 'Bad Name' is not a valid name",
        "colour: unknown key",
        "features[0] (a).scales: scale 'huge' is not one of low, mid, high",
        "features[0] (a).prevalence: 1.5 is not a probability",
        "features[1] (a).id: duplicate feature id 'a'",
        "features[1] (a).shape: unknown key",
        "features[2].id: missing required field",
        "diagnoses[0] (d1).features.ghost: feature 'ghost' is not defined",
        "diagnoses[0] (d1).features.a: 2 is not a probability",
        "diagnoses[1] (d1).id: duplicate diagnosis id 'd1'",
        "exclusive[0]: names unknown feature 'phantom'",
    ]
    for e in expected:
        assert e in text, (e, text)
    with pytest.raises(ValidationError, match="problem"):
        load_organ_file(path)


def test_registry_reads_extra_folders_and_env(tmp_path, monkeypatch):
    folder = tmp_path / "organs"
    write_organ(folder)
    assert "tongue" not in list_organs()
    assert "tongue" in list_organs([folder])
    organ = get_organ("tongue", [folder])
    assert organ.visible_at("high") == [
        "keratin_pearls",
        "koilocytes",
        "mitoses",
        "pleomorphism",
        "nucleoli",
        "candida",
    ]
    monkeypatch.setenv(ENV_VAR, str(folder))
    assert get_organ("tongue").display_name == "Tongue"
    with pytest.raises(ValidationError, match="unknown organ 'heart'"):
        get_organ("heart")
    # a file whose name disagrees with its 'name' field is refused
    other = tmp_path / "mismatch"
    other.mkdir()
    (other / "lip.yaml").write_text((folder / "tongue.yaml").read_text(), encoding="utf-8")
    with pytest.raises(ValidationError, match="does not match the file name"):
        get_organ("lip", [other])


def test_cli_organs_list_show_validate(tmp_path, capsys):
    assert main(["organs", "list"]) == 0
    out = capsys.readouterr().out
    assert "urinary_bladder" in out and "15 organ(s)" in out
    assert main(["organs", "show", "skin"]) == 0
    assert "peripheral_palisading" in capsys.readouterr().out
    good = write_organ(tmp_path)
    assert main(["organs", "validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    broken = dict(NEW_ORGAN, name="broken", exclusive=[["ulcer", "nowhere"]])
    bad = write_organ(tmp_path, broken)
    assert main(["organs", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "exclusive[0]: names unknown feature 'nowhere'" in err and str(bad) in err
    assert main(["organs", "show", "heart"]) == 1
    assert "error: unknown organ 'heart'" in capsys.readouterr().err
    only_good = tmp_path / "only_good"
    write_organ(only_good)
    assert main(["organs", "list", "--organs-dir", str(only_good)]) == 0
    assert "tongue" in capsys.readouterr().out
    assert main(["organs", "--organs-dir", str(only_good), "show", "tongue"]) == 0
    assert "koilocytes" in capsys.readouterr().out


def test_validate_warns_about_question_types_a_vocabulary_cannot_feed(tmp_path, capsys):
    thin = {
        "name": "thin",
        "display_name": "Thin",
        "compartments": ["mucosa"],
        "features": [
            {"id": "pearls", "phrase": "keratin pearls", "scales": ["mid"]},
            {"id": "mitoses", "phrase": "mitotic figures", "scales": ["high"]},
        ],
        "diagnoses": [
            {"id": "scc", "name": "squamous cell carcinoma", "features": {"pearls": 0.6}}
        ],
        "exclusive": [],
    }
    path = write_organ(tmp_path, thin)
    assert validate_organ_file(path) == []
    assert main(["organs", "validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "valid (8 warning(s))" in captured.out
    err = captured.err
    for needle in (
        "no correspondence questions possible: needs a feature visible at two scales",
        "no diagnosis questions possible: needs at least two diagnoses",
        "no explanation questions possible",
        "only 0 feature(s) visible at low power",
        "only 1 feature(s) visible at mid power",
        "only 1 feature(s) visible at high power",
    ):
        assert f"warning: {path}: {needle}" in err, needle
    # a shipped vocabulary feeds every type: no warning
    assert main(["organs", "validate", str(get_organ("skin").path)]) == 0
    assert "warning" not in capsys.readouterr().err
