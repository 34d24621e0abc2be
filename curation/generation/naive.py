"""The release's way (the leaky baseline): per path, the key plus one-swap distractors."""

from __future__ import annotations

import random
from collections.abc import Mapping

from curation.annotations import Annotation
from curation.generation.candidates import Families
from curation.generation.config import SQUARE_ONLY
from curation.generation.pools import Pool
from curation.generation.sets import Ledger, build_question
from curation.options import Slot, claims_truth, one_swap
from curation.records import Question
from curation.templates import TYPES, template_ids
from curation.text_quality import text_problems


def naive_one(
    pool: Pool,
    ann: Annotation,
    rng: random.Random,
    exclude: set[str],
    families: Families,
    pmin: float,
    splits: Mapping[str, str],
) -> Question | None:
    """One one-swap question on ``ann`` over three slots not in ``exclude`` (None: none left)."""
    qtype = TYPES[pool.qtype]
    fams = [
        f
        for f in families(qtype, pool.organ, ann.diagnosis, pmin)
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
            if any(text_problems(t) for t in opts.texts):
                continue
            template = rng.choice(template_ids(pool.qtype))
            text = qtype.question(template, fam, slots, pool.organ)
            return build_question(
                pool,
                qtype,
                fam,
                slots,
                opts,
                values,
                ann,
                text,
                template,
                splits[ann.path_id],
                "naive",
            )
    return None


def naive_pool(
    pool: Pool,
    rng: random.Random,
    ledger: Ledger,
    families: Families,
    pmin: float,
    splits: Mapping[str, str],
    max_per_path: int,
) -> list[Question]:
    """Up to ``max_per_path`` one-swap questions on every path of ``pool``."""
    out = []
    for ann in pool.anns:
        used = ledger.used_pairs[f"naive:{pool.qtype}:{ann.path_id}"]
        for _ in range(max_per_path):
            q = naive_one(pool, ann, rng, used, families, pmin, splits)
            if q is None:
                break
            out.append(q)
            ledger.usage[pool.qtype][ann.path_id] += 1
    return out
