"""Extraction spread over a cluster: ``--shard K/N`` slices and the merge that checks them.

Shard K of N (1-based) owns the slides at positions K-1, K-1+N, ... of the sorted slide
ids: a deterministic slice that every process computes alike from the same inputs, so a
SLURM job array (``--shard $SLURM_ARRAY_TASK_ID/N``) or N processes on a shared
filesystem fill one extraction folder without talking to each other. Each shard writes
its slides' part files and ``.parts/shard-K-of-N.json``; :func:`merge_shards` checks that
the N manifests agree on the inputs and settings and that every slide was done exactly
once, then writes ``zoom_paths.jsonl`` exactly as one process would.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError
from curation.io import atomic_write_text

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MANIFEST = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


def parse_shard(text: Any, where: str = "--shard") -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N, or :class:`ConfigError`."""
    m = _SHARD.match(str(text)) if isinstance(text, (str, int)) else None
    k, n = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not m or n < 1 or not 1 <= k <= n:
        raise ConfigError(
            f"{where} {text!r} is not K/N with 1 <= K <= N (e.g. 2/8; in a SLURM array "
            "use --array=1-N and --shard $SLURM_ARRAY_TASK_ID/N)"
        )
    return k, n


def owned_slides(slide_ids: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """The slide ids shard ``(K, N)`` extracts: every N-th of the sorted ids from K-1."""
    k, n = shard
    return sorted(slide_ids)[k - 1 :: n]


def slides_digest(slide_ids: Sequence[str], extra: dict[str, Any]) -> str:
    """Identity of the whole job: all slide ids and the annotation digest."""
    text = json.dumps({"slides": sorted(slide_ids), **extra}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_path(out: Path, shard: tuple[int, int]) -> Path:
    """``.parts/shard-K-of-N.json`` of an extraction folder."""
    return out / ".parts" / f"shard-{shard[0]}-of-{shard[1]}.json"


def write_manifest(
    out: Path,
    shard: tuple[int, int],
    all_ids: Sequence[str],
    mine: Sequence[str],
    failures: list[dict[str, str]],
    extra: dict[str, Any],
) -> None:
    """Record what shard ``(K, N)`` was given and which of its slides failed."""
    data = {
        "shard": shard[0],
        "of": shard[1],
        "job_sha256": slides_digest(all_ids, extra),
        "total_slides": len(all_ids),
        "slides": sorted(mine),
        "failures": failures,
    }
    atomic_write_text(
        manifest_path(out, shard), json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    )


def read_manifests(out: Path) -> list[dict[str, Any]]:
    """Every shard manifest in ``out/.parts``, sorted by (N, K)."""
    found = []
    parts = out / ".parts"
    for p in sorted(parts.glob("shard-*-of-*.json")) if parts.is_dir() else []:
        if MANIFEST.match(p.name):
            try:
                found.append(json.loads(p.read_text(encoding="utf-8")) | {"_file": str(p)})
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(
                    f"{p}: unreadable shard manifest ({exc}); rerun that shard"
                ) from None
    return sorted(found, key=lambda m: (m["of"], m["shard"]))


def check_manifests(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(every slide id, the failures) once the manifests prove each slide done exactly once.

    Raises :class:`InputError` naming the shards to (re)run when one is missing, when
    manifests come from different inputs or splittings, or when a slide's part is absent.
    """
    from scale_vqa.extract import part_name

    ms = read_manifests(out)
    if not ms:
        raise InputError(
            f"{out}: no shard manifests (.parts/shard-K-of-N.json); run "
            "`scale-vqa extract ... --shard K/N` for K = 1..N first"
        )
    ns = sorted({m["of"] for m in ms})
    jobs = sorted({m["job_sha256"] for m in ms})
    if len(ns) > 1 or len(jobs) > 1:
        files = ", ".join(Path(m["_file"]).name for m in ms)
        raise InputError(
            f"{out}: the shard manifests ({files}) come from different splittings or inputs; "
            "delete the stale ones and rerun those shards with the same inputs and N"
        )
    n = ns[0]
    missing = sorted(set(range(1, n + 1)) - {m["shard"] for m in ms})
    if missing:
        which = ", ".join(f"{k}/{n}" for k in missing)
        raise InputError(f"{out}: shard(s) {which} have not finished; run them, then merge")
    owner: dict[str, int] = {}
    for m in ms:
        for sid in m["slides"]:
            if sid in owner:
                raise InputError(
                    f"{out}: slide {sid!r} was extracted by shards {owner[sid]}/{n} and "
                    f"{m['shard']}/{n}; rerun every shard into a fresh folder"
                )
            owner[sid] = m["shard"]
    if len(owner) != ms[0]["total_slides"]:
        raise InputError(
            f"{out}: the shards cover {len(owner)} of {ms[0]['total_slides']} slides; "
            "rerun every shard with the same inputs"
        )
    failures = [f for m in ms for f in m["failures"]]
    failed = {f["slide_id"] for f in failures}
    for sid, k in sorted(owner.items()):
        if sid not in failed and not (out / part_name(sid)).is_file():
            raise InputError(
                f"{out}: slide {sid!r} of shard {k}/{n} has no finished part; rerun that shard"
            )
    return sorted(owner), failures


def merge_shards(out_dir: str | Path) -> Any:
    """Check the shards of ``out_dir`` and write its ``zoom_paths.jsonl``; an ExtractResult."""
    from scale_vqa.extract import PARTS, ExtractConfig, ExtractResult, write_outputs

    out = Path(out_dir)
    ids, failures = check_manifests(out)
    cfg_file = out / PARTS / "config.json"
    try:
        saved = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise InputError(f"{cfg_file}: missing or unreadable; rerun the shards") from None
    fields = set(ExtractConfig.__dataclass_fields__)
    try:
        config = ExtractConfig(**{k: v for k, v in saved.items() if k in fields})
    except (TypeError, ConfigError) as exc:
        raise InputError(f"{cfg_file}: not this version's settings ({exc})") from None
    result = ExtractResult(out, done=[i for i in ids if i not in {f["slide_id"] for f in failures}])
    result.failures = sorted(failures, key=lambda f: f["slide_id"])
    result.n_paths = write_outputs(out, ids, result.failures, config)
    return result
