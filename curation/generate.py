"""Constraint-guided question generation: complementary sets of 2x2 option squares.

Pipeline (:meth:`Generator.generate`): set aside whole patients (else slides) with a
diagnosis, a share of each organ's paths, for diagnosis questions (the other four types
never see them); split zoom paths by patient (else slide) *before* generation, dealing each
organ x diagnosis stratum to the splits in chunks big enough to form sets; pool the
remaining paths by organ, diagnosis and split (diagnosis questions: by organ and split);
with ``pool_by="diagnosis+organ"`` (the default) a second pass pools by organ and split,
across diagnoses, for the three types whose text never names a diagnosis (correspondence,
localization, explanation), using the capacity the first pass left, but a set may only join
paths whose diagnoses give the features it asks about the *same prior* ``P(feature |
diagnosis)`` — so an adversary told each path's diagnosis (or inferring it from other
questions of the slide) still has nothing to go on. ``pool_by="diagnosis"``: first pass
only (the prototype's recipe); ``"organ"``: organ pools without the prior match for those
three types (more questions, but a diagnosis-aware adversary gains: measured 0.44 against
0.25). Any function of the text is at chance in every mode. In each pool and type,
enumerate slot pairs (:mod:`curation.templates`), keep those whose four value cells are all
realised by paths of the pool, and greedily form *complementary sets*: one question text
with one option list (a 2x2 square, one shared option order) on four zoom paths, each path
making a different option the key. Every claim an option makes is annotated on its path
(present, or looked for and absent), so the key is true and every distractor false; any
function of the text is right exactly once per set, and every option phrase is the key
exactly 1/4 of the times it appears within its type. Under the *information budget*
(:mod:`curation.budget`, enforced by :mod:`curation.generation.budget`) a path is skipped
for a set whose question would give a feature another question of the path tests (or test
one it gives), offer its patient a second list of diagnoses, or test a fact another
question of the path tests; a type too scarce to reach its floor forms first, then pools
take turns, one set each, a type ahead of its fair share waiting; a cell takes the path its
type's other candidates need least (:mod:`curation.generation.scarcity`), and diagnosis
pools, whose paths carry nothing else, are packed exactly
(:mod:`curation.generation.dx_exact`). Finally whole sets are dropped (seeded) until
each split's share of the questions tracks its share of the paths and no type dominates
(:mod:`curation.generation.rebalance`), and the rows are put in a seeded order of their
ids, which hash published content only (:func:`curation.records.seeded_order`; a set's id
hashes its text, options and sorted paths).

``naive=True`` writes the release's way instead: per path the key is the true combination
of three slots and each distractor flips one slot (the key is the hub of the set); letters
are dealt round-robin. It is the baseline the screen is measured against.

Each question records its provenance in ``Question.extra``: ``design`` ("square" or
"naive"), ``diagnosis``, ``premise`` (claims every path of the set satisfies),
``claims`` (per option, the claims it makes: ``[feature, scale, present]``; a diagnosis
claim is ``["@dx", diagnosis_id, true]``), ``values`` (per option, its slot values),
``slots`` (slot keys), ``family`` and ``pool``.

Regeneration API for the screen::

    gen = Generator(annotations, seed=0, naive=False, organs_dir=None)
    questions = gen.generate()
    new = gen.regenerate(flagged, round=1)

``regenerate`` answers the flagged questions with replacements: a flagged question of a
complementary set condemns its *whole set*; each condemned set is replaced, within the
same pool, by a set over a slot pair never used before in that pool, with a different
template where possible and a plausibility floor raised by 0.05 per round (a path may then
carry ``round`` questions of a type beyond ``max_per_path``: replacement keeps volume). Single
(naive) questions get a new option set on the same path. It may return fewer questions
than it condemns (the pool can run out of realisable pairs). The caller drops every
question whose ``set_id`` is among the flagged ones' (or, for single questions, whose
``id`` is flagged) and adds the returned ones; :attr:`Generator.questions` is kept up to
date the same way.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from curation.annotations import Annotation
from curation.balance import balance_letters, dedup
from curation.budget import Tissue
from curation.errors import ConfigError, ValidationError
from curation.generation.budget import RULES, BudgetLedger
from curation.generation.candidates import Families, find_candidates
from curation.generation.config import (
    DX_FREE_TYPES,
    NON_DX_TYPES,
    POOL_MODES,
    SQUARE_ONLY,
    GeneratorConfig,
)
from curation.generation.naive import naive_one, naive_pool
from curation.generation.order import interleave
from curation.generation.pools import Pool, build_pools, reserve_diagnosis_groups
from curation.generation.rebalance import sets_to_drop
from curation.generation.scarcity import scarce_types
from curation.generation.sets import Ledger, SetFormer, SetInfo
from curation.generation.stats import generation_stats
from curation.organs import Organ, get_organ
from curation.records import Question, seeded_order
from curation.split import DEFAULT_RATIOS, assign_splits, parse_ratios

__all__ = [
    "DX_FREE_TYPES",
    "NON_DX_TYPES",
    "POOL_MODES",
    "SQUARE_ONLY",
    "Generator",
    "GeneratorConfig",
    "Regenerator",
    "generate_questions",
]


class Generator:
    """Generate leak-controlled MCQs from annotations (see the module docstring)."""

    def __init__(
        self,
        annotations: Sequence[Annotation],
        seed: int = 0,
        naive: bool = False,
        organs_dir: str | Sequence[str] | None = None,
        ratios: Sequence[float] | str = DEFAULT_RATIOS,
        config: GeneratorConfig | None = None,
        tissue: Tissue | None = None,
    ) -> None:
        """``tissue``: the paths whose fields overlap (:data:`curation.budget.Tissue`); a
        feature at a scale one of them gives is then not tested there on another, and each
        question carries its path's entry as ``extra["tissue"]``."""
        if not annotations:
            raise ConfigError("no annotations to generate from")
        self.annotations = list(annotations)
        self.seed = seed
        self.naive = naive
        if organs_dir is None:
            self.organs_dirs: tuple[str, ...] = ()
        elif isinstance(organs_dir, str):
            self.organs_dirs = (organs_dir,)
        else:
            self.organs_dirs = tuple(str(d) for d in organs_dir)
        self.ratios = parse_ratios(ratios)
        self.config = config or GeneratorConfig()
        self.config.validate()
        self.by_path = {a.path_id: a for a in self.annotations}
        if len(self.by_path) != len(self.annotations):
            raise ValidationError("annotations repeat a path_id; path ids must be unique")
        self.organs: dict[str, Organ] = {
            name: get_organ(name, self.organs_dirs)
            for name in sorted({a.organ for a in self.annotations})
        }
        self._dx_groups = reserve_diagnosis_groups(self.annotations, self.config, seed)
        self.splits = assign_splits(
            self.annotations,
            self.ratios,
            seed,
            min_chunk=self.config.split_min_chunk,
            reserved=self._dx_groups,
        )
        self._dx_slides = {a.slide_id for a in self.annotations if a.group in self._dx_groups}
        self.questions: list[Question] = []
        self.stats: dict[str, Any] = {}
        self.rebalanced = 0
        self._pools: dict[str, Pool] = {}
        self.tissue = dict(tissue or {})
        self._ledger = Ledger(budget=BudgetLedger(self.config.budget_scope, self.tissue))
        self._families = Families()
        self._former = SetFormer(
            self._ledger,
            self.splits,
            self.config.max_per_path,
            self.config.max_sets_per_pair,
            budget=self.config.information_budget,
        )

    # ------------------------------------------------------------------ API
    def generate(self, progress: bool = False) -> list[Question]:
        """Generate every question; also fills :attr:`questions` and :attr:`stats`."""
        from tqdm.auto import tqdm

        self._pools.clear()
        self._ledger.clear()
        self._former.demand.clear()
        self._former.dx_plan.clear()
        self.rebalanced = 0
        pools = build_pools(
            self.annotations, self.splits, self._dx_groups, self.organs, self.config
        )
        self._pools.update((p.key, p) for p in pools)
        out: list[Question] = []
        n_cands: Counter[str] = Counter()
        streams: list[tuple[str, Iterator[list[Question]]]] = []
        for pool in tqdm(pools, desc="generate", unit="pool", disable=not progress):
            rng_key = f"scale-vqa-generate:{self.seed}:{pool.key}"
            rng = random.Random(rng_key)
            if self.naive:
                if not pool.profile_match:  # one pool per path and type
                    out.extend(
                        naive_pool(
                            pool,
                            rng,
                            self._ledger,
                            self._families,
                            self.config.pmin,
                            self.splits,
                            self.config.max_per_path,
                        )
                    )
                continue
            cands = self._candidates(pool, self.config.pmin, set())
            self._former.demand.add(pool, cands, self._former.profile)
            n_cands[pool.qtype] += len(cands)
            if pool.qtype == "diagnosis" and self.config.information_budget:
                streams.append((pool.qtype, self._former.exact_sets(pool, cands, rng)))
            else:
                streams.append((pool.qtype, self._former.iter_sets(pool, cands, rng)))
        first = scarce_types(n_cands, self.config.min_type_share) if self._formation_cap() else []
        out.extend(interleave(streams, self._formation_cap(), first))
        if self.naive:
            out = balance_letters(out, self.seed)
        out = dedup(out)
        if not self.naive:
            out = self._rebalance(out)
        out = seeded_order(self._with_tissue(out), self.seed)
        self.questions = out
        self.stats = generation_stats(
            out,
            self.annotations,
            self.splits,
            self._dx_groups,
            self._dx_slides,
            self.config,
            naive=self.naive,
            seed=self.seed,
            n_cands=sum(n_cands.values()),
            rebalanced=self.rebalanced,
            budget=self._budget_figures(),
        )
        return list(out)

    def regenerate(self, flagged: Sequence[Question], round: int = 1) -> list[Question]:
        """Replacements for flagged questions (whole sets; see the module docstring)."""
        if not self._pools:
            raise ConfigError("call generate() before regenerate()")
        ledger = self._ledger
        new: list[Question] = []
        condemned_sets = sorted({q.set_id for q in flagged if q.set_id and q.set_id in ledger.sets})
        by_pool: dict[str, list[SetInfo]] = defaultdict(list)
        for sid in condemned_sets:
            info = ledger.drop_set(sid)
            assert info is not None
            by_pool[info.pool].append(info)
        # sets this generator did not make (another seed or config): rebuild what we can
        # from their provenance, so they are still replaced within their pool
        foreign: dict[str, list[Question]] = defaultdict(list)
        for q in flagged:
            if q.set_id and q.set_id not in condemned_sets and q.extra.get("pool") in self._pools:
                foreign[q.set_id].append(q)
        for _sid, members in sorted(foreign.items()):
            q0 = members[0]
            pair = "|".join([str(q0.extra.get("family", "")), *map(str, q0.extra.get("slots", []))])
            pk = str(q0.extra["pool"])
            ledger.used_pairs[pk].add(pair)
            by_pool[pk].append(
                SetInfo(q0.question_type, pk, pair, q0.template_id, [q.path_id for q in members])
            )
        singles = {q.id for q in flagged if not q.set_id}
        self.questions = [
            q for q in self.questions if q.set_id not in condemned_sets and q.id not in singles
        ]
        pmin = min(self.config.pmin + 0.05 * max(round, 0), 0.45)
        for pk in sorted(by_pool):
            new.extend(self._replace_sets(pk, by_pool[pk], pmin, round))
        single_new = []
        for q in flagged:
            if q.set_id or q.path_id not in self.by_path:
                continue
            pool = self._pools.get(str(q.extra.get("pool", "")))
            if pool is None:
                continue
            rng = random.Random(f"scale-vqa-regenerate:{self.seed}:{round}:{q.id}")
            used = ledger.used_pairs[f"naive:{pool.qtype}:{q.path_id}"]
            r = naive_one(
                pool,
                self.by_path[q.path_id],
                rng,
                used,
                self._families,
                self.config.pmin,
                self.splits,
            )
            if r is not None:
                single_new.append(r)
        if single_new:
            single_new = balance_letters(single_new, self.seed + round)
        new = seeded_order([*new, *single_new], self.seed)
        self.questions = seeded_order([*self.questions, *new], self.seed)
        return self._with_tissue(new)

    def _with_tissue(self, questions: list[Question]) -> list[Question]:
        """Each question with its path's overlapping paths (``extra["tissue"]``), if any."""
        for q in questions:
            near = self.tissue.get(q.path_id)
            if near:
                q.extra["tissue"] = {s: list(p) for s, p in sorted(near.items())}
        return questions

    # -------------------------------------------------------------- helpers
    def _candidates(self, pool: Pool, pmin: float, exclude: set[str]) -> list:
        return find_candidates(pool, self._families, pmin, exclude, self.config.max_length_spread)

    def _replace_sets(
        self, pool_key: str, infos: list[SetInfo], pmin: float, round: int
    ) -> list[Question]:
        """New sets for condemned ones: in their pool, then (dx-free types) its organ pool."""
        wanted = len(infos)
        made_all: list[Question] = []
        t, organ, _, split = pool_key.split("/")
        fallback = f"{t}/{organ}/*/{split}"
        for key in (pool_key, fallback) if fallback != pool_key else (pool_key,):
            if wanted <= 0 or key not in self._pools:
                continue
            rng = random.Random(f"scale-vqa-regenerate:{self.seed}:{round}:{key}")
            cands = self._candidates(self._pools[key], pmin, self._ledger.used_pairs[key])
            made = self._former.form_sets(
                self._pools[key],
                cands,
                rng,
                limit=wanted,
                avoid_templates={i.template_id for i in infos},
                extra_cap=max(round, 1),
            )
            wanted -= len(made) // 4
            made_all.extend(made)
        return made_all

    def _formation_cap(self) -> float | None:
        """Under the budget, a type ahead of its fair share (1/k of k types) waits its turn."""
        if not self.config.information_budget:
            return None
        return 1.0 / len(self.config.question_types)

    def _budget_figures(self) -> dict[str, Any]:
        if self.naive or not self.config.information_budget:
            return {"enforced": False}
        return {
            "enforced": True,
            "scope": self.config.budget_scope,
            "path_skips": {r: self._ledger.budget.skips.get(r, 0) for r in RULES},
            "sets_blocked": {r: self._ledger.blocked_sets.get(r, 0) for r in RULES},
        }

    def _rebalance(self, questions: list[Question]) -> list[Question]:
        """Drop whole sets so split shares track path shares (:mod:`.rebalance`)."""
        dropped = sets_to_drop(
            questions,
            self.splits,
            self.seed,
            self.config.split_tolerance,
            self.config.max_type_share,
            self.config.min_type_share,
        )
        if not dropped:
            return questions
        for sid in dropped:
            self._ledger.drop_set(sid)
        self.rebalanced = len(dropped)
        return [q for q in questions if q.set_id not in dropped]


def generate_questions(
    annotations: Sequence[Annotation],
    seed: int = 0,
    naive: bool = False,
    organs_dir: str | Sequence[str] | None = None,
    ratios: Sequence[float] | str = DEFAULT_RATIOS,
    config: GeneratorConfig | None = None,
) -> list[Question]:
    """Convenience wrapper: ``Generator(...).generate()``."""
    return Generator(annotations, seed, naive, organs_dir, ratios, config).generate()


class Regenerator:
    """The screen's ``regenerate(flagged, round)`` callback over a leak-controlled generator.

    Flagged members of complementary sets go to ``Generator.regenerate`` (new sets over
    unused slot pairs, raised plausibility floor). Flagged single questions (the naive,
    release-style design, no ``set_id``) are replaced by the generator's complementary sets
    of the same pool (``extra["pool"]``), each set offered once: the tightened design for
    the same annotations, since a new naive option set would leak the same way.
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.leak_controlled = generator.generate()
        self._offered: set[str] = set()

    def __call__(self, flagged: list[Question], round: int) -> list[Question]:
        members = [q for q in flagged if q.set_id]
        singles = [q for q in flagged if not q.set_id]
        out = list(self.generator.regenerate(members, round)) if members else []
        pools = {str(q.extra.get("pool", "")) for q in singles} - {""}
        for q in self.leak_controlled:
            if str(q.extra.get("pool", "")) in pools and q.set_id not in self._offered:
                out.append(q)
        self._offered |= {q.set_id for q in out if q.set_id}
        return out
