"""Crop encoding, collision-free crop names, and extraction split over processes then merged."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scale_vqa.cli import main
from scale_vqa.encoding import ImageEncoding, psnr
from scale_vqa.extract import ExtractConfig, extract_slides, read_encoding, read_zoom_paths
from tests import slide_factory as factory

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--magnifications", "5,10,20", "--size", "64", "--paths-per-slide", "2", "--quiet"]


@pytest.fixture(scope="module")
def five_slides(tmp_path_factory: pytest.TempPathFactory, cmu_slide: Path) -> Path:
    """Five slides (so that four shards own 2, 1, 1, 1 of them)."""
    d = tmp_path_factory.mktemp("five")
    shutil.copy(cmu_slide, d / "a-cmu.svs")
    shutil.copy(cmu_slide, d / "d-cmu.svs")
    factory.write_cmu_pyramid(d / "b-pyramid.tif", levels=3)
    factory.write_cmu_pyramid(d / "c-pyramid2.tif", levels=2)
    factory.write_cmu_pyramid(d / "e-pyramid.tif", levels=3)
    return d


def tree(root: Path, skip_manifests: bool = False) -> dict[str, str]:
    """sha256 per file under ``root`` (optionally without the shard manifests)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (skip_manifests and p.name.startswith("shard-"))
    }


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def test_four_shard_processes_then_merge_equal_one_process(
    five_slides: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    one = tmp_path / "one"
    assert main(["extract", str(five_slides), "--out", str(one), *ARGS]) == 0
    shared = tmp_path / "shared"
    cmd = [sys.executable, "-m", "scale_vqa.cli", "extract", str(five_slides), "--out"]
    procs = [
        subprocess.Popen(
            [*cmd, str(shared), *ARGS, "--shard", f"{k}/4"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(1, 5)
    ]  # all four at once, into one folder
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert "shard 1/4: 4 zoom path(s) from 2 slide(s)" in outs[0][0]
    assert not (shared / "zoom_paths.jsonl").exists()  # only the merge writes it
    manifests = [
        json.loads((shared / ".parts" / f"shard-{k}-of-4.json").read_text()) for k in (1, 2, 3, 4)
    ]
    assert [m["slides"] for m in manifests] == [
        ["a-cmu", "e-pyramid"],
        ["b-pyramid"],
        ["c-pyramid2"],
        ["d-cmu"],
    ]
    capsys.readouterr()
    assert main(["extract", "--merge", str(shared)]) == 0
    assert "10 zoom path(s) from 5 slide(s)" in capsys.readouterr().out
    assert tree(shared, skip_manifests=True) == tree(one)
    assert len(read_zoom_paths(shared)) == 10


def test_merge_refuses_a_missing_or_foreign_shard(
    five_slides: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "o"
    for k in (1, 3, 4):
        assert (
            main(["extract", str(five_slides), "--out", str(out), *ARGS, "--shard", f"{k}/4"]) == 0
        )
    capsys.readouterr()
    assert main(["extract", "--merge", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "shard(s) 2/4 have not finished" in err
    assert "Traceback" not in err
    # a shard of another splitting in the same folder is refused too
    assert main(["extract", str(five_slides), "--out", str(out), *ARGS, "--shard", "1/3"]) == 0
    capsys.readouterr()
    assert main(["extract", "--merge", str(out)]) != 0
    assert "different splittings" in capsys.readouterr().err
    for bad in ("0/4", "5/4", "x", "2/0"):
        assert main(["extract", str(five_slides), "--out", str(out), *ARGS, "--shard", bad]) != 0
        assert "is not K/N" in capsys.readouterr().err


def test_ids_that_share_a_safe_name_write_different_crops(cmu_slide: Path, tmp_path: Path) -> None:
    """Ids differing only in non-ASCII characters, or by '/' vs '_', never share a file."""
    lines = [
        {"path_id": "病例一", "slide_id": "病例一", "centre": {"x": 700, "y": 900}},
        {"path_id": "病例二", "slide_id": "病例二", "centre": {"x": 1500, "y": 2000}},
        {"path_id": "a/b", "slide_id": "s", "centre": {"x": 800, "y": 1200}},
        {"path_id": "a_b", "slide_id": "s", "centre": {"x": 1400, "y": 1800}},
    ]
    for line in lines:
        line["slide_path"] = str(cmu_slide)
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    out = tmp_path / "out"
    assert main(["extract", "--out", str(out), "--annotations", str(ann), *ARGS]) == 0
    rows = {r["path_id"]: r for r in read_zoom_paths(out)}
    assert sorted(rows) == sorted(x["path_id"] for x in lines)
    names = [c["image"] for r in rows.values() for c in r["crops"]]
    assert len(set(names)) == len(names) == 12  # unique across the run
    assert all(n.isascii() and n.endswith(".jpg") for n in names)
    for a, b in (("病例一", "病例二"), ("a/b", "a_b")):
        for ca, cb in zip(rows[a]["crops"], rows[b]["crops"]):
            assert ca["region"] != cb["region"]
            assert (out / ca["image"]).read_bytes() != (out / cb["image"]).read_bytes()
    assert rows["a/b"]["crops"][0]["image"].startswith("images/s-")
    assert "/a_b-" in rows["a/b"]["crops"][0]["image"]  # a readable prefix is kept


@pytest.mark.parametrize(
    ("fmt", "quality", "magic"),
    [("jpeg", 90, b"\xff\xd8\xff"), ("png", 90, b"\x89PNG"), ("webp", 80, b"RIFF")],
)
def test_image_format_setting(
    cmu_slide: Path, tmp_path: Path, fmt: str, quality: int, magic: bytes
) -> None:
    cfg = ExtractConfig(size=96, paths_per_slide=2, image_format=fmt, image_quality=quality)
    extract_slides([cmu_slide], tmp_path, cfg, progress=False)
    enc = read_encoding(tmp_path)
    assert enc["format"] == fmt and enc["quality"] == quality
    assert enc["psnr"]["n"] == 3  # every crop of one path in four: path 0 of 2
    for row in read_zoom_paths(tmp_path):
        for crop in row["crops"]:
            data = (tmp_path / crop["image"]).read_bytes()
            assert data.startswith(magic)
            with Image.open(io.BytesIO(data)) as im:
                assert im.size == (96, 96) and im.mode == "RGB"
    if fmt == "png":
        assert enc["psnr"]["mean_db"] == "lossless"
    else:
        assert 25 < enc["psnr"]["min_db"] <= enc["psnr"]["mean_db"] < 60


def test_jpeg_444_psnr_and_bad_settings() -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(
        (np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3) + rng.normal(0, 8, (64, 64, 3)))
        .clip(0, 255)
        .astype(np.uint8)
    )
    jpeg = ImageEncoding().encode(img)
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and im.layer[0][1:3] == (1, 1)  # no chroma subsampling
    assert psnr(img, ImageEncoding("png").encode(img)) == float("inf")
    assert 30 < psnr(img, jpeg) < 60
    from curation.errors import ConfigError

    with pytest.raises(ConfigError, match="use one of jpeg, png, webp"):
        ImageEncoding("tiff")
    with pytest.raises(ConfigError, match="from 1 to 100"):
        ImageEncoding("jpeg", 0)
