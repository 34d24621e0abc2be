"""Output folders this package replaces as a whole, and only when it made them.

A dataset folder (``build``, ``demo``, ``import-release``) is written into a hidden
temporary sibling ``.OUT.<random>.tmp`` and swapped in on success. Each folder this package
writes carries a marker file (:data:`MARKER`); an existing folder without it (the user's
own files) is refused unless the caller passes ``--overwrite``, and a folder that holds
the build's inputs (config, annotations, slides, organ files) is always refused.
Temporaries left by a killed run are removed by the next one, never one whose writer is
still alive (its process id is in :data:`OWNER` while it is being written).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from curation.errors import ConfigError
from curation.io import swap_dir

MARKER = ".scale-vqa-output"
"""Marker file inside every folder this package writes as a whole."""
MARKER_TEXT = (
    "This folder was written by scale-vqa and is replaced as a whole when it is rebuilt.\n"
)
OWNER = ".scale-vqa-owner"
"""Inside a temporary folder only: ``host pid`` of the process writing it."""


def is_ours(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder this package wrote (it holds :data:`MARKER`)."""
    return (Path(path) / MARKER).is_file()


def refuse_foreign(
    path: str | os.PathLike[str], ours: Callable[[Path], bool], refusal: str
) -> None:
    """Refuse ``path`` unless it is missing, an empty folder, or a folder ``ours`` accepts
    (``refusal``: the error for a folder of other files); a file is always refused."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ConfigError(
            f"output folder {path} is a file; choose a folder name that is free or a folder "
            "scale-vqa wrote"
        )
    if ours(path) or not any(path.iterdir()):
        return
    raise ConfigError(refusal)


def check_replaceable(path: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse to replace ``path`` unless it is missing, empty, ours, or ``overwrite`` is set."""
    path = Path(path)
    if path.is_dir():
        _refuse_precious(path)
    refuse_foreign(
        path,
        lambda p: overwrite or is_ours(p),
        f"output folder {path} holds files scale-vqa did not write (no {MARKER} in it) and "
        "would be replaced as a whole; choose a new or empty folder, or pass --overwrite to "
        "replace it",
    )


def _refuse_precious(path: Path) -> None:
    """Never replace the current folder, the home folder, or a folder holding either."""
    real = path.resolve()
    for name, where in (("the current folder", Path.cwd()), ("your home folder", Path.home())):
        where = where.resolve()
        if _inside(where, real):
            raise ConfigError(
                f"output folder {path} is or holds {name} ({where}); it is never replaced, "
                "even with --overwrite: choose a folder of its own, e.g. ./dataset"
            )


def check_writable(path: str | os.PathLike[str], what: str = "output folder") -> None:
    """Refuse when ``path`` (if it exists) or the folder it goes in cannot be written."""
    path = Path(path).absolute()
    where = [path] if path.is_dir() else []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    where.append(parent)
    for folder in where:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".scale-vqa-probe.")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the {what} {path}: {folder} is not writable "
                f"({exc.strerror or exc}); choose a writable folder"
            ) from None
        os.close(fd)
        os.unlink(probe)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_separate(
    output: str | os.PathLike[str],
    work: str | os.PathLike[str] | None = None,
    inputs: Mapping[str, Iterable[str | os.PathLike[str]]] | None = None,
) -> None:
    """``output`` and ``work`` apart from each other, and neither holding an input.

    ``inputs`` maps a description (``"the config"``, ``"slide"``) to paths. A folder that is
    replaced or written into must not hold what the build reads, whatever ``--overwrite``.
    """
    out = Path(output).resolve()
    folders = {"output folder": out}
    wk = Path(work).resolve() if work is not None else None
    if wk is not None:
        folders["work folder"] = wk
    for kind, paths in (inputs or {}).items():
        for p in paths:
            src = Path(p).resolve()
            for name, folder in folders.items():
                if _inside(src, folder) or _inside(folder, src):
                    raise ConfigError(
                        f"the {name} {folder} holds {kind} {src}, which would be overwritten "
                        "or deleted; give the folder a path of its own (e.g. 'output: "
                        "dataset', 'work: work' in build.yaml)"
                    )
    if wk is None:
        return
    if out == wk:
        raise ConfigError(
            f"output and work are the same folder ({out}); the output is replaced as a "
            "whole on every build, so give them separate folders"
        )
    if _inside(out, wk) or _inside(wk, out):
        inner, outer = ("output", "work") if _inside(out, wk) else ("work", "output")
        raise ConfigError(
            f"the {inner} folder {folders[inner + ' folder']} lies inside the {outer} "
            f"folder {folders[outer + ' folder']}; give them separate folders"
        )


def _owner_alive(tmp: Path) -> bool:
    """Whether the process that writes ``tmp`` still runs (unknown owner: assume alive)."""
    try:
        host, pid_text = (tmp / OWNER).read_text(encoding="utf-8").split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # a marked temporary without an owner line is never live
    return host != socket.gethostname() or pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (no permission to ask: yes)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.NAME.*.tmp`` siblings of ``path`` left by killed runs; return them.

    Only folders holding :data:`MARKER` (this package made them) whose writer is gone.
    A ``.NAME.old`` left between the two renames of a swap is put back when ``path`` is
    missing, else removed.
    """
    path = Path(path).absolute()
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for tmp in sorted(path.parent.glob(f".{path.name}.*.tmp")):
        if tmp.is_dir() and not tmp.is_symlink() and is_ours(tmp) and not _owner_alive(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and not old.is_symlink() and is_ours(old):
        if not path.exists():
            os.replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


@contextmanager
def staged_output(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Write a folder in a marked temporary sibling; swap it in for ``path`` on success.

    Refuses (before creating anything) a ``path`` that :func:`check_replaceable` refuses.
    On any exception the temporary is removed and an existing ``path`` is left untouched.
    """
    path = Path(path).absolute()
    check_replaceable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp folders start private (0700)
        (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
        (tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        yield tmp
        check_replaceable(path, overwrite)  # the folder may have changed meanwhile
        swap_dir(tmp, path)
        (path / OWNER).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_work_folder(work: str | os.PathLike[str], overwrite: bool = False) -> None:
    """A work folder is written into, so it must be new, empty or one a build made."""
    work = Path(work)
    if not work.exists():
        return
    if not work.is_dir():
        raise ConfigError(f"work folder {work} is a file; choose a folder name that is free")
    # an earlier build's work folder: its stage records, or its lock
    made = is_ours(work) or (work / "stages").is_dir() or (work / ".lock").is_file()
    if overwrite or made or not any(work.iterdir()):
        return
    raise ConfigError(
        f"work folder {work} holds files scale-vqa did not write (no {MARKER} in it), which "
        "a build may overwrite; choose a new or empty folder, or pass --overwrite to use it"
    )


def prepare_build_folders(
    output: str | os.PathLike[str],
    work: str | os.PathLike[str],
    inputs: Mapping[str, Iterable[str | os.PathLike[str]]],
    overwrite: bool = False,
) -> None:
    """Every check on a build's folders, before any stage runs; marks the work folder.

    Raises :class:`ConfigError` when output and work overlap or hold an input, when either
    holds files this package did not write (unless ``overwrite``), or is not writable.
    Removes temporaries of killed builds beside the output.
    """
    check_separate(output, work, inputs)
    check_replaceable(output, overwrite)
    check_work_folder(work, overwrite)
    check_writable(output)
    check_writable(work, "work folder")
    remove_stale_temporaries(output)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if not is_ours(work):
        (work / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
