"""An upper bound on how many questions any set packing could form under the budget.

The generator forms complementary sets greedily. This asks how far *any* packing could go
with the same candidates: every realisable slot pair of every pool
(:func:`curation.generation.candidates.find_candidates`, organ-level pools with their
prior matching included) and every choice of one path per value cell, subject to the
generator's rules:

- ``key_coupling``: a fact (a feature at one scale, where a feature lies) or an exclusive
  pair at one scale is tested at most once per zoom path, across all types
  (:attr:`curation.budget.Profile.couplings`);
- ``premise_conflicts``: a feature one question of a path gives (its premise, or a claim
  every option makes) is tested by no other question of that path (of its patient with
  ``budget_scope="patient"``, and always for the diagnosis: the generator's ledger units);
- ``diagnosis_narrowing``: a patient's diagnosis questions offer one list of diagnoses;
- ``max_per_path`` questions per path and type, ``max_sets_per_pair`` sets per slot pair
  and pool, a path at most once per slot pair and type;
- with ``--min-type-share S`` (default: the generator's floor, 0.10): every type at least
  ``S`` of the questions, as the generator's rebalance demands (0: no floor).

It is a linear relaxation in flow form (:class:`curation.generation.flow.SparseModel`): per
candidate a number of sets ``z`` and per member path a share ``y`` of them, each value
cell's shares summing to ``z``; every packing is a feasible point, so the optimum bounds
the integer optimum from above. Nothing is sampled. The split rebalance and the fair-share
turn order are left out, so the figure only over-estimates what a generator can reach.

Run: ``python benchmarks/bound_volume.py ann.jsonl [--seed 0] [--pool-by diagnosis+organ]
[--min-type-share 0.1] [--out bound.json]`` (a minute or two for 1,500 paths).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace

from curation.annotations import read_annotations
from curation.errors import ValidationError
from curation.generate import Generator, GeneratorConfig
from curation.generation.budget import BudgetLedger
from curation.generation.candidates import Families, find_candidates
from curation.generation.flow import SparseModel, add_candidate
from curation.generation.pools import build_pools
from curation.generation.sets import candidate_profile


def packing_bound(gen: Generator, min_share: float = 0.0) -> dict:
    """The LP bound on questions for ``gen``'s pools and candidates (see the module doc)."""
    cfg = gen.config
    pools = build_pools(gen.annotations, gen.splits, gen._dx_groups, gen.organs, cfg)
    fams = Families()
    unit = BudgetLedger(cfg.budget_scope).unit
    lp = SparseModel()
    z_type: dict[int, str] = {}
    givers: dict[tuple[str, str], list[int]] = defaultdict(list)
    testers: dict[tuple[str, str], list[int]] = defaultdict(list)
    n_cands = 0
    for p in pools:
        for c in find_candidates(p, fams, cfg.pmin, set(), cfg.max_length_spread):
            n_cands += 1
            prof = candidate_profile(c, p.organ)
            z, shares = add_candidate(lp, p, c, prof, cfg.max_sets_per_pair, cfg.max_per_path)
            z_type[z] = p.qtype
            for y, _, i in shares:
                a = p.anns[i]
                for f in sorted(prof.tested):
                    testers[(unit(a, f), f)].append(y)
                for f in sorted(prof.given - prof.tested):
                    givers[(unit(a, f), f)].append(y)
    # premise conflicts: g >= every pure giver's share, g + testers' shares <= 1
    for unit_f, gs in givers.items():
        ts = testers.get(unit_f)
        if not ts:
            continue
        g = lp.var()
        for y in gs:
            lp.le(("give", *unit_f, y), y, rhs=0.0)
            lp.le(("give", *unit_f, y), g, coef=-1.0, rhs=0.0)
        lp.le(("conflict", *unit_f), g)
        for y in ts:
            lp.le(("conflict", *unit_f), y)
    if min_share > 0:  # share * total - (type t's sets) <= 0, per type
        for t in cfg.question_types:
            for z, zt in z_type.items():
                lp.le(("floor", t), z, coef=min_share - (1.0 if zt == t else 0.0), rhs=0.0)
    try:
        x = lp.solve()
    except ValidationError as exc:
        raise SystemExit(f"error: {exc}") from None
    by_type: Counter[str] = Counter()
    for z, t in z_type.items():
        by_type[t] += 4 * x[z]
    return {
        "questions_bound": round(sum(by_type.values()), 1),
        "by_type": {t: round(v, 1) for t, v in sorted(by_type.items())},
        "candidates": n_cands,
        "variables": lp.n,
        "rows": lp.n_rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("annotations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool-by", default="diagnosis+organ")
    ap.add_argument("--min-type-share", type=float, default=GeneratorConfig().min_type_share)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    anns = read_annotations(args.annotations)
    cfg = replace(GeneratorConfig(), pool_by=args.pool_by)
    t0 = time.time()
    gen = Generator(anns, seed=args.seed, config=cfg)
    greedy = gen.generate()
    nodrop = Generator(
        anns, seed=args.seed, config=replace(cfg, split_tolerance=None, max_type_share=None)
    ).generate()
    result = {
        "annotations": args.annotations,
        "paths": len(anns),
        "greedy": len(greedy),
        "greedy_by_type": dict(sorted(Counter(q.question_type for q in greedy).items())),
        "greedy_without_rebalance": len(nodrop),
        "min_type_share": args.min_type_share,
        **packing_bound(gen, args.min_type_share or 0.0),
        "seconds": round(time.time() - t0, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
