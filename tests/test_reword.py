"""curation.reword and ``scale-vqa reword`` against a real loopback OpenAI-compatible server,
on questions made by the real generator from a simulated skin corpus."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from curation.budget import BUDGET
from curation.constraints import CONSTRAINTS, check_all, summarize
from curation.generate import Generator
from curation.generation.sets import set_identifier
from curation.llm import LLMClient, LLMConfig
from curation.records import Question, read_questions, write_questions
from curation.reword import organs_of, parse_answer, reword_questions, set_groups
from curation.reword_checks import MEANING_REASONS, TermMatcher, meaning_change
from curation.simulate import simulate
from scale_vqa.cli import main
from tests.openai_server import OpenAIServer

SECRET = "sk-reword-test-7c1d2e3f-SECRET"
Plant = Callable[[dict[str, Any]], str]


def good_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """A rewording that keeps every term, negation and scale, the same way for each option."""
    stem = payload["question"]
    options = [o.replace("; ", ", while ") for o in payload["options"].values()]
    return {"question": "Across the images, " + stem[0].lower() + stem[1:], "options": options}


class Responder:
    """Answers each set with :func:`good_answer`, or with a planted fault keyed by
    :func:`text_key` (stem and first option: some templates share a stem)."""

    def __init__(self) -> None:
        self.plants: dict[tuple[str, str], Plant] = {}

    def __call__(self, messages: list[dict[str, Any]], model: str) -> str:
        payload = json.loads(messages[-1]["content"])
        plant = self.plants.get((payload["question"], payload["options"]["1"]))
        return plant(payload) if plant else json.dumps(good_answer(payload))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Question], dict]:
    anns = simulate(200, ["skin"], seed=0)
    gen = Generator(anns, seed=0)
    questions = gen.generate(progress=False)
    path = tmp_path_factory.mktemp("reword") / "questions.jsonl"
    write_questions(path, questions)
    return path, questions, {a.path_id: a for a in anns}


@pytest.fixture
def server() -> Any:
    with OpenAIServer(responder=Responder()) as srv:
        yield srv


def client_for(server: OpenAIServer, cache: Path) -> LLMClient:
    return LLMClient(LLMConfig(base_url=server.base_url, model="reword-model"), cache_dir=cache)


def text_key(q: Question) -> tuple[str, str]:
    """What identifies a set's text: its stem and first option."""
    return (q.question, q.options[0])


def sets_of(questions: list[Question]) -> dict[str, list[Question]]:
    return {sid: [questions[i] for i in idx] for sid, idx in set_groups(questions).items()}


def firsts(questions: list[Question], qtype: str, n: int = 1) -> list[Question]:
    """The first row of each set of ``qtype``, at least ``n`` of them."""
    out = [rows[0] for rows in sets_of(questions).values() if rows[0].question_type == qtype]
    assert len(out) >= n, f"the corpus has {len(out)} {qtype} sets, the test needs {n}"
    return out


# -- good rewording ------------------------------------------------------------------


def test_good_rewording_is_applied_to_every_row_with_new_ids(server, corpus, tmp_path):
    _, questions, anns = corpus
    result = reword_questions(questions, client_for(server, tmp_path), progress=False)
    out = result.questions
    assert result.report["kept_by_reason"] == {}
    assert result.report["reworded_sets"] == result.report["sets"] == len(sets_of(questions))
    assert server.n_chat == len(sets_of(questions))  # one call per set, not per row
    assert len(out) == len(questions)
    before, after = sets_of(questions), sets_of(out)
    assert len(after) == len(before)
    for (old_sid, old_rows), (new_sid, new_rows) in zip(before.items(), after.items()):
        want = good_answer(
            {"question": old_rows[0].question, "options": dict(enumerate(old_rows[0].options))}
        )
        assert {(q.question, tuple(q.options)) for q in new_rows} == {
            (want["question"], tuple(want["options"]))
        }
        paths = [q.path_id for q in new_rows]
        assert new_sid == set_identifier(want["question"], want["options"], paths) != old_sid
        for old, new in zip(old_rows, new_rows):
            assert new.id == new.content_id() != old.id
            assert new.answer == old.answer and new.extra["claims"] == old.extra["claims"]
            assert new.extra["reworded_by"] == "reword-model"
            assert new.extra["original_question"] == old.question
            assert new.extra["original_options"] == old.options
            assert new.options[new.key_index] in new.rationale
    assert len({q.id for q in out}) == len(out)
    # every constraint, the information budget included, holds on the output as before
    assert set(BUDGET) <= set(CONSTRAINTS)  # premise_conflicts, diagnosis_narrowing, ...
    assert summarize(check_all(out, anns)) == {}


# -- planted faults ------------------------------------------------------------------


def test_each_planted_bad_answer_keeps_its_set_with_the_right_reason(server, corpus, tmp_path):
    _, questions, _ = corpus
    corr = firsts(questions, "correspondence", 3)
    expl = firsts(questions, "explanation", 2)
    corro = firsts(questions, "corroboration", 1)
    dx = firsts(questions, "diagnosis", 2)
    negated = next(q for q in firsts(questions, "correspondence") if "but not" in q.options[0])
    corr = [q for q in corr if q is not negated][:2]

    def edit(**change: Callable[[dict[str, Any]], Any]) -> Plant:
        def plant(payload: dict[str, Any]) -> str:
            answer = good_answer(payload)
            for key, fn in change.items():
                answer[key] = fn(answer)
            return json.dumps(answer)

        return plant

    def swap(a: dict[str, Any]) -> list[str]:
        o = list(a["options"])
        return [o[1], o[0], *o[2:]]

    def flip(a: dict[str, Any]) -> list[str]:
        return [a["options"][0].replace("but not", "and also"), *a["options"][1:]]

    def longer(a: dict[str, Any]) -> list[str]:
        return [
            a["options"][0] + ", as seen on careful inspection of every field",
            *a["options"][1:],
        ]

    def odd_word(a: dict[str, Any]) -> list[str]:
        return [a["options"][0] + " here", *a["options"][1:]]

    plants: dict[tuple[str, str], tuple[Plant, set[str]]] = {
        text_key(corr[0]): (
            edit(question=lambda a: "No a doubt: " + a["question"]),
            {"text_quality"},
        ),
        text_key(corr[1]): (edit(options=longer), {"length_spread"}),
        text_key(negated): (edit(options=flip), {"meaning_negation"}),
        text_key(expl[0]): (
            edit(options=lambda a: [o.replace(", while ", ", because ") for o in a["options"]]),
            {"explanation_wording"},
        ),
        text_key(expl[1]): (edit(options=swap), {"meaning_terms"}),
        text_key(corro[0]): (
            edit(question=lambda a: a["question"][:-1] + " in basal cell carcinoma?"),
            {"corroboration_no_diagnosis"},
        ),
        text_key(dx[0]): (edit(options=lambda a: a["options"][:3]), {"option_count"}),
        text_key(dx[1]): (
            lambda payload: "Sure! Here is a clearer wording of the question.",
            {"not_json"},
        ),
    }
    symmetric = firsts(questions, "explanation", 3)[2]
    plants[text_key(symmetric)] = (edit(options=odd_word), {"symmetry", "distinctive_tokens"})
    server.responder.plants = {key: plant for key, (plant, _) in plants.items()}
    result = reword_questions(questions, client_for(server, tmp_path), progress=False)
    assert result.report["kept_sets"] == len(plants) == len(result.report["kept"])
    key_of = {rows[0].set_id: text_key(rows[0]) for rows in sets_of(questions).values()}
    for item in result.report["kept"]:
        assert item["reason"] in plants[key_of[item["set_id"]]][1], item
    by_id = {q.id: q for q in questions}
    for q in result.questions:
        if q.extra.get("original_question") is None:  # kept: byte for byte the input row
            assert text_key(q) in plants and q.to_dict() == by_id[q.id].to_dict()
        else:
            original = (q.extra["original_question"], q.extra["original_options"][0])
            assert original not in plants
    assert result.report["reworded_sets"] == len(sets_of(questions)) - len(plants)
    assert "meaning_negation" in MEANING_REASONS


def test_every_swap_of_two_options_is_a_change_of_meaning(corpus):
    """The meaning check compares options in place: no transposition of a generated option
    list passes it (the budget and the keys would silently go wrong)."""
    _, questions, _ = corpus
    matchers = {name: TermMatcher(organ) for name, organ in organs_of(questions).items()}
    n = 0
    for rows in sets_of(questions).values():
        q = rows[0]
        for i, j in combinations(range(len(q.options)), 2):
            swapped = list(q.options)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            old, new = [q.question, *q.options], [q.question, *swapped]
            assert meaning_change(matchers[q.organ], old, new) in MEANING_REASONS, (q.id, i, j)
            n += 1
    assert n == 6 * len(sets_of(questions))


def test_parse_answer_takes_fenced_json_and_refuses_other_shapes():
    fenced = '```json\n{"question": "Which  one?", "options": ["a", "b"]}\n```'
    assert parse_answer(fenced) == ("Which one?", ["a", "b"])
    for bad in ('["a"]', '{"question": "q"}', '{"question": "q", "options": [1, 2]}', "no"):
        assert parse_answer(bad) is None


# -- CLI: cache, determinism, secrets, errors ----------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_rerun_from_cache_is_byte_identical_and_never_writes_the_key(
    server, corpus, tmp_path, capsys, monkeypatch
):
    path, questions, _ = corpus
    monkeypatch.setenv("REWORD_TEST_KEY", SECRET)
    cache = tmp_path / "cache"
    common = [
        "reword", str(path), "--base-url", server.base_url, "--model", "reword-model",
        "--api-key-env", "REWORD_TEST_KEY", "--cache-dir", str(cache), "--no-progress",
        "--no-embeddings", "--adversaries", "centrality,longest,bow-options",
    ]  # fmt: skip
    outs = []
    for i in range(2):
        out, report = tmp_path / f"out{i}.jsonl", tmp_path / f"report{i}.json"
        rc, stdout, _ = run_cli([*common, "--out", str(out), "--report", str(report)], capsys)
        assert rc == 0 and "reworded" in stdout
        outs.append((out.read_bytes(), json.loads(report.read_text())))
        if i == 0:
            calls = server.n_chat
    assert calls == len(sets_of(questions)) and server.n_chat == calls  # the rerun: no calls
    assert outs[0][0] == outs[1][0]
    first, second = outs[0][1], outs[1][1]
    assert second["llm"]["calls"] == 0 and second["llm"]["cache_hits"] == calls
    assert first["constraints"]["after"] == {} == first["constraints"]["before"]
    screen = first["rescreen"]
    assert set(screen["after"]["accuracy"]) == {"centrality", "longest", "bow-options"}
    assert screen["after"]["n"] == screen["before"]["n"] == len(questions)
    assert screen["after"]["best"]["accuracy"] <= 0.3  # still no text-only shortcut
    assert [q.id for q in read_questions(tmp_path / "out0.jsonl")] != [q.id for q in questions]
    # the key went to the server, and nowhere else
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.chat_requests)
    files = [tmp_path / "out0.jsonl", tmp_path / "report0.json", *cache.rglob("*.json")]
    assert len(files) > 2 and not any(SECRET in f.read_text() for f in files)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("same", "is the input file"),
        ("url", "is not an http(s) URL"),
        ("down", "cannot reach"),
        ("not_questions", "missing field(s)"),
    ],
)
def test_cli_bad_input_is_one_error_line(case, message, corpus, tmp_path, capsys):
    path, _, _ = corpus
    url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    src, out = str(path), str(tmp_path / "out.jsonl")
    if case == "missing":
        src = str(tmp_path / "nope.jsonl")
    elif case == "same":
        out = src
    elif case == "url":
        url = "ftp://example"
    elif case == "not_questions":
        src = str(tmp_path / "bad.jsonl")
        Path(src).write_text('{"foo": 1}\n')
    args = ["reword", src, "--out", out, "--base-url", url, "--model", "m", "--no-rescreen"]
    rc, _, err = run_cli([*args, "--cache-dir", str(tmp_path / "c"), "--no-progress"], capsys)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err
    assert case == "same" or not Path(out).exists()


def test_generation_never_asks_a_model(corpus):
    """Rewording is opt-in: the generator's output carries no rewording."""
    _, questions, _ = corpus
    assert not any("reworded_by" in q.extra for q in questions)
    assert Counter(len(rows) for rows in sets_of(questions).values()) == {
        4: len(sets_of(questions))
    }


def test_build_yaml_reword_section_rewords_after_generation(tmp_path, capsys):
    """``reword:`` in build.yaml: generation's sets are reworded before the screen."""
    import datasets

    from curation.io import atomic_write_jsonl, read_jsonl
    from scale_vqa.pipeline import DEMO_DIR
    from tests.conftest import CMU_SLIDE

    rows = [
        {**obj, "slide_path": str(CMU_SLIDE)}
        for _, obj in read_jsonl(DEMO_DIR / "annotations.jsonl")
    ]
    atomic_write_jsonl(tmp_path / "ann.jsonl", rows)
    with OpenAIServer(responder=Responder()) as srv:
        cfg = tmp_path / "build.yaml"
        cfg.write_text(
            "annotations: ann.jsonl\nsize: 32\n"
            "split: {train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}\n"
            "screen: {adversaries: [centrality], rounds: 0}\n"
            f"reword: {{base_url: '{srv.base_url}', model: rewriter}}\n"
        )
        assert main(["build", "--config", str(cfg), "--quiet"]) == 0
        assert {r.body["model"] for r in srv.chat_requests} == {"rewriter"}
    report = json.loads((tmp_path / "work" / "reword_report.json").read_text())
    assert report["reworded_sets"] == report["sets"] > 0 and report["model"] == "rewriter"
    ds = datasets.load_dataset(str(tmp_path / "dataset"))
    stems = [s for split in ds.values() for s in split["question"]]
    assert stems and all(s.startswith("Across the images, ") for s in stems)
    capsys.readouterr()
