"""Who carries which questions: diagnosis-reserved patients and the generation pools."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from curation.annotations import Annotation
from curation.generation.config import DX_FREE_TYPES, NON_DX_TYPES, GeneratorConfig
from curation.organs import Organ
from curation.records import QUESTION_TYPES


@dataclass
class Pool:
    """Zoom paths of one type x organ x diagnosis (or ``*``) x split that may share sets."""

    key: str
    qtype: str
    organ: Organ
    dx: str | None
    anns: list[Annotation]
    profile_match: bool = False


def reserve_diagnosis_groups(
    annotations: Sequence[Annotation], config: GeneratorConfig, seed: int
) -> set[str]:
    """Patients (else slides) that carry only diagnosis questions, chosen before the split.

    Per organ, whole groups whose every zoom path has a diagnosis are drawn (seeded)
    until they hold ``diagnosis_share`` of the organ's paths. A group without a
    diagnosis is never reserved (it could carry no diagnosis question), and nothing is
    reserved when the diagnosis type is not asked for or the organ has fewer than two
    diagnoses among its eligible groups.
    """
    share = config.diagnosis_share
    if share <= 0 or "diagnosis" not in config.question_types:
        return set()
    rng = random.Random(f"scale-vqa-dxgroups:{seed}")
    members: dict[str, list[Annotation]] = defaultdict(list)
    for a in annotations:
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


def build_pools(
    annotations: Sequence[Annotation],
    splits: Mapping[str, str],
    dx_groups: set[str],
    organs: Mapping[str, Organ],
    config: GeneratorConfig,
) -> list[Pool]:
    """Every pool in generation order: diagnosis-level pools first, then organ-level ones.

    Diagnosis-reserved groups feed the organ x split diagnosis pools only; the other
    paths feed one pool per non-diagnosis type (by organ, diagnosis and split), and with
    ``pool_by="diagnosis+organ"`` a second, organ-level pool per type that never names a
    diagnosis (``profile_match``: sets there join paths with equal feature priors only).
    """
    mode = config.pool_by
    groups: dict[tuple[int, str, str, str, str], list[Annotation]] = defaultdict(list)
    for a in annotations:
        split = splits[a.path_id]
        if a.group in dx_groups:
            if a.diagnosis is not None:
                groups[(0, "diagnosis", a.organ, "*", split)].append(a)
            continue
        for t in NON_DX_TYPES:
            if t not in config.question_types:
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
        pools.append(
            Pool(
                f"{t}/{organ}/{dx}/{split}",
                t,
                organs[organ],
                None if dx in ("*", "-") else dx,
                sorted(groups[key], key=lambda a: a.path_id),
                profile_match=level == 1,
            )
        )
    return pools
