"""What the stages of one rebuild share: the config, the work folder's files, the counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curation.io import atomic_write_text
from scale_vqa.config import BuildConfig, LLMEndpoint


class RebuildContext:
    """One rebuild's settings (``cfg``) and the files its stages write in ``cfg.work``.

    ``counts``, ``review_card``, ``empty_note`` and ``shared_tissue_note`` are filled as
    the stages run and end up in the summary and the dataset card
    (:mod:`scale_vqa.rebuild_card`).
    """

    def __init__(
        self,
        cfg: BuildConfig,
        quiet: bool = False,
        on_shard: Callable[[Any], None] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.on_shard = on_shard
        self.overwrite = overwrite
        self.counts: dict[str, Any] = {}
        self.review_card: dict[str, Any] | None = None
        self.empty_note: str | None = None
        self.shared_tissue_note: str | None = None
        self.shared_tissue_test = 0  # test rows on shared tissue
        w = self.work = Path(cfg.work)
        self.annotations = w / "annotations.jsonl"
        self.evidence_report = w / "evidence_report.json"
        self.jobs = w / "extract_jobs.jsonl"
        self.splits = w / "splits.json"
        self.zoom = w / "zoom"
        self.questions = w / "questions.jsonl"
        self.reword_report = w / "reword_report.json"
        self.screened = w / "screened.jsonl"
        self.dropped = w / "dropped.jsonl"
        self.screen_report = w / "screen_report.json"
        self.audit = w / "audit.json"
        self.build_report = w / "build.json"
        self.cache = w / "cache"

    def read_annotations(self) -> list[Any]:
        """The canonical annotations the annotations stage wrote."""
        from curation.annotations import read_annotations

        return read_annotations(self.annotations, self.cfg.organs_dir)

    def llm_client(self, endpoint: LLMEndpoint) -> Any:
        """A curation.llm.LLMClient for ``endpoint``, its answers cached in the work folder."""
        from curation.llm import LLMClient, LLMConfig

        return LLMClient(LLMConfig.parse(endpoint.spec()), cache_dir=self.cache)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Atomically write sorted JSON (indent 1): the work folder's reports."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def jsonl_objects(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file."""
    from curation.io import read_jsonl

    return [obj for _, obj in read_jsonl(path)]


def count_lines(path: Path) -> int:
    """Non-blank lines of a file."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())
