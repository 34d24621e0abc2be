"""`scale-vqa demo` end to end: real slide, real Parquet, datasets.load_dataset."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from scale_vqa.cli import main
from scale_vqa.pipeline import STAGES, demo_config, run_pipeline


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """One demo build through the CLI; returns (output folder, stdout)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "ds"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out), "--quiet"])
    assert code == 0
    return out, buf.getvalue()


def test_demo_prints_the_load_line_and_loads(demo):
    import datasets
    from PIL import Image

    out, stdout = demo
    line = f'python -c "import datasets; print(datasets.load_dataset({str(out)!r}))"'
    assert line in stdout
    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train", "validation", "test"}
    groups: dict[str, tuple[set[str], set[str]]] = {}
    for split, d in ds.items():
        assert len(d) > 0
        slides, patients = set(), set()
        for row in d:
            imgs, mags, mpp, regs = row["images"], row["magnifications"], row["mpp"], row["regions"]
            assert len(imgs) == len(mags) == len(mpp) == len(regs) == 3
            assert all(isinstance(i, Image.Image) and i.size == (224, 224) for i in imgs)
            assert mags == sorted(mags) and mags == [5.0, 10.0, 20.0]
            assert mpp == sorted(mpp, reverse=True) and mpp[-1] == pytest.approx(0.499)
            for outer, inner in itertools.pairwise(regs):  # each field inside the lower-power one
                assert outer["x"] <= inner["x"] and outer["y"] <= inner["y"]
                assert inner["x"] + inner["width"] <= outer["x"] + outer["width"]
                assert inner["y"] + inner["height"] <= outer["y"] + outer["height"]
            assert row["answer"] in "ABCD" and len(row["options"]) == 4
            assert row["organ"] == "skin" and row["set_id"]
            slides.add(row["slide_id"])
            patients.add(row["patient_id"])
        groups[split] = (slides, patients)
    # every split holds whole complementary sets of the two types the demo's honest
    # annotations allow (README: no diagnosis; every placed finding lies in the epidermis
    # but the dermal infiltrate; no two findings alternate across paths as C and D need)
    for split, d in ds.items():
        sets: dict[str, list[tuple[str, str]]] = {}
        for sid, qtype, ans in zip(d["set_id"], d["question_type"], d["answer"], strict=True):
            sets.setdefault(sid, []).append((qtype, ans))
        types = {members[0][0] for members in sets.values()}
        assert types == {"correspondence", "corroboration"}, (split, types)
        for sid, members in sets.items():
            assert len(members) == 4 and len({t for t, _ in members}) == 1, (split, sid)
            assert sorted(a for _, a in members) == list("ABCD"), (split, sid)
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not groups[a][1] & groups[b][1], "a patient straddles two splits"
    # one physical slide, one slide_id: its fields overlap across splits, and the card says so
    assert set().union(*(g[0] for g in groups.values())) == {"CMU-1-Small-Region"}
    card = (out / "README.md").read_text()
    for needle in ("configs:", "## Leakage audit", "| adversary |", "## Curation settings"):
        assert needle in card
    assert "not expert reviewed" in card and "ONE physical slide" in card
    shared = next(x for x in card.splitlines() if "Shared tissue across splits" in x)
    assert "8 of 8 test rows lie on zoom paths whose fields overlap" in shared


def test_demo_same_seed_same_bytes_and_resume_after_interrupted_build(demo, tmp_path):
    out1, _ = demo
    out2, work2 = tmp_path / "ds", tmp_path / "work"
    res = run_pipeline(demo_config(out2, work2), quiet=True)
    assert [r.name for r in res.reports] == list(STAGES)
    want = _digests(out1)
    assert any(k.endswith(".parquet") for k in want)
    assert _digests(out2) == want

    # a rerun is a no-op
    res = run_pipeline(demo_config(out2, work2), quiet=True)
    assert all(r.skipped for r in res.reports)

    # interrupted after the first shard of the build stage: nothing half-written is left
    import shutil

    shutil.rmtree(out2)

    def interrupt(_shard):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(demo_config(out2, work2), quiet=True, on_shard=interrupt)
    assert not out2.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
    assert (work2 / "stages" / "build.running").exists()
    res = run_pipeline(demo_config(out2, work2), quiet=True)
    ran = [r.name for r in res.reports if not r.skipped]
    assert ran == ["build"]
    assert _digests(out2) == want


def test_build_killed_mid_run_resumes_to_the_same_bytes(demo, tmp_path):
    """A real `scale-vqa build` process is SIGKILLed mid-extraction, then rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from scale_vqa.pipeline import DEMO_DIR

    out1, _ = demo
    out, work = tmp_path / "ds", tmp_path / "work"
    cmd = [sys.executable, "-m", "scale_vqa.cli", "build", "--config", str(DEMO_DIR / "build.yaml")]
    cmd += ["--out", str(out), "--work", str(work), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = work / "zoom" / ".parts"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and any(p.suffix == ".jsonl" for p in parts.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (work / "stages" / "extract.running").exists() and not out.exists()
    res = run_pipeline(demo_config(out, work), quiet=True)
    assert [r.name for r in res.reports if r.skipped] == ["annotations", "split"]
    assert _digests(out) == _digests(out1)


def test_card_audit_reads_the_published_rows_in_their_order(demo):
    """The card's audit scores the rows as a user reads them: the published splits in their
    shards' order (row position is one of the things an adversary reads), so the card's
    figures are those of ``scale-vqa audit`` on the folder; and it shows the permutation null."""
    import json

    from curation.adversaries import make_adversaries
    from curation.audit import audit
    from curation.published import published_order
    from curation.records import read_questions
    from scale_vqa.commands.audit import load_questions

    out, _ = demo
    work = out.parent / f"{out.name}-work"
    screened = list(read_questions(work / "screened.jsonl"))
    published = load_questions(out)
    assert [q.id for q in published] == [q.id for q in published_order(screened, 0)]
    assert [q.id for q in published] != [q.id for q in screened]  # the order did change
    card = json.loads((work / "audit.json").read_text(encoding="utf-8"))
    names = ["meta-lr", "context-lr"]
    again = audit(published, adversaries=make_adversaries(names), seed=0, dataset_level=False)
    cells = {(r["adversary"], r["question_type"]): r["accuracy"] for r in again["table"]}
    mine = {
        (r["adversary"], r["question_type"]): r["accuracy"]
        for r in card["table"]
        if r["adversary"] in names
    }
    assert mine == cells
    assert card["null"]["k"] == 99 and all("null_p" in r for r in card["table"] if r["learned"])
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "| null_p95 | null_p |" in readme and "Permutation null (99 refits" in readme
