"""The prior oracle: the strongest text-free adversary a simulated corpus allows.

It is told what no user of a published split is told: every zoom path's diagnosis (from the
annotations). It learns, on a *second* annotation corpus, how often each fact holds per
organ and diagnosis (a feature present at a power, a finding in a compartment, two findings
in the same compartment), scores every option of a row by the probability that all its
claims hold on that path, and decodes each complementary set jointly (the assignment of
options to the set's four paths with the highest likelihood, Hungarian). If sets mixed
paths whose priors differ, or if the cells of a set could be told apart from the
diagnosis, this reads it; at chance, the diagnosis and the priors give nothing away.

Run: ``python benchmarks/prior_oracle.py TRAIN_ANN.jsonl QUESTIONS.jsonl TEST_ANN.jsonl``
(the questions generated from TEST_ANN; e.g. simulate seeds 8 and 7). Prints accuracy per
question type against 25% chance. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict

import numpy as np
from scipy.optimize import linear_sum_assignment


def _read(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class Priors:
    """Laplace-smoothed frequencies of facts per organ and diagnosis."""

    def __init__(self, annotations: list[dict]) -> None:
        self.seen: Counter = Counter()
        self.total: Counter = Counter()
        for a in annotations:
            unit = (a["organ"], a["diagnosis"])
            for truth, book in ((True, a["findings"]), (False, a["negatives"])):
                for scale, feats in book.items():
                    for f in feats:
                        self.total[(unit, f, scale)] += 1
                        self.seen[(unit, f, scale)] += truth
            locs = a.get("locations", {})
            for f, c in locs.items():
                self.total[(unit, f, "in")] += 1
                self.seen[(unit, f, "in:" + c)] += 1
                for g, d in locs.items():
                    if g != f:
                        self.total[(unit, f, "with:" + g)] += 1
                        self.seen[(unit, f, "with:" + g)] += c == d

    def p(self, unit: tuple, claim: list) -> float:
        """P(claim holds | organ, diagnosis)."""
        f, what, truth = claim
        denom = "in" if str(what).startswith("in:") else what
        p = (self.seen[(unit, f, what)] + 1) / (self.total[(unit, f, denom)] + 2)
        return p if truth else 1 - p


def attack(priors: Priors, questions: list[dict], anns: dict[str, dict]) -> dict[str, list[int]]:
    """Right/total per question type, decoding each complete set jointly."""
    sets: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        sets[q["set_id"]].append(q)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for members in sets.values():
        claims = members[0]["extra"]["claims"]
        if len(members) != len(claims):
            continue
        score = np.zeros((len(members), len(claims)))
        for i, q in enumerate(members):
            a = anns[q["path_id"]]
            unit = (a["organ"], a["diagnosis"])
            for j, option in enumerate(claims):
                score[i, j] = sum(math.log(max(priors.p(unit, c), 1e-9)) for c in option)
        rows, cols = linear_sum_assignment(-score)
        for i, j in zip(rows, cols, strict=True):
            cell = out[members[i]["question_type"]]
            cell[0] += "ABCD"[j] == members[i]["answer"]
            cell[1] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train_annotations")
    ap.add_argument("questions")
    ap.add_argument("test_annotations")
    args = ap.parse_args()
    priors = Priors(_read(args.train_annotations))
    anns = {a["path_id"]: a for a in _read(args.test_annotations)}
    res = attack(priors, _read(args.questions), anns)
    right = sum(r for r, _ in res.values())
    total = sum(n for _, n in res.values())
    print(f"{'type':16} {'n':>5} {'accuracy':>9}  (chance 25.0)")
    for t, (r, n) in sorted(res.items()):
        print(f"{t:16} {n:5d} {100 * r / n:8.1f}%")
    print(f"{'all':16} {total:5d} {100 * right / max(total, 1):8.1f}%")


if __name__ == "__main__":
    main()
