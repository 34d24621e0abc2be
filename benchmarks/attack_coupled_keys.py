"""A held-out attack on hidden keys that inform each other: decode every key of a split at once.

The information budget lets two questions of one zoom path test the same feature at two
powers (or the diagnosis), since neither key fixes the other. Their keys are still
*correlated* (a feature seen at low power is often seen at medium power; a patient has
one diagnosis). This attacker knows the data-generating process exactly: it reads the
truth of every fact the options claim (the provenance, as a perfect parser of the option
wording would) and learns, from the *annotations* of another corpus, the marginal and
pairwise frequencies of facts on one zoom path (same feature at two powers or
compartments, the diagnosis with a finding, exclusive pairs; the diagnosis is equal across
a patient's rows). It then decodes all complementary sets of a split jointly by Gibbs
sampling over each set's assignments (every set's keys are distinct options) with that
pairwise model, and predicts each row's most frequent option. Premises a row states are
observed facts and enter as evidence.

Run: ``python benchmarks/attack_coupled_keys.py questions.jsonl other_annotations.jsonl
[--split test] [--sweeps 300] [--chains 5] [--reveal 0.5]``. Prints, per chain and as the
mean over chains, accuracy (chance 25%) overall and per type, the share of sets entirely
right (chance 1/24 for four rows), and the number of coupled row pairs it used. The
posterior is nearly symmetric without anchors, so one chain's per-type figure swings by
+-10 points (a set's rows move together, and a patient's diagnosis links its sets): read
the mean.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
from collections import Counter, defaultdict

from curation.annotations import Annotation, read_annotations
from curation.budget import fact_of
from curation.options import DX, IN, claim_truth
from curation.organs import Organ, get_organ
from curation.records import read_questions, set_rows

Fact = tuple


def _facts_of_path(a: Annotation, organ: Organ) -> dict[Fact, bool]:
    """Every fact an annotation decides (:func:`curation.options.claim_truth`): presence per
    scale, placements, the diagnosis."""
    facts: list[Fact] = [(f, s) for f, feat in organ.features.items() for s in feat.scales]
    facts += [(f, IN + c) for f in organ.features for c in organ.compartments_of(f)]
    facts += [(DX, d) for d in organ.diagnoses]
    truths = {f: claim_truth(a, [*f, True]) for f in facts}
    return {f: t for f, t in truths.items() if t is not None}


def _related(f: Fact, g: Fact) -> bool:
    """Facts whose truths the pair model links: one feature, or one of them the diagnosis."""
    return f[0] == g[0] or DX in (f[0], g[0])


class PairModel:
    """Marginal and pairwise truth frequencies of facts on one path, per organ (smoothed)."""

    def __init__(self, anns) -> None:
        self.one: Counter = Counter()
        self.two: Counter = Counter()
        for a in anns:
            organ = get_organ(a.organ)
            facts = _facts_of_path(a, organ)
            by_feature: dict[str, list[Fact]] = defaultdict(list)
            for f, t in facts.items():
                self.one[(a.organ, f, t)] += 1
                by_feature[f[0]].append(f)
            dxs = [f for f in facts if f[0] == DX and facts[f]]
            for f, fs in by_feature.items():
                others = fs + (dxs if f != DX else [])
                for x, y in itertools.permutations(others, 2):
                    if x[0] == DX and y[0] == DX:
                        continue
                    self.two[(a.organ, x, y, facts[x], facts[y])] += 1

    def logp(self, organ: str, fact: Fact, t: bool) -> float:
        n1, n0 = self.one[(organ, fact, True)], self.one[(organ, fact, False)]
        return math.log(((n1 if t else n0) + 1) / (n1 + n0 + 2))

    def pmi(self, organ: str, x: Fact, tx: bool, y: Fact, ty: bool) -> float:
        c = {(u, v): self.two[(organ, x, y, u, v)] for u in (True, False) for v in (True, False)}
        n = sum(c.values())
        if n == 0:
            return 0.0
        pj = (c[(tx, ty)] + 0.5) / (n + 2.0)
        px = (c[(tx, True)] + c[(tx, False)] + 1.0) / (n + 2.0)
        py = (c[(True, ty)] + c[(False, ty)] + 1.0) / (n + 2.0)
        return math.log(pj / (px * py))


def _option_facts(q) -> list[dict[Fact, bool]]:
    """Per option, the truth of each fact it claims; naming one diagnosis denies the rest."""
    claims = q.extra.get("claims") or []
    out = [{fact_of(c): bool(c[-1]) for c in opt} for opt in claims]
    dxs = {f for o in out for f in o if f[0] == DX}
    for o in out:
        if any(o.get(f) for f in dxs):
            for f in dxs:
                o.setdefault(f, False)
    return out


def attack(questions, model: PairModel, sweeps: int, seed: int, reveal: float = 0.0) -> dict:
    """Decode every key of ``questions`` jointly (see the module doc); ``reveal``: the share
    of sets whose keys the attacker is told (a control; only rows coupled to them count)."""
    rows = [q for q in questions if q.extra.get("claims")]
    opts = [_option_facts(q) for q in rows]
    tested = []
    for o in opts:
        keys = set().union(*o)
        tested.append({f for f in keys if len({x.get(f) for x in o}) > 1})
    evidence: dict[str, dict[Fact, bool]] = defaultdict(dict)
    for q in rows:
        for c in q.extra.get("premise") or []:
            evidence[q.path_id][fact_of(c)] = bool(c[-1])

    def unary(i: int, k: int) -> float:
        q = rows[i]
        o = opts[i][k]
        e = sum(model.logp(q.organ, f, o[f]) for f in tested[i] if f in o)
        for f, t in evidence[q.path_id].items():
            for g in tested[i]:
                if g in o and f != g and _related(f, g):
                    e += model.pmi(q.organ, f, t, g, o[g])
        return e

    def pair(i: int, k: int, j: int, m: int) -> float:
        a, b = opts[i][k], opts[j][m]
        if rows[i].path_id != rows[j].path_id:  # same patient, other path: one diagnosis
            dx_a = {f for f in tested[i] if f[0] == DX}
            shared = dx_a & {f for f in tested[j] if f[0] == DX}
            return -1e6 if any(f in a and f in b and a[f] != b[f] for f in shared) else 0.0
        e = 0.0
        organ = get_organ(rows[i].organ)
        for f in tested[i]:
            for g in tested[j]:
                if f not in a or g not in b:
                    continue
                if f == g:
                    e += -1e6 if a[f] != b[g] else 0.0
                elif (
                    len(f) == 2 and len(g) == 2 and f[1] == g[1] and organ.are_exclusive(f[0], g[0])
                ):
                    e += -1e6 if a[f] and b[g] else 0.0
                elif _related(f, g) and not f[0] == g[0] == DX:
                    e += model.pmi(rows[i].organ, f, a[f], g, b[g])
        return e

    by_path: dict[str, list[int]] = defaultdict(list)
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(rows):
        by_path[q.path_id].append(i)
        by_patient[q.group].append(i)
    links: dict[int, list[int]] = defaultdict(list)
    n_links = 0
    for i, q in enumerate(rows):
        peers = set(by_path[q.path_id]) | {
            j for j in by_patient[q.group] if any(f[0] == DX for f in tested[j])
        }
        for j in sorted(peers - {i}):
            if not q.set_id or rows[j].set_id != q.set_id:
                links[i].append(j)
                n_links += 1
    sets = [m for sid, m in set_rows(rows).items() if sid] + [
        [i] for i, q in enumerate(rows) if not q.set_id
    ]
    u = [[unary(i, k) for k in range(len(rows[i].options))] for i in range(len(rows))]
    rng = random.Random(seed)
    cur = {}
    for m in sets:
        ks = list(range(len(rows[m[0]].options)))
        rng.shuffle(ks)
        for i, k in zip(m, ks, strict=False):
            cur[i] = k
    shown = set(rng.sample(range(len(sets)), int(reveal * len(sets))))
    for s_i in shown:  # a control: sets whose keys the attacker is told
        for i in sets[s_i]:
            cur[i] = rows[i].key_index
    sets_rows_shown = {i for s_i in shown for i in sets[s_i]}
    counts = [Counter() for _ in rows]
    pair_cache: dict[tuple, float] = {}

    def v(i, k, j, m):
        key = (i, k, j, m)
        if key not in pair_cache:
            pair_cache[key] = pair(i, k, j, m)
        return pair_cache[key]

    for sweep in range(sweeps):
        for s_i, m in enumerate(sets):
            if s_i in shown:
                continue
            n_opt = len(rows[m[0]].options)
            perms = list(itertools.permutations(range(n_opt), len(m)))
            energies = []
            for p in perms:
                e = 0.0
                for i, k in zip(m, p, strict=True):
                    e += u[i][k] + sum(v(i, k, j, cur[j]) for j in links[i] if j in cur)
                energies.append(e)
            top = max(energies)
            w = [math.exp(e - top) for e in energies]
            p = rng.choices(perms, weights=w, k=1)[0]
            for i, k in zip(m, p, strict=True):
                cur[i] = k
                if sweep >= sweeps // 5:
                    counts[i][k] += 1
    right = Counter()
    total = Counter()
    sets_right = 0
    for s_i, m in enumerate(sets):
        told = reveal and not any(j in sets_rows_shown for i in m for j in links.get(i, ()))
        if s_i in shown or told:
            continue
        ok = True
        for i in m:
            guess = counts[i].most_common(1)[0][0] if counts[i] else 0
            hit = guess == rows[i].key_index
            ok &= hit
            right[rows[i].question_type] += hit
            total[rows[i].question_type] += 1
        sets_right += ok
    n = sum(total.values())
    return {
        "rows": n,
        "accuracy": round(100 * sum(right.values()) / max(n, 1), 1),
        "by_type": {t: round(100 * right[t] / total[t], 1) for t in sorted(total)},
        "sets_entirely_right": round(100 * sets_right / max(len(sets), 1), 1),
        "coupled_row_pairs": n_links // 2,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions")
    ap.add_argument("annotations", help="annotations of another corpus (the attacker's prior)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--sweeps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--chains", type=int, default=5, help="independent chains (seeds seed..seed+K-1)"
    )
    ap.add_argument(
        "--reveal",
        type=float,
        default=0.0,
        help="control: tell the attacker this share of the sets' keys and score the others",
    )
    args = ap.parse_args(argv)
    qs = [q for q in read_questions(args.questions) if args.split in (None, q.split)]
    model = PairModel(read_annotations(args.annotations))
    runs = []
    for k in range(args.chains):
        runs.append(attack(qs, model, args.sweeps, args.seed + k, args.reveal))
        print(runs[-1], flush=True)
    types = sorted(runs[0]["by_type"])
    mean = {
        "accuracy": round(sum(r["accuracy"] for r in runs) / len(runs), 1),
        "by_type": {t: round(sum(r["by_type"][t] for r in runs) / len(runs), 1) for t in types},
        "sets_entirely_right": round(sum(r["sets_entirely_right"] for r in runs) / len(runs), 1),
    }
    print(f"mean over {len(runs)} chains: {mean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
