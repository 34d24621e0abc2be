"""Clause-level screening embeddings by default, kept in a persistent on-disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curation.adversaries import (
    DEFAULT_EMBED_UNIT,
    EmbeddingClassifier,
    default_battery,
    embed_options,
)
from curation.embeddings import Embedder, safe_model_tag

OPTIONS = [
    "horn cysts at low power, basaloid cells at high power",
    "horn cysts at low power, squamous eddies at high power",
    "no horn cysts at low power, basaloid cells at high power",
    "no horn cysts at low power and squamous eddies at high power",
]


class _NoModel:
    """Stands in for the model: a cache hit must never reach it."""

    def encode(self, *args, **kwargs):
        raise AssertionError("the model was asked to encode a cached text")


def test_screen_embeds_clauses_by_default(embedder) -> None:
    assert DEFAULT_EMBED_UNIT == "clause"
    embed = next(a for a in default_battery(embedder=embedder) if a.name == "embed-lr")
    assert isinstance(embed, EmbeddingClassifier) and embed.unit == "clause"


def test_clause_cache_is_persisted_and_reused(embedder, tmp_path: Path) -> None:
    first = Embedder(embedder.model_path, cache_dir=tmp_path)
    first._model = embedder.model  # share the loaded weights, not the cache
    vecs = embed_options(first, OPTIONS)  # clause level
    n_clauses = first.stats["encoded"]
    assert n_clauses == 4  # 8 clauses, 4 distinct: each embedded once
    assert first.cache_file is not None and first.cache_file.parent == tmp_path
    assert first.cache_file.is_file() and first.cache_file.stat().st_size > 4 * 384 * 4
    # a new process (a new embedder) reads every clause from disk, encodes none
    again = Embedder(embedder.model_path, cache_dir=tmp_path)
    again._model = _NoModel()
    assert np.array_equal(embed_options(again, OPTIONS), vecs)
    assert again.stats == {"encoded": 0, "from_disk": n_clauses}
    # the same vectors as the model computes now
    fresh = Embedder(embedder.model_path, persist=False)
    fresh._model = embedder.model
    assert fresh.cache_file is None
    assert np.allclose(embed_options(fresh, OPTIONS), vecs, atol=1e-6)


def test_default_cache_is_the_package_cache_folder(
    embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALE_VQA_CACHE_DIR", str(tmp_path / "c"))
    e = Embedder(embedder.model_path)
    assert e.cache_file == tmp_path / "c" / "embeddings" / f"{safe_model_tag(e.model_path)}.sqlite3"


def test_two_models_never_share_a_cache_file(tmp_path: Path) -> None:
    for name, config in (("a", "{}"), ("b", '{"dim": 2}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(config)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{}")
    tags = {safe_model_tag(tmp_path / n) for n in "abc"}
    assert len(tags) == 3  # b differs in content; c in name only
