"""Hostile and careless inputs: the user's files survive, every refusal is one clear line.

One test (or a parametrised family) per row of the safety table of issue 10: output
folders that are not ours, overlapping folders, bounds (crop size, field size,
magnifications, non-finite numbers, split ratios), read-only folders, damaged builds,
binary organ files, malformed endpoint URLs, caches beside the input, stale temporaries,
vocabularies that shadow a bundled organ, Hub ids for ``evaluate --model``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from curation.records import write_questions
from scale_vqa.build import write_dataset
from scale_vqa.cli import main
from scale_vqa.outdir import MARKER, OWNER
from tests import mcq_factory as F
from tests.conftest import CMU_SLIDE, REPO
from tests.test_build import make_rows

DEMO = REPO / "scale_vqa" / "data" / "demo"


def refused(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The message of a refused command: one ``error:`` line (a list of problems may follow
    it, indented), no traceback; each of ``needles`` is in it."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    message = err[err.index("error: ") :]
    for needle in needles:
        assert needle in message, message
    return message


def noise(n: int) -> bytes:
    """``n`` seeded random bytes: hostile input that is the same on every run."""
    return random.Random(f"test-safety:{n}").randbytes(n)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder: build.yaml, annotations, the slide and a notes file."""
    proj = tmp_path / "project"
    proj.mkdir()
    shutil.copy(CMU_SLIDE, proj / CMU_SLIDE.name)
    lines = []
    for line in (DEMO / "annotations.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        obj["slide_path"] = CMU_SLIDE.name
        lines.append(json.dumps(obj))
    (proj / "annotations.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (proj / "notes.txt").write_text("three weeks of annotation notes\n", encoding="utf-8")
    write_config(proj)
    return proj


def write_config(proj: Path, **keys: str) -> Path:
    """build.yaml of ``proj``; ``keys`` replace or add top-level YAML lines."""
    base = {
        "slides": f"[{CMU_SLIDE.name}]",
        "annotations": "annotations.jsonl",
        "magnifications": "[5, 10, 20]",
        "size": "224",
        "generation": "{split_min_chunk: 4}",
        "split": "{train: 0.34, validation: 0.33, test: 0.33, shared_tissue: warn}",
        "screen": "{embeddings: false, rounds: 1}",
        "output": "dataset",
        "work": "work",
    }
    base.update(keys)
    path = proj / "build.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in base.items()), encoding="utf-8")
    return path


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for this process: chmod when not root, else a read-only bind mount."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    ok = (
        subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode == 0
        and subprocess.run(
            ["mount", "-o", "remount,ro,bind", folder], capture_output=True
        ).returncode
        == 0
    )
    try:
        if not ok:
            pytest.skip("cannot make a read-only folder here (root, and mount is refused)")
        try:
            (folder / ".probe").write_text("x")
        except OSError:
            pass
        else:
            pytest.skip("the read-only mount still accepts writes")
        yield
    finally:
        subprocess.run(["umount", folder], capture_output=True)


# ------------------------------------------------------------ output folders


def test_output_dot_next_to_build_yaml_deletes_nothing(project, capsys):
    before = snapshot(project)
    for output in (".", "..", str(project)):
        config = write_config(project, output=output, work="work")
        for extra in ([], ["--overwrite"]):
            assert main(["build", "--config", str(config), "--quiet", *extra]) == 1
            refused(capsys, "holds the config", "build.yaml")
    write_config(project)
    assert {k: v for k, v in snapshot(project).items() if k != "build.yaml"} == {
        k: v for k, v in before.items() if k != "build.yaml"
    }
    assert not (project / "work").exists()


def test_user_folders_are_refused_by_demo_build_and_import_release(tmp_path, project, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_bytes(b"years of work")
    release = tmp_path / "val.json"
    from tests.release_factory import make_release, write_release

    write_release(release, make_release(8))
    commands = [
        ["demo", "--out", str(mine), "--quiet"],
        ["build", "--config", str(project / "build.yaml"), "--out", str(mine), "--quiet"],
        ["import-release", str(release), "--out", str(mine)],
    ]
    for argv in commands:
        assert main(argv) == 1
        refused(capsys, str(mine), "--overwrite")
        assert (mine / "thesis.docx").read_bytes() == b"years of work"
    # a folder scale-vqa wrote is replaced without asking; --overwrite replaces a foreign one
    assert main(["import-release", str(release), "--out", str(mine), "--overwrite"]) == 0
    assert (mine / MARKER).is_file() and not (mine / "thesis.docx").exists()
    capsys.readouterr()
    assert main(["import-release", str(release), "--out", str(mine)]) == 0
    # a file where the folder should go is refused, not deleted
    afile = tmp_path / "file"
    afile.write_text("keep")
    assert main(["import-release", str(release), "--out", str(afile), "--overwrite"]) == 1
    refused(capsys, "is a file")
    assert afile.read_text() == "keep"


def test_overwrite_never_replaces_the_current_or_home_folder(tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "home" / "project" / "sub"
    cwd.mkdir(parents=True)
    (cwd / "notes.txt").write_text("keep")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    for out in (".", "..", str(home), str(tmp_path)):
        assert main(["demo", "--out", out, "--overwrite", "--quiet"]) == 1
        refused(capsys, "never replaced, even with --overwrite")
    assert (cwd / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in home.rglob("*")) == ["notes.txt", "project", "sub"]


def test_write_dataset_refuses_a_folder_it_did_not_write(tmp_path):
    from curation.errors import ConfigError

    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        write_dataset(out, {"train": make_rows(2, "train")}, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary left behind


def test_import_release_refuses_an_output_that_holds_its_images(tmp_path, capsys):
    from tests.release_factory import make_release, write_images, write_release

    root = tmp_path / "release"
    records = make_release(4)
    write_images(root, records)
    release = write_release(root / "val.json", records)
    before = snapshot(root)
    assert main(["import-release", str(release), "--out", str(root), "--images", str(root)]) == 1
    refused(capsys, "holds the release file")
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("output", "work", "needle"),
    [
        ("w", "w", "the same folder"),
        ("w/ds", "w", "lies inside the work folder"),
        ("ds", "ds/w", "lies inside the output folder"),
        ("out", ".", "holds the config"),
    ],
)
def test_output_and_work_must_be_apart(project, capsys, output, work, needle):
    config = write_config(project, output=output, work=work)
    assert main(["build", "--config", str(config), "--quiet"]) == 1
    refused(capsys, needle)
    assert not (project / "w" / "stages").exists()


def test_a_work_folder_of_other_files_is_refused(project, tmp_path, capsys):
    work = tmp_path / "mywork"
    work.mkdir()
    (work / "annotations.jsonl").write_text("my own file\n")
    args = ["build", "--config", str(project / "build.yaml"), "--work", str(work), "--quiet"]
    assert main(args) == 1
    refused(capsys, "work folder", "--overwrite")
    assert (work / "annotations.jsonl").read_text() == "my own file\n"


def test_read_only_output_is_refused_before_any_stage(project, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    config = write_config(project, output=str(locked / "ds"))
    with read_only(locked):
        assert main(["build", "--config", str(config), "--quiet"]) == 1
    refused(capsys, "not writable", str(locked))
    assert not (project / "work" / "stages").exists()  # no stage ran


def test_stale_temporaries_are_removed_live_and_foreign_ones_kept(tmp_path):
    out = tmp_path / "ds"
    # a writer killed with SIGKILL in the middle of the shards leaves its temporary
    code = textwrap.dedent(
        f"""
        import os, signal
        from scale_vqa.build import write_dataset
        from tests.test_build import make_rows
        kill = lambda _s: os.kill(os.getpid(), signal.SIGKILL)
        write_dataset({str(out)!r}, {{"train": make_rows(6, "train")}}, max_shard_bytes=1,
                      on_shard=kill, progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    (stale,) = tmp_path.glob(".ds.*.tmp")
    assert (stale / MARKER).is_file()
    # a concurrent writer that still runs, and a hidden folder of the user's
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / ".ds.live.tmp"
        live.mkdir()
        (live / MARKER).write_text("x")
        (live / OWNER).write_text(f"{os.uname().nodename} {sleeper.pid}\n")
        foreign = tmp_path / ".ds.mine.tmp"
        foreign.mkdir()
        (foreign / "keep.txt").write_text("mine")
        write_dataset(out, {"train": make_rows(3, "train")}, progress=False)
        assert not stale.exists()
        assert live.is_dir() and (foreign / "keep.txt").read_text() == "mine"
        assert (out / MARKER).is_file() and not (out / OWNER).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------ bounds


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("size", "100000", "16..4096"),
        ("size", "-5", "whole number >= 16"),
        ("size", "1e9", "whole number"),
        ("magnifications", "[10]", "exactly 3"),
        ("magnifications", "[5, 20]", "exactly 3"),
        ("magnifications", "[2.5, 5, 10, 20]", "exactly 3"),
        ("magnifications", "[5, 10, .nan]", "positive objective powers"),
        ("magnifications", "[5, 10, .inf]", "positive objective powers"),
        ("split", "{train: .nan, validation: 0.5, test: 0.5}", "positive finite"),
        ("split", "{train: 0.7, validation: 0.1, test: 0.1}", "sum to 1"),
        ("seed", "-1", ">= 0"),
        ("shard_size_mb", ".inf", "positive finite"),
    ],
)
def test_build_bounds_are_checked_before_any_work(project, capsys, key, value, needle):
    config = write_config(project, **{key: value})
    assert main(["build", "--config", str(config), "--quiet"]) == 1
    refused(capsys, needle)
    assert not (project / "work").exists()


def test_a_field_too_large_for_memory_is_refused_before_it_is_read(cmu_slide):
    from curation.errors import ConfigError
    from scale_vqa.slides import open_slide
    from scale_vqa.zoom import extract_zoom_path

    with open_slide(cmu_slide) as s, pytest.raises(ConfigError, match="Mpx from pyramid level"):
        extract_zoom_path(s, (1100, 1500), (5, 10, 20), 4096)  # 5x field: 16k px square


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "9" * 401, "-5", "true"])
def test_non_finite_or_huge_centres_are_one_error_line(project, tmp_path, capsys, value):
    ann = project / "annotations.jsonl"
    lines = ann.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace('"centre": {"x": ', f'"centre": {{"x": {value}, "_x": ', 1)
    ann.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["build", "--config", str(project / "build.yaml"), "--quiet"]) == 1
    refused(capsys, "annotations.jsonl:4", "centre")
    out = tmp_path / "zoom"
    assert main(["extract", "--annotations", str(ann), "--out", str(out), "--quiet"]) == 1
    refused(capsys, "annotations.jsonl:4", "centre")


@pytest.mark.parametrize("ratios", ["nan,0.5,0.5", "inf,-inf,1", "0.5,0.5", "1,1,-1"])
def test_split_ratios_must_be_finite_and_sum_to_one(tmp_path, capsys, ratios):
    ann = DEMO / "annotations.jsonl"
    argv = ["generate", str(ann), "--out", str(tmp_path / "q.jsonl"), "--split-ratios", ratios]
    assert main(argv) == 1
    refused(capsys, "ratios")
    assert not (tmp_path / "q.jsonl").exists()


def test_one_set_of_defaults():
    from scale_vqa.cli import build_parser
    from scale_vqa.config import BuildConfig, SplitConfig
    from scale_vqa.extract import ExtractConfig

    parser = build_parser()
    gen = parser.parse_args(["generate", "a.jsonl", "--out", "q.jsonl"])
    sp = SplitConfig()
    assert gen.split_ratios == f"{sp.train:g},{sp.validation:g},{sp.test:g}" == "0.7,0.15,0.15"
    ext = parser.parse_args(["extract", "x.svs", "--out", "z"])
    assert ext.size == ExtractConfig().size == BuildConfig(annotations=[]).size == 224


def test_extract_with_its_defaults_works_on_the_bundled_slide(cmu_slide, tmp_path, capsys):
    assert main(["extract", str(cmu_slide), "--out", str(tmp_path / "z"), "--quiet"]) == 0
    lines = (tmp_path / "z" / "zoom_paths.jsonl").read_text().splitlines()
    assert len(lines) == 8
    assert main(["extract", str(cmu_slide), "--out", str(tmp_path / "y"), "--size", "0"]) == 1
    refused(capsys, "16..4096")


# ---------------------------------------------------- one error line, never a traceback


@pytest.fixture
def built(tmp_path) -> Path:
    out = tmp_path / "ds"
    write_dataset(
        out, {"train": make_rows(4, "train"), "test": make_rows(4, "test")}, progress=False
    )
    return out


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "missing", "card", "yaml"])
def test_audit_and_evaluate_on_a_damaged_build(built, capsys, damage):
    shard = next((built / "data").glob("train-*.parquet"))
    if damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:500])
    elif damage == "random":
        shard.write_bytes(noise(4000))
    elif damage == "empty":
        shard.write_bytes(b"")
    elif damage == "missing":
        shard.unlink()
    elif damage == "card":
        (built / "README.md").write_bytes(noise(300))
    else:
        (built / "README.md").write_text("---\nconfigs: [\n---\n")
    assert main(["audit", str(built), "--no-embeddings", "--adversaries", "longest"]) == 1
    refused(capsys, str(built))
    assert main(["evaluate", str(built), "--model", str(built), "--split", "test"]) == 1
    refused(capsys, str(built))


def test_organs_validate_on_a_binary_file_or_a_folder(tmp_path, capsys):
    binary = tmp_path / "organ.yaml"
    binary.write_bytes(bytes(range(256)) * 8)
    assert main(["organs", "validate", str(binary)]) == 1
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert main(["organs", "validate", str(tmp_path)]) == 1
    refused(capsys, "no such organ file")


@pytest.mark.parametrize(
    "url", ["http://[::1/v1", "http://[zz::1]:80/v1", "http://host:99999/v1", "http:///v1"]
)
def test_audit_llm_with_a_malformed_url(tmp_path, capsys, url):
    src = tmp_path / "q.jsonl"
    write_questions(src, F.release_style(20, 4))
    argv = ["audit", str(src), "--no-embeddings", "--llm", f"base_url={url},model=m"]
    assert main(argv) == 1
    refused(capsys, "base_url", "http(s) URL")


def test_audit_llm_with_its_input_in_a_read_only_folder(tmp_path, capsys, monkeypatch):
    from tests.openai_server import OpenAIServer

    data = tmp_path / "data"
    data.mkdir()
    write_questions(data / "q.jsonl", F.release_style(24, 4))
    cache = tmp_path / "cache-home"
    monkeypatch.setenv("SCALE_VQA_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    with OpenAIServer() as server, read_only(data):
        spec = f"base_url={server.base_url},model=judge,backoff=0"
        argv = ["audit", str(data / "q.jsonl"), "--no-embeddings", "--adversaries", "longest"]
        assert main([*argv, "--llm", spec, "--llm-variants", "choices"]) == 0
    assert list((cache / "llm").rglob("*.json")), "the answers are cached in the one place"
    assert not list(tmp_path.rglob(".scale_vqa_cache"))
    capsys.readouterr()
    # a read-only place for the cache itself is one clear line
    locked = tmp_path / "locked"
    locked.mkdir()
    with OpenAIServer() as server, read_only(locked):
        spec = f"base_url={server.base_url},model=judge"
        argv = ["audit", str(data / "q.jsonl"), "--no-embeddings", "--llm", spec]
        assert main([*argv, "--cache-dir", str(locked / "c")]) == 1
    refused(capsys, "cache folder", "--cache-dir")


def test_evidence_cache_is_not_written_beside_the_input(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "in" / "raw.jsonl"
    raw.parent.mkdir()
    shutil.copy(DEMO / "annotations.jsonl", raw)
    monkeypatch.setenv("SCALE_VQA_CACHE_DIR", str(tmp_path / "cache-home"))
    monkeypatch.chdir(raw.parent)
    assert main(["evidence", str(raw), "--out", str(tmp_path / "ann.jsonl")]) == 0
    assert not list(tmp_path.rglob(".scale_vqa_cache"))
    assert (tmp_path / "cache-home" / "embeddings").is_dir()


def test_a_vocabulary_named_like_a_bundled_organ_must_say_it_overrides(tmp_path, capsys):
    from curation.organs import BUILTIN_DIR

    mine = tmp_path / "organs"
    mine.mkdir()
    text = (BUILTIN_DIR / "skin.yaml").read_text(encoding="utf-8")
    (mine / "skin.yaml").write_text(text, encoding="utf-8")
    assert main(["organs", "list", "--organs-dir", str(mine)]) == 1
    refused(capsys, "skin.yaml", "bundled", "overrides: skin")
    ann = DEMO / "annotations.jsonl"
    q = tmp_path / "q.jsonl"
    assert main(["generate", str(ann), "--out", str(q), "--organs-dir", str(mine)]) == 1
    refused(capsys, "overrides: skin")
    for declared in ("overrides: skin", "overrides: true"):
        (mine / "skin.yaml").write_text(text + f"\n{declared}\n", encoding="utf-8")
        assert main(["organs", "list", "--organs-dir", str(mine)]) == 0
        assert str(mine / "skin.yaml") in capsys.readouterr().out
    (mine / "skin.yaml").write_text(text + "\noverrides: lung\n", encoding="utf-8")
    assert main(["organs", "validate", str(mine / "skin.yaml")]) == 1
    assert "overrides: must be the organ's own name" in capsys.readouterr().err


def test_evaluate_model_takes_a_hub_id_and_says_when_it_is_not_found(built, tmp_path, capsys):
    argv = ["evaluate", str(built), "--out", str(tmp_path / "e"), "--model"]
    assert main([*argv, "scale-vqa-tests/no-such-model"]) == 1
    line = refused(capsys, "scale-vqa-tests/no-such-model")
    assert "not found locally" in line and "Hub" in line and "no such model folder" not in line
    assert main([*argv, str(tmp_path / "no-such-folder")]) == 1
    refused(capsys, "no such model folder")


def test_os_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "q.jsonl"
    write_questions(src, F.release_style(20, 4))
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        argv = ["audit", str(src), "--no-embeddings", "--adversaries", "longest"]
        assert main([*argv, "--json", str(locked / "r.json")]) == 1
    refused(capsys, str(locked))


# ------------------------------------------------------ beyond the table


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (noise(64).replace(b"\n", b"") + b"\xff\n", "not UTF-8 text"),  # one line
        (b'{"a": ' + b"9" * 5000 + b"}\n", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "not valid JSON"),
    ],
)
def test_hostile_jsonl_is_one_error_line(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    for argv in (
        ["generate", str(bad), "--out", str(tmp_path / "q.jsonl")],
        ["audit", str(bad), "--no-embeddings"],
        ["evidence", str(bad), "--out", str(tmp_path / "e.jsonl")],
    ):
        assert main(argv) == 1
        refused(capsys, "bad.jsonl:1", needle)


def test_a_byte_order_mark_is_tolerated(tmp_path):
    from curation.io import read_jsonl

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert [obj for _, obj in read_jsonl(path)] == [{"a": 1}, {"b": 2}]


def test_binary_config_and_folders_where_files_belong(project, tmp_path, capsys):
    (project / "build.yaml").write_bytes(noise(200) + b"\xff")
    assert main(["build", "--config", str(project / "build.yaml")]) == 1
    refused(capsys, "not a UTF-8 text file")
    assert main(["generate", str(tmp_path), "--out", str(tmp_path / "q.jsonl")]) == 1
    refused(capsys, "is a folder")


def test_counts_that_would_never_finish_are_refused(tmp_path, capsys, cmu_slide):
    assert main(["simulate", "--out", str(tmp_path / "s.jsonl"), "--paths", "9" * 30]) == 1
    refused(capsys, "1..1,000,000")
    argv = ["extract", str(cmu_slide), "--out", str(tmp_path / "z"), "--paths-per-slide"]
    assert main([*argv, "100000000000"]) == 1
    refused(capsys, "0..10000")


def test_a_huge_prevalence_is_a_validation_problem(tmp_path, capsys):
    text = (REPO / "examples" / "organs" / "tongue.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "tongue.yaml"
    bad.write_text(text.replace("prevalence: 0.04", "prevalence: " + "9" * 401, 1))
    assert main(["organs", "validate", str(bad)]) == 1
    assert "is not a probability" in capsys.readouterr().err
