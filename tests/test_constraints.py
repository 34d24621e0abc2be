"""Every constraint catches an option set built to violate it; good sets pass."""

from __future__ import annotations

import pytest

from curation.annotations import Annotation
from curation.constraints import CONSTRAINTS, check_all, summarize
from curation.errors import ConfigError
from curation.options import DX, Alt, Slot, one_swap, square
from curation.organs import get_organ
from curation.records import Question

SKIN = {"skin": get_organ("skin")}


def _ann() -> Annotation:
    return Annotation(
        path_id="p1",
        slide_id="s1",
        patient_id="pt1",
        organ="skin",
        diagnosis="basal_cell_carcinoma",
        findings={
            "low": ["basaloid_nests"],
            "mid": ["peripheral_palisading"],
            "high": ["mitotic_figures"],
        },
        negatives={
            "low": ["horn_cysts"],
            "mid": ["keratin_pearls"],
            "high": ["keratin_pearls", "prominent_nucleoli"],
        },
    )


def _slot(feature: str, scale: str, yes: str, no: str) -> Slot:
    return Slot(
        f"{feature}:{scale}",
        (
            Alt(((feature, scale, True),), f"{feature} {yes}"),
            Alt(((feature, scale, False),), f"{feature} {no}"),
        ),
        (feature,),
        feature,
    )


def _q(options, answer="A", claims=None, rationale="Seen at high power.", **kw) -> Question:
    extra = {"claims": claims, "diagnosis": "basal_cell_carcinoma"} if claims else {}
    base = dict(
        question="Which holds?",
        options=options,
        answer=answer,
        question_type="corroboration",
        rationale=rationale,
        organ="skin",
        slide_id="s1",
        patient_id="pt1",
        path_id="p1",
        split="train",
        extra=extra,
    )
    base.update(kw)
    return Question(**base)


def _names(qs, **kw) -> set[str]:
    return set(summarize(check_all(qs, **kw)))


def test_a_good_square_passes_every_per_question_check():
    slots = [
        _slot("mitotic_figures", "high", "present", "absent"),
        _slot("prominent_nucleoli", "high", "seen", "not seen"),
    ]
    opts = square(slots, lambda a: " and ".join(a))
    key = opts.index_of((0, 1))  # mitoses present, nucleoli absent on p1
    q = _q(opts.texts, "ABCD"[key], [[list(c) for c in cl] for cl in opts.claims])
    v = check_all(
        [q],
        [_ann()],
        SKIN,
        only=[
            "symmetry",
            "distinctive_tokens",
            "length_parity",
            "rationale_letters",
            "distinct_options",
            "correctness",
            "visibility",
            "plausibility",
        ],
    )
    assert v == []


def test_symmetry_and_distinctive_tokens_catch_the_one_swap_rule():
    slots = [
        _slot("mitotic_figures", "high", "present", "absent"),
        _slot("prominent_nucleoli", "high", "seen", "unseen"),
        _slot("keratin_pearls", "high", "found", "missing"),
    ]
    opts = one_swap(slots, (0, 1, 1), lambda a: "; ".join(a))
    q = _q(opts.texts, "A")
    assert {"symmetry", "distinctive_tokens"} <= _names([q])
    hub = _q(
        ["red round cell", "red round cell big", "red round cell small", "red round cell tiny"], "A"
    )
    assert "symmetry" in _names([hub], only=["symmetry"])
    outlier = _q(["blue", "red one", "red two", "red six"], "A")
    assert "symmetry" in _names([outlier], only=["symmetry"])
    keyword = _q(["atypical mitoses", "mitoses nucleoli", "nucleoli pearls", "mitoses pearls"], "A")
    assert "distinctive_tokens" in _names([keyword], only=["distinctive_tokens"])


def test_length_letters_and_duplicates():
    long_key = _q(
        ["a much longer option than all the others here", "short one", "short two", "short six"],
        "A",
    )
    assert "length_parity" in _names([long_key], only=["length_parity"])
    lettered = _q(["one", "two", "three", "four"], "B", rationale="Option B is right.")
    assert "rationale_letters" in _names([lettered], only=["rationale_letters"])
    dup = _q(["Same text", "same  text", "x", "y"], "C")
    assert "distinct_options" in _names([dup], only=["distinct_options"])


def test_correctness_visibility_and_plausibility_from_provenance():
    true_distractor = _q(
        ["mitoses present", "palisading present"],
        "A",
        [[["mitotic_figures", "high", True]], [["peripheral_palisading", "mid", True]]],
    )
    v = check_all([true_distractor], [_ann()], SKIN, only=["correctness"])
    assert v and "is true" in v[0].message
    unlooked = _q(
        ["mitoses present", "pleomorphism absent"],
        "A",
        [[["mitotic_figures", "high", True]], [["nuclear_pleomorphism", "high", False]]],
    )
    v = check_all([unlooked], [_ann()], SKIN, only=["correctness"])
    assert v and "not looked for" in v[0].message
    false_key = _q(
        ["nucleoli present", "mitoses absent"],
        "A",
        [[["prominent_nucleoli", "high", True]], [["mitotic_figures", "high", False]]],
    )
    assert "correctness" in _names(
        [false_key], annotations=[_ann()], organs=SKIN, only=["correctness"]
    )
    bad_premise = _q(
        ["mitoses present", "mitoses absent"],
        "A",
        [[["mitotic_figures", "high", True]], [["mitotic_figures", "high", False]]],
    )
    bad_premise.extra["premise"] = [["horn_cysts", "low", True]]
    assert "correctness" in _names(
        [bad_premise], annotations=[_ann()], organs=SKIN, only=["correctness"]
    )
    invisible = _q(
        ["mitoses at low power", "mitoses absent"],
        "A",
        [[["mitotic_figures", "low", True]], [["mitotic_figures", "high", False]]],
    )
    v = check_all([invisible], None, SKIN, only=["visibility"])
    assert v and "not visible" in v[0].message
    implausible = _q(
        ["adenoma with capsular invasion", "carcinoma"],
        "B",
        [
            [[DX, "follicular_adenoma", True], ["capsular_invasion", "low", True]],
            [[DX, "follicular_carcinoma", True]],
        ],
        organ="thyroid",
    )
    v = check_all([implausible], None, {"thyroid": get_organ("thyroid")}, only=["plausibility"])
    assert v and "follicular_adenoma" in v[0].message
    exclusive = _q(
        ["ulcer and hyperkeratosis", "neither"],
        "B",
        [
            [["surface_ulceration", "low", True], ["hyperkeratosis", "low", True]],
            [["surface_ulceration", "low", False]],
        ],
    )
    v = check_all([exclusive], None, SKIN, only=["plausibility"])
    assert v and "exclusive" in v[0].message


def test_dataset_checks():
    all_a = [_q(["w", "x", "y", "z"], "A", path_id=f"p{i}", question=f"q{i}?") for i in range(40)]
    assert "letter_balance" in _names(all_a, only=["letter_balance"])
    always_key = [
        _q(["stable key", f"d{i}", f"e{i}", f"f{i}"], "ABCD"[i % 4], path_id=f"p{i}")
        for i in range(40)
    ]
    for i, q in enumerate(always_key):  # move the fixed option to the key's slot
        opts = [f"d{i}", f"e{i}", f"f{i}"]
        opts.insert(q.key_index, "stable key")
        q.options = opts
    assert "marginal_balance" in _names(always_key, only=["marginal_balance"])
    good_set = [_q(["a", "b", "c", "d"], "ABCD"[i], path_id=f"p{i}", set_id="s1") for i in range(4)]
    assert _names(good_set, only=["complementary_sets"]) == set()
    broken = [
        _q(["a", "b", "c", "d"], "A", path_id=f"p{i}", set_id="s1", split="test" if i else "train")
        for i in range(3)
    ]
    msgs = [v.message for v in check_all(broken, only=["complementary_sets"])]
    assert any("straddles" in m for m in msgs) and any("share a key" in m for m in msgs)
    assert any("3 member(s)" in m for m in msgs)
    straddle = [_q(["a", "b"], "A", split="train"), _q(["a", "b"], "B", split="test")]
    assert "split_integrity" in _names(straddle, only=["split_integrity"])
    with pytest.raises(ConfigError, match="unknown constraint"):
        check_all(straddle, only=["nope"])
    assert len(CONSTRAINTS) == 19


def _claimed(path_id, premise, claims, patient="pt1", qtype="correspondence", qid=""):
    """A question with provenance only (the budget checkers read nothing else)."""
    return Question(
        question=f"Which holds on {path_id} {qid}?",
        options=[f"option {i}" for i in range(len(claims))],
        answer="A",
        question_type=qtype,
        patient_id=patient,
        slide_id=f"slide-{patient}",
        path_id=path_id,
        extra={"premise": premise, "claims": claims},
    )


def _square_claims(f1, f2, extra=()):
    return [
        [*extra, [f1[0], f1[1], a], [f2[0], f2[1], b]] for a in (True, False) for b in (True, False)
    ]


def test_premise_conflicts_plants_a_premise_another_question_tests():
    gives = _claimed(
        "p1", [["horn_cysts", "low", True]], _square_claims(("a", "high"), ("b", "high"))
    )
    # tests horn cysts at another scale on the same path: feature level, across scales
    tests = _claimed("p1", [], _square_claims(("horn_cysts", "mid"), ("c", "high")), qid="2")
    v = check_all([gives, tests], only=["premise_conflicts"])
    assert [x.question_id for x in v] == [tests.id] and "horn_cysts" in v[0].message
    # a claim every option makes alike is given too (the localization shape)
    loc = _claimed(
        "p1",
        [],
        [[["d", "low", True], ["d", "mid", t], ["e", "high", u]] for t in (1, 0) for u in (1, 0)],
    )
    other = _claimed("p1", [], _square_claims(("d", "high"), ("g", "high")), qid="3")
    assert _names([loc, other], only=["premise_conflicts"]) == {"premise_conflicts"}
    # another path of the patient: allowed by the default (path) scope, not the strict one
    elsewhere = _claimed("p2", [], _square_claims(("horn_cysts", "mid"), ("c", "high")))
    assert check_all([gives, elsewhere], only=["premise_conflicts"]) == []
    from curation.budget import check_premise_conflicts

    assert len(check_premise_conflicts([gives, elsewhere], scope="patient")) == 1
    # no conflict within one question, nor between disjoint features
    apart = _claimed("p1", [], _square_claims(("x", "mid"), ("y", "high")), qid="4")
    assert check_all([gives, apart], only=["premise_conflicts"]) == []


def test_premise_conflicts_across_paths_whose_fields_overlap():
    """A premise on one path states what an overlapping field of another path shows at that
    power: testing it there is a conflict (``extra["tissue"]``), at that power only."""
    gives = _claimed(
        "p1", [["horn_cysts", "low", True]], _square_claims(("a", "high"), ("b", "high"))
    )
    tests = _claimed("p2", [], _square_claims(("horn_cysts", "low"), ("c", "high")), qid="2")
    assert check_all([gives, tests], only=["premise_conflicts"]) == []  # fields apart
    tests.extra["tissue"] = {"low": ["p1"], "mid": ["p1"]}
    v = check_all([gives, tests], only=["premise_conflicts"])
    assert [x.question_id for x in v] == [tests.id]
    assert "zoom path 'p1', whose low field overlaps 'p2'" in v[0].message
    # the same feature at a power where the fields are apart: another field, no conflict
    other_power = _claimed("p2", [], _square_claims(("horn_cysts", "high"), ("c", "mid")), qid="3")
    other_power.extra["tissue"] = {"low": ["p1"]}
    assert check_all([gives, other_power], only=["premise_conflicts"]) == []


def test_the_ledger_keeps_a_premise_off_an_overlapping_field():
    from curation.annotations import Annotation
    from curation.budget import question_profile
    from curation.generation.budget import BudgetLedger

    gives = _claimed(
        "p1", [["horn_cysts", "low", True]], _square_claims(("a", "high"), ("b", "high"))
    )
    tests = _claimed("p2", [], _square_claims(("horn_cysts", "low"), ("c", "high")), qid="2")
    p1, p2 = (Annotation(path_id=p, slide_id="s", organ="skin") for p in ("p1", "p2"))
    for tissue, blocked in (({}, None), ({"p2": {"low": ["p1"]}}, "premise_conflicts")):
        ledger = BudgetLedger("path", tissue)
        ledger.add("set-1", question_profile(gives), [p1])
        assert ledger.blocked(p2, question_profile(tests)) == blocked
        ledger.release("set-1")
        assert ledger.blocked(p2, question_profile(tests)) is None


def test_premise_conflicts_counts_the_exclusive_partner_of_a_given_finding():
    # surface ulceration given at low power: hyperkeratosis (its exclusive partner) is then
    # absent at low power, so another question of the path may not test it
    gives = _claimed(
        "p1", [["surface_ulceration", "low", True]], _square_claims(("a", "high"), ("b", "high"))
    )
    tests = _claimed("p1", [], _square_claims(("hyperkeratosis", "low"), ("c", "high")), qid="2")
    for q in (gives, tests):
        q.organ = "skin"
    v = check_all([gives, tests], None, SKIN, only=["premise_conflicts"])
    assert [x.question_id for x in v] == [tests.id] and "hyperkeratosis" in v[0].message
    # given absent, nothing follows for the partner
    gives.extra["premise"] = [["surface_ulceration", "low", False]]
    assert check_all([gives, tests], None, SKIN, only=["premise_conflicts"]) == []


def test_diagnosis_narrowing_plants_two_lists_on_one_patient():
    def dx(path, a, b, f, patient="pt1"):
        claims = [[["@dx", d, True], [f, "high", t]] for d in (a, b) for t in (True, False)]
        return _claimed(path, [], claims, patient=patient, qtype="diagnosis", qid=f)

    narrowing = [dx("p1", "bcc", "scc", "m"), dx("p2", "bcc", "melanoma", "n")]
    v = check_all(narrowing, only=["diagnosis_narrowing"])
    assert len(v) == 1 and "narrow its diagnosis to ['bcc']" in v[0].message
    same_list = [dx("p1", "bcc", "scc", "m"), dx("p2", "scc", "bcc", "n")]
    assert check_all(same_list, only=["diagnosis_narrowing"]) == []
    other_patients = [dx("p1", "bcc", "scc", "m"), dx("p2", "bcc", "melanoma", "n", "pt2")]
    assert check_all(other_patients, only=["diagnosis_narrowing"]) == []


def test_key_coupling_plants_two_questions_testing_one_fact_on_a_path():
    # the example: correspondence low->mid and localization on the same features
    corr = _claimed(
        "p1",
        [],
        [
            [["f1", "low", True], ["f1", "mid", a], ["f2", "low", True], ["f2", "mid", b]]
            for a in (True, False)
            for b in (True, False)
        ],
    )
    loc = _claimed(
        "p1",
        [],
        [
            [["f1", "low", True], ["f1", "mid", a], ["f3", "low", True], ["f3", "high", b]]
            for a in (True, False)
            for b in (True, False)
        ],
        qid="loc",
    )
    v = check_all([corr, loc], only=["key_coupling"])
    assert len(v) == 1 and v[0].question_id == loc.id and "'f1@mid'" in v[0].message
    # other path: fine; claims of another shape (a compartment before the truth) work too
    loc.path_id = "p2"
    assert check_all([corr, loc], only=["key_coupling"]) == []
    wide = [
        _claimed(
            "p3",
            [],
            [[["f", "high", "dermis", t], ["g", "high", u]] for t in (1, 0) for u in (1, 0)],
        )
        for _ in range(2)
    ]
    wide[1].question = "Another?"
    assert len(check_all(wide, only=["key_coupling"])) == 1


def test_key_coupling_is_logical_not_statistical_and_counts_exclusive_pairs():
    # f1 at medium power in one question and at high power in another: correlated keys,
    # neither fixes the other, so they may share a path; f1 at medium power twice may not
    q1 = _claimed("p1", [], _square_claims(("f1", "mid"), ("f2", "mid")))
    q2 = _claimed("p1", [], _square_claims(("f1", "high"), ("f3", "high")), qid="b")
    assert check_all([q1, q2], only=["key_coupling"]) == []
    q2.extra["claims"] = _square_claims(("f1", "mid"), ("f3", "high"))
    v = check_all([q1, q2], only=["key_coupling"])
    assert len(v) == 1 and "'f1@mid'" in v[0].message
    # a feature lies in one compartment: placing it twice couples, whatever the pairs
    in_a = _claimed("p4", [], _square_claims(("g", "in:dermis"), ("h", "in:dermis")))
    in_b = _claimed("p4", [], _square_claims(("g", "in:epidermis"), ("k", "high")), qid="b")
    v = check_all([in_a, in_b], only=["key_coupling"])
    assert len(v) == 1 and "'place:g'" in v[0].message
    # the diagnosis is one fact: a path's diagnosis is asked once, whatever the findings
    dxq = [
        _claimed(
            "p5",
            [],
            [[["@dx", d, True], [f, "high", t]] for d in ("bcc", "scc") for t in (True, False)],
            qtype="diagnosis",
            qid=f,
        )
        for f in ("m", "n")
    ]
    v = check_all(dxq, only=["key_coupling", "diagnosis_narrowing"])
    assert len(v) == 1 and v[0].constraint == "key_coupling" and "'@dx'" in v[0].message
    # skin: surface ulceration and hyperkeratosis never share a field (an exclusive pair),
    # so testing each at low power on one path couples the keys; at two powers it does not
    a = _claimed("p2", [], _square_claims(("surface_ulceration", "low"), ("horn_cysts", "low")))
    b = _claimed(
        "p2", [], _square_claims(("hyperkeratosis", "low"), ("solar_elastosis", "low")), qid="b"
    )
    a.organ = b.organ = "skin"
    v = check_all([a, b], only=["key_coupling"])
    assert len(v) == 1 and "excl:hyperkeratosis|surface_ulceration@low" in v[0].message
    b.extra["claims"] = _square_claims(("hyperkeratosis", "mid"), ("solar_elastosis", "mid"))
    assert check_all([a, b], only=["key_coupling"]) == []
