"""A simulated annotation corpus with realistic priors, for stress-testing generation and screen.

Each organ gets patients (one diagnosis each, drawn by prevalence), each patient one to
three slides, each slide two to four zoom paths. In a path, a feature is present in the
broadest field where it is visible with probability ``P(feature | diagnosis)`` (the
organ's baseline otherwise); the next, narrower field keeps it with probability ``keep``
(a narrower field often misses it) and, when it was absent, shows a small focus of it
with probability ``p * focal``. Cytology (features visible only at high power) is only
ever recorded at high power. Features looked for and absent become explicit negatives
with probability ``look``; the rest stay unannotated at that scale. Exclusive pairs never
co-occur in a field. A finding with compartments in the vocabulary has the one it lies in
recorded (``locations``) with probability ``place``, drawn from
:meth:`curation.organs.Organ.location_prior` (the diagnosis's ``locations``, else 0.6 for
the usual compartment); ``compartments`` lists the compartments so placed. Same seed, same
corpus, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from curation.annotations import Annotation
from curation.errors import ConfigError
from curation.organs import SCALES, Organ, get_organ, list_organs


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the simulator (defaults give ~3 paths per slide, ~1.8 slides per patient)."""

    keep: float = 0.6
    focal: float = 0.3
    look: float = 0.92
    slides_per_patient: tuple[int, int] = (1, 3)
    paths_per_slide: tuple[int, int] = (2, 4)
    null_diagnosis: float = 0.0
    place: float = 0.95


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[max(weights[k], 1e-9) for k in keys], k=1)[0]


def simulate_path(
    organ: Organ,
    diagnosis: str | None,
    rng: random.Random,
    config: SimulationConfig = SimulationConfig(),
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Findings and negatives per scale for one zoom path of ``organ`` under ``diagnosis``."""
    present: dict[str, set[str]] = {s: set() for s in SCALES}
    for fid, feat in organ.features.items():
        p = organ.probability(fid, diagnosis)
        prev: bool | None = None
        for scale in feat.scales:
            if prev is None:
                now = rng.random() < p
            elif prev:
                now = rng.random() < config.keep
            else:
                now = rng.random() < p * config.focal
            if now:
                present[scale].add(fid)
            prev = now
    for scale in SCALES:
        for a, b in organ.exclusive:
            if a in present[scale] and b in present[scale]:
                present[scale].discard(rng.choice((a, b)))
    findings = {s: [f for f in organ.features if f in present[s]] for s in SCALES}
    negatives = {
        s: [
            fid
            for fid, feat in organ.features.items()
            if s in feat.scales and fid not in present[s] and rng.random() < config.look
        ]
        for s in SCALES
    }
    return findings, negatives


def simulate_locations(
    organ: Organ,
    diagnosis: str | None,
    findings: dict[str, list[str]],
    rng: random.Random,
    config: SimulationConfig = SimulationConfig(),
) -> dict[str, str]:
    """The compartment each finding lies in (for a share ``place`` of the findings)."""
    out: dict[str, str] = {}
    seen = [f for f in organ.features if any(f in findings[s] for s in SCALES)]
    for fid in seen:
        prior = organ.location_prior(fid, diagnosis)
        if not prior or rng.random() >= config.place:
            continue
        out[fid] = _pick(rng, prior)
    return out


def _split_counts(total: int, organs: Sequence[str]) -> dict[str, int]:
    base, rest = divmod(total, len(organs))
    return {o: base + (1 if i < rest else 0) for i, o in enumerate(organs)}


def simulate(
    n_paths: int = 1500,
    organs: Iterable[str] | None = None,
    seed: int = 0,
    extra_dirs: Iterable[str] = (),
    config: SimulationConfig = SimulationConfig(),
) -> list[Annotation]:
    """``n_paths`` annotated zoom paths spread evenly over ``organs`` (all by default)."""
    extra_dirs = tuple(extra_dirs)
    names = list(organs) if organs is not None else list_organs(extra_dirs)
    if not names:
        raise ConfigError("no organ to simulate; give --organs all or a list such as skin,colon")
    if n_paths < len(names):
        raise ConfigError(f"--paths {n_paths} is fewer than the {len(names)} organs asked for")
    out: list[Annotation] = []
    for name, count in _split_counts(n_paths, names).items():
        organ = get_organ(name, extra_dirs)
        rng = random.Random(f"scale-vqa-simulate:{seed}:{name}")
        dx_weights = {d.id: d.prevalence for d in organ.diagnoses.values()}
        made = 0
        patient = slide = 0
        while made < count:
            patient += 1
            pid = f"{name}-pt{patient:04d}"
            dx: str | None = _pick(rng, dx_weights)
            if rng.random() < config.null_diagnosis:
                dx = None
            for _ in range(rng.randint(*config.slides_per_patient)):
                slide += 1
                sid = f"{name}-s{slide:04d}"
                for _ in range(rng.randint(*config.paths_per_slide)):
                    if made >= count:
                        break
                    made += 1
                    findings, negatives = simulate_path(organ, dx, rng, config)
                    locations = simulate_locations(organ, dx, findings, rng, config)
                    comps = sorted(set(locations.values()))
                    out.append(
                        Annotation(
                            path_id=f"{name}-p{made:05d}",
                            slide_id=sid,
                            patient_id=pid,
                            organ=name,
                            diagnosis=dx,
                            centre={"x": rng.randint(2000, 60000), "y": rng.randint(2000, 60000)},
                            findings=findings,
                            negatives=negatives,
                            compartments=comps,
                            locations=locations,
                            source=f"simulated (seed {seed})",
                        )
                    )
    return out
