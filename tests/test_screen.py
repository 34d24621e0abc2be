"""The screen: flag -> regenerate -> re-screen -> drop; retention, leakage, CLI, LLM path."""

from __future__ import annotations

import json

import pytest

from curation.adversaries import default_battery, make_adversaries
from curation.aflite import AFLite
from curation.errors import ConfigError
from curation.records import read_questions, write_questions
from curation.screen import screen
from scale_vqa.cli import main
from tests import mcq_factory as F
from tests.openai_server import Fault, OpenAIServer
from tests.test_adversaries import centrality_responder


def _battery():
    return make_adversaries(["centrality", "longest", "overlap", "position", "bow-options"])


def test_screen_regenerates_release_style_leaks_to_chance():
    qs = F.release_style(200, 30)
    regen = F.square_regenerator()
    res = screen(
        qs, _battery(), aflite=AFLite(features="bow", n_models=16), regenerate=regen, rounds=2
    )
    rep = res.report
    assert rep["leakage_before"]["best"]["accuracy"] == 1.0
    assert rep["rounds"][0]["flagged"] == 200 and regen.calls[0] == 200
    assert {"centrality", "bow-options", "aflite"} <= set(rep["rounds"][0]["flagged_by"])
    after = rep["leakage_after"]
    # n=300: the best of 8 adversaries on chance data can sit a few points up by noise
    assert not after["best"]["significant"] and after["best"]["excess"] < 0.06
    assert rep["retention"] == 1.0 and rep["n_output"] == len(res.kept) == 200
    assert set(rep["retention_by_type"]) == {
        "correspondence",
        "corroboration",
        "localization",
        "explanation",
        "diagnosis",
    }


def test_screen_keeps_safe_generation():
    qs = F.symmetric_square(400, 50) + F.complementary(50, 50)
    res = screen(
        qs,
        default_battery(include_embeddings=False),
        aflite=AFLite(features="bow", n_models=16),
        rounds=1,
    )
    assert res.report["retention"] >= 0.9
    assert res.report["rounds"][0]["flagged"] == 0


def test_without_regeneration_leaks_are_dropped_with_reasons():
    qs = F.release_style(150, 30, seed=5) + F.symmetric_square(350, 50, start=150)
    res = screen(qs, make_adversaries(["centrality", "longest", "bow-options"]), rounds=2)
    leaky = {q.id for q in qs[:150]}
    dropped = {d["id"] for d in res.dropped}
    assert dropped == leaky  # exactly the planted artifact, none of the clean squares
    assert all("centrality" in d["reasons"] for d in res.dropped)
    assert res.report["dropped_by"]["centrality"] == 150
    assert res.report["retention"] == pytest.approx(350 / 500)


def test_a_flagged_set_member_takes_its_set_along():
    clean = F.complementary(40, 20)
    leaky = F.release_style(101, 20, seed=9)
    planted = leaky[0]
    planted.set_id = clean[0].set_id  # a leaky question inside a complementary set
    res = screen(leaky + clean[1:], make_adversaries(["centrality"]), rounds=0)
    mates = {q.id for q in clean[1:4]}
    reasons = {d["id"]: d["reasons"] for d in res.dropped}
    assert mates <= set(reasons)
    assert all(reasons[m] == [f"set-mate of {planted.id}"] for m in mates)
    assert not any(q.set_id == planted.set_id for q in res.kept)
    assert len(res.kept) == len(clean) - 4


def test_screen_validates_parameters():
    with pytest.raises(ConfigError, match="rounds=-1"):
        screen(F.release_style(10, 2), _battery(), rounds=-1)
    with pytest.raises(ConfigError, match="no questions"):
        screen([], _battery())


def test_cli_screen_is_deterministic_and_writes_report_and_dropped(tmp_path, capsys):
    src = tmp_path / "q.jsonl"
    write_questions(src, F.release_style(80, 20, seed=2) + F.symmetric_square(220, 40, start=80))
    outs = []
    for i in range(2):
        out, rep, drop = tmp_path / f"s{i}.jsonl", tmp_path / f"r{i}.json", tmp_path / f"d{i}.jsonl"
        rc = main(
            [
                "screen",
                str(src),
                "--out",
                str(out),
                "--report",
                str(rep),
                "--dropped",
                str(drop),
                "--no-embeddings",
                "--aflite-models",
                "16",
                "--seed",
                "3",
            ]
        )
        assert rc == 0
        outs.append((out.read_bytes(), rep.read_bytes(), drop.read_bytes()))
    assert outs[0][0] == outs[1][0] and outs[0][2] == outs[1][2]
    r0, r1 = (json.loads(o[1]) for o in outs)
    for r in (r0, r1):
        r.pop("output"), r.pop("dropped_file")  # the only fields naming the output files
    assert r0 == r1
    text = capsys.readouterr().out
    assert "retention: 220/300 = 73.3%" in text and "leakage after: best" in text
    report = json.loads(outs[0][1])
    assert report["dropped"] == 80 and len(report["dropped_items"]) == 80
    assert report["dropped_items"][0]["reasons"]
    assert report["leakage_before"]["best"]["adversary"] == "centrality"
    dropped = list(read_questions(tmp_path / "d0.jsonl"))
    assert len(dropped) == 80 and dropped[0].extra["screen"]["reasons"]
    assert len(list(read_questions(tmp_path / "s0.jsonl"))) == 220


def test_cli_screen_with_llm_adversaries_survives_faults_and_reuses_cache(tmp_path, capsys):
    src = tmp_path / "q.jsonl"
    write_questions(src, F.release_style(40, 20, seed=4) + F.symmetric_square(60, 20, start=40))
    with OpenAIServer(responder=centrality_responder) as server:
        server.faults.extend([Fault.rate_limit(retry_after=0), Fault.malformed(), Fault.slow(2)])
        spec = f"base_url={server.base_url},model=judge,timeout=0.5,backoff=0,max_retries=4"
        argv = [
            "screen",
            str(src),
            "--out",
            str(tmp_path / "s.jsonl"),
            "--report",
            str(tmp_path / "r.json"),
            "--adversaries",
            "longest",
            "--no-aflite",
            "--no-embeddings",
            "--llm",
            spec,
            "--llm-samples",
            "2",
            "--flag-rule",
            "any",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
        assert main(argv) == 0
        first = server.n_chat
        assert first == 100 * 2 * 2 + 3  # questions x samples x (full, choices-only) + faults
        report = json.loads((tmp_path / "r.json").read_text())
        llm = report["llm"]
        assert set(llm) == {"llm:judge", "llm-choices:judge"}
        assert all(v["answers"] == 200 and v["unparseable"] > 0 for v in llm.values())
        assert report["dropped"] >= 30 and "llm:judge" in report["dropped_by"]
        assert "unparseable of 200 answers (counted wrong)" in capsys.readouterr().out
        assert main(argv) == 0
        assert server.n_chat == first  # the rerun is answered from the cache
        assert json.loads((tmp_path / "r.json").read_text())["n_output"] == report["n_output"]


def test_cli_screen_on_naive_generation_with_the_generator(tmp_path, capsys):
    from curation.annotations import write_annotations
    from curation.generate import Generator
    from curation.simulate import simulate

    # three organs: enough paths per pool for complementary sets under the information budget
    anns = simulate(150, ["skin", "colon", "lung"], seed=1)
    write_annotations(tmp_path / "ann.jsonl", anns)
    naive = Generator(anns, seed=1, naive=True, ratios=(0.7, 0.1, 0.2)).generate()
    write_questions(tmp_path / "naive.jsonl", naive)
    out, rep = tmp_path / "s.jsonl", tmp_path / "r.json"
    argv = [
        "screen",
        str(tmp_path / "naive.jsonl"),
        "--out",
        str(out),
        "--annotations",
        str(tmp_path / "ann.jsonl"),
        "--report",
        str(rep),
        "--no-embeddings",
        "--no-aflite",
        "--adversaries",
        "centrality,longest,bow-options",
        "--seed",
        "1",
        "--split-ratios",  # 150 paths over 15 organs: splits of 0.15 leave pools too small
        "0.7,0.1,0.2",
    ]
    assert main(argv) == 0
    report = json.loads(rep.read_text())
    assert report["leakage_before"]["best"]["accuracy"] > 0.9
    after = report["leakage_after"]
    assert not after["best"]["significant"]
    assert report["regenerated"] > 0 and 0 < report["retention"] < 1
    kept = list(read_questions(out))
    # most kept rows are the leak-controlled replacements (the rest: naive rows no adversary
    # flagged); fewer squares exist under the information budget, hence 0.8, not 0.9
    assert sum(q.extra.get("design") == "square" for q in kept) > 0.8 * len(kept)
    assert "retention:" in capsys.readouterr().out


def test_cli_screen_organs_dir_and_unknown_organ_is_one_line(tmp_path, capsys):
    from curation.annotations import write_annotations
    from curation.generate import Generator
    from curation.simulate import simulate
    from tests.test_organs import write_organ

    organs_dir = tmp_path / "organs"
    write_organ(organs_dir)  # the test organ 'tongue'
    anns = simulate(120, ["tongue"], seed=0, extra_dirs=[str(organs_dir)])
    ann = tmp_path / "ann.jsonl"
    write_annotations(ann, anns)
    qs = tmp_path / "q.jsonl"
    write_questions(qs, Generator(anns, seed=0, organs_dir=[str(organs_dir)]).generate())
    out = tmp_path / "s.jsonl"
    fast = [
        "--no-embeddings",
        "--no-aflite",
        "--adversaries",
        "centrality,longest",
        "--rounds",
        "1",
    ]
    base = ["screen", str(qs), "--out", str(out), "--annotations", str(ann), *fast]
    assert "--organs-dir DIR" in _help(["screen", "--help"], capsys)
    assert main([*base, "--organs-dir", str(organs_dir)]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main([*base, "--organs", str(organs_dir)]) == 0  # the old spelling still works
    capsys.readouterr()
    assert main(base) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: {len(anns)} problem(s) in annotations, first: ")
    assert "unknown organ 'tongue'" in err and "--organs-dir" in err


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out
