"""``build.yaml``: the one configuration file of a rebuild, loaded and validated.

Every path in the file is relative to the file's own folder. Unknown keys are
rejected; each error names the file, the key and what to write instead. See
``examples/build.yaml`` for a documented full configuration.
"""

from __future__ import annotations

import difflib
import glob
import itertools
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError
from curation.organs import SCALES
from curation.records import QUESTION_TYPES
from curation.split import DEFAULT_MIN_CHUNK
from scale_vqa.extract_shards import parse_shard
from scale_vqa.shared_tissue import POLICIES as SHARED_TISSUE_POLICIES
from scale_vqa.zoom import MAX_CROP_SIZE, MAX_PATHS_PER_SLIDE, MIN_CROP_SIZE

SLIDE_SUFFIXES: tuple[str, ...] = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".svslide",
    ".bif",
)
"""File suffixes a slide folder is searched for (those OpenSlide reads)."""

FLAG_RULES: tuple[str, ...] = ("any", "majority")


@dataclass
class LLMEndpoint:
    """One OpenAI-compatible endpoint: a text-only adversary of the screen, the evidence
    captioner, or the optional rewording model (``reword:``)."""

    base_url: str
    model: str
    samples: int = 1
    api_key_env: str = "OPENAI_API_KEY"

    def spec(self) -> str:
        """The ``base_url=...,model=...`` form of curation.llm.LLMConfig.parse."""
        return f"base_url={self.base_url},model={self.model},api_key_env={self.api_key_env}"


@dataclass
class GenerationConfig:
    """How questions are generated from annotations."""

    naive: bool = False
    options: int = 4
    question_types: list[str] = field(default_factory=lambda: list(QUESTION_TYPES))
    split_min_chunk: int = DEFAULT_MIN_CHUNK


@dataclass
class SplitConfig:
    """Split ratios (by patient, else slide); they sum to 1. ``shared_tissue``: what the
    build does when fields of different splits overlap on one slide file (``error``, or
    ``warn`` and say so in the card; see :mod:`scale_vqa.shared_tissue`)."""

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    shared_tissue: str = "error"


@dataclass
class FlagConfig:
    """When the screen flags a question (see curation.screen).

    ``rule``: how an LLM adversary's k samples flag an item (``any`` answer right, or a
    ``majority``). ``alpha``: family-wise level of the test that a cell (adversary x
    stratum x confidence bin) beats chance; ``min_excess``: how far above chance it must be.
    """

    rule: str = "majority"
    alpha: float = 0.05
    min_excess: float = 0.02


@dataclass
class ScreenConfig:
    """The leakage screen: adversaries, regeneration rounds and the flag rule."""

    enabled: bool = True
    adversaries: list[str] | None = None  # None: the default battery
    embeddings: bool = False
    aflite: bool = False
    rounds: int = 2
    llm: list[LLMEndpoint] = field(default_factory=list)
    flag: FlagConfig = field(default_factory=FlagConfig)


@dataclass
class AuditConfig:
    """The card's leakage audit: ``null_refits`` refits of each learned adversary on keys
    permuted within sets (:func:`curation.audit_null.permutation_null`; 0 = none)."""

    null_refits: int = 0


@dataclass
class EvidenceConfig:
    """How raw annotations (free text, captions) become feature ids (curation.evidence)."""

    threshold: float = 0.65
    llm: LLMEndpoint | None = None  # needed only for captions


@dataclass
class CardConfig:
    """Dataset card metadata."""

    name: str = "Scale-VQA rebuild"
    repo_id: str = ""
    license: str = "cc-by-4.0"
    description: str = ""
    citation: str = ""
    limitations: list[str] = field(default_factory=list)


DEFAULT_MAGNIFICATIONS = (1.0, 4.0, 20.0)
"""The release's triplet: 10x / 40x / 200x total magnification = objective 1x / 4x / 20x
(a 224 px low-power field is 2.24 mm wide, enough for architecture)."""


@dataclass
class ReviewConfig:
    """The expert review the build obeys (``scale-vqa review``'s database)."""

    db: Path
    unreviewed: str = "keep"  # or "drop"
    disagreement: str = "drop"  # or "keep" (reviewers disagree, no adjudicator)


@dataclass
class BuildConfig:
    """A validated ``build.yaml``; paths are absolute."""

    annotations: list[Path]
    slides: list[Path] = field(default_factory=list)
    mpp: float | None = None
    organs_dir: list[Path] = field(default_factory=list)
    magnifications: list[float] = field(default_factory=lambda: list(DEFAULT_MAGNIFICATIONS))
    size: int = 224
    paths_per_slide: int = 8
    allow_upsample: bool = False
    image_format: str = "jpeg"  # crops: jpeg (quality, 4:4:4) | png (lossless) | webp
    image_quality: int = 90
    shard: tuple[int, int] | None = None  # extract only slice K of N of the slides, then stop
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = 0
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    reword: LLMEndpoint | None = None  # optional: reword each set after generation
    output: Path = Path("dataset")
    work: Path = Path("work")
    shard_size_mb: float = 256.0
    card: CardConfig = field(default_factory=CardConfig)
    hidden_test: bool = False  # test split without answers/rationales; key in key_file
    key_file: Path | None = None  # where the hidden test's key goes (default work/test_key.jsonl)
    review: ReviewConfig | None = None
    source: Path | None = None  # the file it was loaded from

    @property
    def key_path(self) -> Path:
        """Where a hidden-test build writes the test split's key."""
        return self.key_file or self.work / "test_key.jsonl"

    def check_key_path(self) -> None:
        """A hidden test's key must never land in the published folder."""
        if not self.hidden_test:
            return
        key, out = Path(os.path.abspath(self.key_path)), Path(os.path.abspath(self.output))
        if key == out or out in key.parents:
            raise ConfigError(
                f"key_file {key} is inside the output folder {out}, which is what gets "
                "published; put the key outside it (the default is the work folder)"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (paths as strings)."""
        return _plain(asdict(self))

    def settings(self, *keys: str) -> dict[str, Any]:
        """The named top-level settings as a plain dict (for stage fingerprints)."""
        d = self.to_dict()
        return {k: d[k] for k in keys}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------- validation


class _Reader:
    """Walks a mapping, checking types and remembering which keys were read."""

    def __init__(self, data: dict[str, Any], where: str, prefix: str = "") -> None:
        self.data = data
        self.where = where
        self.prefix = prefix
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{self.key(name)}' {msg}")

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        value = self.data.get(name, default)
        return default if value is None else value

    def has(self, name: str) -> bool:
        self.seen.add(name)  # a key read only when present is still a known key
        return self.data.get(name) is not None

    def sub(self, name: str) -> _Reader:
        value = self.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a mapping of settings, got {_tn(value)}")
        return _Reader(value, self.where, f"{self.key(name)}.")

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(name, f"is {value}; use a whole number >= {minimum}")
        return value

    def number(self, name: str, default: float | None, positive: bool = False) -> float | None:
        value = self.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"must be a number, got {value!r}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.fail(name, f"is {value!r}; use a positive finite number")
        return float(value)

    def string(self, name: str, default: str) -> str:
        value = self.get(name, default)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.fail(name, f"must be a string, got {_tn(value)}")
        return str(value)

    def strings(self, name: str, default: list[str] | None) -> list[str] | None:
        value = self.get(name, default)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, "must be a string or a list of non-empty strings")
        return list(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(f"'{self.prefix}{k}'" for k in sorted(self.seen))
            names = ", ".join(f"'{self.prefix}{k}'" for k in unknown)
            close = {
                k: m[0] for k in unknown if (m := difflib.get_close_matches(k, self.seen, 1, 0.75))
            }
            hint = "".join(
                f" (did you mean '{self.prefix}{m}' for '{self.prefix}{k}'?)"
                for k, m in close.items()
            )
            raise ConfigError(
                f"{self.where}: unknown key(s) {names}{hint}; remove or rename them "
                f"(known keys here: {known})"
            )


def _tn(value: Any) -> str:
    return type(value).__name__


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def expand_slides(patterns: list[Path], where: str) -> list[Path]:
    """Slide files named by files, folders (searched recursively) or globs; sorted, unique."""
    found: list[Path] = []
    for pat in patterns:
        text = str(pat)
        if any(ch in text for ch in "*?["):
            hits = [Path(h) for h in sorted(glob.glob(text, recursive=True))]
            hits = [h for h in hits if h.is_file()]
            if not hits:
                raise ConfigError(f"{where}: key 'slides': pattern {text} matches no file")
            found.extend(hits)
        elif pat.is_dir():
            hits = sorted(
                h for h in pat.rglob("*") if h.is_file() and h.suffix.lower() in SLIDE_SUFFIXES
            )
            if not hits:
                raise ConfigError(
                    f"{where}: key 'slides': folder {pat} holds no slide file "
                    f"({', '.join(SLIDE_SUFFIXES)})"
                )
            found.extend(hits)
        elif pat.is_file():
            found.append(pat)
        else:
            raise ConfigError(
                f"{where}: key 'slides': {pat} does not exist; give slide files, folders "
                "or glob patterns relative to the config file"
            )
    out: list[Path] = []
    stems: dict[str, Path] = {}
    for p in found:
        p = Path(os.path.abspath(p))  # not resolve(): a symlink's own name is the slide id
        if p in out:
            continue
        if p.stem in stems:
            raise ConfigError(
                f"{where}: key 'slides': {stems[p.stem]} and {p} share the file stem "
                f"{p.stem!r}, which is the slide id annotations are matched by; rename one"
            )
        stems[p.stem] = p
        out.append(p)
    return out


def _endpoint(item: Any, where: str, key: str, with_samples: bool) -> LLMEndpoint:
    if not isinstance(item, dict):
        raise ConfigError(
            f"{where}: key '{key}' must be a mapping with base_url and model "
            "(e.g. {base_url: http://localhost:8000/v1, model: NAME})"
        )
    e = _Reader(item, where, f"{key}.")
    base_url = e.string("base_url", "")
    model = e.string("model", "")
    if not base_url.startswith(("http://", "https://")):
        raise e.fail("base_url", "must be an http(s) URL such as http://localhost:8000/v1")
    if not model:
        raise e.fail("model", "is required: the model name the endpoint serves")
    out = LLMEndpoint(
        base_url=base_url,
        model=model,
        samples=e.integer("samples", 1, minimum=1) if with_samples else 1,
        api_key_env=e.string("api_key_env", "OPENAI_API_KEY"),
    )
    e.finish()
    return out


def _encoding(r: _Reader) -> tuple[str, int]:
    """``image_format`` and ``image_quality``, checked (scale_vqa.encoding)."""
    from scale_vqa.encoding import DEFAULT_FORMAT, DEFAULT_QUALITY, FORMATS, ImageEncoding

    fmt = r.string("image_format", DEFAULT_FORMAT).lower()
    if fmt not in (*FORMATS, "jpg"):
        raise r.fail("image_format", f"is {fmt!r}; use one of {', '.join(FORMATS)} (png: lossless)")
    quality = r.integer("image_quality", DEFAULT_QUALITY, minimum=1)
    if quality > 100:
        raise r.fail("image_quality", f"is {quality}; use 1 to 100 ({DEFAULT_QUALITY} by default)")
    enc = ImageEncoding(fmt, quality)
    return enc.format, enc.quality


def parse_config(data: Any, base: Path, where: str = "build.yaml") -> BuildConfig:
    """Validate a parsed YAML mapping; relative paths are resolved against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the file must be a YAML mapping of settings, got {_tn(data)}")
    r = _Reader(data, where)

    ann = r.strings("annotations", None)
    if not ann:
        raise r.fail(
            "annotations",
            "is required: the annotation JSONL file(s), one zoom path per line "
            "(canonical or raw; see the annotation format)",
        )
    annotations = [_resolve(base, a) for a in ann]
    for a in annotations:
        if not a.is_file():
            raise r.fail("annotations", f"names {a}, which does not exist; check the path")

    slides = expand_slides([_resolve(base, s) for s in r.strings("slides", []) or []], where)
    mpp = r.number("mpp", None, positive=True)
    organs_dir = [_resolve(base, d) for d in r.strings("organs_dir", []) or []]
    for d in organs_dir:
        if not d.exists():
            raise r.fail("organs_dir", f"names {d}, which does not exist")

    mags = r.get("magnifications", list(DEFAULT_MAGNIFICATIONS))
    if (
        not isinstance(mags, list)
        or not mags
        or not all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in mags)
    ):
        raise r.fail("magnifications", f"must be a list of objective powers, got {mags!r}")
    magnifications = [float(m) for m in mags]
    if any(not math.isfinite(m) or m <= 0 for m in magnifications):
        raise r.fail("magnifications", f"is {mags!r}; use positive objective powers like 5, 10, 20")
    if any(b <= a for a, b in itertools.pairwise(magnifications)):
        raise r.fail("magnifications", f"is {mags!r}; list them low to high without repeats")
    if len(magnifications) != len(SCALES):
        raise r.fail(
            "magnifications",
            f"is {mags!r}; give exactly {len(SCALES)} objective powers, low to high (e.g. "
            "[5, 10, 20]): the questions speak of the low, medium and high power field",
        )

    size = r.integer("size", 224, minimum=MIN_CROP_SIZE)
    if size > MAX_CROP_SIZE:
        raise r.fail(
            "size",
            f"is {size}; use a crop side of {MIN_CROP_SIZE}..{MAX_CROP_SIZE} pixels (e.g. 224)",
        )
    paths_per_slide = r.integer("paths_per_slide", 8, minimum=1)
    if paths_per_slide > MAX_PATHS_PER_SLIDE:
        raise r.fail("paths_per_slide", f"is {paths_per_slide}; use 1..{MAX_PATHS_PER_SLIDE}")
    allow_upsample = r.boolean("allow_upsample", False)
    image_format, image_quality = _encoding(r)
    shard = parse_shard(r.get("shard"), f"{where}: key 'shard'") if r.has("shard") else None

    g = r.sub("generation")
    qtypes = g.strings("question_types", list(QUESTION_TYPES)) or []
    bad = [t for t in qtypes if t not in QUESTION_TYPES]
    if bad or not qtypes:
        raise g.fail(
            "question_types",
            f"has {bad or 'no types'}; use some of {', '.join(QUESTION_TYPES)}",
        )
    generation = GenerationConfig(
        naive=g.boolean("naive", False),
        options=g.integer("options", 4, minimum=2),
        question_types=qtypes,
        split_min_chunk=g.integer("split_min_chunk", DEFAULT_MIN_CHUNK, minimum=0),
    )
    if generation.options != 4:
        raise g.fail(
            "options",
            f"is {generation.options}; the generator builds 2x2 option squares, so use 4",
        )
    g.finish()

    s = r.sub("split")
    split = SplitConfig(
        train=s.number("train", 0.7) or 0.0,
        validation=s.number("validation", 0.15) or 0.0,
        test=s.number("test", 0.15) or 0.0,
        shared_tissue=s.string("shared_tissue", "error"),
    )
    if split.shared_tissue not in SHARED_TISSUE_POLICIES:
        raise s.fail(
            "shared_tissue",
            f"is {split.shared_tissue!r}; use one of {', '.join(SHARED_TISSUE_POLICIES)}",
        )
    s.finish()
    ratios = [split.train, split.validation, split.test]
    if any(x < 0 for x in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(
            f"{where}: key 'split' has ratios {ratios} (sum {sum(ratios):g}); give "
            "non-negative train/validation/test ratios that sum to 1"
        )

    seed = r.integer("seed", 0, minimum=0)

    sc = r.sub("screen")
    advs = sc.strings("adversaries", None)
    llms: list[LLMEndpoint] = []
    raw_llm = sc.get("llm", [])
    if not isinstance(raw_llm, list):
        raise sc.fail("llm", "must be a list of endpoints, each {base_url, model, samples}")
    for i, item in enumerate(raw_llm):
        llms.append(_endpoint(item, where, f"screen.llm[{i}]", with_samples=True))
    fl = sc.sub("flag")
    flag = FlagConfig(
        rule=fl.string("rule", "majority"),
        alpha=fl.number("alpha", 0.05, positive=True) or 0.05,
        min_excess=fl.number("min_excess", 0.02) or 0.0,
    )
    if flag.rule not in FLAG_RULES:
        raise fl.fail("rule", f"is {flag.rule!r}; use one of {', '.join(FLAG_RULES)}")
    if not flag.alpha < 1:
        raise fl.fail("alpha", f"is {flag.alpha}; use a level in (0, 1), e.g. 0.05")
    if not 0 <= flag.min_excess < 1:
        raise fl.fail("min_excess", f"is {flag.min_excess}; use a fraction in [0, 1)")
    fl.finish()
    screen = ScreenConfig(
        enabled=sc.boolean("enabled", True),
        adversaries=advs,
        embeddings=sc.boolean("embeddings", False),
        aflite=sc.boolean("aflite", False),
        rounds=sc.integer("rounds", 2, minimum=0),
        llm=llms,
        flag=flag,
    )
    sc.finish()
    au = r.sub("audit")
    audit = AuditConfig(null_refits=au.integer("null_refits", 0, minimum=0))
    au.finish()

    output = _resolve(base, r.string("output", "dataset"))
    work = _resolve(base, r.string("work", "work"))
    shard_size_mb = r.number("shard_size_mb", 256.0, positive=True) or 256.0
    hidden_test = r.boolean("hidden_test", False)
    key_file = _resolve(base, r.string("key_file", "")) if r.has("key_file") else None

    ev = r.sub("evidence")
    evidence = EvidenceConfig(threshold=ev.number("threshold", 0.65, positive=True) or 0.65)
    if evidence.threshold > 1:
        raise ev.fail("threshold", f"is {evidence.threshold}; use a similarity in (0, 1]")
    if ev.has("llm"):
        evidence.llm = _endpoint(ev.get("llm"), where, "evidence.llm", with_samples=False)
    ev.finish()

    c = r.sub("card")
    card = CardConfig(
        name=c.string("name", "Scale-VQA rebuild"),
        repo_id=c.string("repo_id", ""),
        license=c.string("license", "cc-by-4.0"),
        description=c.string("description", ""),
        citation=c.string("citation", ""),
        limitations=c.strings("limitations", []) or [],
    )
    c.finish()
    review = _review(r, base)
    reword = _endpoint(r.get("reword"), where, "reword", False) if r.has("reword") else None
    r.finish()
    cfg = BuildConfig(
        annotations=annotations,
        slides=slides,
        mpp=mpp,
        organs_dir=organs_dir,
        magnifications=magnifications,
        size=size,
        paths_per_slide=paths_per_slide,
        allow_upsample=allow_upsample,
        image_format=image_format,
        image_quality=image_quality,
        shard=shard,
        evidence=evidence,
        generation=generation,
        split=split,
        seed=seed,
        screen=screen,
        audit=audit,
        reword=reword,
        output=output,
        work=work,
        shard_size_mb=shard_size_mb,
        card=card,
        hidden_test=hidden_test,
        key_file=key_file,
        review=review,
    )
    cfg.check_key_path()
    return cfg


def _review(r: _Reader, base: Path) -> ReviewConfig | None:
    """``review: review.sqlite`` or ``review: {db: ..., unreviewed: keep, disagreement: drop}``."""
    if not r.has("review"):
        return None
    raw = r.get("review")
    if isinstance(raw, str):
        raw = {"db": raw}
    if not isinstance(raw, dict):
        raise r.fail(
            "review", "must be the review database path, or {db, unreviewed, disagreement}"
        )
    rv = _Reader(raw, r.where, prefix=r.key("review") + ".")
    db = _resolve(base, rv.string("db", ""))
    if not rv.get("db"):
        raise rv.fail("db", "is required: the SQLite file of `scale-vqa review --db`")
    if not db.is_file():
        raise rv.fail("db", f"names {db}, which does not exist; run `scale-vqa review` first")
    out = ReviewConfig(
        db=db,
        unreviewed=rv.string("unreviewed", "keep"),
        disagreement=rv.string("disagreement", "drop"),
    )
    for key, allowed in (("unreviewed", ("keep", "drop")), ("disagreement", ("drop", "keep"))):
        if getattr(out, key) not in allowed:
            raise rv.fail(key, f"is {getattr(out, key)!r}; use {' or '.join(allowed)}")
    rv.finish()
    return out


def load_config(
    path: str | os.PathLike[str], overrides: Callable[[dict[str, Any]], None] | None = None
) -> BuildConfig:
    """Read and validate a ``build.yaml``; ``overrides`` may edit the raw mapping first."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file; pass --config path/to/build.yaml")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; a config is a YAML file") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{loc}: not valid YAML ({exc}); fix the syntax") from None
    if data is None:
        data = {}
    if overrides is not None and isinstance(data, dict):
        overrides(data)
    cfg = parse_config(data, path.resolve().parent, where=str(path))
    cfg.source = path.resolve()
    return cfg
