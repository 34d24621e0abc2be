"""Training configs: one YAML file per run of ``scale-vqa train grpo|sft``.

Precedence: the built-in defaults, then the file, then command-line flags and ``--set
KEY=VALUE``. Paths are relative to the working directory (not to the file), so the
shipped configs (``configs/`` in a clone, also packaged: ``--config grpo_tiny_cpu``) run
from anywhere. Unknown keys are rejected with the list of known ones, naming ``--set`` when
they came from it and the file otherwise. Every key is documented in
``configs/grpo_scalereasoner_r1.yaml`` and docs/train.md.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines.train_common import VLLM_MODES, TrainConfig
from curation.errors import ConfigError, InputError
from scale_vqa.config import _Reader

METHODS = ("grpo", "sft")
DATASET_MAKERS = ("demo",)
MODEL_MAKERS = ("tiny",)
SECRET_KEY = re.compile(r"(^|_)(token|api_key|apikey)$|secret|password", re.IGNORECASE)
AS_RUN_HEAD = "# scale-vqa train {method}: every setting as run"
"""How ``OUT/config.yaml`` (:func:`config_as_run`) begins."""


def configs_dir() -> Path:
    """The folder of shipped configs inside the installed package."""
    return Path(str(importlib.resources.files("scale_vqa") / "configs"))


def shipped_configs() -> list[str]:
    """Names of the shipped training configs (``--config NAME``)."""
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def resolve_config(name: str | os.PathLike[str]) -> Path:
    """A config file path, or the shipped config of that name (``grpo_tiny_cpu``)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = configs_dir() / f"{path.stem}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise InputError(
        f"{name}: no such config file, and no shipped config of that name; give a path or "
        f"one of {', '.join(shipped_configs())}"
    )


@dataclass
class TrainRun:
    """Everything one ``scale-vqa train`` run needs."""

    method: str
    model: str
    dataset: str
    out: Path
    split: str = "train"
    validation_split: str = "validation"
    model_if_missing: str | None = None
    dataset_if_missing: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str = "(command line)"
    settings: dict[str, Any] = field(default_factory=dict)  # every setting (settings_of)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"`` (intermediate mappings created)."""
    *parents, last = key.split(".")
    node = data
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {} if node.get(p) in (None, True) else {"enabled": node[p]}
        node = node[p]
    node[last] = value


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items (VALUE read as YAML: numbers, true/false, null, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set beta=0.04")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file (empty file: empty mapping)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{loc}: not valid YAML ({exc}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a YAML mapping of settings")
    return data


def _rewards(value: Any, where: str) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value), None
    if isinstance(value, dict) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in value.values()
    ):
        return tuple(str(k) for k in value), tuple(float(w) for w in value.values())
    raise ConfigError(
        f"{where}: key 'rewards' must map reward names to weights (e.g. {{accuracy: 0.8, "
        "format: 0.2}) or list names (weight 1 each)"
    )


def _maybe_int(r: _Reader, name: str) -> int | None:
    """A whole number >= 1, or ``None`` for null or absent."""
    return None if r.get(name) is None else r.integer(name, 0, minimum=1)


def _choice(r: _Reader, name: str, choices: tuple[str, ...]) -> str | None:
    value = r.get(name)
    if value is not None and value not in choices:
        raise r.fail(name, f"is {value!r}; use one of {', '.join(choices)} or null")
    return value


def _finish(reader: _Reader, given: set[str]) -> None:
    """Refuse unknown keys: first those ``--set`` gave (``given``: the dotted keys of the
    overrides; a key under one of them came from it), blaming ``--set``, then the file's."""

    def from_set(name: str) -> bool:
        key = reader.key(name)
        return any(key == g or key.startswith(g + ".") for g in given)

    unknown = [k for k in set(reader.data) - reader.seen if from_set(k)]
    if unknown:
        cli = _Reader({k: reader.data[k] for k in unknown}, "--set", reader.prefix)
        cli.seen = set(reader.seen)
        cli.finish()
    reader.finish()


def parse_train(
    data: dict[str, Any], method: str, where: str, given: set[str] | None = None
) -> TrainRun:
    """Validate the merged mapping into a :class:`TrainRun`; ``given``: the dotted keys
    that came from the command line (an unknown one is blamed on ``--set``)."""
    r = _Reader(data, where)
    declared = r.get("method")
    if declared is not None and declared != method:
        raise r.fail("method", f"is {declared!r} but the command is `train {method}`")
    grpo = method == "grpo"
    missing = [k for k in ("model", "dataset", "out") if not r.has(k)]
    if missing:
        flags = ", ".join(f"--{k}" if k != "dataset" else "DATASET" for k in missing)
        raise ConfigError(
            f"{where}: no {', '.join(missing)} given; set {', '.join(missing)} in the config "
            f"or pass {flags}"
        )
    rewards, weights = _rewards(r.get("rewards", ["accuracy", "format"]), where)
    lora = r.get("lora", False)
    lo = _Reader(lora if isinstance(lora, dict) else {}, where, "lora.")
    if not isinstance(lora, (bool, dict)):
        raise r.fail("lora", "must be true, false or a mapping {r: 16, alpha: 32}")
    val = r.sub("validation")
    trainer = r.get("trainer", {})
    if not isinstance(trainer, dict):
        raise r.fail("trainer", "must be a mapping of extra trl config fields")
    gens = r.integer("num_generations", 4, minimum=2 if grpo else 1)
    cfg = TrainConfig(
        max_steps=_maybe_int(r, "max_steps") if "max_steps" in data else 100,
        epochs=r.number("epochs", 1.0, positive=True) or 1.0,
        batch_size=r.integer("batch_size", gens if grpo else 4, minimum=1),
        num_generations=gens,
        max_completion_length=r.integer("max_completion_length", 256, minimum=1),
        learning_rate=r.number("learning_rate", 1e-5 if grpo else 2e-5, positive=True),
        beta=r.number("beta", 0.0) or 0.0,
        temperature=r.number("temperature", 1.0, positive=True),
        rewards=rewards,
        reward_weights=weights,
        shuffle_options=r.boolean("shuffle_options", False),
        lora=bool(lora) if not isinstance(lora, dict) else lo.boolean("enabled", True),
        lora_r=lo.integer("r", 16, minimum=1),
        lora_alpha=lo.integer("alpha", 32, minimum=1),
        seed=r.integer("seed", 0),
        limit=_maybe_int(r, "limit"),
        max_pixels=_maybe_int(r, "max_pixels"),
        gradient_accumulation_steps=r.integer("gradient_accumulation_steps", 1, minimum=1),
        use_vllm=r.boolean("use_vllm", False),
        vllm_mode=r.string("vllm_mode", "colocate"),
        val_every=val.integer("every", 0, minimum=0),
        val_limit=_maybe_int(val, "limit") if "limit" in val.data else 64,
        val_max_new_tokens=_maybe_int(val, "max_new_tokens"),
        save_steps=_maybe_int(r, "save_steps"),
        extra=dict(trainer),
    )
    if cfg.vllm_mode not in VLLM_MODES:
        raise r.fail("vllm_mode", f"is {cfg.vllm_mode!r}; use {' or '.join(VLLM_MODES)}")
    run = TrainRun(
        method=method,
        model=r.string("model", ""),
        dataset=r.string("dataset", ""),
        out=Path(r.string("out", "")),
        split=r.string("split", "train"),
        validation_split=val.string("split", "validation"),
        model_if_missing=_choice(r, "model_if_missing", MODEL_MAKERS),
        dataset_if_missing=_choice(r, "dataset_if_missing", DATASET_MAKERS),
        train=cfg,
        source=where,
    )
    for reader in (lo, val, r):
        _finish(reader, given or set())
    cfg.check(grpo=grpo)
    run.settings = settings_of(run)
    return run


def settings_of(run: TrainRun) -> dict[str, Any]:
    """Every setting of ``run`` in the config file's keys (a complete, rerunnable config)."""
    c = run.train
    weights = c.reward_weights or (1.0,) * len(c.rewards)
    return {
        "method": run.method,
        "model": run.model,
        "model_if_missing": run.model_if_missing,
        "dataset": run.dataset,
        "dataset_if_missing": run.dataset_if_missing,
        "split": run.split,
        "out": str(run.out),
        "seed": c.seed,
        "limit": c.limit,
        "max_steps": c.max_steps,
        "epochs": c.epochs,
        "batch_size": c.batch_size,
        "gradient_accumulation_steps": c.gradient_accumulation_steps,
        "learning_rate": c.learning_rate,
        "num_generations": c.num_generations,
        "max_completion_length": c.max_completion_length,
        "temperature": c.temperature,
        "beta": c.beta,
        "rewards": dict(zip(c.rewards, weights, strict=True)),
        "shuffle_options": c.shuffle_options,
        "lora": {"enabled": c.lora, "r": c.lora_r, "alpha": c.lora_alpha},
        "max_pixels": c.max_pixels,
        "use_vllm": c.use_vllm,
        "vllm_mode": c.vllm_mode,
        "validation": {"split": run.validation_split, "every": c.val_every,
                       "limit": c.val_limit, "max_new_tokens": c.val_max_new_tokens},
        "save_steps": c.save_steps,
        "trainer": dict(c.extra),
    }  # fmt: skip


def load_train_run(
    config: str | os.PathLike[str] | None, method: str, overrides: dict[str, Any]
) -> TrainRun:
    """The run from ``config`` (a file or a shipped name; optional) and ``overrides``
    (dotted keys; a ``None`` value sets null, e.g. ``max_steps`` to train by epochs)."""
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: use one of {', '.join(METHODS)}")
    path = resolve_config(config) if config is not None else None
    data = read_yaml(path) if path is not None else {}
    for key, value in overrides.items():
        set_dotted(data, key, value)
    where = str(path) if path is not None else "(command line)"
    return parse_train(data, method, where, set(overrides))


def redact(obj: Any) -> Any:
    """``obj`` with the values of secret-looking keys (token, password, ...) replaced."""
    if isinstance(obj, dict):
        return {k: "<redacted>" if SECRET_KEY.search(str(k)) else redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def config_as_run(run: TrainRun) -> str:
    """The YAML of every setting of the run, secrets redacted."""
    import yaml

    head = (
        f"{AS_RUN_HEAD.format(method=run.method)} ({run.source}, then flags); "
        "rerun with --config this file\n"
    )
    return head + yaml.safe_dump(redact(run.settings), sort_keys=False, allow_unicode=True)
