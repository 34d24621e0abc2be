"""Knobs of generation and the constants that name types and pool modes."""

from __future__ import annotations

from dataclasses import dataclass

from curation.errors import ConfigError
from curation.records import QUESTION_TYPES
from curation.split import DEFAULT_MIN_CHUNK

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
    ``max_type_share``: likewise, no type above this share of the questions (None: no cap);
    ``min_type_share``: and while a type formed is below this share, sets of the largest
    type are dropped (None: no floor).
    ``information_budget``: skip a path for a set that would break the budget of
    :mod:`curation.budget` there (False: the previous recipe, which leaks across rows).
    ``budget_scope``: a feature one question gives is never tested by another question of
    its zoom path (``"path"``) or of its whole patient (``"patient"``: fewer questions);
    the diagnosis is always per patient.
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
    min_type_share: float | None = 0.10
    information_budget: bool = True
    budget_scope: str = "path"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first knob out of range."""
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
        if self.budget_scope not in ("patient", "path"):
            raise ConfigError(f"budget_scope {self.budget_scope!r}: use 'patient' or 'path'")
        if self.split_min_chunk < 0:
            raise ConfigError("split_min_chunk must be >= 0")
        if self.split_tolerance is not None and not 0.0 <= self.split_tolerance < 1.0:
            raise ConfigError("split_tolerance must be in [0, 1) or None")
        if self.max_type_share is not None and not 0.0 < self.max_type_share <= 1.0:
            raise ConfigError("max_type_share must be in (0, 1] or None")
        if self.min_type_share is not None and not 0.0 <= self.min_type_share < 1.0:
            raise ConfigError("min_type_share must be in [0, 1) or None")
