"""Simulated annotation corpus: determinism, priors, scales, negatives, structure."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from curation.annotations import read_annotations
from curation.errors import ConfigError
from curation.organs import SCALES, get_organ
from curation.simulate import simulate
from scale_vqa.cli import main


def test_deterministic_bytes_and_valid(tmp_path, capsys):
    a, b, c = (tmp_path / n for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    assert (
        main(
            ["simulate", "--out", str(a), "--paths", "120", "--organs", "skin,colon", "--seed", "3"]
        )
        == 0
    )
    assert "wrote 120 zoom paths" in capsys.readouterr().out
    assert (
        main(
            ["simulate", "--out", str(b), "--paths", "120", "--organs", "skin,colon", "--seed", "3"]
        )
        == 0
    )
    assert (
        main(
            ["simulate", "--out", str(c), "--paths", "120", "--organs", "skin,colon", "--seed", "4"]
        )
        == 0
    )
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    anns = read_annotations(a)  # validates every id, scale, exclusive pair
    assert Counter(x.organ for x in anns) == {"skin": 60, "colon": 60}
    assert main(["simulate", "--out", str(a), "--paths", "10", "--organs", "heart"]) == 1
    assert "unknown organ 'heart'" in capsys.readouterr().err


def test_priors_scales_negatives_and_structure():
    anns = simulate(600, ["skin"], seed=0)
    skin = get_organ("skin")
    seen_by_dx: dict[str, Counter[str]] = defaultdict(Counter)
    n_by_dx: Counter[str] = Counter()
    for a in anns:
        n_by_dx[a.diagnosis] += 1
        for f in a.seen_anywhere():
            seen_by_dx[a.diagnosis][f] += 1
        for s in SCALES:
            assert not set(a.findings[s]) & set(a.negatives[s])
            for f in a.findings[s] + a.negatives[s]:
                assert s in skin.features[f].scales  # cytology only ever at high power
    rate = {d: seen_by_dx[d]["peripheral_palisading"] / n_by_dx[d] for d in n_by_dx}
    assert rate["basal_cell_carcinoma"] > 0.6
    assert max(v for d, v in rate.items() if d != "basal_cell_carcinoma") < 0.15
    horn = seen_by_dx["seborrhoeic_keratosis"]["horn_cysts"] / n_by_dx["seborrhoeic_keratosis"]
    assert horn > 0.6
    # negatives exist and are a large share of what was looked for
    assert sum(len(a.negatives["high"]) for a in anns) > sum(len(a.findings["high"]) for a in anns)
    # the narrower field differs from the broader one on some paths (zooming loses things)
    assert any(
        set(a.findings["low"]) & set(skin.visible_at("mid")) - set(a.findings["mid"]) for a in anns
    )
    per_slide = Counter(a.slide_id for a in anns)
    slides_per_patient = {a.patient_id: set() for a in anns}
    for a in anns:
        slides_per_patient[a.patient_id].add(a.slide_id)
    assert max(per_slide.values()) >= 3 and min(per_slide.values()) >= 1
    assert max(len(s) for s in slides_per_patient.values()) >= 2
    assert len({a.patient_id: a.diagnosis for a in anns}) == len(slides_per_patient)
    with pytest.raises(ConfigError):
        simulate(3, ["skin", "colon", "lung", "liver"])
