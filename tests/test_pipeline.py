"""build.yaml validation, the resumable stage runner and the rebuild's determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.errors import ConfigError
from scale_vqa.cli import main
from scale_vqa.config import load_config
from scale_vqa.pipeline import StageRunner

from .conftest import CMU_SLIDE

DEMO_ANNOTATIONS = CMU_SLIDE.parent / "demo" / "annotations.jsonl"
N_DEMO = sum(1 for line in DEMO_ANNOTATIONS.read_text().splitlines() if line.strip())


def _write_cfg(tmp_path: Path, text: str) -> Path:
    (tmp_path / "ann.jsonl").write_text("{}\n")
    p = tmp_path / "build.yaml"
    p.write_text(text)
    return p


def test_config_defaults_and_relative_paths(tmp_path):
    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / "a.svs").symlink_to(CMU_SLIDE)
    p = _write_cfg(tmp_path, "annotations: ann.jsonl\nslides: [slides]\nseed: 3\n")
    cfg = load_config(p)
    assert cfg.annotations == [tmp_path / "ann.jsonl"]
    assert cfg.slides == [tmp_path / "slides" / "a.svs"]  # the link's own name: slide id "a"
    assert cfg.magnifications == [1.0, 4.0, 20.0] and cfg.seed == 3
    assert cfg.output == tmp_path / "dataset" and cfg.work == tmp_path / "work"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("annotations: ann.jsonl\nshard_size: 3\n", "unknown key(s) 'shard_size'"),
        ("annotations: ann.jsonl\ngeneration: {opts: 4}\n", "'generation.opts'"),
        ("slides: []\n", "key 'annotations' is required"),
        ("annotations: missing.jsonl\n", "missing.jsonl, which does not exist"),
        ("annotations: ann.jsonl\nmagnifications: [20, 10]\n", "low to high"),
        ("annotations: ann.jsonl\nsize: big\n", "key 'size' must be a whole number"),
        ("annotations: ann.jsonl\nsplit: {train: 0.9, test: 0.3}\n", "sum to 1"),
        ("annotations: ann.jsonl\nslides: [nowhere/*.svs]\n", "matches no file"),
        ("annotations: ann.jsonl\nscreen: {flag: {rule: most}}\n", "'screen.flag.rule'"),
        ("annotations: ann.jsonl\nscreen: {llm: [{model: m}]}\n", "'screen.llm[0].base_url'"),
        (
            "annotations: ann.jsonl\ngeneration: {question_types: [colour]}\n",
            "'generation.question_types'",
        ),
        ("annotations: [ann.jsonl\n", "not valid YAML"),
        ("annotations: ann.jsonl\naudit: {null_refits: -1}\n", "'audit.null_refits'"),
        ("annotations: ann.jsonl\naudit: {refits: 9}\n", "'audit.refits'"),
        ("annotations: ann.jsonl\nkeyfile: k.jsonl\n", "did you mean 'key_file' for 'keyfile'?)"),
        ("annotations: ann.jsonl\nrewrod: {}\n", "'key_file', 'magnifications'"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, needle):
    p = _write_cfg(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)


def test_config_rejects_two_slides_with_one_stem(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "S-1.svs").symlink_to(CMU_SLIDE)
    p = _write_cfg(tmp_path, "annotations: ann.jsonl\nslides: [a, b/S-1.svs]\n")
    with pytest.raises(ConfigError, match="share the file stem 'S-1'"):
        load_config(p)


def test_cli_build_config_error_exit_code(tmp_path, capsys):
    p = _write_cfg(tmp_path, "annotations: ann.jsonl\nshard_size_mb: -1\n")
    assert main(["build", "--config", str(p)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "key 'shard_size_mb' is -1; use a positive finite number" in err
    assert main(["build", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "no such config file" in capsys.readouterr().err


def test_stage_runner_skips_resumes_and_forces(tmp_path):
    work = tmp_path / "work"
    src = tmp_path / "in.txt"
    src.write_text("one")
    calls: list[str] = []

    def stage_a():
        calls.append("a")
        (work / "a.txt").write_text(src.read_text().upper())

    def stage_b():
        calls.append("b")
        (work / "b.txt").write_text((work / "a.txt").read_text() + "!")

    def run_all(force=(), settings=1):
        r = StageRunner(work, force=force, known=("a", "b"))
        r.run("a", stage_a, [work / "a.txt"], settings={"s": settings}, files=[src])
        r.run("b", stage_b, [work / "b.txt"], upstream=["a"])
        return r

    run_all()
    assert calls == ["a", "b"]
    r = run_all()
    assert calls == ["a", "b"] and all(rep.skipped for rep in r.reports)
    run_all(settings=2)  # a reruns, same bytes -> b skipped
    assert calls == ["a", "b", "a"]
    src.write_text("two")  # input changed -> both rerun
    run_all(settings=2)
    assert calls[-2:] == ["a", "b"] and (work / "b.txt").read_text() == "TWO!"
    (work / "b.txt").write_text("tampered")  # output changed -> b reruns
    run_all(settings=2)
    assert calls[-1] == "b" and (work / "b.txt").read_text() == "TWO!"
    n = len(calls)
    run_all(force=["a"], settings=2)
    assert calls[n:] == ["a"]
    state = json.loads((work / "stages" / "a.json").read_text())
    assert set(state) >= {"fingerprint", "outputs"}
    with pytest.raises(ConfigError, match="no such stage"):
        StageRunner(work, force=["zz"], known=("a", "b"))


def test_stage_runner_interrupted_stage_reruns(tmp_path):
    work = tmp_path / "w"

    def boom():
        (work / "x.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageRunner(work).run("x", boom, [work / "x.txt"])
    assert (work / "stages" / "x.running").exists()
    r = StageRunner(work)
    r.run("x", lambda: (work / "x.txt").write_text("whole"), [work / "x.txt"])
    assert not r.reports[0].skipped and (work / "x.txt").read_text() == "whole"
    assert not (work / "stages" / "x.running").exists()


def _raw_annotations(path: Path, slide_id: str = "CMU-1-Small-Region") -> None:
    """The demo annotations as raw free text (synonyms), all on one slide matched by stem."""
    from curation.io import atomic_write_jsonl, read_jsonl
    from scale_vqa.pipeline import DEMO_DIR

    words = {"hyperkeratosis": "orthokeratosis", "horn_cysts": "horn pseudocysts"}
    rows = []
    for i, obj in read_jsonl(DEMO_DIR / "annotations.jsonl"):
        obj["slide_id"] = slide_id
        if i in (9, 10):  # no centre: extraction samples one on tissue
            obj["centre"] = None
        del obj["slide_path"]
        for kind in ("findings", "negatives"):
            obj[kind] = {s: [words.get(f, f) for f in v] for s, v in obj[kind].items()}
        rows.append(obj)
    atomic_write_jsonl(path, rows)


def test_build_from_raw_annotations_and_a_slide_folder(tmp_path, capsys):
    import datasets

    from curation.annotations import read_annotations
    from curation.io import read_jsonl

    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / "CMU-1-Small-Region.svs").symlink_to(CMU_SLIDE)
    _raw_annotations(tmp_path / "raw.jsonl")
    cfg = tmp_path / "build.yaml"
    cfg.write_text(
        "slides: [slides]\nannotations: raw.jsonl\nsize: 64\n"
        "generation: {question_types: [correspondence]}\n"
        "split: {train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}\n"
        "screen: {adversaries: [centrality, bow-options], rounds: 1}\n"
    )
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "dataset: " + str(tmp_path / "o") in out
    work = tmp_path / "work"
    anns = read_annotations(work / "annotations.jsonl")
    assert len(anns) == N_DEMO and any("hyperkeratosis" in a.findings["low"] for a in anns)
    ds = datasets.load_dataset(str(tmp_path / "o"))
    types = {t for split in ds.values() for t in split["question_type"]}
    assert types == {"correspondence"}
    assert ds["train"][0]["images"][0].size == (64, 64)
    zoom = {z["path_id"]: z for _, z in read_jsonl(work / "zoom" / "zoom_paths.jsonl")}
    assert len(zoom) == N_DEMO and zoom["demo-09"]["centre"] and zoom["demo-10"]["centre"]
    # a changed setting reruns from the stage it touches, not before
    cfg.write_text(cfg.read_text().replace("rounds: 1", "rounds: 2"))
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(tmp_path / "o")]) == 0
    table = capsys.readouterr().out
    assert "extract      skipped" in table and "screen       ran" in table
    assert main(["build", "--config", str(cfg), "--quiet", "--force-stage", "split"]) == 0
    assert "split        ran" in capsys.readouterr().out


def test_build_names_a_slide_it_cannot_find(tmp_path, capsys):
    _raw_annotations(tmp_path / "raw.jsonl", slide_id="no-such-slide")
    cfg = tmp_path / "build.yaml"
    cfg.write_text("annotations: raw.jsonl\nscreen: {enabled: false}\n")
    assert main(["build", "--config", str(cfg), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 annotated slide(s) not found")
    assert "raw.jsonl:1: slide 'no-such-slide'" in err and "slide_path" in err


def test_example_config_is_valid():
    from scale_vqa.pipeline import DEMO_DIR

    example = Path(__file__).resolve().parents[1] / "examples" / "build.yaml"

    def point_at_real_files(data):
        data["slides"] = [str(CMU_SLIDE)]
        data["annotations"] = [str(DEMO_DIR / "annotations.jsonl")]

    cfg = load_config(example, overrides=point_at_real_files)
    assert cfg.screen.flag.rule == "majority" and cfg.shard_size_mb == 256
    assert cfg.generation.question_types[0] == "correspondence"


def test_build_with_captions_and_llm_adversaries_over_http(tmp_path, capsys):
    """evidence.llm decomposes captions and screen.llm answers MCQs, on a loopback server."""
    import re

    from curation.annotations import read_annotations
    from curation.io import atomic_write_jsonl, read_jsonl
    from curation.organs import get_organ
    from scale_vqa.pipeline import DEMO_DIR

    from .openai_server import OpenAIServer

    skin = get_organ("skin")
    truth_keys = ("findings", "negatives")
    truth = {obj["path_id"]: obj for _, obj in read_jsonl(DEMO_DIR / "annotations.jsonl")}
    rows = []
    for pid, obj in truth.items():
        raw = {k: v for k, v in obj.items() if k not in ("findings", "negatives")}
        raw["captions"] = {s: f"field {pid} at {s} power" for s in ("low", "mid", "high")}
        raw["slide_path"] = str(CMU_SLIDE)
        rows.append(raw)
    atomic_write_jsonl(tmp_path / "captions.jsonl", rows)

    def respond(messages, model):
        text = messages[-1]["content"]
        hit = re.search(r"field (demo-\d+) at (\w+) power", text)
        if model == "captioner" and hit:
            ann, scale = truth[hit.group(1)], hit.group(2)
            phrases = {k: [skin.features[f].phrase for f in ann[k][scale]] for k in truth_keys}
            return json.dumps({"present": phrases["findings"], "absent": phrases["negatives"]})
        return "<answer>A</answer>"

    with OpenAIServer(responder=respond) as server:
        cfg = tmp_path / "build.yaml"
        cfg.write_text(
            f"annotations: captions.jsonl\nsize: 32\n"
            f"evidence: {{llm: {{base_url: '{server.base_url}', model: captioner}}}}\n"
            "split: {train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}\n"
            f"screen: {{adversaries: [centrality], rounds: 1, flag: {{rule: any}},\n"
            f"  llm: [{{base_url: '{server.base_url}', model: guesser, samples: 2}}]}}\n"
        )
        assert main(["build", "--config", str(cfg), "--quiet"]) == 0
        models = [r.body["model"] for r in server.chat_requests]
    assert models.count("captioner") == 3 * N_DEMO and "guesser" in models
    got = {a.path_id: a for a in read_annotations(tmp_path / "work" / "annotations.jsonl")}
    for pid, obj in truth.items():
        for kind in truth_keys:
            assert {s: sorted(getattr(got[pid], kind)[s]) for s in obj[kind]} == {
                s: sorted(v) for s, v in obj[kind].items()
            }
    audit = json.loads((tmp_path / "work" / "audit.json").read_text())
    assert any("guesser" in row["adversary"] for row in audit["table"])
    assert "Leakage audit" in (tmp_path / "dataset" / "README.md").read_text()


def test_one_build_per_work_folder(tmp_path):
    import os

    from scale_vqa.pipeline import demo_config, run_pipeline

    work = tmp_path / "work"
    work.mkdir()
    (work / ".lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(ConfigError, match="in use by another build"):
        run_pipeline(demo_config(tmp_path / "out", work), quiet=True)
    assert not (work / "stages").exists()


def test_build_upsampling_is_one_error_line_with_the_build_fix(tmp_path, capsys):
    cfg = tmp_path / "build.yaml"
    cfg.write_text(
        f"annotations: {DEMO_ANNOTATIONS}\nmagnifications: [5, 10, 40]\nsize: 32\n"
        "screen: {enabled: false}\nsplit: {shared_tissue: warn}\n"
    )
    assert main(["build", "--config", str(cfg), "--quiet"]) == 1
    err = capsys.readouterr().err
    # the field-width warning (skin's low-power features in a 0.06 mm field) comes first
    warn, err = err.split("\n", 1)
    assert warn.startswith("warning: skin: 7 low-power feature(s)") and "0.06 mm wide" in warn
    assert err.count("\n") == 1 and err.startswith("error: 1 slide(s) failed during extraction")
    assert "list at most 20x under 'magnifications' in build.yaml" in err
    assert "'allow_upsample: true'" in err and "--allow-upsample" not in err
    assert "slide_path" not in err  # the slides were found: no hint about finding them
    # the fix it names works: upsampled crops, recorded as such
    cfg.write_text(cfg.read_text() + "allow_upsample: true\n")
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(tmp_path / "o")]) == 0
    line = (tmp_path / "work" / "zoom" / "zoom_paths.jsonl").read_text().splitlines()[0]
    assert [c["upsampled"] for c in json.loads(line)["crops"]] == [False, False, True]
    assert load_config(_write_cfg(tmp_path, "annotations: ann.jsonl\nallow_upsample: true\n"))
    bad = _write_cfg(tmp_path, "annotations: ann.jsonl\nallow_upsample: maybe\n")
    with pytest.raises(ConfigError, match="allow_upsample"):
        load_config(bad)


def _build_demo_annotations(tmp_path, capsys, settings: str) -> tuple[Path, str]:
    """``scale-vqa build`` of the demo annotations with the screen off and ``settings``
    (build.yaml lines); returns the output folder and stderr."""
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"annotations: {DEMO_ANNOTATIONS}\nscreen: {{enabled: false}}\n{settings}")
    out = tmp_path / "o"
    assert main(["build", "--config", str(cfg), "--quiet", "--out", str(out)]) == 0
    return out, capsys.readouterr().err


def test_build_warns_about_empty_splits_and_notes_them_in_the_card(tmp_path, capsys):
    out, err = _build_demo_annotations(
        tmp_path,
        capsys,
        "size: 32\ngeneration: {question_types: [correspondence]}\n"
        "split: {train: 0.7, validation: 0.15, test: 0.15, shared_tissue: warn}\n",
    )
    warning = next(line for line in err.splitlines() if "came out empty" in line)
    assert "split(s) validation came out empty" in warning
    assert (
        f"{N_DEMO} zoom paths from 3 patient(s)" in warning
        and "generation.split_min_chunk" in warning
    )
    assert "split ratios" in warning
    assert "Empty splits: split(s) validation came out empty" in (out / "README.md").read_text()


def test_fields_larger_than_the_slide_are_a_warning_and_a_card_limitation(tmp_path, capsys):
    """At 1x a 128 px field is 1.28 mm, wider than the 1.1 mm bundled slide: every low-power
    crop is padded with white, which the build says on stderr and the card says too."""
    out, err = _build_demo_annotations(
        tmp_path,
        capsys,
        "size: 128\ngeneration: {question_types: [correspondence], split_min_chunk: 4}\n"
        "split: {train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}\n",
    )
    line = f"{N_DEMO} of {N_DEMO} 1x crops are padded with white"
    assert f"warning: {line}" in err and "4x crops" not in err
    assert f"Padded fields: {line}" in (out / "README.md").read_text()
