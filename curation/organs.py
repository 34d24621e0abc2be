"""Registry of organ vocabularies: one YAML data file per organ.

An organ file names the organ's compartments, its atomic observable features (with the
scales at which each is visible: ``low`` for architecture, ``mid``, ``high`` for cytology),
its diagnoses with ``P(feature | diagnosis)``, and feature pairs that cannot co-occur in one
field. The files shipped in ``curation/vocabularies/`` are always read; more folders come
from the ``SCALE_VQA_ORGANS_DIR`` environment variable (``os.pathsep``-separated) and from
``extra_dirs`` arguments. Adding an organ is adding a file.

Example (abridged)::

    name: skin
    display_name: Skin
    compartments: [epidermis, dermis]
    features:
      - {id: keratin_pearls, phrase: keratin pearls, scales: [mid, high],
         compartment: epidermis, synonyms: [squamous pearls], prevalence: 0.05}
      - {id: nuclear_pleomorphism, phrase: nuclear pleomorphism, scales: [high],
         compartments: [epidermis, dermis], prevalence: 0.1}
      - {id: solar_elastosis, phrase: solar elastosis, scales: [low, mid],
         compartment: dermis, min_field_mm: 1.5}
    diagnoses:
      - {id: squamous_cell_carcinoma, name: squamous cell carcinoma, prevalence: 0.3,
         features: {keratin_pearls: 0.7},
         locations: {nuclear_pleomorphism: {dermis: 0.7, epidermis: 0.3}}}
    exclusive: []

Where a feature can lie: ``compartments`` (a list; the first is where it usually lies),
else the single ``compartment`` (a feature without either has no compartment and is never
asked about by compartment). A diagnosis may give ``locations``: per feature, the chance
that it lies in each of its compartments under that diagnosis (the simulator's prior; the
in-situ vs invasive distinction). ``min_field_mm``: the narrowest field (in mm) in which the
feature can be judged; by default :data:`DEFAULT_MIN_FIELD_MM` for features visible at low
power (architecture needs millimetres), none otherwise (:func:`field_warnings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from curation.errors import InputError, ValidationError

SCALES: tuple[str, ...] = ("low", "mid", "high")
"""Magnification scales, coarse to fine."""

ENV_VAR = "SCALE_VQA_ORGANS_DIR"
BUILTIN_DIR = Path(__file__).resolve().parent / "vocabularies"
_NAME = re.compile(r"^[a-z0-9_]+$")

_TOP_KEYS = {"name", "display_name", "compartments", "features", "diagnoses", "exclusive"}
_TOP_OPTIONAL = {"description", "source", "overrides"}
_FEATURE_KEYS = {
    "id",
    "phrase",
    "scales",
    "compartment",
    "compartments",
    "synonyms",
    "prevalence",
    "min_field_mm",
}
_DIAGNOSIS_KEYS = {"id", "name", "prevalence", "features", "synonyms", "locations"}
PLACE_WORDS = r"\b(in|within|above|below|beneath|under|around|inside|into)\b"
"""Prepositions of place: a phrase with one names where the feature lies."""
DEFAULT_MIN_FIELD_MM = 1.0
"""Narrowest low-power field (mm) in which a low-power (architectural) feature is judged."""


@dataclass(frozen=True)
class Feature:
    """An atomic observable feature and where it can be seen."""

    id: str
    phrase: str
    scales: tuple[str, ...]
    compartment: str = ""
    synonyms: tuple[str, ...] = ()
    prevalence: float = 0.1
    compartments: tuple[str, ...] = ()
    min_field_mm: float | None = None

    def where(self) -> tuple[str, ...]:
        """Compartments the feature can lie in (the usual one first)."""
        if self.compartments:
            return self.compartments
        return (self.compartment,) if self.compartment else ()

    def field_mm(self) -> float:
        """Narrowest field (mm) the feature needs at its coarsest scale (0: no need)."""
        if self.min_field_mm is not None:
            return self.min_field_mm
        return DEFAULT_MIN_FIELD_MM if "low" in self.scales else 0.0


@dataclass(frozen=True)
class Diagnosis:
    """A diagnosis and the probability of each characteristic feature under it."""

    id: str
    name: str
    prevalence: float
    features: dict[str, float] = field(default_factory=dict)
    synonyms: tuple[str, ...] = ()
    locations: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Organ:
    """One organ's vocabulary (see the module docstring for the file format)."""

    name: str
    display_name: str
    compartments: list[str]
    features: dict[str, Feature]
    diagnoses: dict[str, Diagnosis]
    exclusive: list[tuple[str, str]] = field(default_factory=list)
    path: str = ""

    def visible_at(self, scale: str) -> list[str]:
        """Feature ids visible at ``scale``, in file order."""
        return [f.id for f in self.features.values() if scale in f.scales]

    def probability(self, feature: str, diagnosis: str | None) -> float:
        """P(feature | diagnosis); the feature's baseline prevalence when not given."""
        d = self.diagnoses.get(diagnosis or "")
        if d is not None and feature in d.features:
            return d.features[feature]
        return self.features[feature].prevalence

    def compartments_of(self, feature: str) -> tuple[str, ...]:
        """Compartments ``feature`` can lie in (the usual one first; empty: none given)."""
        return self.features[feature].where()

    def location_prior(self, feature: str, diagnosis: str | None) -> dict[str, float]:
        """P(compartment | feature present, diagnosis): the diagnosis's ``locations``, else
        0.6 for the usual compartment and the rest shared by the others."""
        where = self.compartments_of(feature)
        d = self.diagnoses.get(diagnosis or "")
        if d is not None and feature in d.locations:
            given = d.locations[feature]
            total = sum(given.values()) or 1.0
            return {c: given.get(c, 0.0) / total for c in where}
        if len(where) < 2:
            return dict.fromkeys(where, 1.0)
        rest = 0.4 / (len(where) - 1)
        return {c: (0.6 if i == 0 else rest) for i, c in enumerate(where)}

    def are_exclusive(self, a: str, b: str) -> bool:
        """Whether features ``a`` and ``b`` cannot co-occur in one field."""
        return (a, b) in self._exclusive_set or (b, a) in self._exclusive_set

    @property
    def _exclusive_set(self) -> set[tuple[str, str]]:
        return {tuple(p) for p in self.exclusive}  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        """The organ in its file form."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "compartments": list(self.compartments),
            "features": [
                {
                    "id": f.id,
                    "phrase": f.phrase,
                    "scales": list(f.scales),
                    "compartment": f.compartment,
                    "synonyms": list(f.synonyms),
                    "prevalence": f.prevalence,
                    **({"compartments": list(f.compartments)} if f.compartments else {}),
                    **({"min_field_mm": f.min_field_mm} if f.min_field_mm is not None else {}),
                }
                for f in self.features.values()
            ],
            "diagnoses": [
                {
                    "id": d.id,
                    "name": d.name,
                    "prevalence": d.prevalence,
                    "features": d.features,
                    **({"locations": d.locations} if d.locations else {}),
                }
                for d in self.diagnoses.values()
            ],
            "exclusive": [list(p) for p in self.exclusive],
        }


def _is_prob(v: Any) -> bool:
    # compared as is: float() of a 400-digit int overflows; NaN compares False
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1


def _entries(
    data: dict[str, Any],
    key: str,
    noun: str,
    shape: str,
    allowed: Collection[str],
    required: Sequence[str],
    ids: set[str],
    bad: Callable[[str, str], None],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(prefix, entry)`` for each mapping of the list ``data[key]``, its id checked.

    ``key`` is ``features`` or ``diagnoses`` (``noun``: feature, diagnosis). Reports through
    ``bad`` a value that is not a non-empty list, an entry that is not a mapping (skipped),
    unknown keys (not in ``allowed``), missing ``required`` fields, an invalid or duplicate
    id; valid ids are added to ``ids``. ``prefix`` names the entry in messages, e.g.
    ``features[2] (acanthosis)``.
    """
    items = data.get(key, [])
    if key in data and (not isinstance(items, list) or not items):
        bad(key, f"must be a non-empty list of {noun} mappings")
        return
    for i, e in enumerate(items):
        prefix = f"{key}[{i}]"
        if not isinstance(e, dict):
            bad(prefix, f"must be a mapping with {shape}")
            continue
        eid = e.get("id")
        if isinstance(eid, str):
            prefix = f"{key}[{i}] ({eid})"
        for k in e:
            if k not in allowed:
                bad(f"{prefix}.{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
        for k in required:
            if k not in e:
                bad(f"{prefix}.{k}", "missing required field")
        if "id" in e:
            if not isinstance(eid, str) or not _NAME.match(eid):
                bad(f"{prefix}.id", f"{eid!r} is not a valid id; use lowercase letters, digits, _")
            elif eid in ids:
                bad(f"{prefix}.id", f"duplicate {noun} id {eid!r}")
            else:
                ids.add(eid)
        yield prefix, e


def _where(f: dict[str, Any]) -> list[str]:
    """The compartments a feature mapping allows (``compartments``, else ``compartment``)."""
    many = f.get("compartments")
    if isinstance(many, list) and many:
        return [c for c in many if isinstance(c, str)]
    one = f.get("compartment")
    return [one] if isinstance(one, str) and one else []


def _check_feature_compartments(
    f: dict[str, Any], fp: str, comps: list[str], bad: Callable[[str, str], None]
) -> None:
    """``compartment`` / ``compartments`` of one feature name the organ's compartments."""
    if "compartment" in f:
        c = f["compartment"]
        if not isinstance(c, str):
            bad(f"{fp}.compartment", "must be a string")
        elif comps and c and c not in comps:
            bad(f"{fp}.compartment", f"{c!r} is not in compartments ({', '.join(comps)})")
    if "compartments" not in f:
        return
    many = f["compartments"]
    if not isinstance(many, list) or not many or not all(isinstance(c, str) for c in many):
        bad(f"{fp}.compartments", "must be a non-empty list of the organ's compartments")
        return
    for c in many:
        if c not in comps:
            bad(
                f"{fp}.compartments",
                f"{c!r} is not in compartments ({', '.join(comps) or 'none declared'})",
            )
    if len(set(many)) != len(many):
        bad(f"{fp}.compartments", "lists the same compartment twice")
    phrase = f.get("phrase")
    if len(many) > 1 and isinstance(phrase, str) and re.search(PLACE_WORDS, phrase):
        bad(
            f"{fp}.compartments",
            f"phrase {phrase!r} names a place itself; a feature that can lie in several "
            "compartments needs a phrase that does not",
        )
    one = f.get("compartment")
    if isinstance(one, str) and one and one in comps and one != many[0]:
        bad(
            f"{fp}.compartment",
            f"{one!r} must be the first of compartments ({', '.join(map(str, many))}): "
            "the usual compartment comes first",
        )


def _check_locations(
    d: dict[str, Any],
    dp: str,
    where_of: dict[str, list[str]],
    bad: Callable[[str, str], None],
) -> None:
    """A diagnosis's ``locations``: known features, their compartments, probabilities."""
    if "locations" not in d:
        return
    locs = d["locations"]
    if not isinstance(locs, dict):
        bad(f"{dp}.locations", "must map feature_id -> {compartment: probability}")
        return
    for fid, prior in locs.items():
        lp = f"{dp}.locations.{fid}"
        if fid not in where_of:
            bad(lp, f"feature {fid!r} is not defined under features")
            continue
        if not isinstance(prior, dict) or not prior:
            bad(lp, "must map the feature's compartments to probabilities")
            continue
        for c, p in prior.items():
            if c not in where_of[fid]:
                allowed = ", ".join(where_of[fid]) or "none"
                bad(lp, f"{c!r} is not a compartment {fid!r} can lie in (allowed: {allowed})")
            if not _is_prob(p):
                bad(lp, f"{p!r} is not a probability in [0, 1]")


def _check(data: Any, where: str) -> list[str]:
    """Every problem of one organ mapping, each as ``where: field.path: message``."""
    problems: list[str] = []

    def bad(fieldpath: str, msg: str) -> None:
        problems.append(f"{where}: {fieldpath}: {msg}")

    if not isinstance(data, dict):
        return [f"{where}: the file must hold one YAML mapping (name, features, diagnoses, ...)"]
    for key in data:
        if key not in _TOP_KEYS | _TOP_OPTIONAL:
            bad(str(key), f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS | _TOP_OPTIONAL))}")
    for key in ("name", "features", "diagnoses"):
        if key not in data:
            bad(key, "missing required field")
    name = data.get("name")
    if "name" in data and (not isinstance(name, str) or not _NAME.match(name)):
        bad("name", f"{name!r} is not a valid name; use lowercase letters, digits and _")
    if "overrides" in data and data["overrides"] not in (True, name):
        bad("overrides", f"must be the organ's own name ({name!r}) or true")
    if "display_name" in data and not isinstance(data["display_name"], str):
        bad("display_name", "must be a string")
    comps = data.get("compartments", [])
    if not isinstance(comps, list) or not all(isinstance(c, str) and c for c in comps):
        bad("compartments", "must be a list of non-empty strings")
        comps = []
    elif len(set(comps)) != len(comps):
        bad("compartments", "contains the same compartment twice")

    feature_ids: set[str] = set()
    for fp, f in _entries(
        data,
        "features",
        "feature",
        "id, phrase, scales, ...",
        _FEATURE_KEYS,
        ("id", "phrase", "scales"),
        feature_ids,
        bad,
    ):
        if "phrase" in f and (not isinstance(f["phrase"], str) or not f["phrase"].strip()):
            bad(f"{fp}.phrase", "must be a non-empty string")
        if "scales" in f:
            sc = f["scales"]
            if not isinstance(sc, list) or not sc:
                bad(f"{fp}.scales", "must be a non-empty list drawn from low, mid, high")
            else:
                for s in sc:
                    if s not in SCALES:
                        bad(f"{fp}.scales", f"scale {s!r} is not one of low, mid, high")
                if len(set(map(str, sc))) != len(sc):
                    bad(f"{fp}.scales", "lists the same scale twice")
        _check_feature_compartments(f, fp, comps, bad)
        if "min_field_mm" in f and not (
            isinstance(f["min_field_mm"], int | float)
            and not isinstance(f["min_field_mm"], bool)
            and f["min_field_mm"] > 0
        ):
            bad(f"{fp}.min_field_mm", f"{f['min_field_mm']!r} is not a positive width in mm")
        syn = f.get("synonyms", [])
        if not isinstance(syn, list) or not all(isinstance(s, str) and s for s in syn):
            bad(f"{fp}.synonyms", "must be a list of non-empty strings")
        if "prevalence" in f and not _is_prob(f["prevalence"]):
            bad(f"{fp}.prevalence", f"{f['prevalence']!r} is not a probability in [0, 1]")

    where_of = {
        f["id"]: _where(f)
        for f in data.get("features", []) or []
        if isinstance(f, dict) and isinstance(f.get("id"), str)
    }
    diag_ids: set[str] = set()
    for dp, d in _entries(
        data,
        "diagnoses",
        "diagnosis",
        "id, name, prevalence, features",
        _DIAGNOSIS_KEYS,
        ("id", "name", "features"),
        diag_ids,
        bad,
    ):
        if "name" in d and (not isinstance(d["name"], str) or not d["name"].strip()):
            bad(f"{dp}.name", "must be a non-empty string")
        if "prevalence" in d and not _is_prob(d["prevalence"]):
            bad(f"{dp}.prevalence", f"{d['prevalence']!r} is not a probability in [0, 1]")
        df = d.get("features", {})
        if not isinstance(df, dict):
            bad(f"{dp}.features", "must be a mapping feature_id: P(feature | diagnosis)")
            continue
        for fid, p in df.items():
            if fid not in feature_ids:
                bad(f"{dp}.features.{fid}", f"feature {fid!r} is not defined under features")
            if not _is_prob(p):
                bad(f"{dp}.features.{fid}", f"{p!r} is not a probability in [0, 1]")
        _check_locations(d, dp, where_of, bad)

    excl = data.get("exclusive", [])
    if not isinstance(excl, list):
        bad("exclusive", "must be a list of [feature_a, feature_b] pairs")
        excl = []
    for i, pair in enumerate(excl):
        ep = f"exclusive[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            bad(ep, "must be a pair [feature_a, feature_b]")
            continue
        for fid in pair:
            if fid not in feature_ids:
                bad(ep, f"names unknown feature {fid!r}")
        if pair[0] == pair[1]:
            bad(ep, "pairs a feature with itself")
    return problems


def fields_mm(magnifications: Sequence[float], size: int) -> dict[str, float]:
    """Field width in mm of a ``size``-pixel crop at each scale (coarsest magnification =
    ``low``, finest = ``high``; 10 / mpp convention: 1x = 10 um/px)."""
    mags = sorted(float(m) for m in magnifications)
    names = {1: ("high",), 2: ("low", "high"), 3: SCALES}.get(len(mags))
    if names is None:
        names = ("low",) + ("mid",) * (len(mags) - 2) + ("high",)
    out: dict[str, float] = {}
    for scale, m in zip(names, mags):
        out.setdefault(scale, size * 10.0 / m / 1000.0)
    return out


def field_warnings(organ: Organ, field_mm: dict[str, float]) -> list[str]:
    """Features that cannot be judged in the configured fields (``scale -> width in mm``).

    A feature is checked at the coarsest scale where it is visible: its field there must be
    at least :meth:`Feature.field_mm` wide (low-power features need
    :data:`DEFAULT_MIN_FIELD_MM` unless the vocabulary says ``min_field_mm``). One line per
    scale, naming the features.
    """
    short: dict[str, list[tuple[str, float]]] = {}
    for f in organ.features.values():
        need, scale = f.field_mm(), f.scales[0]
        have = field_mm.get(scale)
        if need and have is not None and have + 1e-9 < need:
            short.setdefault(scale, []).append((f.phrase, need))
    out = []
    for scale, items in short.items():
        names = ", ".join(p for p, _ in items[:4]) + (", ..." if len(items) > 4 else "")
        out.append(
            f"{organ.name}: {len(items)} {scale}-power feature(s) ({names}) need a field of "
            f">= {max(n for _, n in items):g} mm, but the {scale}-power field is "
            f"{field_mm[scale]:.2f} mm wide; use a lower magnification or a larger crop "
            "(the release's triplet is objective 1x / 4x / 20x), or set min_field_mm"
        )
    return out


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such organ file; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{path}: not a UTF-8 text file; an organ vocabulary is a YAML file"
        ) from None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ValidationError(f"{path}{at}: not valid YAML ({exc})") from None


def validate_organ_file(path: str | os.PathLike[str]) -> list[str]:
    """All problems of an organ file (empty when valid), each naming file and field path."""
    path = Path(path)
    try:
        data = _read_yaml(path)
    except ValidationError as exc:
        return [str(exc)]
    return _check(data, str(path))


def organ_from_dict(data: dict[str, Any], where: str = "organ") -> Organ:
    """Build an :class:`Organ` from its mapping; raise ValidationError listing every problem."""
    problems = _check(data, where)
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in organ vocabulary:\n  " + "\n  ".join(problems)
        )
    features = {
        f["id"]: Feature(
            id=f["id"],
            phrase=f["phrase"].strip(),
            scales=tuple(s for s in SCALES if s in f["scales"]),
            compartment=f.get("compartment", "") or "",
            synonyms=tuple(f.get("synonyms", []) or ()),
            prevalence=float(f.get("prevalence", 0.1)),
            compartments=tuple(f.get("compartments", []) or ()),
            min_field_mm=float(f["min_field_mm"]) if "min_field_mm" in f else None,
        )
        for f in data["features"]
    }
    diagnoses = {
        d["id"]: Diagnosis(
            id=d["id"],
            name=d["name"].strip(),
            prevalence=float(d.get("prevalence", 1.0 / len(data["diagnoses"]))),
            features={k: float(v) for k, v in (d.get("features") or {}).items()},
            synonyms=tuple(d.get("synonyms", []) or ()),
            locations={
                fid: {c: float(p) for c, p in prior.items()}
                for fid, prior in (d.get("locations") or {}).items()
            },
        )
        for d in data["diagnoses"]
    }
    return Organ(
        name=data["name"],
        display_name=data.get("display_name") or data["name"].replace("_", " ").capitalize(),
        compartments=list(data.get("compartments", []) or []),
        features=features,
        diagnoses=diagnoses,
        exclusive=[(a, b) for a, b in data.get("exclusive", []) or []],
        path=where,
    )


def load_organ_file(path: str | os.PathLike[str]) -> Organ:
    """Load and validate one organ file (ValidationError names file and field)."""
    path = Path(path)
    return organ_from_dict(_read_yaml(path), str(path))


def _dirs(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> tuple[Path, ...]:
    dirs = [BUILTIN_DIR]
    env = os.environ.get(ENV_VAR, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra_dirs]
    return tuple(dirs)


def _organ_files(dirs: Sequence[Path]) -> dict[str, Path]:
    """name -> file; later folders override earlier ones.

    A user file named like a bundled organ replaces it only when it says so
    (``overrides: NAME`` or ``overrides: true``); otherwise it is a ValidationError.
    """
    found: dict[str, Path] = {}
    for d in dirs:
        if d.is_file() and d.suffix in (".yaml", ".yml"):
            _add_organ_file(found, d)
            continue
        if not d.is_dir():
            if d != BUILTIN_DIR:
                why = "is not a folder nor a .yaml file" if d.exists() else "does not exist"
                raise InputError(f"organs folder {d} {why}; check --organs-dir/{ENV_VAR}")
            continue
        for p in sorted(d.iterdir()):
            if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file():
                _add_organ_file(found, p)
    return found


def _add_organ_file(found: dict[str, Path], path: Path) -> None:
    """Register ``path`` under its stem, refusing a silent replacement of a bundled organ."""
    prior = found.get(path.stem)
    if prior is not None and prior.parent == BUILTIN_DIR and path.parent != BUILTIN_DIR:
        data = _read_yaml(path)
        declared = data.get("overrides") if isinstance(data, dict) else None
        if declared not in (True, path.stem):
            raise ValidationError(
                f"{path}: organ {path.stem!r} is also a bundled vocabulary ({prior}); rename "
                f"the file (and its name:) for a new organ, or add 'overrides: {path.stem}' "
                "to it to replace the bundled one"
            )
    found[path.stem] = path


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime: float) -> Organ:
    return load_organ_file(path)


def _load(path: Path) -> Organ:
    organ = _load_cached(str(path), path.stat().st_mtime)
    if organ.name != path.stem:
        raise ValidationError(
            f"{path}: name: {organ.name!r} does not match the file name; "
            f"name the file {organ.name}.yaml"
        )
    return organ


def list_organs(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """Names of every organ in the registry (shipped, env var and ``extra_dirs``), sorted."""
    return sorted(_organ_files(_dirs(extra_dirs)))


def get_organ(name: str, extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> Organ:
    """The organ called ``name``; ValidationError listing the known names if absent."""
    files = _organ_files(_dirs(extra_dirs))
    if name not in files:
        raise ValidationError(
            f"unknown organ {name!r}; known organs: {', '.join(sorted(files))} "
            f"(add a vocabulary file with --organs-dir or {ENV_VAR})"
        )
    return _load(files[name])


def load_registry(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> dict[str, Organ]:
    """Every organ of the registry, by name."""
    return {n: _load(p) for n, p in sorted(_organ_files(_dirs(extra_dirs)).items())}
