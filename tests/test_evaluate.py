"""Evaluation harness: prompts, answer extraction, controls, metrics, resumability, CLI.

End to end against a real loopback OpenAI-compatible server, on a real dataset folder
(write_dataset -> Parquet with embedded PNGs -> datasets.load_dataset). The scripted
"model" reads the row from the pixels of the first image it is sent, so it can only know
the key when it sees that row's three images: blind, single-scale and shuffled score
lower by construction, a measurable vision gain.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from baselines.answers import extract_answer
from baselines.evaluate import evaluate, format_table, load_split, rotate, slide_derangement
from baselines.infer import EndpointPredictor, Predictor
from baselines.prompts import content_blocks, conversation, openai_messages
from baselines.tiny_model import build_tiny_qwen
from curation.errors import ConfigError, HubError, InputError
from curation.llm import LLMClient, LLMConfig
from scale_vqa.build import write_dataset
from scale_vqa.cli import main
from scale_vqa.schema import Row
from tests.openai_server import OpenAIServer

N_ROWS = 16
MAGS = [5.0, 10.0, 40.0]
SET_OPTIONS = ["necrosis", "mitotic figures", "keratin pearls", "clear cells"]


def _image(row: int, k: int) -> Image.Image:
    return Image.new("RGB", (12, 12), (row * 8, 40 + 60 * k, 100))


def make_rows() -> list[Row]:
    """16 rows on 4 slides, two question types, one complementary set of 4 (rows 12-15)."""
    rows = []
    for i in range(N_ROWS):
        in_set = i >= 12
        options = SET_OPTIONS if in_set else [f"finding {i}-{j}" for j in range(4)]
        rows.append(
            Row(
                id=f"q{i:02d}",
                question="Which findings does the closer view confirm?"
                if not in_set
                else "Which combination across the views supports the diagnosis?",
                options=list(options),
                answer="ABCD"[(i - 12) if in_set else i % 4],
                question_type="correspondence" if i < 8 else "diagnosis",
                images=[_image(i, k) for k in range(3)],
                magnifications=list(MAGS),
                slide_id=f"slide-{i // 4}",
                patient_id=f"pt-{i // 4}",
                set_id="set-1" if in_set else "",
            )
        )
    return rows


KEYS = {i: r.options["ABCD".index(r.answer)] for i, r in enumerate(make_rows())}


def _parts(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    content = messages[-1]["content"]
    if isinstance(content, str):
        return content, []
    text = "\n".join(p["text"] for p in content if p["type"] == "text")
    urls = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
    return text, urls


def _row_of(url: str) -> int:
    data = base64.b64decode(url.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))[0] // 8


def seeing_responder(garble: set[int] = frozenset()):  # type: ignore[assignment]
    """Knows the key text only from the row's own three images; otherwise says A."""

    def respond(messages: list[dict[str, Any]], model: str) -> str:
        text, urls = _parts(messages)
        options = dict(re.findall(r"^([A-J])\. (.*)$", text, re.MULTILINE))
        if len(urls) == 3:
            row = _row_of(urls[0])
            if row in garble:
                return "I cannot decide between these findings."
            for letter, opt in options.items():
                if opt == KEYS[row]:
                    return f"The high-power field shows it. <answer>{letter}</answer>"
        return "Without more evidence: <answer>A</answer>"

    return respond


def always_a(messages: list[dict[str, Any]], model: str) -> str:
    return "<answer>A</answer>"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evalds") / "ds"
    write_dataset(out, {"test": make_rows()}, progress=False)
    return out


@pytest.fixture(scope="module")
def split_ds(dataset_dir):
    return load_split(dataset_dir, "test")


def _predictor(server: OpenAIServer, cache: Path | None) -> EndpointPredictor:
    cfg = LLMConfig(base_url=server.base_url, model="vlm", max_retries=0, concurrency=4)
    return EndpointPredictor(LLMClient(cfg, cache_dir=cache))


# ------------------------------------------------------------------------- unit parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>B</answer>", "B"),
        ("reasoning... <answer>A</answer> then <answer> (C) </answer>", "C"),
        ("<answer>D. clear cells</answer>", "D"),
        ("<answer>clear cells</answer>", "D"),
        ("<answer>I am not sure</answer>", None),
        ("<answer>E</answer>", None),
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("B. keratin pearls", "B"),
        ("Keratin pearls", "C"),
        ("Between (A) and (B) I hesitate.", None),
        ("Looking at the images I choose (D) here.", "D"),
        ("So it must be B", "B"),
        ("I cannot tell", None),
        ("The answer depends on the stain.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text, 4, ["necrosis", "mitotic", "keratin pearls", "clear cells"]) == (
        expected
    )


def test_prompt_interleaves_labelled_images_in_order():
    row = make_rows()[0]
    ex = {
        "question": row.question,
        "options": row.options,
        "images": row.images,
        "magnifications": row.magnifications,
    }
    blocks = conversation(ex)[0]["content"]
    kinds = [b["type"] for b in blocks]
    assert kinds.count("image") == 3
    heads = [blocks[j - 1]["text"] for j, k in enumerate(kinds) if k == "image"]
    assert heads == ["Image 1 (5x):", "Image 2 (10x):", "Image 3 (40x):"]
    assert "A. finding 0-0" in blocks[-1]["text"] and "<answer>X</answer>" in blocks[-1]["text"]
    msg = openai_messages(ex)[0]["content"]
    urls = [p["image_url"]["url"] for p in msg if p["type"] == "image_url"]
    assert [_row_of(u) for u in urls] == [0, 0, 0]
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    blind = content_blocks({**ex, "images": [], "magnifications": []})
    assert [b["type"] for b in blind] == ["text"]


def test_rotation_remaps_the_key():
    opts = ["w", "x", "y", "z"]
    for r in range(4):
        rotated, key = rotate(opts, "C", r)
        assert rotated[("ABCD").index(key)] == "y"
    assert rotate(opts, "A", 1) == (["x", "y", "z", "w"], "D")


def test_shuffled_derangement_never_keeps_a_rows_slide():
    rng = random.Random(0)
    for trial in range(200):
        n = rng.randint(2, 40)
        slides = [f"s{rng.randint(0, rng.randint(1, 8))}" for _ in range(n)]
        donors = slide_derangement(slides, seed=trial)
        if len(set(slides)) == 1:
            assert donors == [None] * n
            continue
        assert all(slides[d] != slides[i] for i, d in enumerate(donors))
        if 2 * max(Counter(slides).values()) <= n:
            assert sorted(donors) == list(range(n))  # a permutation: each image set used once
    assert slide_derangement(["a", "a", "b", "b"], 3) == slide_derangement(["a", "a", "b", "b"], 3)


# ------------------------------------------------------------------------- end to end


def test_end_to_end_controls_gains_groups_and_resume(tmp_path, split_ds):
    with OpenAIServer(responder=seeing_responder()) as server:
        preds = tmp_path / "out" / "predictions.jsonl"
        report = evaluate(
            split_ds,
            _predictor(server, tmp_path / "cache"),
            seed=1,
            predictions_path=preds,
            batch_size=5,
            progress=False,
        )
        c = report["conditions"]
        assert c["full"]["accuracy"] == 1.0 and c["full"]["unparseable"] == 0
        assert c["full"]["n"] == N_ROWS
        share_a = sum(r.answer == "A" for r in make_rows()) / N_ROWS  # the fallback's score
        for name in ("blind", "shuffled", "single:1", "single:2", "single:3"):
            assert c[name]["accuracy"] == pytest.approx(share_a), name
        assert c["single:3"]["magnifications"] == [40.0]
        assert c["circular"]["accuracy"] == 1.0  # it reads the key's text, not its letter
        assert report["derived"]["vision_gain"] == pytest.approx(1 - share_a)
        assert report["derived"]["cross_scale_gain"] == pytest.approx(1 - share_a)
        assert c["full"]["group"]["n"] == 1
        assert c["full"]["group"]["accuracy"] == 1.0 and c["blind"]["group"]["accuracy"] == 0.0
        lo, hi = (
            c["full"]["by_type"]["diagnosis"]["ci_low"],
            c["full"]["by_type"]["diagnosis"]["ci_high"],
        )
        assert c["full"]["by_type"]["diagnosis"]["n"] == 8 and lo < 1.0 == hi
        table = format_table(report)
        assert "vision gain" in table and "single:3 (40x)" in table

        lines = [json.loads(x) for x in preds.read_text().splitlines()]
        n_conditions = 1 + 1 + 1 + 3 + 3
        assert len(lines) == N_ROWS * n_conditions
        assert set(lines[0]) == {"id", "condition", "model", "raw", "parsed", "answer", "correct"}
        ids = [f"q{i:02d}" for i in range(N_ROWS)]
        donors = slide_derangement([f"slide-{i // 4}" for i in range(N_ROWS)], seed=1)
        shuffled = {r["id"]: r["donor"] for r in lines if r["condition"] == "shuffled"}
        assert shuffled == {ids[i]: ids[d] for i, d in enumerate(donors)}
        first = server.n_chat
        cached = list((tmp_path / "cache").rglob("*.json"))
        assert cached and not any("base64," in f.read_text() for f in cached)  # no image copies
        assert 0 < first <= N_ROWS * n_conditions
        text = preds.read_bytes()

        # rerun, same folder: finished predictions are reused, nothing is asked
        again = evaluate(
            split_ds,
            _predictor(server, tmp_path / "cache"),
            seed=1,
            predictions_path=preds,
            progress=False,
        )
        assert server.n_chat == first and again == report and preds.read_bytes() == text

        # another seed: only the shuffled control is asked again (new donors)
        other = evaluate(
            split_ds,
            _predictor(server, tmp_path / "cache"),
            seed=2,
            predictions_path=tmp_path / "seed2.jsonl",
            progress=False,
        )
        assert 0 < server.n_chat - first <= N_ROWS  # only new (row, donor) pairs are asked
        assert other["conditions"]["full"] == report["conditions"]["full"]
        first = server.n_chat

        # predictions file gone: the endpoint cache answers, still zero HTTP calls
        preds.unlink()
        pred = _predictor(server, tmp_path / "cache")
        third = evaluate(split_ds, pred, seed=1, predictions_path=preds, progress=False)
        assert server.n_chat == first and pred.client.usage.cache_hits > 0
        assert third == report and preds.read_bytes() == text


def test_unparseable_replies_are_counted_wrong_never_guessed(tmp_path, split_ds):
    garble = {1, 6, 13}
    with OpenAIServer(responder=seeing_responder(garble)) as server:
        preds = tmp_path / "p.jsonl"
        report = evaluate(
            split_ds,
            _predictor(server, None),
            controls="full,blind",
            predictions_path=preds,
            progress=False,
        )
    full = report["conditions"]["full"]
    assert full["unparseable"] == 3 and full["correct"] == N_ROWS - 3
    assert report["conditions"]["blind"]["unparseable"] == 0
    assert full["group"]["accuracy"] == 0.0  # row 13 of the set is unparseable
    bad = [r for r in map(json.loads, preds.read_text().splitlines()) if r["parsed"] is None]
    assert {(r["id"], r["condition"], r["correct"]) for r in bad} == {
        ("q01", "full", False),
        ("q06", "full", False),
        ("q13", "full", False),
    }
    assert set(report["conditions"]) == {"full", "blind"}


def test_circular_eval_scores_zero_for_a_constant_letter(tmp_path, split_ds):
    with OpenAIServer(responder=always_a) as server:
        report = evaluate(split_ds, _predictor(server, None), controls=["circular"], progress=False)
    c = report["conditions"]
    share_a = sum(r.answer == "A" for r in make_rows()) / N_ROWS
    assert c["full"]["accuracy"] == pytest.approx(share_a)
    assert c["circular"]["accuracy"] == 0.0 and c["circular"]["n"] == N_ROWS
    assert c["circular"]["chance"] == pytest.approx(0.25**4)
    assert c["full"]["group"]["accuracy"] == 0.0  # one letter is right once per set
    assert report["derived"]["circular_drop"] == pytest.approx(share_a)


def test_a_plain_predictor_and_bad_controls(split_ds):
    class Echo:
        name = "echo"

        def predict(self, examples):
            return ["<answer>B</answer>" for _ in examples]

    assert isinstance(Echo(), Predictor)
    rows = [dict(r.to_dict(), images=[]) for r in make_rows()][:4]
    report = evaluate(rows, Echo(), controls="full,shuffled,single", progress=False)
    assert report["conditions"]["full"]["accuracy"] == 0.25
    assert any("single-scale control skipped" in n for n in report["notes"])
    with pytest.raises(ConfigError, match="unknown control"):
        evaluate(rows, Echo(), controls="full,zoom", progress=False)


# ------------------------------------------------------------------------------- CLI


def test_cli_writes_report_and_table(tmp_path, dataset_dir, capsys):
    with OpenAIServer(responder=seeing_responder()) as server:
        code = main(
            [
                "evaluate",
                str(dataset_dir),
                "--llm",
                f"base_url={server.base_url},model=vlm",
                "--controls",
                "full,blind,single",
                "--limit",
                "8",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"vision gain \(full - blind\): +\+75\.0 points", out)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["n"] == 8 and report["split"] == "test" and report["limit"] == 8
    assert set(report["conditions"]) == {"full", "blind", "single:1", "single:2", "single:3"}
    assert (tmp_path / "o" / "cache" / "llm").is_dir()
    # a rerun replaces its own report; another model's run never replaces it
    before = (tmp_path / "o" / "report.json").read_bytes()
    with OpenAIServer(responder=seeing_responder()) as server:
        args = ["evaluate", str(dataset_dir), "--controls", "full", "--limit", "8", "--out",
                str(tmp_path / "o"), "--quiet", "--llm"]  # fmt: skip
        assert main([*args, f"base_url={server.base_url},model=other"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "is the report of model 'vlm'" in err
        assert "give another --out folder" in err
        assert (tmp_path / "o" / "report.json").read_bytes() == before
        assert main([*args, f"base_url={server.base_url},model=vlm"]) == 0
        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "report.json").write_text("my notes\n")
        args[args.index(str(tmp_path / "o"))] = str(mine)
        assert main([*args, f"base_url={server.base_url},model=vlm"]) == 1
        assert "is not a report of `scale-vqa evaluate`" in capsys.readouterr().err
        assert (mine / "report.json").read_text() == "my notes\n"


def test_cli_errors(tmp_path, dataset_dir, capsys):
    llm = "base_url=http://127.0.0.1:9/v1,model=m"
    assert main(["evaluate", str(tmp_path / "nope"), "--llm", llm]) == 1
    assert "error:" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty"), "--llm", llm]) == 1
    assert "not a dataset folder" in capsys.readouterr().err
    assert main(["evaluate", "someone/not-here", "--llm", llm]) == 1
    assert "cannot load Hub dataset 'someone/not-here'" in capsys.readouterr().err
    assert main(["evaluate", str(dataset_dir), "--split", "train", "--llm", llm]) == 1
    assert "no split 'train'" in capsys.readouterr().err
    with pytest.raises(InputError):
        load_split(tmp_path / "nope")
    with pytest.raises(HubError):
        load_split("someone/not-here")


# ------------------------------------------------------------------ local checkpoint


def test_local_checkpoint_through_the_cli(tmp_path, dataset_dir, capsys):
    from baselines.infer import TransformersPredictor

    ckpt = build_tiny_qwen(tmp_path / "tiny-qwen")
    pred = TransformersPredictor.from_pretrained(ckpt, max_new_tokens=6, batch_size=2)
    rows = [dict(r.to_dict()) for r in make_rows()[:3]]
    batched = pred.predict(rows)
    assert len(batched) == 3 and all(isinstance(t, str) for t in batched)
    pred.batch_size = 1
    assert pred.predict(rows) == batched  # left padding: batching does not change replies

    args = ["evaluate", str(dataset_dir), "--model", str(ckpt), "--controls", "full,blind",
            "--limit", "4", "--max-new-tokens", "6", "--out", str(tmp_path / "o"),
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["model"] == "tiny-qwen" and report["n"] == 4
    full = report["conditions"]["full"]
    assert full["n"] == 4 and full["unparseable"] + full["correct"] <= 4
    first = (tmp_path / "o" / "predictions.jsonl").read_bytes()
    assert len(first.splitlines()) == 8
    assert main(args) == 0  # rerun: reuses the predictions file, same bytes
    assert (tmp_path / "o" / "predictions.jsonl").read_bytes() == first
    assert "evaluation of tiny-qwen" in capsys.readouterr().out


# ------------------------------------------------------------------ fresh-user errors


def test_cli_text_only_dataset_warns_and_notes_it(tmp_path, capsys):
    rows = make_rows()[:4]
    for r in rows:
        r.images, r.magnifications = [], []
    write_dataset(tmp_path / "ds", {"test": rows}, progress=False)
    with OpenAIServer(responder=always_a) as server:
        code = main(
            [
                "evaluate",
                str(tmp_path / "ds"),
                "--llm",
                f"base_url={server.base_url},model=vlm",
                "--controls",
                "full,blind",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: the dataset has no images (text-only" in captured.err
    assert "vision gain is 0 by construction" in captured.err
    assert "note: the dataset has no images" in captured.out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert any("no images" in n for n in report["notes"])


def test_cli_missing_local_model_folder(tmp_path, dataset_dir, capsys):
    for arg in ("./nope", str(tmp_path / "nope")):
        assert main(["evaluate", str(dataset_dir), "--model", arg]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"error: {arg}: no such model folder; pass a local checkpoint folder or a Hub "
            "model id\n"
        )


def test_cli_closed_port_fails_fast_with_a_clear_message(tmp_path, dataset_dir, capsys):
    import socket
    import time

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    start = time.monotonic()
    args = ["evaluate", str(dataset_dir), "--llm", f"base_url={url},model=x", "--limit", "2"]
    code = main([*args, "--out", str(tmp_path / "o"), "--quiet"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 1 and elapsed < 10
    assert err.startswith(f"error: cannot reach {url}: connection refused; is the server running?")
    assert err.count("\n") == 1


def test_cli_prints_one_line_per_retry(tmp_path, dataset_dir, capsys):
    from tests.openai_server import Fault

    with OpenAIServer(responder=always_a) as server:
        server.faults.extend([Fault.server_error(503), Fault.server_error(503)])
        code = main(
            [
                "evaluate",
                str(dataset_dir),
                "--llm",
                f"base_url={server.base_url},model=vlm,backoff=0,concurrency=1",
                "--controls",
                "full",
                "--limit",
                "2",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("retrying 'vlm' at ") == 2 and "transient failure" in err
