"""The one documented place for caches (LLM answers, sentence embeddings).

``cache_dir(kind)`` is ``$SCALE_VQA_CACHE_DIR/<kind>`` when that variable is set, else
``$XDG_CACHE_HOME/scale-vqa/<kind>``, else ``~/.cache/scale-vqa/<kind>``. A command's
``--cache-dir DIR`` passes ``override=DIR`` and wins over both. Caches never go beside the
user's input. The folder is created on first use; a folder that cannot be created or written
is a :class:`~curation.errors.ConfigError` naming it and the way out.
"""

from __future__ import annotations

import os
from pathlib import Path

from curation.errors import ConfigError

ENV_VAR = "SCALE_VQA_CACHE_DIR"
KINDS = ("llm", "embeddings")


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``override``, else ``$SCALE_VQA_CACHE_DIR``, else the XDG default."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "scale-vqa"


def cache_dir(kind: str, override: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder for ``kind`` (one of :data:`KINDS`), created and checked writable."""
    if kind not in KINDS:
        raise ConfigError(f"unknown cache kind {kind!r}; use one of {', '.join(KINDS)}")
    path = cache_root(override) / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the cache folder {path} ({exc.strerror or exc}); "
            f"pass --cache-dir DIR or set {ENV_VAR} to a writable folder"
        ) from None
    if not os.access(path, os.W_OK):
        raise ConfigError(
            f"the cache folder {path} is not writable; pass --cache-dir DIR or set "
            f"{ENV_VAR} to a writable folder"
        )
    return path
