"""``scale-vqa export``: the demo build as a VLMEvalKit TSV and as an lmms-eval task folder.

The VLMEvalKit TSV is decoded the way VLMEvalKit's own code decodes it (its rules are
re-implemented below, each citing the file it comes from); the lmms-eval task's YAML is
parsed and its ``utils.py`` (the exported file itself) is run on the build's real rows and
compared with ``scale-vqa evaluate`` on the same replies from a loopback
OpenAI-compatible server. lmms-eval itself is not installed here (it needs torchvision).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import math
from pathlib import Path
from typing import Any

import datasets
import pytest
from PIL import Image

from scale_vqa.cli import main
from tests.openai_server import OpenAIServer


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """One demo build (the bundled slide through every stage)."""
    out = tmp_path_factory.mktemp("demo") / "ds"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def test_split(demo):
    return datasets.load_dataset(str(demo))["test"]


def _pixels(im: Image.Image) -> str:
    return hashlib.sha256(im.convert("RGB").tobytes()).hexdigest()


# ---------------------------------------------------------------- VLMEvalKit decode rules


def toliststr(s: Any) -> list[str]:
    """vlmeval/smp/misc.py ``toliststr``: a ``[...]`` string is evaluated as a list."""
    if isinstance(s, str) and s[0] == "[" and s[-1] == "]":
        return [str(x) for x in eval(s)]  # VLMEvalKit's own rule
    if isinstance(s, str):
        return [s]
    return [str(x) for x in s]


def vlmevalkit_load(tsv: Path) -> Any:
    """vlmeval/smp/file.py ``load`` (``pd.read_csv(f, sep='\\t')``) then
    vlmeval/dataset/image_base.py ``ImageBaseDataset.__init__``: index as str; an ``image``
    of at most 64 characters is the index of another row whose image is longer; each image
    and image_path through ``toliststr``, a one-element list unwrapped."""
    import pandas as pd

    data = pd.read_csv(tsv, sep="\t")
    data["index"] = [str(x) for x in data["index"]]
    data["image"] = [str(x) for x in data["image"]]
    image_map = dict(zip(data["index"], data["image"]))
    pointers = set()
    for k in image_map:
        if len(image_map[k]) <= 64:
            idx = image_map[k]
            assert idx in image_map and len(image_map[idx]) > 64
            image_map[k] = image_map[idx]
            pointers.add(k)
    images = [toliststr(image_map[k]) for k in data["index"]]
    data["image"] = [x[0] if len(x) == 1 else x for x in images]
    paths = [toliststr(x) for x in data["image_path"]]
    data["image_path"] = [x[0] if len(x) == 1 else x for x in paths]
    return data, pointers


def vlmevalkit_dump_image(line: Any, img_root: Path) -> list[Path]:
    """vlmeval/dataset/image_base.py ``dump_image``: a list of images is written to
    ``img_root/image_path[i]`` (``decode_base64_to_image_file``: PIL open of the base64
    bytes, then ``save``), skipping files already there; a single image to ``index.jpg``."""
    if isinstance(line["image"], list):
        out = []
        for img, name in zip(line["image"], line["image_path"]):
            path = img_root / name
            if not path.exists():
                Image.open(io.BytesIO(base64.b64decode(img))).save(path)
            out.append(path)
        return out
    path = img_root / f"{line['index']}.jpg"
    if not path.exists():
        Image.open(io.BytesIO(base64.b64decode(line["image"]))).convert("RGB").save(path)
    return [path]


def vlmevalkit_options(line: Any) -> dict[str, str]:
    """vlmeval/dataset/image_mcq.py ``ImageMCQDataset.build_prompt``: options are the
    columns A..Z that are present and not NaN."""
    import string

    import pandas as pd

    return {c: line[c] for c in string.ascii_uppercase if c in line and not pd.isna(line[c])}


@pytest.fixture(scope="module")
def repeating(demo, tmp_path_factory) -> Path:
    """The demo's test split plus a second question on each of its zoom paths (the same
    crops), written as a dataset: the export must point repeats at their first row."""
    from scale_vqa.build import write_dataset

    split = datasets.load_dataset(str(demo))["test"]
    rows = split.cast_column("images", datasets.List(datasets.Image(decode=False))).to_list()
    again = [
        {**r, "id": f"{r['id']}-2", "question": f"{r['question']} (asked again)", "set_id": ""}
        for r in rows
    ]
    out = tmp_path_factory.mktemp("repeating") / "ds"
    write_dataset(out, {"test": rows + again}, progress=False)
    return out


def test_vlmevalkit_tsv_round_trips(repeating, tmp_path, capsys):
    demo = repeating
    test_split = datasets.load_dataset(str(demo))["test"]
    tsv = tmp_path / "ScaleVQA_test.tsv"
    assert main(["export", str(demo), "--format", "vlmevalkit", "--out", str(tsv)]) == 0
    assert "pointing to an earlier row" in capsys.readouterr().out
    data, pointers = vlmevalkit_load(tsv)
    assert len(data) == len(test_split) > 0
    # CustomMCQDataset is what build_dataset picks for an unknown name with A, B and image
    assert {"A", "B", "image", "question", "index", "answer"} <= set(data.columns)
    img_root = tmp_path / "images" / "ScaleVQA_test"  # LMUData/images/<dataset>
    img_root.mkdir(parents=True)
    by_path: dict[str, int] = {}
    for i, row in enumerate(test_split):
        line = data.iloc[i]
        files = vlmevalkit_dump_image(line, img_root)
        decoded = [Image.open(f) for f in files]
        assert [_pixels(im) for im in decoded] == [_pixels(im) for im in row["images"]]
        assert len(files) == len(row["magnifications"]) == 3  # low -> high, in order
        names = line["image_path"]
        assert [n.split("_")[-1] for n in names] == [f"{m:g}x.png" for m in row["magnifications"]]
        assert vlmevalkit_options(line) == dict(zip("ABCD", row["options"]))
        assert line["answer"] == row["answer"] and line["category"] == row["question_type"]
        assert line["split"] == "test" and line["id"] == row["id"]
        if str(i) in pointers:  # a pointer row repeats an earlier row's zoom path
            assert row["path_id"] in by_path and by_path[row["path_id"]] < i
        by_path.setdefault(row["path_id"], i)
    repeated = sum(1 for i, r in enumerate(test_split) if by_path[r["path_id"]] < i)
    assert len(pointers) == repeated > 0
    # distinct crops never share a file name (dump_image skips names already written)
    names = {n for p in data["image_path"] for n in p}
    assert len(names) == len({_pixels(im) for r in test_split for im in r["images"]})
    again = tmp_path / "again.tsv"
    assert main(["export", str(demo), "--format", "vlmevalkit", "--out", str(again)]) == 0
    assert again.read_bytes() == tsv.read_bytes()


def test_vlmevalkit_refuses_text_only_and_bad_names(tmp_path, capsys):
    from scale_vqa.build import write_dataset
    from scale_vqa.schema import Row

    row = Row(id="q1", question="Which?", options=["a", "b", "c", "d"], answer="B",
              question_type="diagnosis")  # fmt: skip
    ds = tmp_path / "ds"
    write_dataset(ds, {"test": [row]}, progress=False)
    assert (
        main(["export", str(ds), "--format", "vlmevalkit", "--out", str(tmp_path / "x.tsv")]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "has no image" in err and "--images" in err
    assert not (tmp_path / "x.tsv").exists()
    assert (
        main(["export", str(ds), "--format", "vlmevalkit", "--out", str(tmp_path / "x.csv")]) == 1
    )
    assert ".tsv" in capsys.readouterr().err
    assert (
        main(["export", str(ds), "--format", "vlmevalkit", "--out", "x.tsv", "--split", "dev"]) == 1
    )
    assert "no split 'dev'" in capsys.readouterr().err


def test_vlmevalkit_never_replaces_a_file_it_did_not_write(demo, tmp_path, capsys):
    mine = tmp_path / "my.tsv"
    planted = b"index\tquestion\tanswer\n0\tmy own notes\tB\n"
    mine.write_bytes(planted)
    folder = tmp_path / "folder.tsv"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep me")
    for out in (mine, folder):
        assert main(["export", str(demo), "--format", "vlmevalkit", "--out", str(out)]) == 1
        cap = capsys.readouterr()
        err = cap.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {out}: ") and not cap.out
        assert "was not written by `scale-vqa export`" in err[0]
        assert "nothing was replaced" in err[0]
    assert mine.read_bytes() == planted and (folder / "keep.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.tsv", "my.tsv"]  # no temp
    # a rerun of the same export replaces its own earlier TSV (recognised by its header)
    ours = tmp_path / "ScaleVQA_test.tsv"
    assert main(["export", str(demo), "--format", "vlmevalkit", "--out", str(ours)]) == 0
    first = ours.read_bytes()
    assert main(["export", str(demo), "--format", "vlmevalkit", "--out", str(ours)]) == 0
    assert ours.read_bytes() == first and "warning" not in capsys.readouterr().err


def test_a_hidden_test_split_exports_with_a_warning(demo, tmp_path, capsys):
    """Both formats export a hidden-test split (answers withheld, key elsewhere) and say on
    stderr that it cannot be scored without the key."""
    from baselines.answer_key import withhold
    from scale_vqa.build import write_dataset

    split = datasets.load_dataset(str(demo))["test"]
    rows, _key = withhold(
        split.cast_column("images", datasets.List(datasets.Image(decode=False))).to_list()
    )
    hidden = tmp_path / "hidden"
    write_dataset(hidden, {"test": rows}, progress=False, hidden_splits=["test"])
    tsv, task = tmp_path / "hidden.tsv", tmp_path / "task"
    for fmt, out, harness in (("vlmevalkit", tsv, "VLMEvalKit"), ("lmms-eval", task, "lmms-eval")):
        assert main(["export", str(hidden), "--format", fmt, "--out", str(out)]) == 0
        cap = capsys.readouterr()
        warning = [line for line in cap.err.splitlines() if line.startswith("warning: ")]
        assert len(warning) == 1
        assert f"{len(rows)} of {len(rows)} row(s) have no answer" in warning[0]
        assert "withheld" in warning[0] and "--key FILE" in warning[0]
        assert f"{harness} cannot score them without the key" in warning[0]
        assert cap.out.startswith(f"wrote {out}")
    data, _ = vlmevalkit_load(tsv)
    assert len(data) == len(rows) and data["answer"].isna().all()  # the column is empty


# ------------------------------------------------------------------------------ lmms-eval

# lmms_eval/api/task.py, TaskConfig: the fields a task YAML may set
LMMS_EVAL_TASK_KEYS = {
    "task", "task_alias", "tag", "group", "group_alias", "dataset_path", "dataset_name",
    "dataset_kwargs", "training_split", "validation_split", "test_split", "fewshot_split",
    "full_docs", "process_results_use_image", "process_docs", "doc_to_visual", "doc_to_text",
    "doc_to_target", "doc_to_choice", "process_results", "use_prompt", "description",
    "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot", "metric_list",
    "output_type", "generation_kwargs", "repeats", "filter_list", "should_decontaminate",
    "doc_to_decontamination_query", "metadata", "lmms_eval_specific_kwargs",
    "model_specific_generation_kwargs", "model_specific_target_kwargs",
}  # fmt: skip


class _Function(str):
    """A ``!function module.name`` reference as lmms-eval's YAML loader sees it."""


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda ld, node: _Function(ld.construct_scalar(node)))
    return yaml.load(path.read_text(), Loader=Loader)  # a SafeLoader subclass


def _utils(folder: Path) -> Any:
    spec = importlib.util.spec_from_file_location("scale_vqa_exported_utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def task_dir(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lmms") / "scale_vqa_task"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(demo), "--format", "lmms-eval", "--out", str(out)]) == 0
    return out


def test_lmms_eval_task_yaml_is_what_lmms_eval_reads(task_dir, demo, test_split):
    utils = _utils(task_dir)
    tasks = {}
    for name in ("scale_vqa.yaml", "scale_vqa_blind.yaml"):
        cfg = _load_yaml(task_dir / name)
        assert set(cfg) <= LMMS_EVAL_TASK_KEYS, set(cfg) - LMMS_EVAL_TASK_KEYS
        assert cfg["output_type"] == "generate_until" and cfg["doc_to_target"] == "answer"
        assert cfg["dataset_path"] == str(demo.resolve()) and cfg["test_split"] == "test"
        refs = [cfg[k] for k in ("doc_to_visual", "doc_to_text", "process_results")]
        refs += [m["aggregation"] for m in cfg["metric_list"]]
        for ref in refs:  # every !function names a callable of the exported utils.py
            assert isinstance(ref, _Function) and ref.startswith("utils.")
            assert callable(getattr(utils, ref.split(".", 1)[1]))
        tasks[cfg["task"]] = cfg
    assert set(tasks) == {"scale_vqa", "scale_vqa_blind"}
    assert tasks["scale_vqa_blind"]["doc_to_visual"] == "utils.doc_to_visual_blind"
    group = _load_yaml(task_dir / "_scale_vqa_with_blind.yaml")
    assert group["task"] == ["scale_vqa", "scale_vqa_blind"]
    # what ConfigurableTask.download does: load_dataset(path=dataset_path)[test_split]
    docs = datasets.load_dataset(path=tasks["scale_vqa"]["dataset_path"])["test"]
    doc = docs[0]
    results = utils.process_results(doc, ["<answer>A</answer>"])
    assert {m["metric"] for m in tasks["scale_vqa"]["metric_list"]} == set(results)
    visuals = utils.doc_to_visual(doc)
    assert [im.mode for im in visuals] == ["RGB"] * 3
    assert [_pixels(a) for a in visuals] == [_pixels(b) for b in test_split[0]["images"]]
    assert utils.doc_to_visual_blind(doc) == []
    # lmms-eval's dataset_no_image drops the image column: the text stays the same
    no_image = {k: v for k, v in doc.items() if k != "images"}
    assert utils.doc_to_text(no_image) == utils.doc_to_text(doc)
    assert "Image 3 (20x):" in utils.doc_to_text(doc)
    assert "Image" not in utils.doc_to_text_blind(doc)


def test_lmms_eval_export_never_replaces_a_foreign_folder(demo, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep me")
    assert main(["export", str(demo), "--format", "lmms-eval", "--out", str(mine)]) == 1
    assert "was not written by `scale-vqa export`" in capsys.readouterr().err
    assert (mine / "thesis.txt").read_text() == "keep me"


def _parts(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The text parts joined by newlines and the pixel hashes of the images of a request."""
    texts, pixels = [], []
    for part in messages[-1]["content"]:
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            pixels.append(_pixels(Image.open(io.BytesIO(data))))
    return "\n".join(texts), pixels


REPLIES = (
    "<answer>A</answer>",
    "The stroma decides it. <answer>B</answer>",
    "answer: C",
    "(D)",
    "I cannot tell from these fields.",  # unparseable: counted wrong, never guessed
    "<answer>B</answer>",
)


def reply_for(text: str, pixels: list[str]) -> str:
    """A deterministic reply that depends on the whole prompt (text and pixels)."""
    digest = hashlib.sha256((text + "|" + ",".join(pixels)).encode()).digest()
    return REPLIES[digest[0] % len(REPLIES)]


def test_lmms_eval_functions_match_scale_vqa_evaluate(task_dir, demo, test_split, tmp_path, capsys):
    utils = _utils(task_dir)
    seen: list[tuple[str, list[str]]] = []

    def respond(messages: list[dict[str, Any]], model: str) -> str:
        text, pixels = _parts(messages)
        seen.append((text, pixels))
        return reply_for(text, pixels)

    out = tmp_path / "eval"
    with OpenAIServer(responder=respond) as server:
        llm = f"base_url={server.base_url},model=vlm,max_retries=0"
        args = ["evaluate", str(demo), "--split", "test", "--llm", llm, "--controls",
                "full,blind", "--out", str(out), "--quiet"]  # fmt: skip
        assert main(args) == 0
    capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    raw = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        raw[(rec["id"], rec["condition"])] = rec["raw"]
    expected = set()
    for condition, to_text, to_visual in (
        ("full", utils.doc_to_text, utils.doc_to_visual),
        ("blind", utils.doc_to_text_blind, utils.doc_to_visual_blind),
    ):
        records = []
        for doc in test_split:
            prompt = (to_text(doc), [_pixels(im) for im in to_visual(doc)])
            assert prompt in seen  # the very prompt scale-vqa evaluate sent
            expected.add((prompt[0], tuple(prompt[1])))
            reply = raw[(doc["id"], condition)]
            assert reply == reply_for(*prompt)  # so the same reply
            records.append(utils.process_results(doc, [reply])["accuracy"])
        got = report["conditions"][condition]
        assert utils.aggregate_accuracy(records) == pytest.approx(got["accuracy"])
        assert utils.aggregate_unparsed(records) == got["unparseable"] > 0
        group = utils.aggregate_group_accuracy(records)
        want = got["group"]["accuracy"]
        assert (math.isnan(group) and want is None) or group == pytest.approx(want)
        for qtype, v in got["by_type"].items():
            assert getattr(utils, f"aggregate_{qtype}")(records) == pytest.approx(v["accuracy"])
        assert 0 < got["accuracy"] < 1
    # every request was one of these prompts (identical prompts are asked once: cached)
    assert {(t, tuple(p)) for t, p in seen} == expected


def test_lmms_eval_itself_runs_the_task_with_the_same_scores(task_dir, demo, tmp_path, capsys):
    """lmms-eval's own task loader and evaluator (its ``openai`` model) on the exported
    folder, against the loopback server; skipped where lmms-eval is not installed (it is
    not in this project's environment: it needs torchvision)."""
    pytest.importorskip("lmms_eval")
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    def respond(messages: list[dict[str, Any]], model: str) -> str:
        return reply_for(*_parts(messages))

    out = tmp_path / "eval"
    with OpenAIServer(responder=respond) as server:
        llm = f"base_url={server.base_url},model=vlm,max_retries=0"
        args = ["evaluate", str(demo), "--split", "test", "--llm", llm, "--controls",
                "full,blind", "--out", str(out), "--quiet"]  # fmt: skip
        assert main(args) == 0
        capsys.readouterr()
        results = evaluator.simple_evaluate(
            model="openai",
            model_args=f"model_version=vlm,base_url={server.base_url},api_key=x,max_retries=1",
            tasks=["scale_vqa", "scale_vqa_blind"],
            task_manager=TaskManager(include_path=str(task_dir)),
        )["results"]
    report = json.loads((out / "report.json").read_text())["conditions"]
    for task, condition in (("scale_vqa", "full"), ("scale_vqa_blind", "blind")):
        got, want = results[task], report[condition]
        assert got["accuracy,none"] == pytest.approx(want["accuracy"])
        assert got["unparsed,none"] == want["unparseable"]
        for qtype, v in want["by_type"].items():
            assert got[f"accuracy_{qtype},none"] == pytest.approx(v["accuracy"])
