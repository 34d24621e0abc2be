"""Run, or dry-run, one training config: make what is missing, train, report.

:func:`execute` refuses an ``OUT`` folder of other files (:func:`check_train_out`), builds
the demo dataset and the tiny model first where the config asks for them
(``dataset_if_missing: demo``, ``model_if_missing: tiny``) and they are absent, marks
``OUT`` as a training output (:data:`TRAIN_MARKER`), writes ``OUT/config.yaml`` (every
setting, secrets redacted), then trains. A rerun writes into its own ``OUT`` again (and
resumes from its checkpoints).
:func:`dry_run` resolves the model, the dataset, the rewards and weights and the trainer
arguments and says what it found, loading no weights and downloading nothing: a Hub id
is looked up in the local cache only ("not checked offline" otherwise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from curation.errors import ConfigError
from curation.io import atomic_write_text
from scale_vqa.train_config import AS_RUN_HEAD, METHODS, TrainRun, config_as_run

TRAIN_MARKER = ".scale-vqa-train"
"""Marker file in every ``OUT`` folder ``scale-vqa train`` wrote (a rerun writes into it).

Not :data:`scale_vqa.outdir.MARKER`: that one lets ``build``/``demo`` replace a folder as a
whole, and a trained model must never be replaced that way."""
TRAIN_MARKER_TEXT = (
    "This folder was written by `scale-vqa train`; rerunning the same command writes into it "
    "again (resuming from OUT/trainer when it has checkpoints).\n"
)


def is_train_output(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder ``scale-vqa train`` wrote: it holds :data:`TRAIN_MARKER`,
    or (a run from before the marker) a ``config.yaml`` that :func:`config_as_run` wrote."""
    path = Path(path)
    if (path / TRAIN_MARKER).is_file():
        return True
    try:
        with (path / "config.yaml").open(encoding="utf-8", errors="replace") as fh:
            head = fh.readline(4096)
    except OSError:
        return False
    return any(head.startswith(AS_RUN_HEAD.format(method=m) + " (") for m in METHODS)


def check_train_out(out: str | os.PathLike[str]) -> None:
    """Refuse an ``OUT`` that training would write into unless it is new, empty, or a
    training output (:func:`is_train_output`): the user's own files are never replaced."""
    from scale_vqa.outdir import refuse_foreign

    refuse_foreign(
        out,
        is_train_output,
        f"output folder {out} holds files `scale-vqa train` did not write (no {TRAIN_MARKER} "
        "in it), which training would overwrite (config.json, model weights, config.yaml, "
        "...); choose a new or empty folder for --out",
    )


def mark_train_out(out: Path) -> None:
    """Create ``out`` (checked by :func:`check_train_out`) and mark it as a training output."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / TRAIN_MARKER).is_file():
        atomic_write_text(out / TRAIN_MARKER, TRAIN_MARKER_TEXT)


def make_missing(run: TrainRun, quiet: bool = False) -> list[str]:
    """Build the demo dataset / the tiny model where asked for and absent; say what was made."""
    made = []
    model = Path(run.model)
    data = Path(run.dataset)
    wanted = (run.model_if_missing and not model.exists()) or (
        run.dataset_if_missing and not data.exists()
    )
    if wanted and int(os.environ.get("RANK", "0")) != 0:
        raise ConfigError(
            "the config makes its model or dataset when missing; do that in one process "
            "first (run it once without accelerate launch), then launch"
        )
    if run.model_if_missing == "tiny" and not model.exists():
        from baselines.tiny_model import make_tiny_model

        make_tiny_model(model)
        made.append(f"made the tiny random model in {model}")
    if run.dataset_if_missing == "demo" and not data.exists():
        from scale_vqa.pipeline import demo_config, run_pipeline

        out = data.resolve()
        run_pipeline(demo_config(out, out.with_name(out.name + "-work")), quiet=quiet)
        made.append(f"built the demo dataset in {data}")
    return made


def execute(run: TrainRun, quiet: bool = False) -> dict[str, Any]:
    """Check ``OUT``, make what is missing, write ``OUT/config.yaml``, train; return the
    summary."""
    from baselines.evaluate import load_split
    from baselines.grpo import train_grpo
    from baselines.sft import train_sft

    check_train_out(run.out)
    for line in make_missing(run, quiet):
        print(line)
    split = load_split(run.dataset, run.split)
    validation = load_split(run.dataset, run.validation_split) if run.train.val_every else None
    check_train_out(run.out)  # it may have changed meanwhile
    mark_train_out(run.out)
    atomic_write_text(run.out / "config.yaml", config_as_run(run))
    run.train.progress = not quiet
    train = train_grpo if run.method == "grpo" else train_sft
    return train(run.model, split, run.out, run.train, validation=validation)


def _hub_cached(repo_id: str, filename: str, repo_type: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
    except Exception:  # an id the cache cannot even parse
        return None
    return found if isinstance(found, str) else None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _not_checked() -> str:
    why = "offline (HF_HUB_OFFLINE=1)" if _offline() else "(a dry run downloads nothing)"
    return f"not checked {why}; training downloads it"


def describe_model(model: str, if_missing: str | None) -> str:
    """Where the model comes from and what it is (its config.json only, no weights)."""
    path = Path(model)
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.is_file():
            return f"local folder {path}, but it has no config.json: not a checkpoint (fix this)"
        kind = json.loads(cfg.read_text()).get("model_type", "?")
        return f"local checkpoint {path} (model_type {kind})"
    if if_missing == "tiny":
        return f"{path}: missing; the tiny random Qwen2.5-VL will be written there first"
    cached = _hub_cached(model, "config.json", "model")
    if cached:
        kind = json.loads(Path(cached).read_text()).get("model_type", "?")
        return f"Hub id {model}, in the local Hugging Face cache (model_type {kind})"
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return f"Hub id {model}: {_not_checked()}"
    return f"{model}: no such folder and not a Hub id owner/name (fix this)"


def describe_dataset(run: TrainRun) -> list[str]:
    """Where the dataset comes from and, for a local folder, the rows of the splits used."""
    from baselines.evaluate import is_dataset_folder, is_hub_dataset_id, load_split

    path = Path(run.dataset)
    splits = [run.split] + ([run.validation_split] if run.train.val_every else [])
    if path.is_dir() and is_dataset_folder(path):
        lines = [f"local dataset {path}"]
        for name in splits:
            try:
                lines.append(f"  {name}: {len(load_split(path, name))} rows")
            except Exception as exc:  # reported, not raised: a dry run lists every problem
                lines.append(f"  {name}: {exc} (fix this)")
        return lines
    if not path.exists() and run.dataset_if_missing == "demo":
        return [f"{path}: missing; the demo build will be written there first"]
    if path.exists():
        return [f"{path}: not a dataset folder (fix this)"]
    if is_hub_dataset_id(run.dataset):
        return [f"Hub dataset {run.dataset}: {_not_checked()}"]
    return [f"{path}: no such dataset folder and not a Hub id owner/name (fix this)"]


def trainer_fields(run: TrainRun) -> tuple[str, dict[str, Any]]:
    """The trl config class name and its keyword arguments, checked by building it."""
    if run.method == "grpo":
        from trl import GRPOConfig as cls

        from baselines.grpo import grpo_config_fields

        fields = grpo_config_fields(run.train, run.out)
    else:
        from trl import SFTConfig as cls

        from baselines.sft import sft_config_fields

        fields = sft_config_fields(run.train, run.out)
    try:
        cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{run.source}: trl rejects the trainer arguments: {exc}") from None
    return cls.__name__, fields


def dry_run(run: TrainRun) -> str:
    """The report of a dry run (no weights loaded, nothing downloaded)."""
    from baselines.grpo import reward_setup
    from baselines.train_common import has_gpu

    c = run.train
    lines = [f"dry run: scale-vqa train {run.method} ({run.source}); no weights loaded", ""]
    lines.append(f"model:    {describe_model(run.model, run.model_if_missing)}")
    data = describe_dataset(run)
    lines.append(f"dataset:  {data[0]}")
    lines += [f"          {x.strip()}" for x in data[1:]]
    lines.append(f"output:   {run.out} (model, processor, metrics.jsonl, curves.png, config.yaml)")
    try:
        check_train_out(run.out)
    except ConfigError as exc:  # reported, not raised: a dry run lists every problem
        lines.append(f"          {exc} (fix this)")
    if run.method == "grpo":
        funcs, weights = reward_setup(c)
        terms = " + ".join(f"{w:g} x {f.__name__}" for f, w in zip(funcs, weights, strict=True))
        lines.append(f"rewards:  reward = {terms}")
        shuffle = "on" if c.shuffle_options else "off"
        lines.append(f"rollouts: {c.num_generations} per question; KL beta {c.beta:g}; "
                     f"option order shuffled per rollout: {shuffle}")  # fmt: skip
        lines.append(
            f"generation: {'vLLM (' + c.vllm_mode + ')' if c.use_vllm else 'transformers'}"
        )
    if c.max_pixels:
        lines.append(
            f"images:   at most {c.max_pixels} pixels each (~{c.max_pixels // 784} tokens)"
        )
    length = f"{c.max_steps} steps" if c.max_steps else f"{c.epochs:g} epochs"
    lines.append(
        f"length:   {length}; {'LoRA r=' + str(c.lora_r) if c.lora else 'full fine-tuning'}"
    )
    if c.val_every:
        lines.append(f"validation: every {c.val_every} steps on up to {c.val_limit} rows of "
                     f"'{run.validation_split}'")  # fmt: skip
    else:
        lines.append("validation: off")
    name, fields = trainer_fields(run)
    device = "a GPU: bf16" if has_gpu() else "no GPU: CPU, float32 (a GPU gets bf16)"
    lines += ["", f"trainer arguments (trl.{name}; this machine has {device}):"]
    lines += [f"  {k}: {fields[k]!r}" for k in sorted(fields)]
    problems = [x for x in lines if x.endswith("(fix this)")]
    lines.append("")
    lines.append(f"{len(problems)} problem(s) to fix before training" if problems else "ok")
    return "\n".join(lines)
