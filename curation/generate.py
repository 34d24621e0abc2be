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
exactly 1/4 of the times it appears within its type. Finally whole sets are dropped
(seeded) until each split's share of the questions tracks its share of the paths and no
type dominates (:meth:`Generator._rebalance`).

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

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.annotations import Annotation
from curation.balance import balance_letters, dedup
from curation.constraints import option_problems
from curation.errors import ConfigError, ValidationError
from curation.options import (
    OptionSet,
    Slot,
    claims_to_json,
    claims_truth,
    one_swap,
    option_truths,
    square,
)
from curation.organs import Organ, get_organ
from curation.records import LETTERS, QUESTION_TYPES, Question
from curation.split import DEFAULT_MIN_CHUNK, DEFAULT_RATIOS, assign_splits, parse_ratios
from curation.templates import TYPES, Family, QuestionType, template_ids

NON_DX_TYPES = tuple(t for t in QUESTION_TYPES if t != "diagnosis")
DX_FREE_TYPES = ("correspondence", "corroboration", "localization", "explanation")
"""Types whose text never names the diagnosis: these may fall back to organ-level pools."""
POOL_MODES = ("diagnosis", "diagnosis+organ", "organ")
SQUARE_ONLY = ("corrm",)
"""Families the release never had: ``--naive`` (the release's rule) leaves them out."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of generation.

    ``max_per_path``: questions per zoom path and type; ``max_sets_per_pair``: sets per
    slot pair in a pool; ``diagnosis_share``: share of each organ's zoom paths (whole
    patients, else slides, with a diagnosis; chosen before the split) that carry only
    diagnosis questions; ``pmin``: a feature is offered only where its probability under
    the pool's diagnosis is at least this (and, for the options' second feature, at most
    ``1 - pmin``).

    ``question_types``: the types to generate (others are never attempted, and without
    ``diagnosis`` no path is set aside for it). ``split_min_chunk``: fewest zoom paths of an
    organ x diagnosis stratum dealt to a split (:func:`curation.split.assign_splits`; 0 =
    every stratum to every split). ``split_tolerance``: after generation, whole sets are
    dropped from over-represented splits until each split's share of the questions is
    within this of its share of the zoom paths (None: keep everything).
    ``max_type_share``: likewise, no type above this share of the questions (None: no cap).
    """

    max_per_path: int = 4
    max_sets_per_pair: int = 3
    diagnosis_share: float = 0.25
    pmin: float = 0.05
    pool_by: str = "diagnosis+organ"
    max_length_spread: float = 0.2
    question_types: tuple[str, ...] = QUESTION_TYPES
    split_min_chunk: int = DEFAULT_MIN_CHUNK
    split_tolerance: float | None = 0.005
    max_type_share: float | None = 0.35

    def validate(self) -> None:
        if self.max_per_path < 1:
            raise ConfigError("max_per_path must be >= 1")
        if self.max_sets_per_pair < 1:
            raise ConfigError("max_sets_per_pair must be >= 1")
        if not 0.0 <= self.diagnosis_share <= 1.0:
            raise ConfigError("diagnosis_share must be in [0, 1]")
        if not 0.0 <= self.pmin < 0.5:
            raise ConfigError("pmin must be in [0, 0.5)")
        if self.pool_by not in POOL_MODES:
            raise ConfigError(f"pool_by {self.pool_by!r}: use one of {', '.join(POOL_MODES)}")
        unknown = sorted(set(self.question_types) - set(QUESTION_TYPES))
        if unknown or not self.question_types:
            raise ConfigError(
                f"question_types {list(self.question_types)}: give one or more of "
                f"{', '.join(QUESTION_TYPES)}"
            )
        if self.split_min_chunk < 0:
            raise ConfigError("split_min_chunk must be >= 0")
        if self.split_tolerance is not None and not 0.0 <= self.split_tolerance < 1.0:
            raise ConfigError("split_tolerance must be in [0, 1) or None")
        if self.max_type_share is not None and not 0.0 < self.max_type_share <= 1.0:
            raise ConfigError("max_type_share must be in (0, 1] or None")


@dataclass
class _Candidate:
    fam: Family
    slots: tuple[Slot, Slot]
    key: str
    cells: list[list[int]]
    members: set[str] = field(default_factory=set)


@dataclass
class _SetInfo:
    qtype: str
    pool: str
    pair_key: str
    template_id: str
    paths: list[str]


@dataclass
class _Pool:
    key: str
    qtype: str
    organ: Organ
    dx: str | None
    anns: list[Annotation]
    profile_match: bool = False


def _hash(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


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
    ) -> None:
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
        self._dx_groups = self._reserve_diagnosis_groups()
        self.splits = assign_splits(
            self.annotations,
            self.ratios,
            seed,
            min_chunk=self.config.split_min_chunk,
            reserved=self._dx_groups,
        )
        self.questions: list[Question] = []
        self.stats: dict[str, Any] = {}
        self._pools: dict[str, _Pool] = {}
        self._sets: dict[str, _SetInfo] = {}
        self._used_pairs: dict[str, set[str]] = defaultdict(set)
        self._usage: dict[str, Counter[str]] = defaultdict(Counter)
        self._path_pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._families: dict[tuple[str, str | None, str, float], list[Family]] = {}
        self.rebalanced = 0
        self._dx_slides = {a.slide_id for a in self.annotations if a.group in self._dx_groups}

    # ---------------------------------------------------------------- pools
    def _reserve_diagnosis_groups(self) -> set[str]:
        """Patients (else slides) that carry only diagnosis questions, chosen before the split.

        Per organ, whole groups whose every zoom path has a diagnosis are drawn (seeded)
        until they hold ``diagnosis_share`` of the organ's paths. A group without a
        diagnosis is never reserved (it could carry no diagnosis question), and nothing is
        reserved when the diagnosis type is not asked for or the organ has fewer than two
        diagnoses among its eligible groups.
        """
        share = self.config.diagnosis_share
        if share <= 0 or "diagnosis" not in self.config.question_types:
            return set()
        rng = random.Random(f"scale-vqa-dxgroups:{self.seed}")
        members: dict[str, list[Annotation]] = defaultdict(list)
        for a in self.annotations:
            members[a.group].append(a)
        by_organ: dict[str, list[str]] = defaultdict(list)
        organ_paths: Counter[str] = Counter()
        for g, anns in members.items():
            organ = Counter(a.organ for a in anns).most_common(1)[0][0]
            organ_paths[organ] += len(anns)
            if all(a.diagnosis is not None for a in anns):
                by_organ[organ].append(g)
        reserved: set[str] = set()
        for organ in sorted(by_organ):
            names = sorted(by_organ[organ])
            if len({a.diagnosis for g in names for a in members[g]}) < 2:
                continue
            rng.shuffle(names)
            want = share * organ_paths[organ]
            got = 0
            for g in names:
                if got >= want or (got and got + len(members[g]) / 2 > want):
                    break
                reserved.add(g)
                got += len(members[g])
        return reserved

    def _build_pools(self) -> list[_Pool]:
        mode = self.config.pool_by
        groups: dict[tuple[int, str, str, str, str], list[Annotation]] = defaultdict(list)
        for a in self.annotations:
            split = self.splits[a.path_id]
            if a.group in self._dx_groups:
                if a.diagnosis is not None:
                    groups[(0, "diagnosis", a.organ, "*", split)].append(a)
                continue
            for t in NON_DX_TYPES:
                if t not in self.config.question_types:
                    continue
                if mode == "organ" and t in DX_FREE_TYPES:
                    groups[(0, t, a.organ, "*", split)].append(a)
                    continue
                groups[(0, t, a.organ, a.diagnosis or "-", split)].append(a)
                if mode == "diagnosis+organ" and t in DX_FREE_TYPES:
                    groups[(1, t, a.organ, "*", split)].append(a)
        pools = []
        order = {t: i for i, t in enumerate(QUESTION_TYPES)}
        for key in sorted(groups, key=lambda k: (k[0], order[k[1]], k[2:])):
            level, t, organ, dx, split = key
            pk = f"{t}/{organ}/{dx}/{split}"
            pool = _Pool(
                pk,
                t,
                self.organs[organ],
                None if dx in ("*", "-") else dx,
                sorted(groups[key], key=lambda a: a.path_id),
                profile_match=level == 1,
            )
            self._pools[pk] = pool
            pools.append(pool)
        return pools

    def _fams(self, qtype: QuestionType, organ: Organ, dx: str | None, pmin: float) -> list[Family]:
        key = (organ.name, dx, qtype.name, pmin)
        if key not in self._families:
            self._families[key] = qtype.families(organ, dx, pmin)
        return self._families[key]

    # ----------------------------------------------------------- candidates
    def _candidates(self, pool: _Pool, pmin: float, exclude: set[str]) -> list[_Candidate]:
        qtype = TYPES[pool.qtype]
        out: list[_Candidate] = []
        for fam in self._fams(qtype, pool.organ, pool.dx, pmin):
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
                if not self._acceptable(pool, qtype, fam, s1, s2, pmin):
                    continue
                if not pool.profile_match:
                    out.append(_Candidate(fam, (s1, s2), key, cells))
                    continue
                # organ-level pool: only paths whose diagnoses give the slot features the
                # same prior may share a set, so knowing the diagnosis does not help
                feats = [f for f in (*s1.features, *s2.features) if f in pool.organ.features]
                classes: dict[tuple[float, ...], list[list[int]]] = {}
                for c, cell in enumerate(cells):
                    for i in cell:
                        dx = pool.anns[i].diagnosis
                        prof = tuple(round(pool.organ.probability(f, dx), 3) for f in feats)
                        classes.setdefault(prof, [[], [], [], []])[c].append(i)
                for sub in classes.values():
                    if all(sub):
                        out.append(_Candidate(fam, (s1, s2), key, sub))
        return out

    def _acceptable(
        self, pool: _Pool, qtype: QuestionType, fam: Family, s1: Slot, s2: Slot, pmin: float
    ) -> bool:
        """Plausible options (under the pool's diagnosis) of near-equal length."""
        opts = square([s1, s2], lambda alts: qtype.render(fam, alts))
        lengths = [len(t) for t in opts.texts]
        if (max(lengths) - min(lengths)) / max(lengths) > self.config.max_length_spread:
            return False
        floor = min(0.02 + pmin / 2, 0.2)
        return not any(option_problems(pool.organ, c, pool.dx, floor) for c in opts.claims)

    # -------------------------------------------------------------- squares
    def _form_sets(
        self,
        pool: _Pool,
        cands: list[_Candidate],
        rng: random.Random,
        limit: int | None = None,
        avoid_templates: Iterable[str] = (),
        extra_cap: int = 0,
    ) -> list[Question]:
        qtype = TYPES[pool.qtype]
        usage = self._usage[pool.qtype]
        rank = {a.path_id: rng.random() for a in pool.anns}
        rng.shuffle(cands)
        cap = self.config.max_per_path + extra_cap
        tids = [t for t in template_ids(pool.qtype) if t not in set(avoid_templates)]
        tids = tids or template_ids(pool.qtype)
        made: list[Question] = []
        n_sets = 0
        for _ in range(self.config.max_sets_per_pair):
            for c in cands:
                if limit is not None and n_sets >= limit:
                    return made
                picks: list[Annotation] = []
                for cell in c.cells:
                    best: Annotation | None = None
                    for i in cell:
                        a = pool.anns[i]
                        if usage[a.path_id] >= cap or a.path_id in c.members:
                            continue
                        if c.key in self._path_pairs[(pool.qtype, a.path_id)]:
                            continue
                        if best is None or (usage[a.path_id], rank[a.path_id]) < (
                            usage[best.path_id],
                            rank[best.path_id],
                        ):
                            best = a
                    if best is None:
                        break
                    picks.append(best)
                if len(picks) < 4:
                    continue
                made.extend(self._make_set(pool, qtype, c, picks, rng, tids))
                n_sets += 1
        return made

    def _make_set(
        self,
        pool: _Pool,
        qtype: QuestionType,
        c: _Candidate,
        picks: list[Annotation],
        rng: random.Random,
        tids: list[str],
    ) -> list[Question]:
        fam, (s1, s2) = c.fam, c.slots
        opts = square([s1, s2], lambda alts: qtype.render(fam, alts))
        order = list(range(len(opts.texts)))
        rng.shuffle(order)
        opts = opts.permuted(order)
        template = rng.choice(tids)
        text = qtype.question(template, fam, [s1, s2], pool.organ)
        paths = [a.path_id for a in picks]
        set_id = _hash("set", self.seed, pool.key, c.key, *paths)
        out = []
        for cell, ann in zip(((0, 0), (0, 1), (1, 0), (1, 1)), picks):
            out.append(self._question(pool, qtype, fam, (s1, s2), opts, cell, ann, text, template))
            out[-1].set_id = set_id
            out[-1].id = out[-1].content_id()
            self._usage[pool.qtype][ann.path_id] += 1
            self._path_pairs[(pool.qtype, ann.path_id)].add(c.key)
            c.members.add(ann.path_id)
        self._used_pairs[pool.key].add(c.key)
        self._sets[set_id] = _SetInfo(pool.qtype, pool.key, c.key, template, paths)
        return out

    def _question(
        self,
        pool: _Pool,
        qtype: QuestionType,
        fam: Family,
        slots: Sequence[Slot],
        opts: OptionSet,
        values: Sequence[int],
        ann: Annotation,
        text: str,
        template: str,
    ) -> Question:
        key_idx = opts.index_of(values)
        truths = option_truths(ann, opts.claims)
        if truths[key_idx] is not True or any(
            t is not False for i, t in enumerate(truths) if i != key_idx
        ):
            raise ValidationError(  # pragma: no cover - guards the construction itself
                f"internal: option set on {ann.path_id} is not one-true ({truths})"
            )
        rationale = qtype.rationale(ann, pool.organ, fam, slots, opts.texts[key_idx])
        return Question(
            question=text,
            options=list(opts.texts),
            answer=LETTERS[key_idx],
            question_type=pool.qtype,
            rationale=rationale,
            organ=ann.organ,
            slide_id=ann.slide_id,
            patient_id=ann.patient_id,
            path_id=ann.path_id,
            split=self.splits[ann.path_id],
            template_id=template,
            source=ann.source,
            extra={
                "design": "naive" if self.naive else "square",
                "diagnosis": pool.dx if pool.qtype != "diagnosis" else None,
                "premise": claims_to_json(fam.premise),
                "claims": [claims_to_json(c) for c in opts.claims],
                "values": [list(v) for v in opts.values],
                "slots": list(opts.slots),
                "family": fam.key,
                "pool": pool.key,
            },
        )

    # ---------------------------------------------------------------- naive
    def _naive_one(
        self, pool: _Pool, ann: Annotation, rng: random.Random, exclude: set[str]
    ) -> Question | None:
        qtype = TYPES[pool.qtype]
        fams = [
            f
            for f in self._fams(qtype, pool.organ, ann.diagnosis, self.config.pmin)
            if claims_truth(ann, f.premise) is True and f.key.split(":")[0] not in SQUARE_ONLY
        ]
        rng.shuffle(fams)
        for fam in fams:
            d1 = [s for s in fam.slots1 if s.value(ann) is not None]
            d2 = [s for s in fam.slots2 if s.value(ann) is not None]
            rng.shuffle(d1)
            rng.shuffle(d2)
            for s1 in d1[:5]:
                rest = [s for s in d2 if not set(s.features) & set(s1.features)]
                chosen: list[Slot] = []
                for s in rest:
                    if all(not set(s.features) & set(o.features) for o in chosen):
                        chosen.append(s)
                    if len(chosen) == 2:
                        break
                if len(chosen) < 2:
                    continue
                slots = [s1, *chosen]
                key = "naive|" + "|".join(s.key for s in slots)
                if key in exclude:
                    continue
                exclude.add(key)
                values = [s.value(ann) for s in slots]
                opts = one_swap(slots, values, lambda alts, f=fam: qtype.render(f, alts))
                template = rng.choice(template_ids(pool.qtype))
                text = qtype.question(template, fam, slots, pool.organ)
                return self._question(pool, qtype, fam, slots, opts, values, ann, text, template)
        return None

    def _naive_pool(self, pool: _Pool, rng: random.Random) -> list[Question]:
        out = []
        for ann in pool.anns:
            used = self._used_pairs[f"naive:{pool.qtype}:{ann.path_id}"]
            for _ in range(self.config.max_per_path):
                q = self._naive_one(pool, ann, rng, used)
                if q is None:
                    break
                out.append(q)
                self._usage[pool.qtype][ann.path_id] += 1
        return out

    # ------------------------------------------------------------------ API
    def generate(self, progress: bool = False) -> list[Question]:
        """Generate every question; also fills :attr:`questions` and :attr:`stats`."""
        from tqdm.auto import tqdm

        self._pools.clear()
        self._sets.clear()
        self._used_pairs.clear()
        self._usage.clear()
        self._path_pairs.clear()
        self.rebalanced = 0
        pools = self._build_pools()
        out: list[Question] = []
        n_cands = 0
        for pool in tqdm(pools, desc="generate", unit="pool", disable=not progress):
            rng = random.Random(f"scale-vqa-generate:{self.seed}:{pool.key}")
            if self.naive:
                if not pool.profile_match:  # one pool per path and type
                    out.extend(self._naive_pool(pool, rng))
                continue
            cands = self._candidates(pool, self.config.pmin, set())
            n_cands += len(cands)
            out.extend(self._form_sets(pool, cands, rng))
        if self.naive:
            out = balance_letters(out, self.seed)
        out = dedup(out)
        if not self.naive:
            out = self._rebalance(out)
        self.questions = out
        self.stats = self._stats(out, n_cands)
        return list(out)

    def regenerate(self, flagged: Sequence[Question], round: int = 1) -> list[Question]:
        """Replacements for flagged questions (whole sets; see the module docstring)."""
        if not self._pools:
            raise ConfigError("call generate() before regenerate()")
        new: list[Question] = []
        condemned_sets = sorted({q.set_id for q in flagged if q.set_id and q.set_id in self._sets})
        by_pool: dict[str, list[_SetInfo]] = defaultdict(list)
        for sid in condemned_sets:
            info = self._sets.pop(sid)
            for pid in info.paths:
                self._usage[info.qtype][pid] -= 1
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
            self._used_pairs[pk].add(pair)
            by_pool[pk].append(
                _SetInfo(q0.question_type, pk, pair, q0.template_id, [q.path_id for q in members])
            )
        singles = {q.id for q in flagged if not q.set_id}
        self.questions = [
            q for q in self.questions if q.set_id not in condemned_sets and q.id not in singles
        ]
        pmin = min(self.config.pmin + 0.05 * max(round, 0), 0.45)
        for pk in sorted(by_pool):
            infos = by_pool[pk]
            wanted = len(infos)
            # the pool itself, then (types that never name a diagnosis) its organ-level pool
            t, organ, _, split = pk.split("/")
            fallback = f"{t}/{organ}/*/{split}"
            for key in (pk, fallback) if fallback != pk else (pk,):
                if wanted <= 0 or key not in self._pools:
                    continue
                rng = random.Random(f"scale-vqa-regenerate:{self.seed}:{round}:{key}")
                cands = self._candidates(self._pools[key], pmin, self._used_pairs[key])
                made = self._form_sets(
                    self._pools[key],
                    cands,
                    rng,
                    limit=wanted,
                    avoid_templates={i.template_id for i in infos},
                    extra_cap=max(round, 1),
                )
                wanted -= len(made) // 4
                new.extend(made)
        single_new = []
        for q in flagged:
            if q.set_id or q.path_id not in self.by_path:
                continue
            pool = self._pools.get(str(q.extra.get("pool", "")))
            if pool is None:
                continue
            rng = random.Random(f"scale-vqa-regenerate:{self.seed}:{round}:{q.id}")
            used = self._used_pairs[f"naive:{pool.qtype}:{q.path_id}"]
            r = self._naive_one(pool, self.by_path[q.path_id], rng, used)
            if r is not None:
                single_new.append(r)
        if single_new:
            single_new = balance_letters(single_new, self.seed + round)
        new.extend(single_new)
        self.questions.extend(new)
        return new

    # ------------------------------------------------------------ rebalance
    def _rebalance(self, questions: list[Question]) -> list[Question]:
        """Drop whole sets so split shares track path shares and no type dominates.

        Small splits form fewer sets per path than train (fewer paths per pool), and some
        types form sets more easily than others. Dropping *whole* complementary sets keeps
        every set property (one true key per path, each option the key once per set, one
        split per set). Greedy and seeded: while a split's question share exceeds its path
        share by more than ``split_tolerance``, or a type's share exceeds
        ``max_type_share``, one set (a random one) is dropped from the split x type cell that
        relieves a violation and whose split and type are most over-represented together.
        The type cap is at least ``1 / k`` for ``k`` types present, and type trimming stops
        once a quarter of the questions is gone (split tracking does not).
        """
        tol, cap = self.config.split_tolerance, self.config.max_type_share
        if tol is None and cap is None:
            return questions
        path_share = Counter(self.splits.values())
        n_paths = sum(path_share.values())
        target = {s: path_share[s] / n_paths for s in path_share}
        sets: dict[tuple[str, str], list[str]] = defaultdict(list)
        size: Counter[str] = Counter()
        for q in questions:
            if not q.set_id:
                continue
            if size[q.set_id] == 0:
                sets[(q.split, q.question_type)].append(q.set_id)
            size[q.set_id] += 1
        rng = random.Random(f"scale-vqa-rebalance:{self.seed}")
        for key in sorted(sets):
            rng.shuffle(sets[key])
        by_split = Counter(q.split for q in questions)
        by_type = Counter(q.question_type for q in questions)
        cell = Counter((q.split, q.question_type) for q in questions if q.set_id)
        total = len(questions)
        # a cap below 1/k cannot hold with k types; type trimming stops at a quarter lost
        if cap is not None:
            cap = max(cap, 1.0 / max(len(by_type), 1))
        floor = 0.75 * total
        dropped: set[str] = set()
        while total > 0:
            excess_s = {s: by_split[s] / total - target.get(s, 0.0) for s in by_split}
            excess_t = {t: by_type[t] / total - (cap if cap is not None else 1.0) for t in by_type}
            over_s = {s for s, e in excess_s.items() if tol is not None and e > tol}
            over_t = {t for t, e in excess_t.items() if e > 0 and total > floor}
            if not over_s and not over_t:
                break
            # most over-represented split x type cell among those that relieve a violation
            choices = [
                (excess_s[s] + excess_t[t], s, t)
                for (s, t), n in cell.items()
                if n > 0 and sets[(s, t)] and (s in over_s or t in over_t)
            ]
            if not choices:
                break
            _, s, t = max(choices)
            sid = sets[(s, t)].pop()
            dropped.add(sid)
            n = size[sid]
            by_split[s] -= n
            by_type[t] -= n
            cell[(s, t)] -= n
            total -= n
        if not dropped:
            return questions
        for sid in dropped:
            info = self._sets.pop(sid, None)
            if info is None:
                continue
            for pid in info.paths:
                self._usage[info.qtype][pid] -= 1
        self.rebalanced = len(dropped)
        return [q for q in questions if q.set_id not in dropped]

    # ---------------------------------------------------------------- stats
    def _stats(self, questions: Sequence[Question], n_cands: int) -> dict[str, Any]:
        slots = 0
        for a in self.annotations:
            if a.group in self._dx_groups:
                slots += self.config.max_per_path if a.diagnosis is not None else 0
            else:
                n_types = sum(t in self.config.question_types for t in NON_DX_TYPES)
                slots += self.config.max_per_path * n_types
        by_type = Counter(q.question_type for q in questions)
        by_split = Counter(q.split for q in questions)
        return {
            "design": "naive" if self.naive else "square",
            "seed": self.seed,
            "paths": len(self.annotations),
            "questions": len(questions),
            "sets": len({q.set_id for q in questions if q.set_id}),
            "candidate_slots": slots,
            "retention": round(len(questions) / slots, 4) if slots else math.nan,
            "candidate_pairs": n_cands,
            "by_type": {t: by_type.get(t, 0) for t in QUESTION_TYPES},
            "by_split": dict(sorted(by_split.items())),
            "paths_by_split": dict(sorted(Counter(self.splits.values()).items())),
            "diagnosis_slides": len(self._dx_slides),
            "diagnosis_groups": len(self._dx_groups),
            "sets_dropped_to_rebalance": self.rebalanced,
        }


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
