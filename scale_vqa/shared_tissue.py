"""Shared tissue across splits: rows of different splits whose fields overlap on one slide.

A split by patient keeps every zoom path of a patient together, so the tissue a test
question shows is never shown in training. That holds only when a slide file belongs to
one split group. Where it does not (a tissue microarray with several patients' cores on one
slide, or the bundled demo's pseudo-patients cut from one small slide), a field of a test
row can overlap a field of a train row at the same power: the train row's public key then
states what the test image shows ("horn cysts are seen at low power"), and a reader of the
other splits answers the test row without looking at it
(``benchmarks/attack_shared_tissue.py`` reads the demo's test split that way).

:func:`shared_tissue` finds such rows from what a build publishes (each row's split and
field boxes, low -> high power) and the slide file each zoom path was read from; the build
stops on them unless ``split: {shared_tissue: warn}`` (then the card says so).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POLICIES: tuple[str, ...] = ("error", "warn")
"""What a build does with rows on shared tissue (``split.shared_tissue`` in build.yaml)."""


@dataclass(frozen=True)
class Field:
    """One row's zoom path as the check needs it: split, slide file, boxes low -> high."""

    path_id: str
    split: str
    slide: str
    boxes: tuple[tuple[int, int, int, int], ...]  # (x, y, width, height), level-0 pixels
    powers: tuple[str, ...] = ()
    """A label per box ("5x"); default "field 1", "field 2", ... from the lowest power."""

    def power(self, i: int) -> str:
        """The label of box ``i``."""
        return self.powers[i] if i < len(self.powers) else f"field {i + 1}"


@dataclass
class SharedTissue:
    """Zoom paths whose field at some power overlaps a field of another split's path."""

    pairs: list[tuple[str, str, str, float]] = field(default_factory=list)
    """(path, other path, power, overlap as a share of the smaller field), one per pair of
    paths, at the power where they overlap most."""
    splits: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> set[str]:
        """Every zoom path on shared tissue."""
        return {p for a, b, _, _ in self.pairs for p in (a, b)}

    def rows_by_split(self, rows: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """How many rows of each split (``rows``: split -> the path id of each row) lie on
        shared tissue."""
        hit = self.paths
        return {s: sum(p in hit for p in ids) for s, ids in rows.items()}

    def first(self) -> str:
        """The strongest pair in words ("demo-43 (validation) and demo-57 (test): their 5x
        fields overlap by 95%")."""
        a, b, power, share = max(self.pairs, key=lambda t: t[3])  # the first of ties
        return (
            f"{a} ({self.splits[a]}) and {b} ({self.splits[b]}): their {power} fields overlap "
            f"by {share:.0%}"
        )

    def to_dict(self, limit: int = 100) -> dict[str, Any]:
        """The report: counts, the closest pair and the first ``limit`` pairs."""
        return {
            "pairs": len(self.pairs),
            "paths": len(self.paths),
            "closest": self.first() if self.pairs else "",
            "first_pairs": [
                {"path": a, "other": b, "power": p, "overlap": round(s, 4)}
                for a, b, p, s in self.pairs[:limit]
            ],
        }


def field_of(
    path_id: str,
    split: str,
    slide: str,
    regions: Sequence[Mapping[str, int]],
    magnifications: Sequence[float] = (),
) -> Field:
    """A :class:`Field` from a published row's ``regions`` and ``magnifications``."""
    boxes = tuple((int(g["x"]), int(g["y"]), int(g["width"]), int(g["height"])) for g in regions)
    return Field(path_id, split, slide, boxes, tuple(f"{m:g}x" for m in magnifications))


def overlap_share(a: Sequence[int], b: Sequence[int]) -> float:
    """Overlap of boxes ``a`` and ``b`` (x, y, width, height) as a share of the smaller."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(a[2] * a[3], b[2] * b[3])


Overlap = tuple[Field, Field, list[float]]


def _overlaps(fields: Iterable[Field], cross_split: bool) -> Iterator[Overlap]:
    """Pairs of fields on one slide file (of different splits only, with ``cross_split``)
    with the overlap share at each power, in path order."""
    by_slide: dict[str, dict[str, Field]] = defaultdict(dict)
    for f in fields:
        by_slide[f.slide][f.path_id] = f
    for slide in sorted(by_slide):
        items = sorted(by_slide[slide].values(), key=lambda f: f.path_id)
        if cross_split and len({f.split for f in items}) < 2:
            continue
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if not (cross_split and a.split == b.split):
                    pairs = zip(a.boxes, b.boxes, strict=False)
                    yield a, b, [overlap_share(x, y) for x, y in pairs]


def shared_tissue(fields: Iterable[Field]) -> SharedTissue:
    """Pairs of zoom paths of different splits on one slide file whose fields at the same
    power overlap (any positive area)."""
    out = SharedTissue()
    for a, b, shares in _overlaps(fields, cross_split=True):
        best = max(shares, default=0.0)
        if best > 0:
            out.pairs.append((a.path_id, b.path_id, a.power(shares.index(best)), best))
            out.splits[a.path_id], out.splits[b.path_id] = a.split, b.split
    return out


def tissue_map(zoom_paths: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """For each zoom path (``zoom_paths.jsonl`` records), the other paths of its slide file
    whose field at the same power overlaps, per scale name (``low``, ``mid``, ``high``; paths
    with another number of powers are left out): :data:`curation.budget.Tissue`, for the
    generator."""
    from curation.organs import SCALES
    from scale_vqa.extract import crops_low_to_high, slide_file

    fields = []
    for z in zoom_paths:
        crops = crops_low_to_high(z)
        if len(crops) == len(SCALES):
            regions = [c["region"] for c in crops]
            fields.append(field_of(str(z["path_id"]), "", slide_file(z), regions))
    out: dict[str, dict[str, list[str]]] = {}
    for a, b, shares in _overlaps(fields, cross_split=False):
        for scale, share in zip(SCALES, shares, strict=True):
            if share > 0:
                out.setdefault(a.path_id, {}).setdefault(scale, []).append(b.path_id)
                out.setdefault(b.path_id, {}).setdefault(scale, []).append(a.path_id)
    return {p: {s: sorted(v) for s, v in sorted(m.items())} for p, m in sorted(out.items())}


def describe(
    found: SharedTissue, rows: Mapping[str, Sequence[str]], slide: str = "slide file"
) -> str:
    """One sentence for the card, the warning and the audit: which rows, what it means.

    ``rows``: split -> the path id of each row; ``slide``: what groups the fields.
    """
    counts = found.rows_by_split(rows)
    parts = [f"{n} of {len(rows[s])} {s}" for s, n in counts.items() if n]
    return (
        f"{', '.join(parts)} rows lie on zoom paths whose fields overlap fields of "
        f"another split's paths on the same {slide} ({len(found.pairs)} pair(s) of "
        f"paths; the closest: {found.first()}). Such a row's tissue is in another split "
        "too, whose public keys say what its images show: it can be answered without "
        "looking at them"
    )


def shared_tissue_error(found: SharedTissue, rows: Mapping[str, Sequence[str]]) -> str:
    """The build's error for shared tissue: what, and the two ways on."""
    return (
        describe(found, rows) + ". Give zoom paths that share a slide one patient_id (the "
        "split keeps a patient together), or set 'split: {shared_tissue: warn}' in "
        "build.yaml to build anyway (the dataset card then says so)"
    )
