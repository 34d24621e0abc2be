"""Benchmark of question generation: volume, timing and text-only leakage tables.

Simulates two independent annotation corpora (seed A and seed B, 1,500 zoom paths over all
organs by default), generates questions from each with the leak-controlled design and with
``--naive`` (the release's one-swap rule), and audits them with the text-only battery of
:mod:`curation.adversaries` (centrality, longest, shortest, overlap, position,
bag-of-words on options, bag-of-words on question + options; embeddings optional):

- cross-fitted within benchmark A, as ``curation.audit`` does (folds over connected
  components of patients and complementary sets: whole sets held out);
- cross-fitted within A with folds by patient only (set ids hidden, so members of one set
  straddle folds): shows the below-chance artifact the audit explains;
- learned adversaries trained on benchmark B and tested on benchmark A.

Run: ``python benchmarks/bench_generate.py [--paths 1500] [--out bench_generate.json]``
(about 5-8 minutes on 2 cores; the audit dominates).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from curation.adversaries import default_battery
from curation.annotations import read_annotations
from curation.audit import audit, format_table
from curation.records import QUESTION_TYPES, read_questions
from scale_vqa.cli import main as cli


def _generate(ann: Path, out: Path, seed: int, naive: bool, extra: list[str]) -> float:
    argv = ["generate", str(ann), "--out", str(out), "--seed", str(seed), "--no-progress"]
    argv += ["--naive"] if naive else []
    t = time.perf_counter()
    rc = cli(argv + extra)
    if rc != 0:
        raise SystemExit(f"generate failed with exit code {rc}")
    return time.perf_counter() - t


def splits_of(ann: Path, seed: int) -> list[str]:
    """The split of every zoom path, as ``generate`` assigns it (default config)."""
    from curation.generate import Generator

    return list(Generator(read_annotations(ann), seed=seed).splits.values())


def audit_patient_folds(questions: list, battery: list, seed: int = 0) -> dict[str, Any]:
    """Audit with folds by patient only: set ids hidden, so a set's members straddle folds.

    A learner then sees other members of a set in training, avoids the answers the set
    already used, and scores *below* chance; the default audit holds out whole sets.
    """
    hidden = [dataclasses.replace(q, set_id="") for q in questions]
    return audit(hidden, adversaries=battery, seed=seed)


def told_diagnosis_accuracy(questions: list, annotations: list) -> dict[str, Any]:
    """A *non*-text adversary that knows each path's diagnosis and the true priors.

    It scores an option by the prior probability of its claims under the path's diagnosis
    (``P(feature | diagnosis)``, independence across claims). Within diagnosis-level pools
    all four paths of a set share the diagnosis, so it stays at chance; organ-level pools
    (fallback for types that never name a diagnosis) and the diagnosis type (whose options
    name it) are where it gains. Reported per type and per pool level.
    """
    from curation.options import DX
    from curation.organs import get_organ

    dx_of = {a.path_id: a.diagnosis for a in annotations}
    organs: dict[str, Any] = {}
    hits: dict[str, list[float]] = {}
    for q in questions:
        organ = organs.setdefault(q.organ, get_organ(q.organ))
        dx = dx_of.get(q.path_id)
        scores = []
        for claims in q.extra["claims"]:
            lp = 0.0
            for f, scale, present in claims:
                if f == DX:
                    p = 0.98 if (scale == dx) == bool(present) else 0.02
                else:
                    p = organ.probability(f, dx)
                    p = p if present else 1 - p
                lp += float(np.log(min(max(p, 1e-3), 1 - 1e-3)))
            scores.append(lp)
        s = np.array(scores)
        top = np.flatnonzero(s >= s.max() - 1e-9)
        credit = 1 / len(top) if q.key_index in top else 0.0
        level = "organ-pool" if "/*/" in q.extra.get("pool", "") else "diagnosis-pool"
        if q.question_type == "diagnosis":
            level = "diagnosis-type"
        for key in ("all", q.question_type, level):
            hits.setdefault(key, []).append(credit)
    return {k: {"accuracy": round(float(np.mean(v)), 4), "n": len(v)} for k, v in hits.items()}


def _rows(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in report["table"]:
        out.setdefault(r["adversary"], {})[r["question_type"]] = round(r["accuracy"], 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", type=int, default=1500)
    p.add_argument("--seed-a", type=int, default=0)
    p.add_argument("--seed-b", type=int, default=1)
    p.add_argument("--embeddings", action="store_true", help="add the embedding classifier")
    p.add_argument("--pool-by", default="diagnosis+organ")
    p.add_argument("--out", type=Path, default=None, help="write all results as JSON")
    args = p.parse_args(argv)
    extra = ["--pool-by", args.pool_by]
    results: dict[str, Any] = {"paths": args.paths, "pool_by": args.pool_by}
    embedder = None
    if args.embeddings:
        from curation.embeddings import Embedder

        embedder = Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sets: dict[str, list] = {}
        for name, seed in (("A", args.seed_a), ("B", args.seed_b)):
            ann = d / f"ann_{name}.jsonl"
            t = time.perf_counter()
            cli(["simulate", "--out", str(ann), "--paths", str(args.paths), "--seed", str(seed)])
            t_sim = time.perf_counter() - t
            n_paths = len(read_annotations(ann))
            for naive in (False, True):
                design = "naive" if naive else "square"
                out = d / f"q_{name}_{design}.jsonl"
                t_gen = _generate(ann, out, seed, naive, extra)
                qs = list(read_questions(out))
                sets[f"{name}/{design}"] = qs
                results.setdefault("generation", {})[f"{name}/{design}"] = {
                    "seed": seed,
                    "paths": n_paths,
                    "questions": len(qs),
                    "by_type": {t: sum(q.question_type == t for q in qs) for t in QUESTION_TYPES},
                    "by_split": {
                        s: sum(q.split == s for q in qs) for s in ("train", "validation", "test")
                    },
                    "by_split_type": {
                        s: {
                            t: sum(q.split == s and q.question_type == t for q in qs)
                            for t in QUESTION_TYPES
                        }
                        for s in ("train", "validation", "test")
                    },
                    "paths_by_split": dict(sorted(Counter(splits_of(ann, seed)).items())),
                    "seconds_generate_cli": round(t_gen, 2),
                    "seconds_simulate": round(t_sim, 2),
                }
        print(json.dumps(results["generation"], indent=1), flush=True)
        told = told_diagnosis_accuracy(sets["A/square"], read_annotations(d / "ann_A.jsonl"))
        results["told_diagnosis_square_A"] = told
        print("\n=== square/told-diagnosis Bayes adversary (not text-only) ===")
        print(json.dumps(told, indent=1), flush=True)
        for design in ("square", "naive"):
            test = sets[f"A/{design}"]
            modes = ("cross-fitted", "cross-fitted-by-patient-only", "trained-on-B")
            for mode in modes:
                battery = default_battery(embedder=embedder, include_embeddings=args.embeddings)
                t = time.perf_counter()
                if mode == "cross-fitted-by-patient-only":
                    rep = audit_patient_folds(test, battery)
                else:
                    train = sets[f"B/{design}"] if mode == "trained-on-B" else None
                    rep = audit(test, adversaries=battery, train=train, seed=0)
                key = f"{design}/{mode}"
                print(f"\n=== {key} ({time.perf_counter() - t:.0f} s) ===")
                print(format_table(rep), flush=True)
                results.setdefault("audit", {})[key] = {
                    "n": rep["n"],
                    "chance": rep["chance"],
                    "best": rep["best"],
                    "accuracy": _rows(rep),
                    "group": rep.get("group", []),
                    "notes": rep.get("notes", []),
                }
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
