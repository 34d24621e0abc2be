"""Batch extraction of zoom paths from many slides to a folder (``scale-vqa extract``).

Output folder layout::

    DIR/zoom_paths.jsonl             one zoom path per line (shared format), by slide_id
    DIR/images/<slide>/<path>_<mag>x.jpg   <slide>, <path>: readable prefix + id hash
    DIR/encoding.json                how crops are encoded, PSNR on a sample of crops
    DIR/failures.jsonl               one line per slide that failed (absent when none)
    DIR/.parts/<slide>.jsonl         a finished slide's lines (written after its images)
    DIR/.parts/<slide>.psnr.json     that slide's sampled PSNR values
    DIR/.parts/config.json           the settings the folder was made with
    DIR/.parts/shard-K-of-N.json     what shard K of N did (``--shard K/N`` runs only)

Slides run in worker processes; each opens its own OpenSlide handle. A finished
slide's part file is written atomically after its images, so a rerun of the same
command skips finished slides and ends with byte-identical files. With ``shard=(K, N)``
a process takes a deterministic slice of the slides (cluster job arrays, or N processes
on one shared folder); :func:`scale_vqa.extract_shards.merge_shards` then checks that
every slide was done exactly once and writes the same bytes one process would.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError, ScaleVQAError, ValidationError
from curation.io import atomic_write_bytes, atomic_write_jsonl, atomic_write_text, read_jsonl
from scale_vqa.encoding import PSNR_EVERY, ImageEncoding, psnr, summarise_psnr
from scale_vqa.extract_shards import owned_slides, write_manifest
from scale_vqa.slides import SLIDE_SUFFIXES, open_slide, tissue_mask
from scale_vqa.zoom import extract_zoom_path, normalise_magnifications, sample_centres

ZOOM_PATHS = "zoom_paths.jsonl"
FAILURES = "failures.jsonl"
PARTS = ".parts"
IMAGES = "images"
ENCODING = "encoding.json"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction run (all of them part of the output's identity)."""

    magnifications: tuple[float, ...] = (5.0, 10.0, 20.0)
    size: int = 224
    paths_per_slide: int = 8
    mpp: float | None = None
    seed: int = 0
    allow_upsample: bool = False
    min_tissue: float = 0.5
    min_spacing: float | None = None
    image_format: str = "jpeg"
    image_quality: int = 90

    def __post_init__(self) -> None:
        enc = ImageEncoding(self.image_format, self.image_quality)  # checks both
        object.__setattr__(self, "image_format", enc.format)
        object.__setattr__(
            self, "magnifications", tuple(normalise_magnifications(self.magnifications))
        )
        if self.size <= 0:
            raise ConfigError(f"size={self.size} must be a positive number of pixels, e.g. 512")
        if self.paths_per_slide < 0:
            raise ConfigError(f"paths_per_slide={self.paths_per_slide} must be >= 0")
        if self.mpp is not None and not self.mpp > 0:
            raise ConfigError(f"mpp={self.mpp} must be a positive number of um per pixel")
        if not 0 <= self.min_tissue <= 1:
            raise ConfigError(f"min_tissue={self.min_tissue} must lie in [0, 1]")

    @property
    def encoding(self) -> ImageEncoding:
        """How crops are written."""
        return ImageEncoding(self.image_format, self.image_quality)


@dataclass(frozen=True)
class PathRequest:
    """One zoom path to extract: its id and centre (None: sample one on tissue)."""

    path_id: str
    centre: tuple[int, int] | None = None


@dataclass(frozen=True)
class SlideJob:
    """A slide and what to extract from it; ``requests`` None means sample N paths."""

    slide_id: str
    slide_path: str
    requests: tuple[PathRequest, ...] | None = None


@dataclass
class ExtractResult:
    """What a run did: slides finished now, resumed, failed, and paths written."""

    out_dir: Path
    done: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_paths: int = 0

    @property
    def ok(self) -> bool:
        """True when no slide failed."""
        return not self.failures

    def failure_summary(self) -> str:
        """One line: how many slides failed, the first reason, where the rest are listed."""
        n = len(self.failures)
        first = self.failures[0]["error"] if n else ""
        return (
            f"{n} slide(s) failed; first: {first}; all in {self.out_dir / FAILURES}"
            if n
            else "no slide failed"
        )


def safe_name(text: str) -> str:
    """A file-name-safe form of an id."""
    return _UNSAFE.sub("_", text).strip("._") or "x"


def name_key(text: str, keep: int = 40) -> str:
    """A file name for an id that no other id shares: readable ASCII prefix + id hash.

    ``病例一`` and ``病例二``, or ``a/b`` and ``a_b``, share a :func:`safe_name` but not a
    key: the suffix is 16 hex digits of the SHA-256 of the whole id.
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{safe_name(text)[:keep].rstrip('._')}-{digest}".lstrip("-")


def image_name(slide_id: str, path_id: str, magnification: float, suffix: str = ".jpg") -> str:
    """Image path of one crop, relative to the output folder."""
    return f"{IMAGES}/{name_key(slide_id)}/{name_key(path_id)}_{magnification:g}x{suffix}"


def part_name(slide_id: str, kind: str = ".jsonl") -> str:
    """A slide's part file (``.jsonl`` lines, ``.psnr.json`` sample), relative to the folder."""
    return f"{PARTS}/{name_key(slide_id)}{kind}"


def check_unique_names(slide_ids: Iterable[str]) -> None:
    """Refuse a run in which two slide ids would share a file name (a hash collision)."""
    seen: dict[str, str] = {}
    for sid in slide_ids:
        key = name_key(sid)
        if key in seen and seen[key] != sid:
            raise InputError(
                f"slide ids {seen[key]!r} and {sid!r} map to the same file name {key!r}; "
                "rename one of them"
            )
        seen[key] = sid


def find_slides(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, plus the slide files (by suffix) directly inside each folder."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(
                sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in SLIDE_SUFFIXES)
            )
        else:
            found.append(p)  # missing files fail per slide, naming the file
    return found


def jobs_for_slides(slides: Sequence[Path]) -> list[SlideJob]:
    """One sampling job per slide, slide_id = file stem (which must be unique)."""
    jobs: dict[str, SlideJob] = {}
    for p in slides:
        if p.stem in jobs:
            raise InputError(
                f"two slides share the id {p.stem!r} ({jobs[p.stem].slide_path} and {p}); "
                "slide ids are file stems: rename one of them"
            )
        jobs[p.stem] = SlideJob(p.stem, str(p))
    return list(jobs.values())


def _centre(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"x", "y"} <= set(value):
        raise ValidationError(f'{where}: field \'centre\' must be null or {{"x": .., "y": ..}}')
    from curation.annotations import MAX_COORDINATE, is_pixel_coordinate

    if not all(is_pixel_coordinate(value[k]) for k in ("x", "y")):
        raise ValidationError(
            f"{where}: centre x/y must be finite numbers in 0..{MAX_COORDINATE} (level-0 pixels)"
        )
    return round(value["x"]), round(value["y"])


Annotations = str | os.PathLike[str] | Sequence[Mapping[str, Any]]
"""An annotation JSONL file, or its lines as dicts (``Annotation.to_dict()`` works)."""


def _annotation_lines(annotations: Annotations) -> tuple[Path, list[tuple[int, dict]]]:
    """(file used in messages and to resolve relative slide paths, numbered lines)."""
    if isinstance(annotations, (str, os.PathLike)):
        return Path(annotations), list(read_jsonl(annotations))
    return Path("<annotations>"), [(i, dict(obj)) for i, obj in enumerate(annotations, 1)]


def _annotations_digest(annotations: Annotations) -> str:
    """Digest of the annotation lines' content: a file and its lines as dicts agree."""
    _, numbered = _annotation_lines(annotations)
    text = "".join(json.dumps(obj, sort_keys=True, default=str) + "\n" for _, obj in numbered)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def jobs_from_annotations(
    annotations: Annotations, slides: Sequence[Path] = ()
) -> tuple[list[SlideJob], list[dict[str, str]]]:
    """Jobs for each annotated zoom path, and failures for slides that cannot be found.

    Each line's ``slide_id`` is matched to a given slide by file stem, else its
    ``slide_path`` (absolute, relative to the annotation file, or to the working
    folder) is used. Lines with ``"centre": null`` get sampled centres.
    """
    ann, numbered = _annotation_lines(annotations)
    by_stem = {p.stem: p for p in slides}
    requests: dict[str, list[PathRequest]] = {}
    paths: dict[str, str] = {}
    missing: dict[str, str] = {}
    seen: set[str] = set()
    for lineno, obj in numbered:
        where = f"{ann}:{lineno}"
        sid, pid = obj.get("slide_id"), obj.get("path_id")
        for name, value in (("slide_id", sid), ("path_id", pid)):
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{where}: field '{name}' must be a non-empty string")
        if pid in seen:
            raise ValidationError(
                f"{where}: path_id {pid!r} repeats an earlier line; make it unique"
            )
        seen.add(pid)
        centre = _centre(obj.get("centre"), where)
        if sid not in paths and sid not in missing:
            slide_path = obj.get("slide_path")
            if sid in by_stem:
                paths[sid] = str(by_stem[sid])
            elif isinstance(slide_path, str) and slide_path:
                cands = [Path(slide_path)]
                if not cands[0].is_absolute():
                    cands.insert(0, ann.parent / slide_path)
                hit = next((c for c in cands if c.is_file()), None)
                if hit is not None:
                    paths[sid] = str(hit)
                else:
                    missing[sid] = f"slide_path {slide_path!r} not found (line {lineno})"
            else:
                missing[sid] = (
                    f"no input slide has the file stem {sid!r} and the line has no slide_path"
                )
        requests.setdefault(sid, []).append(PathRequest(pid, centre))
    jobs = [
        SlideJob(sid, paths[sid], tuple(reqs)) for sid, reqs in requests.items() if sid in paths
    ]
    failures = [
        {"slide_id": sid, "slide_path": "", "error": f"{ann}: slide {sid!r}: {why}"}
        for sid, why in missing.items()
    ]
    return jobs, failures


def extract_one(job: SlideJob, out_dir: str | os.PathLike[str], config: ExtractConfig) -> dict:
    """Extract one slide's zoom paths into ``out_dir`` (the worker).

    Writes the images, then ``.parts/<slide_id>.jsonl`` atomically. Never raises for
    a bad slide: returns ``{"slide_id", "status": "ok"|"failed", "error"?, "n", "notes"}``.
    """
    out = Path(out_dir)
    result: dict[str, Any] = {"slide_id": job.slide_id, "status": "ok", "n": 0, "notes": []}
    img_dir = out / IMAGES / name_key(job.slide_id)
    encoding = config.encoding
    shutil.rmtree(img_dir, ignore_errors=True)  # leftovers of an interrupted run
    try:
        with open_slide(job.slide_path, mpp=config.mpp) as slide:
            requests = list(job.requests) if job.requests is not None else None
            if requests is None:
                requests = [
                    PathRequest(f"{job.slide_id}-{i:04d}") for i in range(config.paths_per_slide)
                ]
            todo = [r for r in requests if r.centre is None]
            if todo:
                given = [r.centre for r in requests if r.centre is not None]
                centres = sample_centres(
                    slide,
                    len(todo),
                    config.magnifications,
                    config.size,
                    seed=config.seed,
                    min_spacing=config.min_spacing,
                    min_tissue=config.min_tissue,
                    mask=tissue_mask(slide),
                    avoid=given,  # type: ignore[arg-type]
                    allow_upsample=config.allow_upsample,
                )
                if len(centres) < len(todo):
                    result["notes"].append(
                        f"{job.slide_id}: only {len(centres)} of {len(todo)} zoom paths fit "
                        f"(min_tissue={config.min_tissue}, spacing); wrote those"
                    )
                filled = dict(zip((r.path_id for r in todo), centres))
                requests = [
                    r if r.centre is not None else PathRequest(r.path_id, filled[r.path_id])
                    for r in requests
                    if r.centre is not None or r.path_id in filled
                ]
            lines, psnrs, names_seen = [], [], set()
            for index, req in enumerate(requests):
                assert req.centre is not None
                zp = extract_zoom_path(
                    slide,
                    req.centre,
                    config.magnifications,
                    config.size,
                    allow_upsample=config.allow_upsample,
                    path_id=req.path_id,
                )
                zp.slide_id, zp.slide_path = job.slide_id, job.slide_path
                names = [
                    image_name(job.slide_id, req.path_id, c.magnification, encoding.suffix)
                    for c in zp.crops
                ]
                if names_seen & set(names):
                    raise ValidationError(
                        f"{job.slide_id}: zoom path {req.path_id!r} would overwrite the crop "
                        f"file of another path ({sorted(names_seen & set(names))[0]}); "
                        "give the paths distinct ids"
                    )
                names_seen.update(names)
                for crop, name in zip(zp.crops, names):
                    data = encoding.encode(crop.image)
                    if index % PSNR_EVERY == 0:
                        psnrs.append(psnr(crop.image, data))
                    atomic_write_bytes(out / name, data)
                lines.append(zp.to_record(names))
        atomic_write_text(
            out / part_name(job.slide_id, ".psnr.json"),
            json.dumps([p if p != float("inf") else None for p in psnrs]) + "\n",
        )
        atomic_write_jsonl(out / part_name(job.slide_id), lines)
        result["n"] = len(lines)
    except ScaleVQAError as exc:
        result.update(status="failed", error=str(exc))
    except Exception as exc:  # an unexpected library error must not stop other slides
        result.update(
            status="failed", error=f"{job.slide_path}: {type(exc).__name__}: {exc}".rstrip()
        )
    if result["status"] == "failed":
        shutil.rmtree(img_dir, ignore_errors=True)
    return result


def _check_config(out: Path, config: ExtractConfig, extra: dict[str, Any]) -> None:
    """Refuse to resume into a folder made with other settings."""
    wanted = json.dumps({**asdict(config), **extra}, sort_keys=True, indent=1) + "\n"
    path = out / PARTS / "config.json"
    if path.is_file():
        have = path.read_text(encoding="utf-8")
        if have != wanted:
            raise ConfigError(
                f"{out} was made with other settings ({path}); rerun with the same options "
                "to resume, or choose a new --out folder (or delete this one)"
            )
    else:
        atomic_write_text(path, wanted)


def check_extraction_folder(out: Path) -> None:
    """Refuse an output that is a file, or a folder of files no extraction wrote.

    Extraction resumes into its folder and clears ``images/<slide>/`` of each slide it
    (re)does, so it writes only into a new or empty folder or one it made (``.parts/``).
    """
    from scale_vqa.outdir import refuse_foreign

    refuse_foreign(
        out,
        lambda p: (p / PARTS).is_dir(),
        f"output folder {out} holds files that no extraction wrote (no {PARTS}/ in it); "
        f"extraction writes crops there and replaces {IMAGES}/<slide>/ folders, so it only "
        "resumes into a folder it made: choose a new or empty folder",
    )


def _clean_tmp(out: Path) -> None:
    """Remove temporary files an interrupted atomic write may have left."""
    for folder in (out, out / PARTS):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)


def extract_slides(
    slides: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: ExtractConfig | None = None,
    *,
    annotations: Annotations | None = None,
    workers: int = 1,
    progress: bool = True,
    on_slide_done: Callable[[dict], None] | None = None,
    report_failures: bool = True,
    shard: tuple[int, int] | None = None,
) -> ExtractResult:
    """Extract zoom paths from slides (files or folders) into ``out_dir``; resumable.

    Without ``annotations``, ``config.paths_per_slide`` centres are sampled on the
    tissue of each slide; with it, each annotation line is one zoom path (its centre,
    or a sampled one when null). Failed slides are listed in the result and in
    ``failures.jsonl``; the others finish. ``on_slide_done`` gets each worker result.
    ``report_failures`` prints one ``failed:`` line per distinct reason as slides fail.
    ``shard=(K, N)`` extracts only slice K of N (1-based) of the slides, sorted by id, and
    records it in ``.parts/shard-K-of-N.json``; ``zoom_paths.jsonl`` is then written by
    :func:`scale_vqa.extract_shards.merge_shards` (or by a run without ``shard``).
    """
    from tqdm import tqdm

    config = config or ExtractConfig()
    out = Path(out_dir)
    check_extraction_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = find_slides(slides)
    failures: list[dict[str, str]] = []
    extra: dict[str, Any] = {}
    said: set[str] = set()

    def say_failed(message: str) -> None:
        """One ``failed:`` line per distinct message, kept clear of the progress bar."""
        if report_failures and message not in said:
            said.add(message)
            tqdm.write(f"failed: {message}", file=sys.stderr)

    if annotations is not None:
        jobs, failures = jobs_from_annotations(annotations, paths)
        extra["annotations_sha256"] = _annotations_digest(annotations)
    else:
        if not paths:
            raise InputError("no slides given: pass slide files or folders holding them")
        jobs = jobs_for_slides(paths)
    jobs.sort(key=lambda j: j.slide_id)
    all_ids = sorted({j.slide_id for j in jobs} | {f["slide_id"] for f in failures})
    check_unique_names(all_ids)
    if shard is not None:
        mine = set(owned_slides(all_ids, shard))
        jobs = [j for j in jobs if j.slide_id in mine]
        failures = [f for f in failures if f["slide_id"] in mine]
    for f in failures:
        say_failed(f["error"])
    _check_config(out, config, extra)
    if shard is None:
        _clean_tmp(out)  # never while other shards may be writing into the folder
    result = ExtractResult(out)
    todo = []
    for job in jobs:
        if (out / part_name(job.slide_id)).is_file():
            result.resumed.append(job.slide_id)
        else:
            todo.append(job)

    def record(res: dict) -> None:
        result.notes.extend(res.get("notes", []))
        if res["status"] == "ok":
            result.done.append(res["slide_id"])
        else:
            job = next(j for j in jobs if j.slide_id == res["slide_id"])
            failures.append(
                {"slide_id": job.slide_id, "slide_path": job.slide_path, "error": res["error"]}
            )
            say_failed(res["error"])
        if on_slide_done is not None:
            on_slide_done(res)

    bar = tqdm(total=len(todo), desc="extract", unit="slide", disable=not progress)
    try:
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                record(extract_one(job, out, config))
                bar.update()
        else:
            _run_pool(todo, out, config, workers, record, bar)
    finally:
        bar.close()

    failures.sort(key=lambda f: f["slide_id"])
    result.failures = failures
    if shard is not None:
        write_manifest(out, shard, all_ids, [j.slide_id for j in jobs], failures, extra)
        result.n_paths = sum(_count_lines(out / part_name(j.slide_id)) for j in jobs)
        return result
    result.n_paths = write_outputs(out, all_ids, failures, config)
    return result


def _run_pool(
    todo: list[SlideJob],
    out: Path,
    config: ExtractConfig,
    workers: int,
    record: Callable[[dict], None],
    bar: Any,
) -> None:
    """Run ``todo`` in spawned worker processes, recording results in slide order per batch."""
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
        submitted = {pool.submit(extract_one, job, str(out), config): job for job in todo}
        pending = set(submitted)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: submitted[f].slide_id):
                    try:
                        res = fut.result()
                    except Exception as exc:  # a worker died (e.g. a native crash)
                        job = submitted[fut]
                        res = {
                            "slide_id": job.slide_id,
                            "status": "failed",
                            "error": f"{job.slide_path}: worker process failed "
                            f"({type(exc).__name__}: {exc}); rerun to retry",
                        }
                    record(res)
                    bar.update()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def write_outputs(
    out: Path, slide_ids: Sequence[str], failures: list[dict[str, str]], config: ExtractConfig
) -> int:
    """``zoom_paths.jsonl``, ``encoding.json`` and ``failures.jsonl`` from the part files.

    Slides in sorted id order, so one process, a resumed run and merged shards write the
    same bytes. Returns the number of zoom paths.
    """
    lines: list[str] = []
    values: list[float] = []
    for sid in sorted(slide_ids):
        part = out / part_name(sid)
        if part.is_file():
            text = part.read_text(encoding="utf-8")
            lines.extend(line for line in text.splitlines() if line.strip())
            sample = out / part_name(sid, ".psnr.json")
            if sample.is_file():
                values.extend(
                    float("inf") if v is None else float(v)
                    for v in json.loads(sample.read_text(encoding="utf-8"))
                )
    atomic_write_text(out / ZOOM_PATHS, "".join(line + "\n" for line in lines))
    enc = config.encoding
    info = {**enc.to_dict(), "description": enc.describe(), "psnr": summarise_psnr(values)}
    info["psnr"]["sample"] = f"every crop of one zoom path in {PSNR_EVERY}, per slide"
    atomic_write_text(out / ENCODING, json.dumps(info, indent=1, sort_keys=True) + "\n")
    if failures:
        atomic_write_jsonl(out / FAILURES, sorted(failures, key=lambda f: f["slide_id"]))
    else:
        (out / FAILURES).unlink(missing_ok=True)
    return len(lines)


def read_encoding(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``encoding.json`` of an extraction folder (None for folders made before it)."""
    p = Path(path) / ENCODING
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def padded_note(path: str | os.PathLike[str]) -> str | None:
    """What share of each magnification's crops were padded with white (a field larger than
    the slide), as one line with the fix; None when no crop was padded or there is no
    ``zoom_paths.jsonl`` (``path``: the extraction folder)."""
    if not (Path(path) / ZOOM_PATHS).is_file():
        return None
    counts: dict[float, list[int]] = {}
    for row in read_zoom_paths(path):
        for c in row["crops"]:
            n = counts.setdefault(float(c["magnification"]), [0, 0])
            n[0] += bool(c.get("padded"))
            n[1] += 1
    parts = [f"{p} of {n} {m:g}x crops" for m, (p, n) in sorted(counts.items()) if p]
    if not parts:
        return None
    return (
        f"{', '.join(parts)} are padded with white: the field is larger than the slide, so "
        "part of each such image is not tissue; for a small slide choose finer magnifications "
        "(e.g. 5, 10, 20)"
    )


def crops_low_to_high(zoom_path: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The crops of a ``zoom_paths.jsonl`` record, lowest power first (coarsest mpp)."""
    return sorted(zoom_path["crops"], key=lambda c: (-float(c["mpp"]), float(c["magnification"])))


def slide_file(zoom_path: Mapping[str, Any]) -> str:
    """The slide file a ``zoom_paths.jsonl`` record was read from (resolved; its
    ``slide_id`` when it has none): two slide ids may name one file."""
    path = zoom_path.get("slide_path")
    return str(Path(path).resolve()) if path else str(zoom_path["slide_id"])


def read_zoom_paths(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a ``zoom_paths.jsonl`` (a file, or the folder holding one), checking fields."""
    path = Path(path)
    if path.is_dir():
        path = path / ZOOM_PATHS
    rows = []
    for lineno, obj in read_jsonl(path):
        for key in ("slide_id", "path_id", "slide_path", "centre", "crops"):
            if key not in obj:
                raise ValidationError(f"{path}:{lineno}: missing field '{key}'")
        rows.append(obj)
    return rows
