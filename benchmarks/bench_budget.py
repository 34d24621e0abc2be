"""Benchmark of the information budget: volume before and after, checkers, a leak check.

For each simulated corpus (``--paths`` zoom paths, seeds ``--seeds``), generates with the
budget off (the previous recipe) and on (the default), and reports: questions per type,
questions per zoom path (overall and per type), sets dropped to rebalance, what the budget
skipped, generation time, the three budget checkers (``premise_conflicts`` per path and
per patient, ``diagnosis_narrowing``, ``key_coupling``), and an independent leak check:

- *premise leak*: a test-split row with an option ruled out by facts other questions of
  its zoom path (or, for the diagnosis, of its patient) state as given, or by what those
  imply through an exclusive pair (one feature present at a scale: the other absent);
- *key leak*: a test-split row whose key would be fixed (one option left) or narrowed
  (an option ruled out) if another question of its path (diagnosis: its patient) were
  answered, i.e. by that question's given facts plus its key's claims.

Both are read from ``extra["premise"]`` and ``extra["claims"]``, claim by claim (exact facts),
so they are a check on the checkers, which compare features.

With ``--demo DIR`` the questions of a demo build (``DIR-work/screened.jsonl``, as
``scale-vqa demo --out DIR`` writes them) are checked too.

Run: ``python benchmarks/bench_budget.py [--paths 1500] [--seeds 7,8] [--out budget.json]``
(about a minute per corpus on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curation.annotations import Annotation
from curation.budget import check_premise_conflicts, fact_of
from curation.constraints import check_all, summarize
from curation.generate import Generator, GeneratorConfig
from curation.options import DX
from curation.organs import get_organ
from curation.records import QUESTION_TYPES, Question, read_questions
from curation.simulate import simulate

BUDGET = ["premise_conflicts", "diagnosis_narrowing", "key_coupling"]


def _given_facts(q: Question) -> dict[tuple, bool]:
    """Facts ``q`` states as true or false for every option (premise, shared claims)."""
    claims = q.extra.get("claims") or []
    out = {fact_of(c): bool(c[-1]) for c in q.extra.get("premise", []) or []}
    if claims:
        common = None
        for option in claims:
            these = {(fact_of(c), bool(c[-1])) for c in option}
            common = these if common is None else common & these
        out.update(dict(common or ()))
    return out


def _key_facts(q: Question) -> dict[tuple, bool]:
    claims = q.extra.get("claims") or []
    return {fact_of(c): bool(c[-1]) for c in claims[q.key_index]} if claims else {}


def _ruled_out(q: Question, known: dict[tuple, bool]) -> int:
    """How many of ``q``'s options contradict ``known``."""
    n = 0
    for option in q.extra.get("claims") or []:
        if any(known.get(fact_of(c), bool(c[-1])) != bool(c[-1]) for c in option):
            n += 1
    return n


def _with_exclusions(known: dict[tuple, bool], pairs: list[tuple[str, str]]) -> dict[tuple, bool]:
    """``known`` plus what exclusive pairs imply: one feature present at a scale, the other
    absent there."""
    out = dict(known)
    for f, t in known.items():
        if t and len(f) == 2:
            for a, b in pairs:
                if f[0] in (a, b):
                    out.setdefault((b if f[0] == a else a, f[1]), False)
    return out


def leak_check(questions: list[Question], split: str = "test") -> dict[str, Any]:
    """Premise and key leaks of the rows of ``split`` from other rows of their path/patient
    (what their facts imply through the organ's exclusive pairs included)."""
    by_path: dict[str, list[Question]] = defaultdict(list)
    by_patient: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        if q.extra.get("claims"):
            by_path[q.path_id].append(q)
            by_patient[q.group].append(q)
    rows = [q for q in questions if q.split == split and q.extra.get("claims")]
    out = Counter()
    per_type = defaultdict(Counter)
    for q in rows:
        others = [r for r in by_path[q.path_id] if r is not q]
        dx_others = [r for r in by_patient[q.group] if r is not q]
        given: dict[tuple, bool] = {}
        solved: dict[tuple, bool] = {}
        for r in others:
            given.update(_given_facts(r))
            solved.update(_given_facts(r))
            solved.update(_key_facts(r))
        for r in dx_others:  # the diagnosis is the patient's
            for facts, book in ((_given_facts(r), (given, solved)), (_key_facts(r), (solved,))):
                for f, t in facts.items():
                    if f[0] == DX:
                        for b in book:
                            b[f] = t
        pairs = get_organ(q.organ).exclusive if q.organ else []
        given, solved = _with_exclusions(given, pairs), _with_exclusions(solved, pairs)
        k = len(q.options)
        checks = {
            "premise_leak": _ruled_out(q, given) > 0,
            "key_fixed": _ruled_out(q, solved) >= k - 1,
            "key_narrowed": _ruled_out(q, solved) > 0,
        }
        for name, hit in checks.items():
            out[name] += hit
            per_type[q.question_type][name] += hit
        out["rows"] += 1
        per_type[q.question_type]["rows"] += 1
    return {"all": dict(out), "by_type": {t: dict(c) for t, c in sorted(per_type.items())}}


def per_type_and_path(questions: list[Question], n_paths: int) -> dict[str, Any]:
    """Questions per type, per zoom path, and per path by type."""
    by_type = Counter(q.question_type for q in questions)
    per_path = Counter(q.path_id for q in questions)
    typed: dict[str, Counter[str]] = defaultdict(Counter)
    for q in questions:
        typed[q.question_type][q.path_id] += 1
    return {
        "questions": len(questions),
        "by_type": {t: by_type.get(t, 0) for t in QUESTION_TYPES},
        "type_share": {
            t: round(by_type.get(t, 0) / max(len(questions), 1), 3) for t in QUESTION_TYPES
        },
        "per_path_mean": round(len(questions) / n_paths, 3),
        "per_path_max": max(per_path.values(), default=0),
        "paths_with_questions": len(per_path),
        "per_path_by_type": {
            t: round(sum(c.values()) / len(c), 3) if c else 0.0
            for t, c in ((t, typed.get(t, Counter())) for t in QUESTION_TYPES)
        },
    }


def checkers(questions: list[Question], anns: list[Annotation] | None, organs: Any) -> dict:
    """The three budget checkers (premise conflicts also at patient scope) and all others."""
    found = summarize(check_all(questions, anns, organs))
    out = {name: found.get(name, 0) for name in BUDGET}
    out["premise_conflicts_patient_scope"] = len(
        check_premise_conflicts(questions, scope="patient")
    )
    out["other_violations"] = {k: v for k, v in found.items() if k not in BUDGET}
    return out


def run_corpus(anns: list[Annotation], seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """Generate with the budget off and on; figures of each."""
    res: dict[str, Any] = {}
    for name, budget in (("before", False), ("after", True)):
        t = time.perf_counter()
        gen = Generator(
            anns, seed=seed, config=GeneratorConfig(information_budget=budget, **config)
        )
        qs = gen.generate()
        seconds = time.perf_counter() - t
        res[name] = {
            **per_type_and_path(qs, len(anns)),
            "sets_dropped_to_rebalance": gen.stats["sets_dropped_to_rebalance"],
            "information_budget": gen.stats["information_budget"],
            "seconds_generate": round(seconds, 2),
            "checkers": checkers(qs, anns, gen.organs),
            "leak_check_test": leak_check(qs),
        }
    return res


def demo_figures(out: Path) -> dict[str, Any]:
    """The demo build's screened questions, and what its generate stage makes with and
    without the budget (same annotations, seed, split ratios and types as the demo)."""
    from curation.annotations import read_annotations
    from scale_vqa.pipeline import demo_config

    work = Path(f"{out}-work")
    cfg = demo_config(out, work)
    anns = read_annotations(work / "annotations.jsonl", [str(d) for d in cfg.organs_dir])
    screened = list(read_questions(work / "screened.jsonl"))
    res: dict[str, Any] = {
        "screened": {
            **per_type_and_path(screened, len(anns)),
            "checkers": checkers(screened, anns, None),
            "leak_check_test": leak_check(screened),
        }
    }
    sp = cfg.split
    for name, budget in (("generated_before", False), ("generated_after", True)):
        gen = Generator(
            anns,
            seed=cfg.seed,
            organs_dir=[str(d) for d in cfg.organs_dir],
            ratios=(sp.train, sp.validation, sp.test),
            config=GeneratorConfig(
                question_types=tuple(cfg.generation.question_types),
                split_min_chunk=cfg.generation.split_min_chunk,
                information_budget=budget,
            ),
        )
        qs = gen.generate()
        res[name] = {
            **per_type_and_path(qs, len(anns)),
            "checkers": checkers(qs, anns, gen.organs),
            "leak_check_test": leak_check(qs),
        }
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", type=int, default=1500)
    p.add_argument("--seeds", default="7,8")
    p.add_argument("--config", default="{}", help="GeneratorConfig overrides as JSON")
    p.add_argument("--demo", type=Path, help="a demo build's output folder to check as well")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    config = json.loads(args.config)
    results: dict[str, Any] = {"paths": args.paths, "config": config, "corpora": {}}
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        anns = simulate(args.paths, seed=seed)
        results["corpora"][f"seed {seed}"] = run_corpus(anns, seed, config)
        print(json.dumps({f"seed {seed}": results["corpora"][f"seed {seed}"]}, indent=1))
    if args.demo:
        results["demo"] = demo_figures(args.demo)
        print(json.dumps({"demo": results["demo"]}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
