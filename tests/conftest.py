"""Shared fixtures. Everything runs offline on CPU."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# a fresh datasets cache per test session: a cache left by an earlier run (whose temporary
# folders had the same layout) must never answer a load_dataset of this run
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="scale-vqa-tests-datasets-")
# caches (embeddings, LLM answers) of this test session, never the user's ~/.cache
os.environ.setdefault("SCALE_VQA_CACHE_DIR", tempfile.mkdtemp(prefix="scale-vqa-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
CMU_SLIDE = REPO / "scale_vqa" / "data" / "CMU-1-Small-Region.svs"
REFERENCE_SAMPLE = REPO.parent / "shared" / "reference" / "scale_vqa_release_sample.json"


@pytest.fixture(autouse=True, scope="session")
def _cache_home(tmp_path_factory) -> None:
    """Caches of the commands under test go to a temporary folder, never ~/.cache."""
    os.environ["SCALE_VQA_CACHE_DIR"] = str(tmp_path_factory.mktemp("scale-vqa-cache"))


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


@pytest.fixture(scope="module")
def corpus():
    """240 simulated zoom paths over skin, colon and lung (seed 0), per test module."""
    from curation.simulate import simulate

    return simulate(240, ["skin", "colon", "lung"], seed=0)


@pytest.fixture(scope="module")
def generated(corpus):
    """The leak-controlled generator over ``corpus`` (seed 0) and its questions."""
    from curation.generate import Generator

    gen = Generator(corpus, seed=0)
    return gen, gen.generate()
