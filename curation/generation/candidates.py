"""Realisable slot pairs of a pool: the candidates complementary sets are formed from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curation.constraints import option_problems
from curation.families.localization import only_placements, placement_profile
from curation.generation.pools import Pool
from curation.options import Slot, claims_truth, square
from curation.organs import Organ
from curation.templates import TYPES, Family, QuestionType
from curation.text_quality import text_problems


@dataclass
class Candidate:
    """A slot pair of one family with the pool paths (indices) realising each value cell."""

    fam: Family
    slots: tuple[Slot, Slot]
    key: str
    cells: list[list[int]]
    members: set[str] = field(default_factory=set)


class Families:
    """The slot families of an organ x diagnosis x type x floor, computed once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str | None, str, float], list[Family]] = {}

    def __call__(
        self, qtype: QuestionType, organ: Organ, dx: str | None, pmin: float
    ) -> list[Family]:
        key = (organ.name, dx, qtype.name, pmin)
        if key not in self._cache:
            self._cache[key] = qtype.families(organ, dx, pmin)
        return self._cache[key]


def acceptable(
    pool: Pool,
    qtype: QuestionType,
    fam: Family,
    s1: Slot,
    s2: Slot,
    pmin: float,
    max_length_spread: float,
) -> bool:
    """Plausible options (under the pool's diagnosis) of near-equal length, no text fault."""
    opts = square([s1, s2], lambda alts: qtype.render(fam, alts))
    if any(text_problems(t) for t in opts.texts):
        return False
    lengths = [len(t) for t in opts.texts]
    if (max(lengths) - min(lengths)) / max(lengths) > max_length_spread:
        return False
    floor = min(0.02 + pmin / 2, 0.2)
    return not any(option_problems(pool.organ, c, pool.dx, floor) for c in opts.claims)


def find_candidates(
    pool: Pool,
    families: Families,
    pmin: float,
    exclude: set[str],
    max_length_spread: float,
) -> list[Candidate]:
    """Slot pairs whose four value cells are all realised by paths of ``pool``.

    Pairs whose key is in ``exclude`` are skipped. In an organ-level pool
    (``profile_match``) the cells are split by the paths' prior profile for the slot
    features, and every profile class realising all four cells is its own candidate.
    """
    qtype = TYPES[pool.qtype]
    out: list[Candidate] = []
    for fam in families(qtype, pool.organ, pool.dx, pmin):
        elig = [i for i, a in enumerate(pool.anns) if claims_truth(a, fam.premise) is not False]
        elig = [i for i in elig if claims_truth(pool.anns[i], fam.premise) is True]
        if len(elig) < 4:
            continue
        idx = np.array(elig)
        values: dict[str, np.ndarray] = {}
        for s in {s.key: s for s in fam.slots1 + fam.slots2}.values():
            v = [s.value(pool.anns[i]) for i in elig]
            values[s.key] = np.array([-1 if x is None else x for x in v], dtype=np.int8)
        for s1, s2 in fam.pairs():
            key = f"{fam.key}|{s1.key}|{s2.key}"
            if key in exclude:
                continue
            v1, v2 = values[s1.key], values[s2.key]
            ok = (v1 >= 0) & (v2 >= 0)
            if ok.sum() < 4:
                continue
            code = v1.astype(np.int16) * 2 + v2
            cells = [idx[ok & (code == c)].tolist() for c in range(4)]
            if any(not c for c in cells):
                continue
            if not acceptable(pool, qtype, fam, s1, s2, pmin, max_length_spread):
                continue
            if not pool.profile_match:
                out.append(Candidate(fam, (s1, s2), key, cells))
                continue
            # organ-level pool: only paths whose diagnoses give the slot features the
            # same prior may share a set, so knowing the diagnosis does not help
            feats = [f for f in (*s1.features, *s2.features) if f in pool.organ.features]
            if only_placements((s1, s2)):  # every option claims the same presence
                feats = []
            classes: dict[tuple, list[list[int]]] = {}
            for c, cell in enumerate(cells):
                for i in cell:
                    dx = pool.anns[i].diagnosis
                    prof = tuple(round(pool.organ.probability(f, dx), 3) for f in feats)
                    prof += placement_profile(pool.organ, (s1, s2), dx)
                    classes.setdefault(prof, [[], [], [], []])[c].append(i)
            for sub in classes.values():
                if all(sub):
                    out.append(Candidate(fam, (s1, s2), key, sub))
    return out
