"""An upper bound on how many questions any set packing could form under the budget.

The generator forms complementary sets greedily. This asks how far *any* packing could go
with the same candidates: every realisable slot pair of every pool
(:func:`curation.generation.candidates.find_candidates`, organ-level pools with their
prior matching included), every choice of one path per value cell, subject to

- ``key_coupling``: a fact (feature at a scale, or the diagnosis) is tested at most once
  per zoom path, across all types;
- ``max_per_path`` questions per path and type, ``max_sets_per_pair`` sets per slot pair
  and pool, a path at most once per slot pair and type.

Premise conflicts, diagnosis narrowing, the fair-share turn order and the split rebalance
are left out, so the figure only over-estimates what the generator can reach. It is the
linear relaxation (HiGHS via ``scipy.optimize.linprog``), itself an upper bound on the
integer optimum. A slot pair with more than ``--tuples`` path choices is represented by that
many sampled choices (reported), the one place the bound is approximate.

Run: ``python benchmarks/bound_volume.py ann.jsonl [--seed 0] [--tuples 1000]
[--pool-by diagnosis+organ] [--out bound.json]`` (about 2 minutes for 1,500 paths).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import replace

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from curation.annotations import read_annotations
from curation.budget import profile_of
from curation.generate import Generator, GeneratorConfig
from curation.generation.candidates import Families, find_candidates
from curation.generation.pools import build_pools


class Rows:
    """Constraint rows by key, with their right-hand sides."""

    def __init__(self) -> None:
        self.index: dict[tuple, int] = {}
        self.rhs: list[float] = []

    def __call__(self, key: tuple, limit: float) -> int:
        if key not in self.index:
            self.index[key] = len(self.rhs)
            self.rhs.append(limit)
        return self.index[key]


def packing_bound(gen: Generator, max_tuples: int, seed: int) -> dict:
    """The LP bound on questions for ``gen``'s pools and candidates (see the module doc)."""
    cfg = gen.config
    pools = build_pools(gen.annotations, gen.splits, gen._dx_groups, gen.organs, cfg)
    fams = Families()
    rng = random.Random(f"bound:{seed}")
    rows = Rows()
    r_idx: list[int] = []
    c_idx: list[int] = []
    col_type: list[str] = []
    sampled: Counter[str] = Counter()
    for p in pools:
        for c in find_candidates(p, fams, cfg.pmin, set(), cfg.max_length_spread):
            s1, s2 = c.slots
            prof = profile_of(
                c.fam.premise,
                [[*a.claims, *b.claims] for a in s1.alts for b in s2.alts],
                p.organ.exclusive,
            )
            if math.prod(len(x) for x in c.cells) > max_tuples:
                sampled[p.qtype] += 1
                choices = {tuple(rng.choice(x) for x in c.cells) for _ in range(max_tuples)}
            else:
                choices = set(itertools.product(*c.cells))
            for t in sorted(choices):
                if len(set(t)) < 4:
                    continue
                col = len(col_type)
                for i in t:
                    pid = p.anns[i].path_id
                    keys = [(("kc", pid, f), 1) for f in prof.couplings]
                    keys += [(("cap", p.qtype, pid), cfg.max_per_path)]
                    keys += [(("once", p.qtype, pid, c.key), 1)]
                    for key, limit in keys:
                        r_idx.append(rows(key, limit))
                        c_idx.append(col)
                r_idx.append(rows(("pair", p.key, c.key), cfg.max_sets_per_pair))
                c_idx.append(col)
                col_type.append(p.qtype)
    a = coo_matrix(
        (np.ones(len(r_idx)), (r_idx, c_idx)), shape=(len(rows.rhs), len(col_type))
    ).tocsr()
    res = linprog(-np.ones(len(col_type)), A_ub=a, b_ub=rows.rhs, bounds=(0, 1), method="highs")
    if res.x is None:
        raise SystemExit(f"error: the LP did not solve: {res.message}")
    by_type: Counter[str] = Counter()
    for t, v in zip(col_type, res.x, strict=True):
        by_type[t] += 4 * v
    return {
        "questions_bound": round(-4 * res.fun, 1),
        "by_type": {t: round(v, 1) for t, v in sorted(by_type.items())},
        "columns": len(col_type),
        "rows": len(rows.rhs),
        "sampled_pairs": dict(sampled),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("annotations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tuples", type=int, default=1000)
    ap.add_argument("--pool-by", default="diagnosis+organ")
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
        **packing_bound(gen, args.tuples, args.seed),
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
