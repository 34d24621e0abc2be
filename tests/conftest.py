"""Shared fixtures. Everything runs offline on CPU."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# caches (embeddings, LLM answers) of this test session, never the user's ~/.cache
os.environ.setdefault("SCALE_VQA_CACHE_DIR", tempfile.mkdtemp(prefix="scale-vqa-test-cache-"))
# and a datasets cache of its own: checkouts share ~/.cache/huggingface, and a test once
# read back another checkout's cached Arrow table of a same-named folder (other ids)
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="scale-vqa-test-hf-"))

REPO = Path(__file__).resolve().parents[1]
CMU_SLIDE = REPO / "scale_vqa" / "data" / "CMU-1-Small-Region.svs"
REFERENCE_SAMPLE = REPO.parent / "shared" / "reference" / "scale_vqa_release_sample.json"


@pytest.fixture(scope="session")
def cmu_slide() -> Path:
    """The vendored real slide (Aperio SVS, 20x, 0.499 um/px, CC0)."""
    assert CMU_SLIDE.is_file(), CMU_SLIDE
    return CMU_SLIDE


@pytest.fixture(scope="session")
def embedder():
    """One offline all-MiniLM-L6-v2 embedder for the whole session."""
    from curation.embeddings import Embedder

    return Embedder()
