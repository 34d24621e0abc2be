"""Small, safe file primitives: atomic writes and JSONL with located errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curation.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the new one.

    A ``path`` that exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a
    pipe) is written in place: renaming over it would replace the device with a file.
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        with path.open("wb") as fh:
            fh.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp files start private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def dumps_line(obj: Any) -> str:
    """One canonical JSON line (sorted keys off: field order is part of the format)."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def atomic_write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write one JSON object per line; return the number of rows."""
    lines = [dumps_line(r) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Raises :class:`InputError` naming the file and line for unreadable files,
    invalid JSON, or lines that are not JSON objects.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a JSONL file, one JSON object per line")
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:  # a byte-order mark at the start is tolerated (editors on Windows write one)
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}:{lineno}: not UTF-8 text (byte {exc.start + 1} of the line); "
                    "give a JSONL file, one JSON object per line"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "each line must be one JSON object"
                ) from None
            except (ValueError, RecursionError) as exc:  # a 5000-digit number, deep nesting
                raise InputError(
                    f"{path}:{lineno}: not valid JSON ({str(exc)[:120] or 'nested too deep'}); "
                    "each line must be one JSON object"
                ) from None
            if not isinstance(obj, dict):
                raise InputError(
                    f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
                )
            yield lineno, obj


def swap_dir(tmp: Path, path: Path) -> None:
    """Put the finished folder ``tmp`` in place of ``path`` (the old one removed after)."""
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it in only on success.

    On any exception the temporary folder is removed and an existing ``path`` is
    left untouched, so a failed or killed run never leaves a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp folders start private (0700)
    try:
        yield tmp
        swap_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
