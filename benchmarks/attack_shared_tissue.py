"""Shared-tissue attack on a build: read a split's keys from the other rows on overlapping
fields, never from the split's own answers or images.

The attacker reads what the build publishes (each row's split, slide, field boxes and, for
the other splits, the answer) and understands every statement as a perfect parser of the
wording would: the facts each option claims and each stem gives as a premise (taken from
the work folder's provenance, ``screened.jsonl``). For each row of a split it scores an
option by the facts (a feature present or absent at one power) that rows of *other* zoom
paths state on fields overlapping this row's field at the same power: the key option of
every row of the other splits (their answers are public) and the premise of every row,
weighted by the share of the field they overlap; the best-scoring option is its answer
(ties shared). ``--premises-only`` keeps the premises (what a hidden split's own rows
give away). Chance is 25% with four options.

    python benchmarks/attack_shared_tissue.py scale-vqa-demo --work scale-vqa-demo-work

The bundled demo (three pseudo-patients cut from one slide) reads at 87.5-100% on every
split; a build whose splits share no slide reads at chance, and ``scale-vqa build`` stops
on shared tissue unless ``split: {shared_tissue: warn}``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from scale_vqa.extract import read_zoom_paths, slide_file
from scale_vqa.shared_tissue import overlap_share

LETTERS = "ABCDEFGH"


def _rows(build: Path) -> list[dict]:
    out = []
    for shard in sorted((build / "data").glob("*.parquet")):
        split = shard.name.split("-")[0]
        cols = ["id", "path_id", "answer", "regions"]
        for r in pq.read_table(shard, columns=cols).to_pylist():
            out.append(r | {"split": split})
    return out


def attack(build: Path, work: Path, split: str, premises_only: bool = False) -> dict:
    """Accuracy of the attack on ``split`` (and how many rows had any evidence)."""
    extra, truth = {}, {}
    for line in (work / "screened.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        extra[q["id"]], truth[q["id"]] = q.get("extra") or {}, q["answer"]
    rows = _rows(build)
    # the slide *file* of each path (zoom paths of a build read from one file share tissue)
    slide = {z["path_id"]: slide_file(z) for z in read_zoom_paths(work / "zoom")}
    scales = ("low", "mid", "high")
    stated: dict[tuple[str, str], list[tuple[dict, bool]]] = defaultdict(list)
    for r in rows:
        ex = extra[r["id"]]
        facts = list(ex.get("premise", []))
        if r["split"] != split and not premises_only and r["answer"]:
            facts += ex["claims"][LETTERS.index(r["answer"])]
        for f, scale, value in facts:
            if scale in scales:
                stated[(f, scale)].append((r, bool(value)))
    right = n = with_evidence = 0.0
    for r in rows:
        if r["split"] != split:
            continue
        ex = extra[r["id"]]
        scores = []
        for claims in ex["claims"]:
            s = 0.0
            for f, scale, value in claims:
                if scale not in scales:
                    continue
                box = r["regions"][scales.index(scale)]
                for q, v in stated[(f, scale)]:
                    if q["path_id"] == r["path_id"] or slide[q["path_id"]] != slide[r["path_id"]]:
                        continue
                    w = overlap_share(_box(box), _box(q["regions"][scales.index(scale)]))
                    s += w if v == bool(value) else -w
            scores.append(s)
        top = [i for i, s in enumerate(scores) if s == max(scores)]
        with_evidence += len(top) < len(scores)
        right += (1 / len(top)) if LETTERS.index(truth[r["id"]]) in top else 0.0
        n += 1
    return {
        "split": split,
        "rows": int(n),
        "with_evidence": int(with_evidence),
        "accuracy": right / n if n else float("nan"),
        "chance": 0.25,
    }


def _box(region: dict) -> tuple[int, int, int, int]:
    return region["x"], region["y"], region["width"], region["height"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", type=Path, help="a `scale-vqa build` or `demo` output folder")
    ap.add_argument("--work", type=Path, required=True, help="its work folder")
    ap.add_argument("--premises-only", action="store_true")
    args = ap.parse_args()
    for split in ("train", "validation", "test"):
        res = attack(args.build, args.work, split, args.premises_only)
        if res["rows"]:
            print(
                f"{split:<11} {res['rows']:>5} rows, {res['with_evidence']:>5} with evidence: "
                f"{100 * res['accuracy']:.1f}% (chance {100 * res['chance']:.0f}%, "
                f"ratio {res['accuracy'] / res['chance']:.2f})"
            )


if __name__ == "__main__":
    main()
