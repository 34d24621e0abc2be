"""Publish a built dataset folder to the Hugging Face Hub.

:func:`plan_upload` validates the folder (README.md with a ``configs:`` block whose
``data_files`` patterns match Parquet shards, features that parse and match the shards'
columns) and the repo id, and lists exactly what would be uploaded (path, size, sha256).
:func:`publish` uploads that plan in one commit with :class:`huggingface_hub.HfApi`.

The token comes from ``HF_TOKEN`` or the usual login (:func:`huggingface_hub.get_token`);
it is never printed, logged or written, and any message that might echo it is scrubbed.
``HF_ENDPOINT`` selects another Hub endpoint.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, HubError, InputError
from curation.io import file_sha256
from scale_vqa.card import HUB_ID_PLACEHOLDER, read_card_metadata

DEFAULT_ENDPOINT = "https://huggingface.co"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class UploadFile:
    """One file of an upload: ``path`` relative to the folder (POSIX), its size and sha256."""

    path: str
    size: int
    sha256: str
    data: bytes | None = field(default=None, repr=False, compare=False)
    """Bytes to upload instead of the file on disk (README.md with the repo id filled in)."""


@dataclass
class UploadPlan:
    """What :func:`publish` would upload, and where."""

    folder: Path
    repo_id: str
    revision: str | None
    private: bool
    endpoint: str
    files: list[UploadFile]

    @property
    def url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/datasets/{self.repo_id}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        """Human listing: target, then one line per file."""
        rev = self.revision or "main"
        vis = "private" if self.private else "public"
        lines = [f"target: {self.url} (dataset, {vis}, revision {rev})"]
        lines += [f"  {f.path}  {f.size} bytes  sha256 {f.sha256}" for f in self.files]
        lines.append(f"{len(self.files)} file(s), {self.total_bytes} bytes")
        return "\n".join(lines)


def endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` if set, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def validate_repo_id(repo_id: str) -> str:
    """Check an ``ORG/NAME`` repo id; return it."""
    if (
        not isinstance(repo_id, str)
        or not _REPO_ID.match(repo_id)
        or ".." in repo_id
        or "--" in repo_id
        or repo_id.endswith((".", "-", ".git"))
    ):
        raise ConfigError(
            f"repo id {repo_id!r} is not valid; use ORG/NAME with letters, digits, '-', '_' "
            "or '.' (e.g. my-lab/scale-vqa)"
        )
    return repo_id


def _sha256(data: bytes | None, path: Path | None = None) -> str:
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    assert path is not None
    return file_sha256(path)


def validate_dataset_dir(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a built folder; return its README metadata. Raises :class:`InputError`."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; give a folder built by scale-vqa")
    readme = folder / "README.md"
    if not readme.is_file():
        raise InputError(
            f"{folder}: no README.md; build the folder with `scale-vqa import-release` or the "
            "pipeline, which write the dataset card"
        )
    meta = read_card_metadata(readme.read_text(encoding="utf-8"))
    configs = meta.get("configs")
    if not isinstance(configs, list) or not configs:
        raise InputError(
            f"{readme}: the YAML metadata has no 'configs:' block naming the data files; "
            "rebuild the folder"
        )
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    shards: list[str] = []
    for config in configs:
        data_files = config.get("data_files") if isinstance(config, dict) else None
        if not isinstance(data_files, list) or not data_files:
            raise InputError(f"{readme}: a config has no 'data_files' list; rebuild the folder")
        for entry in data_files:
            patterns = entry.get("path") if isinstance(entry, dict) else entry
            for pattern in [patterns] if isinstance(patterns, str) else list(patterns or []):
                matched = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
                if not matched:
                    split = entry.get("split", "?") if isinstance(entry, dict) else "?"
                    raise InputError(
                        f"{folder}: split {split!r}: no file matches {pattern!r}; the shards "
                        "are missing, rebuild the folder"
                    )
                shards += matched
    expected_columns: list[str] | None = None
    info = meta.get("dataset_info")
    if isinstance(info, dict) and info.get("features") is not None:
        import datasets

        try:
            expected_columns = list(datasets.Features._from_yaml_list(info["features"]))
        except Exception as exc:
            raise InputError(f"{readme}: dataset_info.features do not parse ({exc})") from None
    for rel in sorted(set(shards)):
        try:
            columns = pq.read_schema(folder / rel).names
        except Exception as exc:
            raise InputError(f"{folder / rel}: not a readable Parquet file ({exc})") from None
        if expected_columns is not None and columns != expected_columns:
            raise InputError(
                f"{folder / rel}: columns {columns} differ from the card's features "
                f"{expected_columns}; rebuild the folder"
            )
    return meta


def plan_upload(
    folder: str | os.PathLike[str],
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
) -> UploadPlan:
    """Validate ``folder`` and ``repo_id``; list every file to upload (hidden files skipped).

    README.md is uploaded with the card's Hub id placeholder replaced by ``repo_id``; its
    listed size and sha256 are those of the uploaded bytes.
    """
    validate_repo_id(repo_id)
    if revision is not None and (not revision.strip() or any(c.isspace() for c in revision)):
        raise ConfigError(f"revision {revision!r} is not valid; give a branch name such as main")
    folder = Path(folder)
    validate_dataset_dir(folder)
    files: list[UploadFile] = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        data = None
        if rel.as_posix() == "README.md":
            text = p.read_text(encoding="utf-8")
            data = text.replace(HUB_ID_PLACEHOLDER, repo_id).encode("utf-8")
        size = len(data) if data is not None else p.stat().st_size
        files.append(UploadFile(rel.as_posix(), size, _sha256(data, p), data))
    return UploadPlan(folder, repo_id, revision, private, endpoint(), files)


def get_token() -> str:
    """The Hub token (``HF_TOKEN`` or the stored login), or a :class:`HubError` saying how."""
    import huggingface_hub

    token = os.environ.get("HF_TOKEN") or huggingface_hub.get_token()
    if not token:
        raise HubError(
            "no Hugging Face token found; set HF_TOKEN (a write token from "
            "https://huggingface.co/settings/tokens) or run `hf auth login`"
        )
    return token


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _explain(exc: BaseException, plan: UploadPlan, token: str) -> str:
    """A one-line reason for a failed Hub call, without the token."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set; unset it to publish"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return (
                f"the Hub at {plan.endpoint} refused the token (HTTP {status}); check that "
                "HF_TOKEN is a valid write token with write access to the namespace "
                f"{plan.repo_id.split('/')[0]!r}"
            )
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the Hub at {plan.endpoint} answered HTTP {status}: {_scrub(first, token)}"
    detail = _scrub(str(exc).splitlines()[0] if str(exc) else "", token)
    transport = isinstance(exc, (OSError, TimeoutError)) or any(
        c.__name__ in ("TransportError", "ConnectionError", "Timeout") for c in type(exc).__mro__
    )
    if transport:
        return (
            f"cannot reach the Hub at {plan.endpoint} ({type(exc).__name__}: {detail}); check "
            "the network or HF_ENDPOINT and retry"
        )
    return f"publishing to {plan.url} failed ({type(exc).__name__}: {detail})"


def publish(
    plan: UploadPlan,
    token: str | None = None,
    commit_message: str | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Create the dataset repo (if needed) and upload ``plan`` in one commit; return its URL.

    Raises :class:`HubError` with a one-line reason for a missing/refused token, an
    unreachable Hub or an HTTP error.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub import constants as hf_constants

    token = token or get_token()
    if hf_constants.is_offline_mode():
        raise HubError("HF_HUB_OFFLINE is set; unset it to publish")
    api = HfApi(endpoint=plan.endpoint, token=token)
    say = log or (lambda _msg: None)
    try:
        say(f"creating {plan.url} (if needed)")
        api.create_repo(
            plan.repo_id, repo_type="dataset", private=plan.private, exist_ok=True, token=token
        )
        if plan.revision and plan.revision != "main":
            api.create_branch(
                plan.repo_id,
                branch=plan.revision,
                repo_type="dataset",
                exist_ok=True,
                token=token,
            )
        ops = [
            CommitOperationAdd(
                path_in_repo=f.path,
                path_or_fileobj=f.data if f.data is not None else str(plan.folder / f.path),
            )
            for f in plan.files
        ]
        say(f"uploading {len(ops)} file(s), {plan.total_bytes} bytes")
        info = api.create_commit(
            plan.repo_id,
            operations=ops,
            commit_message=commit_message or f"Upload {plan.folder.name} with scale-vqa",
            repo_type="dataset",
            revision=plan.revision,
            token=token,
        )
    except HubError:
        raise
    except Exception as exc:
        raise HubError(_explain(exc, plan, token)) from None
    return str(getattr(info, "commit_url", "") or plan.url)
