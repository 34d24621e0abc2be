"""``scale-vqa extract`` and scale_vqa.extract: real slides, real files, resumable runs."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from scale_vqa.cli import main
from scale_vqa.extract import ExtractConfig, extract_slides, name_key, read_zoom_paths
from tests import slide_factory as factory

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory: pytest.TempPathFactory, cmu_slide: Path) -> Path:
    """Three good slides: the CMU SVS, its 3-level pyramid, and a 2-level copy."""
    d = tmp_path_factory.mktemp("slides")
    shutil.copy(cmu_slide, d / "a-cmu.svs")
    factory.write_cmu_pyramid(d / "b-pyramid.tif", levels=3)
    factory.write_cmu_pyramid(d / "c-pyramid2.tif", levels=2)
    return d


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


ARGS = ["--magnifications", "5,10,20", "--size", "128", "--paths-per-slide", "2", "--quiet"]


def test_cli_on_cmu(cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["extract", str(cmu_slide), "--out", str(out), *ARGS[:4], "--size", "256"])
    assert code == 0
    assert "8 zoom path(s) from 1 slide(s)" in capsys.readouterr().out  # default: 8 per slide
    rows = read_zoom_paths(out)
    assert len(rows) == 8
    assert [r["path_id"] for r in rows] == [f"CMU-1-Small-Region-{i:04d}" for i in range(8)]
    for row in rows:
        assert list(row) == ["slide_id", "path_id", "slide_path", "centre", "crops"]
        assert row["slide_id"] == "CMU-1-Small-Region" and row["slide_path"] == str(cmu_slide)
        crops = row["crops"]
        assert [c["magnification"] for c in crops] == [5.0, 10.0, 20.0]
        assert [c["mpp"] for c in crops] == pytest.approx([2.0, 1.0, 0.5], abs=0.005)
        for crop in crops:
            assert list(crop)[:4] == ["magnification", "mpp", "region", "image"]
            r = crop["region"]
            assert r["x"] >= 0 and r["y"] >= 0
            assert r["x"] + r["width"] <= 2220 and r["y"] + r["height"] <= 2967
            with Image.open(out / crop["image"]) as im:
                assert im.size == (256, 256) and im.mode == "RGB"
        for outer, inner in itertools.pairwise(crops):
            o, i = outer["region"], inner["region"]
            assert o["x"] <= i["x"] and i["x"] + i["width"] <= o["x"] + o["width"]
            assert o["y"] <= i["y"] and i["y"] + i["height"] <= o["y"] + o["height"]
    assert not (out / "failures.jsonl").exists()


def test_40x_fails_naming_native_then_upsample_allowed(
    cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = [str(cmu_slide), "--size", "64", "--paths-per-slide", "1", "--quiet"]
    mags = ["--magnifications", "10,40"]
    code = main(["extract", *base, *mags, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 1
    assert "40x" in err and "20.0x native" in err and "--allow-upsample" in err
    fails = [json.loads(x) for x in (tmp_path / "a" / "failures.jsonl").read_text().splitlines()]
    assert fails[0]["slide_id"] == "CMU-1-Small-Region" and "40x" in fails[0]["error"]
    code = main(["extract", *base, *mags, "--out", str(tmp_path / "b"), "--allow-upsample"])
    assert code == 0
    crops = read_zoom_paths(tmp_path / "b")[0]["crops"]
    assert [c["upsampled"] for c in crops] == [False, True]
    # a caller mpp makes the same scan a 40x one: no upsampling needed
    code = main(["extract", *base, *mags, "--out", str(tmp_path / "c"), "--mpp", "0.25"])
    assert code == 0
    crops = read_zoom_paths(tmp_path / "c")[0]["crops"]
    assert [c["mpp"] for c in crops] == pytest.approx([1.0, 0.25])
    assert [c["region"]["width"] for c in crops] == [256, 64]


def test_damaged_and_blank_slides_fail_others_finish(
    slide_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    factory.write_truncated(bad / "truncated.svs")
    factory.write_not_an_image(bad / "notaslide.svs")
    factory.write_empty(bad / "empty.svs")
    factory.write_blank_slide(bad / "blank.tif")
    factory.write_corrupt_tiles(bad / "corrupt.tif")
    out = tmp_path / "out"
    code = main(["extract", str(slide_dir / "a-cmu.svs"), str(bad), "--out", str(out), *ARGS])
    assert code == 1
    err = capsys.readouterr().err
    fails = {
        f["slide_id"]: f["error"]
        for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())
    }
    assert sorted(fails) == ["blank", "corrupt", "empty", "notaslide", "truncated"]
    for sid, msg in fails.items():
        assert sid in msg  # the message names the file
        assert "failed: " in err and sid in err
    assert "no tissue" in fails["blank"]
    assert "0 bytes" in fails["empty"]
    assert "Traceback" not in err
    rows = read_zoom_paths(out)
    assert {r["slide_id"] for r in rows} == {"a-cmu"} and len(rows) == 2
    assert not (out / "images" / "corrupt").exists()
    # a nonexistent argument is a failure of its own, named
    code = main(["extract", str(tmp_path / "nope.svs"), "--out", str(tmp_path / "o2"), *ARGS])
    assert code == 1 and "nope.svs" in capsys.readouterr().err


def test_same_seed_same_bytes_other_seed_differs(slide_dir: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(size=96, paths_per_slide=2, seed=7)
    slides = [slide_dir / "a-cmu.svs", slide_dir / "b-pyramid.tif"]
    extract_slides(slides, tmp_path / "x", cfg, progress=False)
    extract_slides(slides, tmp_path / "y", cfg, progress=False)
    assert tree_hashes(tmp_path / "x") == tree_hashes(tmp_path / "y")
    other = ExtractConfig(size=96, paths_per_slide=2, seed=8)
    extract_slides(slides, tmp_path / "z", other, progress=False)
    assert (tmp_path / "x" / "zoom_paths.jsonl").read_bytes() != (
        tmp_path / "z" / "zoom_paths.jsonl"
    ).read_bytes()


def test_parallel_workers_match_serial(slide_dir: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(size=64, paths_per_slide=2)
    extract_slides([slide_dir], tmp_path / "serial", cfg, progress=False)
    res = extract_slides([slide_dir], tmp_path / "par", cfg, workers=2, progress=False)
    assert sorted(res.done) == ["a-cmu", "b-pyramid", "c-pyramid2"]
    assert tree_hashes(tmp_path / "serial") == tree_hashes(tmp_path / "par")


def test_interrupted_run_resumes_to_identical_output(slide_dir: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(size=64, paths_per_slide=2)
    extract_slides([slide_dir], tmp_path / "full", cfg, progress=False)

    def stop_after_first(res: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_slides(
            [slide_dir], tmp_path / "cut", cfg, progress=False, on_slide_done=stop_after_first
        )
    assert len(list((tmp_path / "cut" / ".parts").glob("*.jsonl"))) == 1
    assert not (tmp_path / "cut" / "zoom_paths.jsonl").exists()
    # a half-written slide: stray image and temp file from a crash
    stray = tmp_path / "cut" / "images" / name_key("b-pyramid")
    stray.mkdir(parents=True)
    (stray / "half.png").write_bytes(b"\x89PNG")
    (tmp_path / "cut" / ".zoom_paths.jsonl.abc.tmp").write_text("x")
    res = extract_slides([slide_dir], tmp_path / "cut", cfg, progress=False)
    assert res.resumed == ["a-cmu"] and sorted(res.done) == ["b-pyramid", "c-pyramid2"]
    assert tree_hashes(tmp_path / "cut") == tree_hashes(tmp_path / "full")


def test_rerun_with_other_settings_is_refused(
    cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = str(tmp_path / "o")
    assert main(["extract", str(cmu_slide), "--out", out, *ARGS]) == 0
    assert main(["extract", str(cmu_slide), "--out", out, *ARGS]) == 0  # resumes, no work
    assert main(["extract", str(cmu_slide), "--out", out, *ARGS, "--seed", "3"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_folder_of_other_files_is_refused_and_left_as_it_was(
    cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A user folder that happens to hold images/<slide>/ is never cleared: extraction
    writes only into a new or empty folder, or one it made itself."""
    mine = tmp_path / "mine"
    keep = mine / "images" / "CMU-1-Small-Region" / "my-notes.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("my own file\n")
    assert main(["extract", str(cmu_slide), "--out", str(mine), *ARGS]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: output folder") and "no extraction wrote" in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == [
        "images",
        "images/CMU-1-Small-Region",
        "images/CMU-1-Small-Region/my-notes.txt",
    ]
    assert keep.read_text() == "my own file\n"
    (tmp_path / "f").write_text("x")
    assert main(["extract", str(cmu_slide), "--out", str(tmp_path / "f"), *ARGS]) == 1
    assert "is a file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["extract", str(cmu_slide), "--out", str(empty), *ARGS]) == 0


def test_annotations_give_centres(slide_dir: Path, tmp_path: Path) -> None:
    ann = tmp_path / "ann.jsonl"
    lines = [
        {"path_id": "p-1", "slide_id": "a-cmu", "centre": {"x": 1100, "y": 1500}},
        {"path_id": "p-2", "slide_id": "a-cmu", "centre": {"x": 5, "y": 2960}},
        {"path_id": "p-3", "slide_id": "a-cmu", "centre": None},
        {
            "path_id": "p-4",
            "slide_id": "renamed",
            "slide_path": str(slide_dir / "b-pyramid.tif"),
            "centre": {"x": 1000, "y": 1000},
        },
        {"path_id": "p-5", "slide_id": "ghost", "centre": None},
    ]
    ann.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    code = main(
        [
            "extract",
            str(slide_dir / "a-cmu.svs"),
            "--out",
            str(out),
            "--annotations",
            str(ann),
            *ARGS,
        ]
    )
    assert code == 1  # the ghost slide cannot be found
    fails = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["slide_id"] for f in fails] == ["ghost"] and "ghost" in fails[0]["error"]
    rows = {r["path_id"]: r for r in read_zoom_paths(out)}
    assert sorted(rows) == ["p-1", "p-2", "p-3", "p-4"]
    # exactly at the given centre: every field centred on it
    for crop in rows["p-1"]["crops"]:
        r = crop["region"]
        assert abs(r["x"] + r["width"] / 2 - 1100) <= 1
        assert abs(r["y"] + r["height"] / 2 - 1500) <= 1
    # at the edge: shifted inside, centre recorded as given
    assert rows["p-2"]["centre"] == {"x": 5, "y": 2960}
    assert all(c["region"]["x"] == 0 for c in rows["p-2"]["crops"])
    assert rows["p-3"]["centre"] is not None
    assert rows["p-4"]["slide_id"] == "renamed"
    assert rows["p-4"]["slide_path"] == str(slide_dir / "b-pyramid.tif")
    # the same annotations given in memory (as the pipeline may) give the same paths
    cfg = ExtractConfig(size=128, paths_per_slide=2)
    res = extract_slides(
        [slide_dir / "a-cmu.svs"], tmp_path / "mem", cfg, annotations=lines, progress=False
    )
    assert [f["slide_id"] for f in res.failures] == ["ghost"]
    assert (tmp_path / "mem" / "zoom_paths.jsonl").read_bytes() == (
        out / "zoom_paths.jsonl"
    ).read_bytes()


def test_killed_process_resumes_to_identical_output(slide_dir: Path, tmp_path: Path) -> None:
    """A real crash: SIGKILL the command once a slide is done, then rerun it."""
    cmd = ["extract", str(slide_dir), *ARGS[:4], "--size", "192", "--paths-per-slide", "4"]
    assert main([*cmd, "--out", str(tmp_path / "full"), "--quiet"]) == 0
    out = tmp_path / "cut"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scale_vqa.cli", *cmd, "--out", str(out), "--quiet"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if list((out / ".parts").glob("*.jsonl")):
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    print("KILLED", killed, len(list((out / ".parts").glob("*.jsonl"))))
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if killed:
        assert not (out / "zoom_paths.jsonl").exists()
    assert main([*cmd, "--out", str(out), "--quiet"]) == 0
    assert tree_hashes(out) == tree_hashes(tmp_path / "full")


def test_error_line_names_the_first_reason_and_failed_lines_are_distinct(
    cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "z"
    code = main(["extract", "nofile.svs", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"error: 1 slide(s) failed; first: nofile.svs: no such file; check the path; "
        f"all in {out / 'failures.jsonl'}"
    )
    # two missing slides (one named on two lines): one ``failed:`` line each
    ann = tmp_path / "ann.jsonl"
    ann.write_text(
        "".join(
            json.dumps({"slide_id": sid, "path_id": f"p{i}", "centre": None, "slide_path": "x.svs"})
            + "\n"
            for i, sid in enumerate(["s1", "s1", "s2"])
        )
    )
    code = main(["extract", "--annotations", str(ann), "--out", str(tmp_path / "y"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("failed: ") == 2
    assert err.strip().splitlines()[-1].startswith("error: 2 slide(s) failed; first: ")
    # bad magnifications and a tissue shortfall: the reason is on the error line
    base = [str(cmu_slide), "--paths-per-slide", "1", "--quiet"]
    code = main(["extract", *base, "--magnifications", "5,10,40", "--out", str(tmp_path / "m")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "first: " in last and "40x needs 0.25 um/px" in last
    code = main(["extract", *base, "--size", "2048", "--out", str(tmp_path / "t")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "first: " in last and "no zoom path has >= 50% tissue" in last


def test_a_field_larger_than_the_slide_is_padded_and_said(
    cmu_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "z"
    args = ["--magnifications", "1,4,20", "--paths-per-slide", "2", "--min-tissue", "0.1"]
    assert main(["extract", str(cmu_slide), "--out", str(out), *args, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: 2 of 2 1x crops are padded with white" in err
    assert "e.g. 5, 10, 20" in err
    assert all(r["crops"][0]["padded"] for r in read_zoom_paths(out))
