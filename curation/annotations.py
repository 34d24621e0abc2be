"""The annotation format: one zoom path per JSONL line, findings per scale in feature ids.

Canonical form (COMMON.md #2)::

    {"path_id": "p-0001", "slide_id": "S1", "patient_id": "pt-01", "organ": "skin",
     "diagnosis": "basal_cell_carcinoma",          # or null
     "centre": {"x": 1100, "y": 1500},             # level-0 pixels, or null
     "findings":  {"low": [ids], "mid": [ids], "high": [ids]},
     "negatives": {"low": [ids], "mid": [ids], "high": [ids]},   # looked for and absent
     "compartments": [ids],                         # compartments the fields show
     "locations": {"feature_id": "compartment"},    # where a finding lies (optional)
     "slide_path": "...", "source": "..."}

A feature that is in neither ``findings`` nor ``negatives`` at a scale was not looked for
there: generation never claims its absence. ``locations`` records, for findings of the
path, the one compartment of the organ each lies in (it must be one of the compartments the
vocabulary allows for that feature); a finding placed in one compartment is thereby
recorded as absent from the others, and a finding without a location is never asked about
by compartment. A raw annotation may give free-text phrases or
``captions`` per scale instead; :func:`parse_annotation` keeps them and
``curation.evidence`` turns them into ids. :func:`read_annotations` validates the canonical
form against the organ registry and names file, line and field for every problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import ValidationError
from curation.io import atomic_write_jsonl, read_jsonl
from curation.organs import SCALES, Organ, get_organ

_KNOWN = {
    "path_id",
    "slide_id",
    "patient_id",
    "organ",
    "diagnosis",
    "centre",
    "findings",
    "negatives",
    "compartments",
    "locations",
    "slide_path",
    "source",
    "captions",
}


def _empty_scales() -> dict[str, list[str]]:
    return {s: [] for s in SCALES}


@dataclass
class Annotation:
    """One annotated zoom path (canonical once every finding is a feature id)."""

    path_id: str
    slide_id: str
    organ: str
    patient_id: str = ""
    diagnosis: str | None = None
    centre: dict[str, int] | None = None
    findings: dict[str, list[str]] = field(default_factory=_empty_scales)
    negatives: dict[str, list[str]] = field(default_factory=_empty_scales)
    compartments: list[str] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)
    slide_path: str = ""
    source: str = ""
    captions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """Grouping unit for splits: patient, else slide."""
        return self.patient_id or self.slide_id

    def state(self, feature: str, scale: str) -> bool | None:
        """True if seen at ``scale``, False if looked for and absent, None if not looked for."""
        if feature in self.findings.get(scale, ()):
            return True
        if feature in self.negatives.get(scale, ()):
            return False
        return None

    def location(self, feature: str) -> str | None:
        """The compartment ``feature`` lies in on this path (None: not recorded)."""
        return self.locations.get(feature)

    def seen_anywhere(self) -> set[str]:
        """Feature ids found at any scale."""
        return {f for s in SCALES for f in self.findings.get(s, ())}

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form (captions and extra keys only when present)."""
        out: dict[str, Any] = {
            "path_id": self.path_id,
            "slide_id": self.slide_id,
            "patient_id": self.patient_id,
            "organ": self.organ,
            "diagnosis": self.diagnosis,
            "centre": self.centre,
            "findings": {s: list(self.findings.get(s, [])) for s in SCALES},
            "negatives": {s: list(self.negatives.get(s, [])) for s in SCALES},
            "compartments": list(self.compartments),
        }
        if self.locations:
            out["locations"] = dict(sorted(self.locations.items()))
        if self.slide_path:
            out["slide_path"] = self.slide_path
        if self.source:
            out["source"] = self.source
        if self.captions:
            out["captions"] = dict(self.captions)
        out.update(self.extra)
        return out


def _scale_map(value: Any, name: str, where: str, problems: list[str]) -> dict[str, list[str]]:
    out = _empty_scales()
    if value is None:
        return out
    if not isinstance(value, dict):
        problems.append(f"{where}: field '{name}' must be an object with keys low, mid, high")
        return out
    for scale, items in value.items():
        if scale not in SCALES:
            problems.append(f"{where}: field '{name}.{scale}': scale must be low, mid or high")
            continue
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            problems.append(f"{where}: field '{name}.{scale}' must be a list of strings")
            continue
        out[scale] = list(items)
    return out


MAX_COORDINATE = 2**31 - 1
"""Largest level-0 pixel coordinate a centre may have."""


def is_pixel_coordinate(value: Any) -> bool:
    """A finite number in 0..MAX_COORDINATE (not a bool; NaN, infinities and huge ints fail)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_COORDINATE  # False for NaN; never converts a huge int


def parse_annotation(obj: dict[str, Any], where: str = "annotation") -> Annotation:
    """Structural parse of one line (types and required fields; no vocabulary check)."""
    problems: list[str] = []
    for key in ("path_id", "slide_id", "organ"):
        v = obj.get(key)
        if not isinstance(v, str) or not v.strip():
            problems.append(f"{where}: field '{key}' is required and must be a non-empty string")
    for key in ("patient_id", "slide_path", "source"):
        if obj.get(key) is not None and not isinstance(obj.get(key), str):
            problems.append(f"{where}: field '{key}' must be a string")
    diagnosis = obj.get("diagnosis")
    if diagnosis is not None and (not isinstance(diagnosis, str) or not diagnosis):
        problems.append(f"{where}: field 'diagnosis' must be a diagnosis id or null")
    centre = obj.get("centre")
    if centre is not None and not (
        isinstance(centre, dict)
        and set(centre) >= {"x", "y"}
        and all(is_pixel_coordinate(centre[k]) for k in ("x", "y"))
    ):
        problems.append(
            f"{where}: field 'centre' must be {{'x': int, 'y': int}} in level-0 pixels "
            f"(finite, 0..{MAX_COORDINATE}) or null"
        )
    findings = _scale_map(obj.get("findings"), "findings", where, problems)
    negatives = _scale_map(obj.get("negatives"), "negatives", where, problems)
    comps = obj.get("compartments", []) or []
    if not isinstance(comps, list) or not all(isinstance(c, str) for c in comps):
        problems.append(f"{where}: field 'compartments' must be a list of strings")
        comps = []
    locations = obj.get("locations") or {}
    if not isinstance(locations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in locations.items()
    ):
        problems.append(
            f"{where}: field 'locations' must map feature ids to one compartment each, "
            'e.g. {"nuclear_pleomorphism": "dermis"}'
        )
        locations = {}
    captions = obj.get("captions") or {}
    if not isinstance(captions, dict) or not all(
        k in SCALES and isinstance(v, str) for k, v in captions.items()
    ):
        problems.append(f"{where}: field 'captions' must map low/mid/high to text")
        captions = {}
    if problems:
        raise ValidationError("\n".join(problems))
    return Annotation(
        path_id=obj["path_id"],
        slide_id=obj["slide_id"],
        organ=obj["organ"],
        patient_id=obj.get("patient_id") or "",
        diagnosis=diagnosis,
        centre={"x": int(centre["x"]), "y": int(centre["y"])} if centre else None,
        findings=findings,
        negatives=negatives,
        compartments=list(comps),
        locations=dict(locations),
        slide_path=obj.get("slide_path") or "",
        source=obj.get("source") or "",
        captions=dict(captions),
        extra={k: v for k, v in obj.items() if k not in _KNOWN},
    )


def annotation_problems(ann: Annotation, organ: Organ, where: str = "annotation") -> list[str]:
    """Every vocabulary problem of a parsed annotation against its organ."""
    problems: list[str] = []
    if ann.captions and not any(ann.findings.values()):
        problems.append(
            f"{where}: field 'captions': raw captions are not canonical; normalise them "
            "into feature ids first (curation.evidence)"
        )
    if ann.diagnosis is not None and ann.diagnosis not in organ.diagnoses:
        problems.append(
            f"{where}: field 'diagnosis': {ann.diagnosis!r} is not a diagnosis of organ "
            f"{organ.name!r} (known: {', '.join(organ.diagnoses)})"
        )
    for kind, table in (("findings", ann.findings), ("negatives", ann.negatives)):
        for scale in SCALES:
            seen: set[str] = set()
            for fid in table.get(scale, []):
                fp = f"{where}: field '{kind}.{scale}'"
                if fid in seen:
                    problems.append(f"{fp}: feature {fid!r} listed twice")
                seen.add(fid)
                feat = organ.features.get(fid)
                if feat is None:
                    problems.append(
                        f"{fp}: unknown feature {fid!r} for organ {organ.name!r}; use a feature "
                        "id of the organ's vocabulary (free text needs curation.evidence)"
                    )
                elif scale not in feat.scales:
                    problems.append(
                        f"{fp}: feature {fid!r} is not visible at {scale} power "
                        f"(visible at: {', '.join(feat.scales)})"
                    )
    for scale in SCALES:
        both = set(ann.findings.get(scale, [])) & set(ann.negatives.get(scale, []))
        for fid in sorted(both):
            problems.append(
                f"{where}: field 'findings.{scale}'/'negatives.{scale}': feature {fid!r} is "
                "both found and absent at the same scale"
            )
        present = set(ann.findings.get(scale, []))
        for a, b in organ.exclusive:
            if a in present and b in present:
                problems.append(
                    f"{where}: field 'findings.{scale}': features {a!r} and {b!r} cannot "
                    f"co-occur in one field (organ {organ.name!r}, exclusive)"
                )
    for c in ann.compartments:
        if organ.compartments and c not in organ.compartments:
            problems.append(
                f"{where}: field 'compartments': {c!r} is not a compartment of {organ.name!r} "
                f"(known: {', '.join(organ.compartments)})"
            )
    problems.extend(_location_problems(ann, organ, where))
    return problems


def _location_problems(ann: Annotation, organ: Organ, where: str) -> list[str]:
    """Problems of the ``locations`` field: seen features, allowed compartments."""
    problems: list[str] = []
    seen = ann.seen_anywhere()
    for fid, comp in sorted(ann.locations.items()):
        fp = f"{where}: field 'locations.{fid}'"
        feat = organ.features.get(fid)
        if feat is None:
            problems.append(f"{fp}: unknown feature {fid!r} for organ {organ.name!r}")
            continue
        if fid not in seen:
            problems.append(
                f"{fp}: {fid!r} is not among the path's findings; place only features found "
                "at some scale"
            )
        allowed = organ.compartments_of(fid)
        if comp not in allowed:
            known = ", ".join(allowed) or "none (add 'compartments' to the feature)"
            problems.append(
                f"{fp}: {comp!r} is not a compartment {fid!r} can lie in for organ "
                f"{organ.name!r} (vocabulary allows: {known})"
            )
    return problems


def read_annotations(
    path: str | os.PathLike[str],
    extra_dirs: Iterable[str | os.PathLike[str]] = (),
    check_vocabulary: bool = True,
) -> list[Annotation]:
    """Read an annotation JSONL file; ValidationError lists every problem with file:line."""
    extra_dirs = tuple(extra_dirs)
    anns: list[Annotation] = []
    problems: list[str] = []
    organs: dict[str, Organ | None] = {}
    ids: dict[str, int] = {}
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        try:
            ann = parse_annotation(obj, where)
        except ValidationError as exc:
            problems.extend(str(exc).splitlines())
            continue
        if ann.path_id in ids:
            problems.append(
                f"{where}: field 'path_id': {ann.path_id!r} already used on line "
                f"{ids[ann.path_id]}; path ids must be unique"
            )
        ids.setdefault(ann.path_id, lineno)
        if check_vocabulary:
            if ann.organ not in organs:
                try:
                    organs[ann.organ] = get_organ(ann.organ, extra_dirs)
                except ValidationError as exc:
                    organs[ann.organ] = None
                    problems.append(f"{where}: field 'organ': {exc}")
                    continue
            organ = organs[ann.organ]
            if organ is None:
                problems.append(f"{where}: field 'organ': unknown organ {ann.organ!r}")
                continue
            problems.extend(annotation_problems(ann, organ, where))
        anns.append(ann)
    if problems:
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ValidationError(
            f"{len(problems)} problem(s) in annotations:\n  " + "\n  ".join(shown) + more
        )
    return anns


def write_annotations(path: str | os.PathLike[str], anns: Sequence[Annotation]) -> int:
    """Atomically write annotations as JSONL; return how many were written."""
    return atomic_write_jsonl(Path(path), (a.to_dict() for a in anns))
