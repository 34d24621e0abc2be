"""A hidden-test build: the test split publishes no key; `evaluate --key` scores it the same."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import datasets
import pytest

from curation.errors import ConfigError
from scale_vqa.cli import main
from scale_vqa.pipeline import demo_config, run_pipeline
from tests.openai_server import OpenAIServer


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """The demo built twice from one work folder: in full, and with a hidden test split."""
    root = tmp_path_factory.mktemp("hidden")
    cfg = demo_config(root / "full", root / "work")
    run_pipeline(cfg, quiet=True)
    cfg.output, cfg.hidden_test = root / "hidden", True
    run_pipeline(cfg, quiet=True)
    return {"full": root / "full", "hidden": root / "hidden", "key": cfg.key_path}


def _rows(folder: Path, split: str) -> list[dict[str, Any]]:
    ds = datasets.load_dataset(str(folder))[split]
    return ds.cast_column("images", datasets.List(datasets.Image(decode=False))).to_list()


def test_the_hidden_split_publishes_no_key_and_nothing_else_changes(builds):
    full, hidden = _rows(builds["full"], "test"), _rows(builds["hidden"], "test")
    assert len(full) == len(hidden) > 0
    assert all(r["answer"] == "" and r["rationale"] == "" for r in hidden)
    # every other published field of every row is byte for byte what the full build has
    strip = [{k: v for k, v in r.items() if k not in ("answer", "rationale")} for r in full]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("answer", "rationale")} for r in hidden
    ]
    # the other splits keep their answers
    assert _rows(builds["hidden"], "train") == _rows(builds["full"], "train")
    # the key sits outside the published folder and holds exactly the full build's key
    key = [json.loads(line) for line in builds["key"].read_text().splitlines()]
    assert builds["hidden"] not in builds["key"].parents
    assert {k["id"]: (k["answer"], k["rationale"]) for k in key} == {
        r["id"]: (r["answer"], r["rationale"]) for r in full
    }
    files = [builds["hidden"] / "README.md", *(builds["hidden"] / "data").glob("test-*.parquet")]
    published = b"".join(p.read_bytes() for p in files)  # the test shards and the card
    assert not any(k["rationale"].encode() in published for k in key if k["rationale"])
    card = (builds["hidden"] / "README.md").read_text()
    assert "## Hidden test split" in card and "--key" in card
    assert "Hidden test split" not in (builds["full"] / "README.md").read_text()


def _pseudo_model(messages: list[dict[str, Any]], model: str) -> str:
    """A deterministic 'model': its letter is a function of the images and the prompt text."""
    content = messages[-1]["content"]
    blob = json.dumps(content, sort_keys=True).encode()
    return f"<answer>{'ABCD'[hashlib.sha256(blob).digest()[0] % 4]}</answer>"


def _evaluate(dataset: Path, out: Path, server: OpenAIServer, *extra: str) -> dict[str, Any]:
    code = main(
        [
            "evaluate",
            str(dataset),
            "--llm",
            f"base_url={server.base_url},model=vlm",
            "--controls",
            "full,blind,circular",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    report.pop("dataset")
    return report


def test_evaluate_with_the_key_gives_the_full_builds_figures(builds, tmp_path, capsys):
    with OpenAIServer(responder=_pseudo_model) as server:
        full = _evaluate(builds["full"], tmp_path / "a", server)
        hidden = _evaluate(builds["hidden"], tmp_path / "b", server, "--key", str(builds["key"]))
    assert full == hidden
    assert full["n"] > 0 and "full" in full["conditions"]


def test_a_hidden_split_without_its_key_is_a_clear_error(builds, tmp_path, capsys):
    code = main(
        ["evaluate", str(builds["hidden"]), "--llm", "base_url=http://127.0.0.1:9/v1,model=x"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "withheld" in err and "--key" in err and "Traceback" not in err
    bad = tmp_path / "key.jsonl"
    bad.write_text('{"id": "nope", "answer": "A", "rationale": ""}\n')
    code = main(
        [
            "evaluate",
            str(builds["hidden"]),
            "--key",
            str(bad),
            "--llm",
            "base_url=http://x/v1,model=x",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and re.search(r"not in the key", err)
    # said before any model is loaded (a Hub id that cannot be fetched here is never tried)
    code = main(["evaluate", str(builds["hidden"]), "--model", "someone/large-vlm"])
    err = capsys.readouterr().err
    assert code == 1 and "have no answer" in err and "--key" in err and "someone" not in err
    # a split that keeps its answers takes no key
    key = str(builds["key"])
    code = main(["evaluate", str(builds["hidden"]), "--split", "train", "--key", key, "--llm",
                 "base_url=http://x/v1,model=x"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "split train keeps its answers" in err and "drop --key" in err


def test_the_key_may_not_go_into_the_published_folder(tmp_path):
    cfg = demo_config(tmp_path / "out", tmp_path / "work")
    cfg.hidden_test, cfg.key_file = True, tmp_path / "out" / "key.jsonl"
    with pytest.raises(ConfigError, match="inside the output folder"):
        cfg.check_key_path()
    cfg.key_file = tmp_path / "elsewhere" / "key.jsonl"
    cfg.check_key_path()
