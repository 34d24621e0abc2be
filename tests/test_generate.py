"""Generation: five types, correctness by construction, sets, leakage, regeneration, CLI."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from curation.adversaries import Centrality, Length
from curation.annotations import read_annotations, write_annotations
from curation.constraints import check_all, summarize
from curation.errors import ConfigError
from curation.generate import Generator, GeneratorConfig
from curation.options import option_truths
from curation.records import QUESTION_TYPES, Question, letters_named, read_questions
from curation.simulate import simulate
from scale_vqa.cli import main
from tests.test_organs import write_organ

ORGANS = ["skin", "colon", "lung"]


def _accuracy(adv, qs) -> float:
    scores = adv.score(qs)
    credit = []
    for s, q in zip(scores, qs):
        top = np.flatnonzero(s >= s.max() - 1e-9)
        credit.append(1 / len(top) if q.key_index in top else 0.0)
    return float(np.mean(credit))


def test_every_type_every_constraint_and_correctness(corpus, generated):
    gen, qs = generated
    assert set(Counter(q.question_type for q in qs)) == set(QUESTION_TYPES)
    assert summarize(check_all(qs, corpus, gen.organs)) == {}
    by_path = {a.path_id: a for a in corpus}
    for q in qs:
        truths = option_truths(by_path[q.path_id], q.extra["claims"])
        assert truths[q.key_index] is True
        assert all(t is False for i, t in enumerate(truths) if i != q.key_index)
        assert not letters_named(q.rationale) and q.rationale
        assert q.template_id.startswith(q.question_type)
        assert q.split in ("train", "validation", "test") and q.set_id
    # complementary sets: 4 members, same text and options, every letter once, one split,
    # one organ; sets from diagnosis-level pools stay within one diagnosis
    sets = defaultdict(list)
    for q in qs:
        sets[q.set_id].append(q)
    for members in sets.values():
        assert sorted(q.answer for q in members) == ["A", "B", "C", "D"]
        assert len({(q.question, tuple(q.options)) for q in members}) == 1
        assert len({q.split for q in members}) == 1
        if members[0].extra["diagnosis"]:
            assert len({by_path[q.path_id].diagnosis for q in members}) == 1
        elif members[0].question_type != "diagnosis":
            # organ-level fallback: members' diagnoses give the asked features one prior
            organ = gen.organs[members[0].organ]
            feats = {c[0] for claims in members[0].extra["claims"] for c in claims}
            profiles = {
                tuple(organ.probability(f, by_path[q.path_id].diagnosis) for f in sorted(feats))
                for q in members
            }
            assert len(profiles) == 1
    # diagnosis questions live on slides of their own
    dx_slides = {q.slide_id for q in qs if q.question_type == "diagnosis"}
    assert not dx_slides & {q.slide_id for q in qs if q.question_type != "diagnosis"}
    # letters balanced per split x type
    for (split, t), c in Counter((q.split, q.question_type) for q in qs).items():
        letters = Counter(q.answer for q in qs if q.split == split and q.question_type == t)
        assert set(letters.values()) == {c // 4}


def test_deterministic_and_text_heuristics_at_chance(corpus, generated):
    _, qs = generated
    again = Generator(corpus, seed=0).generate()
    assert [q.to_dict() for q in again] == [q.to_dict() for q in qs]
    assert [q.id for q in Generator(corpus, seed=1).generate()] != [q.id for q in qs]
    for adv in (Centrality(), Length(longest=True), Length(longest=False)):
        assert _accuracy(adv, qs) == pytest.approx(0.25)


def test_naive_mode_is_the_leaky_baseline(corpus):
    gen = Generator(corpus, seed=0, naive=True)
    qs = gen.generate()
    assert set(Counter(q.question_type for q in qs)) == set(QUESTION_TYPES)
    found = summarize(check_all(qs, corpus, gen.organs))
    assert found.get("symmetry", 0) > len(qs) / 3
    assert "correctness" not in found and "visibility" not in found
    assert _accuracy(Centrality(), qs) > 0.4  # chance 0.25; bag-of-words learners: ~0.99
    # regeneration of single questions keeps the path and type
    new = gen.regenerate(qs[:5], round=1)
    assert new and {q.path_id for q in new} <= {q.path_id for q in qs[:5]}


def test_regenerate_replaces_whole_sets_with_unused_pairs(corpus):
    gen = Generator(corpus, seed=0)
    qs = gen.generate()
    flagged = [q for q in qs if q.question_type == "corroboration"][:8:4]  # two sets
    condemned = {q.set_id for q in flagged}
    old_pairs = {(q.extra["pool"], q.extra["family"], tuple(q.extra["slots"])) for q in qs}
    new = gen.regenerate(flagged, round=1)
    assert new and len(new) % 4 == 0 and len(new) <= 8
    assert not {q.set_id for q in new} & condemned
    assert not {(q.extra["pool"], q.extra["family"], tuple(q.extra["slots"])) for q in new} & (
        old_pairs
    )
    current = gen.questions
    assert not {q.set_id for q in current} & condemned
    assert summarize(check_all(current, corpus, gen.organs)) == {}


def test_new_organ_file_flows_through_simulate_and_generate(tmp_path, capsys):
    organs_dir = tmp_path / "organs"
    write_organ(organs_dir)
    ann = tmp_path / "ann.jsonl"
    out = tmp_path / "q.jsonl"
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(ann),
                "--paths",
                "160",
                "--organs",
                "tongue",
                "--organs-dir",
                str(organs_dir),
                "--seed",
                "2",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "generate",
                str(ann),
                "--out",
                str(out),
                "--organs-dir",
                str(organs_dir),
                "--report",
                str(report),
                "--seed",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "constraint violations: none" in printed and "retention:" in printed
    qs = list(read_questions(out))
    assert qs and {q.organ for q in qs} == {"tongue"}
    assert len({q.question_type for q in qs}) >= 4
    rep = json.loads(report.read_text())
    assert rep["stats"]["questions"] == len(qs) and rep["violations"] == {}
    # without the folder the organ is unknown: a clear error, exit 1
    assert main(["generate", str(ann), "--out", str(out)]) == 1
    assert "unknown organ 'tongue'" in capsys.readouterr().err


def test_cli_generate_naive_and_split_ratios(tmp_path, corpus, capsys):
    ann = tmp_path / "ann.jsonl"
    write_annotations(ann, corpus)
    out = tmp_path / "naive.jsonl"
    assert (
        main(["generate", str(ann), "--out", str(out), "--naive", "--split-ratios", "0.5,0.2,0.3"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "naive" in printed and "symmetry" in printed
    qs = list(read_questions(out))
    splits = Counter(q.split for q in qs)
    assert set(splits) == {"train", "validation", "test"}
    assert read_annotations(ann)[0].to_dict() == corpus[0].to_dict()
    assert main(["generate", str(ann), "--out", str(out), "--split-ratios", "1,1"]) == 1
    assert "split ratios" in capsys.readouterr().err


@pytest.mark.parametrize("ratios", [(0.7, 0.1, 0.2), (0.7, 0.15, 0.15)])
def test_question_split_shares_track_path_shares(ratios):
    anns = simulate(500, ORGANS, seed=0)  # enough sets under the budget for a 3-point track
    n = len(anns)
    gen = Generator(anns, seed=0, ratios=ratios)
    qs = gen.generate()
    paths = Counter(gen.splits.values())
    got = Counter(q.split for q in qs)
    for split, ratio in zip(("train", "validation", "test"), ratios):
        assert abs(paths[split] / n - ratio) <= 0.03, paths
        assert abs(got[split] / len(qs) - paths[split] / n) <= 0.03, (got, paths)
    # every type present, sets whole, constraints hold; type trimming stops at a quarter
    # of the questions lost, so under the information budget the cap is approached
    by_type = Counter(q.question_type for q in qs)
    assert set(by_type) == set(QUESTION_TYPES)
    assert max(by_type.values()) <= 0.45 * len(qs)
    assert set(Counter(q.set_id for q in qs).values()) == {4}
    assert summarize(check_all(qs, anns, gen.organs)) == {}
    assert gen.stats["sets_dropped_to_rebalance"] > 0
    # the old recipe (every stratum dealt to every split, nothing dropped) skews to train
    old = GeneratorConfig(
        split_min_chunk=0, split_tolerance=None, max_type_share=None, min_type_share=None
    )
    gen_old = Generator(anns, seed=0, ratios=ratios, config=old)
    qs_old = gen_old.generate()
    share_old = sum(q.split == "train" for q in qs_old) / len(qs_old)
    assert share_old - Counter(gen_old.splits.values())["train"] / n > 0.05


def test_paths_without_diagnosis_are_never_reserved_and_question_types():
    anns = simulate(240, ORGANS, seed=4)
    patients = sorted({a.patient_id for a in anns})
    no_dx = set(patients[::2])
    for a in anns:
        if a.patient_id in no_dx:
            a.diagnosis = None
    gen = Generator(anns, seed=0)
    qs = gen.generate()
    reserved = gen._dx_slides
    assert reserved and gen.stats["diagnosis_slides"] == len(reserved)
    assert all(a.diagnosis is not None for a in anns if a.slide_id in reserved)
    dx_qs = [q for q in qs if q.question_type == "diagnosis"]
    assert dx_qs and {q.slide_id for q in dx_qs} <= reserved
    assert not reserved & {q.slide_id for q in qs if q.question_type != "diagnosis"}
    # no diagnosis anywhere: nothing reserved, every path serves the other types
    for a in anns:
        a.diagnosis = None
    bare = Generator(anns, seed=0)
    assert bare.generate() and bare.stats["diagnosis_slides"] == 0
    zero = Generator(anns, seed=0, config=GeneratorConfig(diagnosis_share=0.0))
    assert [q.id for q in bare.generate()] == [q.id for q in zero.generate()]
    # question_types restricts what is generated; without diagnosis nothing is reserved
    only = GeneratorConfig(question_types=("localization", "correspondence"))
    gen2 = Generator(simulate(240, ORGANS, seed=4), seed=0, config=only)
    qs2 = gen2.generate()
    assert {q.question_type for q in qs2} == {"localization", "correspondence"}
    assert gen2.stats["diagnosis_slides"] == 0
    with pytest.raises(ConfigError, match="question_types"):
        Generator(anns, seed=0, config=GeneratorConfig(question_types=("bogus",)))


TONGUE_TOO_SMALL = {
    "name": "tongue",
    "display_name": "Tongue",
    "compartments": ["mucosa", "muscle"],
    "features": [
        {
            "id": "keratin_pearls",
            "phrase": "keratin pearls",
            "scales": ["mid"],
            "compartment": "mucosa",
            "synonyms": ["squamous pearls"],
            "prevalence": 0.05,
        },
        {
            "id": "mitotic_figures",
            "phrase": "mitotic figures",
            "scales": ["high"],
            "prevalence": 0.1,
        },
    ],
    "diagnoses": [
        {
            "id": "scc",
            "name": "squamous cell carcinoma",
            "prevalence": 0.5,
            "features": {"keratin_pearls": 0.6, "mitotic_figures": 0.5},
        }
    ],
    "exclusive": [],
}


def test_generate_with_zero_questions_is_one_clear_error(tmp_path, capsys):
    organs_dir = tmp_path / "organs"
    write_organ(organs_dir, TONGUE_TOO_SMALL)
    ann, out = tmp_path / "sim.jsonl", tmp_path / "q.jsonl"
    argv = ["--organs", "tongue", "--organs-dir", str(organs_dir), "--paths", "200"]
    assert main(["simulate", "--out", str(ann), *argv]) == 0
    capsys.readouterr()
    assert main(["generate", str(ann), "--out", str(out), "--organs-dir", str(organs_dir)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: no questions generated") and "\n" not in err
    assert "wrote" not in captured.out and not out.exists()
    for needle in (
        "correspondence (needs a feature visible at two scales",
        "diagnosis (needs at least two diagnoses)",
        "too few zoom paths per organ x diagnosis pool",
        "scale-vqa organs validate",
    ):
        assert needle in err, needle


def test_generate_warns_about_a_split_left_without_questions(tmp_path, capsys):
    ann, out = tmp_path / "ann.jsonl", tmp_path / "q.jsonl"
    write_annotations(ann, simulate(60, ["skin"], seed=0))
    assert main(["generate", str(ann), "--out", str(out), "--split-ratios", "0.7,0.1,0.2"]) == 0
    err = capsys.readouterr().err
    assert "warning: split 'validation' has no questions although its ratio is 0.1" in err
    assert "0 patient(s), 0 zoom path(s)" in err and "--split-min-chunk 12" in err
    assert "--split-ratios (now 0.7,0.1,0.2)" in err
    # a larger ratio gives the split a stratum chunk; a ratio of 0 is no cause for warning
    assert main(["generate", str(ann), "--out", str(out), "--split-ratios", "0.5,0.5,0"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert {q.split for q in read_questions(out)} == {"train", "validation"}


def test_example_tongue_vocabulary_validates_simulates_and_generates(tmp_path, capsys):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "organs"
    assert main(["organs", "validate", str(example / "tongue.yaml")]) == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out and "warning" not in captured.err
    ann, out = tmp_path / "sim.jsonl", tmp_path / "q.jsonl"
    dirs = ["--organs-dir", str(example)]
    assert main(["simulate", "--out", str(ann), "--paths", "300", "--organs", "tongue", *dirs]) == 0
    assert main(["generate", str(ann), "--out", str(out), *dirs]) == 0
    assert "constraint violations: none" in capsys.readouterr().out
    by_type = Counter(q.question_type for q in read_questions(out))
    assert set(by_type) == set(QUESTION_TYPES) and sum(by_type.values()) > 200


def test_ids_set_ids_and_order_carry_nothing_about_the_key(corpus, generated):
    import dataclasses
    import itertools
    import random

    from curation.generation.sets import set_identifier
    from curation.records import seeded_order

    _, qs = generated
    for q in qs[:50]:  # the id does not move with the answer
        assert dataclasses.replace(q, answer="ABCD"[(q.key_index + 1) % 4], id="").id == q.id
    sets = defaultdict(list)
    for q in qs:
        sets[q.set_id].append(q)
    for sid, members in sets.items():  # nothing but the shared text and the sorted paths
        q0 = members[0]
        assert sid == set_identifier(q0.question, q0.options, [q.path_id for q in members])
    # rows in the seeded order of their ids, whatever order they came in; sets scattered
    shuffled = list(qs)
    random.Random(3).shuffle(shuffled)
    assert [q.id for q in seeded_order(shuffled, 0)] == [q.id for q in qs]
    adjacent = sum(a.set_id == b.set_id for a, b in itertools.pairwise(qs))
    assert adjacent < 0.05 * len(qs)
    assert [q.answer for q in qs[:8]] != sorted(q.answer for q in qs[:8])


def test_information_budget_is_what_keeps_the_checkers_at_zero(corpus, generated):
    gen, qs = generated
    budget = ["premise_conflicts", "diagnosis_narrowing", "key_coupling"]
    assert check_all(qs, corpus, gen.organs, only=budget) == []
    fig = gen.stats["information_budget"]
    assert fig["enforced"] and fig["scope"] == "path"
    assert sum(fig["path_skips"].values()) > 0 and set(fig["sets_blocked"]) == set(budget)
    per = gen.stats["per_path"]
    assert per["by_type"]["diagnosis"]["max"] == 1  # one diagnosis question per path
    assert sum(int(k) * v for k, v in per["histogram"].items()) == len(qs)
    # the previous recipe forms more sets and breaks every rule of the budget
    off = Generator(corpus, seed=0, config=GeneratorConfig(information_budget=False))
    found = summarize(check_all(off.generate(), corpus, off.organs, only=budget))
    assert set(found) == set(budget)
    assert not off.stats["information_budget"]["enforced"]
    # the strict scope: no feature given on a patient is tested anywhere on that patient
    strict = Generator(corpus, seed=0, config=GeneratorConfig(budget_scope="patient"))
    sq = strict.generate()
    from curation.budget import check_premise_conflicts

    assert sq and check_premise_conflicts(sq, scope="patient") == []
    with pytest.raises(ConfigError, match="budget_scope"):
        GeneratorConfig(budget_scope="slide").validate()


def test_rebalance_lifts_a_scarce_type_to_the_floor_by_dropping_whole_sets():
    from curation.generation.rebalance import sets_to_drop

    def set_of(sid: str, qtype: str) -> list[Question]:
        return [
            Question("q", list("wxyz"), letter, qtype, path_id=f"{sid}-{letter}",
                     split="train", set_id=sid)
            for letter in "ABCD"
        ]  # fmt: skip

    qs = [q for i in range(30) for q in set_of(f"a{i}", "correspondence")]
    qs += [q for i in range(3) for q in set_of(f"c{i}", "localization")]
    splits = {q.path_id: "train" for q in qs}
    assert sets_to_drop(qs, splits, 0, None, None, None) == set()
    dropped = sets_to_drop(qs, splits, 0, None, None, 0.10)
    kept = [q for q in qs if q.set_id not in dropped]
    assert all(sid.startswith("a") for sid in dropped)  # only the largest type loses sets
    share = sum(q.question_type == "localization" for q in kept) / len(kept)
    assert share >= 0.10 and len(kept) % 4 == 0
    # one set fewer dropped and the floor would not hold: the minimum was dropped
    assert 12 / (len(kept) + 4) < 0.10
