"""The five question types as the paper defines them, the type checkers and the text gate."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from curation.annotations import Annotation, annotation_problems
from curation.constraints import CONSTRAINTS, check_all, summarize
from curation.generate import Generator
from curation.options import IN, WITH, claim_truth
from curation.organs import (
    field_warnings,
    fields_mm,
    get_organ,
    organ_from_dict,
    validate_organ_file,
)
from curation.records import QUESTION_TYPES, Question
from curation.simulate import simulate
from curation.text_quality import question_problems

GOOD_OPTS = [
    "Hyperkeratosis at low power; mitotic figures at high power",
    "Hyperkeratosis at low power; nuclear pleomorphism at high power",
    "Horn cysts at low power; mitotic figures at high power",
    "Horn cysts at low power; nuclear pleomorphism at high power",
]


def _q(question: str, options: list[str], qtype: str = "correspondence", **kw) -> Question:
    q = Question(question, options, "A", qtype, organ="skin", **kw)
    q.id = q.content_id()
    return q


@pytest.fixture(scope="module")
def generated() -> list[Question]:
    return Generator(simulate(600, seed=3), seed=0).generate()


# ------------------------------------------------------------------- text gate
@pytest.mark.parametrize(
    ("cls", "stem", "options", "rationale"),
    [
        ("article_after_no", "Which holds?", ["No a microfollicular pattern at low power"] * 4, ""),
        ("doubled_preposition", "Which holds?", ["Naevus, with nests with maturation"] * 4, ""),
        ("yes_no_stem", "Do horn cysts and hyperkeratosis have matching counterparts?", None, ""),
        ("contradiction", "Which holds?", ["An intact myoepithelial layer is absent"] * 4, ""),
        ("contradiction", "Which holds?", ["Carcinoma; no preserved lobular architecture"] * 4, ""),
        ("repeated_word", "Which holds the the key?", None, ""),
        ("unfilled_template", "Which option pairs {F1} at low power?", None, ""),
        ("spacing", "Which  option holds?", None, ""),
        ("stem_punctuation", "Which option holds", None, ""),
        ("doubled_scale", "Which holds?", ["X at low power with Y at high power"] * 4, ""),
        ("double_placement", "Which?", ["Mitoses in glands within the myometrium; a"] * 4, ""),
        ("contradiction", "Which holds?", None, "Preserved lobular architecture is absent."),
    ],
)
def test_text_gate_catches_each_planted_class(cls, stem, options, rationale):
    q = _q(stem, options or list(GOOD_OPTS), rationale=rationale)
    problems = question_problems(q)
    assert any(cls in p for p in problems), problems
    assert [v.constraint for v in check_all([q], only=["text_quality"])] == ["text_quality"] * len(
        problems
    )


def test_text_gate_passes_clean_text_and_real_yes_no():
    assert question_problems(_q("Which pairing holds together in these images?", GOOD_OPTS)) == []
    yes_no = _q("Are horn cysts seen at low power?", ["Yes, at low power", "No", "Yes", "No, not"])
    assert not [p for p in question_problems(yes_no) if "yes_no" in p]


# ------------------------------------------------------------- type checkers
def test_checkers_are_registered():
    for name in (
        "corroboration_no_diagnosis",
        "explanation_wording",
        "localization_compartments",
        "text_quality",
    ):
        assert name in CONSTRAINTS


def test_corroboration_naming_a_diagnosis_is_flagged():
    stem = "At low power horn cysts suggest seborrhoeic keratosis. What does high power show?"
    q = _q(stem, GOOD_OPTS, "corroboration")
    v = check_all([q], only=["corroboration_no_diagnosis"])
    assert v and "seborrhoeic keratosis" in v[0].message


def test_explanation_with_causal_wording_is_flagged():
    opts = [o.replace(";", ", in keeping with") for o in GOOD_OPTS]
    q = _q("Which reasoning leads from low power to high power?", opts, "explanation")
    msgs = [v.message for v in check_all([q], only=["explanation_wording"])]
    assert any("in keeping with" in m for m in msgs) and any("leads" in m for m in msgs)
    clean = _q("Which pairing holds together in these images?", GOOD_OPTS, "explanation")
    assert check_all([clean], only=["explanation_wording"]) == []


def test_localization_options_must_differ_only_by_compartment():
    good = [
        "Nuclear pleomorphism within the epidermis; mitotic figures in the same compartment",
        "Nuclear pleomorphism within the epidermis; mitotic figures in another compartment",
        "Nuclear pleomorphism within the dermis; mitotic figures in the same compartment",
        "Nuclear pleomorphism within the dermis; mitotic figures in another compartment",
    ]
    assert check_all([_q("Where?", good, "localization")], only=["localization_compartments"]) == []
    bad = list(good)
    bad[3] = "Keratin pearls within the dermis; mitotic figures in another compartment"
    v = check_all([_q("Where?", bad, "localization")], only=["localization_compartments"])
    assert v and "keratin" in v[0].message


# ------------------------------------------------------- generated questions
def test_generated_questions_meet_every_definition(generated):
    by_type = Counter(q.question_type for q in generated)
    assert set(by_type) == set(QUESTION_TYPES), by_type
    assert summarize(check_all(generated)) == {}
    for q in generated:
        if q.question_type == "localization":
            assert all(any(str(c[1]).startswith((IN, WITH)) for c in o) for o in q.extra["claims"])
        if q.question_type == "corroboration":
            assert "suggests" not in q.question and q.extra["premise"]


def test_single_feature_correspondence_asks_one_feature_at_two_powers(generated):
    """Type A's ``corrs`` family: one feature, present or absent at each of two powers, no
    premise; the key is what the annotation records at both powers."""
    anns = {a.path_id: a for a in simulate(600, seed=3)}
    single = [q for q in generated if q.extra.get("family", "").startswith("corrs:")]
    assert single, "no single-feature correspondence set formed"
    for q in single:
        assert q.extra["premise"] == []
        claims = q.extra["claims"]
        feats = {c[0] for o in claims for c in o}
        scales = {c[1] for o in claims for c in o}
        assert len(feats) == 1 and len(scales) == 2, (feats, scales)
        # the four options are the four present/absent combinations
        assert sorted(tuple(c[2] for c in o) for o in claims) == [
            (False, False),
            (False, True),
            (True, False),
            (True, True),
        ]
        ann = anns[q.path_id]
        truths = [all(claim_truth(ann, c) for c in o) for o in claims]
        assert truths.index(True) == q.key_index and truths.count(True) == 1
        assert not question_problems(q)


def test_localization_keys_depend_on_placement(generated):
    """Moving the placed finding to its other compartment changes which option is true."""
    anns = {a.path_id: a for a in simulate(600, seed=3)}
    q = next(q for q in generated if q.question_type == "localization")
    ann = copy.deepcopy(anns[q.path_id])
    claims = q.extra["claims"][q.key_index]
    placed = next(c for c in claims if str(c[1]).startswith(IN))
    assert claim_truth(ann, placed) is True
    other = next(c for c in get_organ(q.organ).compartments_of(placed[0]) if IN + c != placed[1])
    ann.locations[placed[0]] = other
    assert claim_truth(ann, placed) is False


# ------------------------------------------------------- vocabulary and annotations
def _organ_dict() -> dict:
    return {
        "name": "tongue",
        "compartments": ["mucosa", "muscle"],
        "features": [
            {"id": "atypia", "phrase": "atypical cells", "scales": ["high"],
             "compartment": "mucosa", "compartments": ["mucosa", "muscle"]},
            {"id": "ulcer", "phrase": "ulceration", "scales": ["low", "mid"],
             "compartment": "mucosa"},
        ],
        "diagnoses": [
            {"id": "scc", "name": "squamous cell carcinoma", "features": {"atypia": 0.9},
             "locations": {"atypia": {"muscle": 0.7, "mucosa": 0.3}}},
        ],
    }  # fmt: skip


def test_vocabulary_compartments_are_validated(tmp_path):
    organ = organ_from_dict(_organ_dict())
    assert organ.compartments_of("atypia") == ("mucosa", "muscle")
    assert organ.compartments_of("ulcer") == ("mucosa",)  # the default, from `compartment`
    assert organ.location_prior("atypia", "scc") == {"mucosa": 0.3, "muscle": 0.7}
    bad = _organ_dict()
    bad["features"][0]["compartments"] = ["muscle", "bone"]
    bad["features"][1]["phrase"] = "ulceration in the mucosa"
    bad["features"][1]["compartments"] = ["mucosa", "muscle"]
    bad["diagnoses"][0]["locations"] = {"atypia": {"skin": 0.5}}
    path = tmp_path / "tongue.yaml"
    import yaml

    path.write_text(yaml.safe_dump(bad))
    problems = "\n".join(validate_organ_file(path))
    assert "'bone' is not in compartments" in problems
    assert "must be the first of compartments" in problems
    assert "names a place itself" in problems
    assert "'skin' is not a compartment 'atypia' can lie in" in problems


def test_annotation_locations_are_validated():
    skin = get_organ("skin")
    ann = Annotation(
        "p1",
        "s1",
        "skin",
        findings={"low": ["hyperkeratosis"], "mid": [], "high": ["nuclear_pleomorphism"]},
        locations={"hyperkeratosis": "dermis", "mitotic_figures": "epidermis"},
    )
    problems = "\n".join(annotation_problems(ann, skin))
    assert "'dermis' is not a compartment 'hyperkeratosis' can lie in" in problems
    assert "'mitotic_figures' is not among the path's findings" in problems
    ann.locations = {"nuclear_pleomorphism": "dermis"}
    assert annotation_problems(ann, skin) == []
    assert claim_truth(ann, ("nuclear_pleomorphism", IN + "dermis", True)) is True
    assert claim_truth(ann, ("nuclear_pleomorphism", IN + "epidermis", True)) is False
    assert claim_truth(ann, ("hyperkeratosis", IN + "epidermis", True)) is None  # not placed


def test_simulated_locations_follow_the_priors():
    anns = simulate(1500, organs=["urinary_bladder"], seed=1)
    by_dx: dict[str, Counter] = {}
    for a in anns:
        if "nuclear_pleomorphism" in a.locations:
            by_dx.setdefault(a.diagnosis, Counter())[a.locations["nuclear_pleomorphism"]] += 1
    assert set(by_dx["carcinoma_in_situ"]) == {"urothelium"}  # in situ: never beneath it
    invasive = by_dx["high_grade_invasive_carcinoma"]
    assert invasive["lamina_propria"] > invasive["urothelium"] > 0


# ------------------------------------------------------------------ fields
def test_low_power_fields_follow_the_release_triplet():
    assert fields_mm([1, 4, 20], 224) == pytest.approx({"low": 2.24, "mid": 0.56, "high": 0.112})
    skin = get_organ("skin")
    assert field_warnings(skin, fields_mm([1, 4, 20], 224)) == []
    warn = field_warnings(skin, fields_mm([5, 10, 20], 224))
    assert len(warn) == 1 and "0.45 mm" in warn[0] and "low-power" in warn[0]


def test_card_states_the_field_of_view():
    from PIL import Image

    from scale_vqa.card import DatasetStats, field_lines

    row = {
        "question_type": "correspondence",
        "organ": "skin",
        "images": [Image.new("RGB", (224, 224)) for _ in range(3)],
        "magnifications": [1.0, 4.0, 20.0],
        "mpp": [10.0, 2.5, 0.5],
    }
    stats = DatasetStats.from_rows({"train": [row]}, [])
    assert stats.field_mm["1"] == pytest.approx((2.24, 2.24))
    text = field_lines(stats.field_mm)
    assert "| 1x | 2.24 x 2.24 |" in text and "| 20x | 0.11 x 0.11 |" in text


def test_naive_generation_passes_the_text_gate_too():
    qs = Generator(simulate(300, seed=3), seed=0, naive=True).generate()
    assert qs and check_all(qs, only=["text_quality", "explanation_wording"]) == []
