"""What GRPO and SFT share: settings, model loading, trainer arguments, fit and save.

:func:`fit_and_save` runs the trainer with the validation and metrics callbacks of
:mod:`baselines.train_callbacks`, resumes from the newest checkpoint in ``OUT/trainer``
when there is one (``save_steps`` set), and leaves in ``OUT`` the model (LoRA merged), the
processor, ``train_log.json``, ``metrics.jsonl`` and ``curves.png``.

On a machine without a GPU the trainers run on CPU in float32 without activation
checkpointing (trl's defaults, bf16 and checkpointing on, are for GPUs).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines.infer import load_image_text_model, load_qwen_processor
from baselines.rewards import REWARDS
from curation.errors import ConfigError
from curation.io import atomic_write_text

VLLM_MODES = ("colocate", "server")


@dataclass
class TrainConfig:
    """Settings shared by GRPO and SFT (defaults: a short real run on one GPU)."""

    max_steps: int | None = 100  # None: run `epochs` epochs
    epochs: float = 1.0
    batch_size: int = 4  # per device; for GRPO a multiple of num_generations
    num_generations: int = 4  # GRPO group size (rollouts per question)
    max_completion_length: int = 256
    learning_rate: float = 1e-5
    beta: float = 0.0  # GRPO KL weight (0: no reference model)
    temperature: float = 1.0
    rewards: tuple[str, ...] = ("accuracy", "format")
    reward_weights: tuple[float, ...] | None = None
    shuffle_options: bool = False  # GRPO: a fresh option order per rollout
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    limit: int | None = None  # first N rows of the split
    max_pixels: int | None = None  # per image; caps image tokens (saved with the processor)
    gradient_accumulation_steps: int = 1
    use_vllm: bool = False  # GRPO generation with vLLM (trl's vllm_mode)
    vllm_mode: str = "colocate"
    val_every: int = 0  # validation accuracy every N steps (0: off)
    val_limit: int | None = 64  # validation rows scored each time
    val_max_new_tokens: int | None = None  # default: max_completion_length
    save_steps: int | None = None  # checkpoints in OUT/trainer; a rerun resumes
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # more trl config fields

    def check(self, grpo: bool = True) -> None:
        """Raise :class:`ConfigError` for settings trl would reject later, less clearly."""
        for name in ("batch_size", "max_completion_length", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(
                f"max_steps must be at least 1 (or null for epochs), got {self.max_steps}"
            )
        if self.max_steps is None and not self.epochs > 0:
            raise ConfigError(f"epochs must be positive when max_steps is null, got {self.epochs}")
        for name in ("limit", "val_limit", "save_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 (or null), got {value}")
        if self.val_every < 0:
            raise ConfigError(f"validation every must be >= 0 (0: off), got {self.val_every}")
        if self.max_pixels is not None and self.max_pixels < 28 * 28:
            raise ConfigError(f"max_pixels must be at least 784 (28 x 28), got {self.max_pixels}")
        if not grpo:
            if self.shuffle_options or self.use_vllm:
                raise ConfigError(
                    "shuffle_options and use_vllm apply to GRPO only (SFT targets name the "
                    "key letter of the stored order); set them to false for sft"
                )
            return
        self._check_grpo()

    def _check_grpo(self) -> None:
        if self.num_generations < 2:
            raise ConfigError(
                f"num_generations must be at least 2 (GRPO compares completions within a "
                f"group), got {self.num_generations}"
            )
        if self.batch_size % self.num_generations:
            raise ConfigError(
                f"batch size {self.batch_size} is not a multiple of num_generations "
                f"{self.num_generations}; choose a batch size divisible by it"
            )
        unknown = [r for r in self.rewards if r not in REWARDS]
        if unknown or not self.rewards:
            raise ConfigError(
                f"unknown reward(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(REWARDS)}"
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ConfigError(
                f"{len(self.reward_weights)} reward weight(s) for {len(self.rewards)} reward(s)"
            )
        if self.vllm_mode not in VLLM_MODES:
            raise ConfigError(f"vllm_mode {self.vllm_mode!r}: choose {' or '.join(VLLM_MODES)}")
        if self.use_vllm:
            require_vllm()


def require_vllm() -> None:
    """Raise :class:`ConfigError` unless vLLM is importable (trl's ``use_vllm``)."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "use_vllm is on but vLLM is not installed; on a CUDA machine `pip install vllm` "
            "(a version trl supports, see docs/train.md), or set use_vllm: false to generate "
            "with transformers"
        )


def has_gpu() -> bool:
    """Whether CUDA is usable."""
    import torch

    return torch.cuda.is_available()


def limit_image_pixels(processor: Any, max_pixels: int) -> None:
    """Cap the pixels (hence tokens) of each image: the image processor's ``longest_edge``
    (Qwen2-VL's ``max_pixels``); ``shortest_edge`` lowered to match when above it."""
    ip = processor.image_processor
    size = dict(ip.size)
    size["longest_edge"] = max_pixels
    size["shortest_edge"] = min(size.get("shortest_edge") or max_pixels, max_pixels)
    ip.size = size


def load_model_and_processor(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> tuple[Any, Any]:
    """The model (``AutoModelForImageTextToText``; bf16 on GPU) and its processor."""
    import torch

    dtype = torch.bfloat16 if has_gpu() else torch.float32
    model = load_image_text_model(path, dtype)
    processor = load_qwen_processor(path)
    if max_pixels is not None:
        limit_image_pixels(processor, max_pixels)
    return model, processor


def trainer_args(config: TrainConfig, out_dir: Path, **fields: Any) -> dict[str, Any]:
    """Keyword arguments common to ``GRPOConfig`` and ``SFTConfig``; CPU-safe without a GPU."""
    gpu = has_gpu()
    save = {"save_strategy": "no"}
    if config.save_steps:
        save = {"save_strategy": "steps", "save_steps": config.save_steps, "save_total_limit": 2}
    args = dict(
        output_dir=str(out_dir / "trainer"),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        **save,
        report_to="none",
        disable_tqdm=not config.progress,
        use_cpu=not gpu,
        bf16=gpu,
        activation_checkpointing=gpu,
        dataloader_num_workers=0,
    )
    args.update(fields)
    args.update(config.extra)
    return args


def lora_config(config: TrainConfig) -> Any:
    """``None`` without ``config.lora``; else a ``peft.LoraConfig`` on every linear layer
    (vision tower and language model), for the trainers' ``peft_config=``."""
    if not config.lora:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError(
            "LoRA needs the peft package, which is not installed; `pip install peft` or "
            "train without --lora"
        ) from None
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def add_callbacks(
    trainer: Any, processor: Any, out: Path, config: TrainConfig, validation: Any = None
) -> None:
    """Validation accuracy every ``config.val_every`` steps and ``metrics.jsonl`` as it goes."""
    from baselines.train_callbacks import MetricsCallback, ValidationCallback

    if config.val_every and validation is not None:
        trainer.add_callback(
            ValidationCallback(
                validation, processor, config.val_every, config.val_limit,
                max_new_tokens=config.val_max_new_tokens or config.max_completion_length,
                seed=config.seed,
            )
        )  # fmt: skip
    trainer.add_callback(MetricsCallback(out / "metrics.jsonl"))


def last_checkpoint(out: Path) -> Path | None:
    """The newest ``OUT/trainer/checkpoint-N`` folder, if any."""
    found = [p for p in (out / "trainer").glob("checkpoint-*") if p.name[11:].isdigit()]
    return max(found, key=lambda p: int(p.name[11:])) if found else None


def run_trainer(trainer: Any, config: TrainConfig, out: Path) -> None:
    """``trainer.train()``, resumed from the newest checkpoint when there is one; without
    progress, also without the per-step log lines on stdout."""
    if not config.progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resume = last_checkpoint(out) if config.save_steps else None
    if resume is not None:
        print(f"resuming from {resume}")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def fit_and_save(
    trainer: Any, processor: Any, out: Path, config: TrainConfig, rows: int,
    validation: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train, save the result into ``out`` and return the run's summary."""
    from baselines.train_log import metrics_rows, plot_curves, write_metrics

    add_callbacks(trainer, processor, out, config, validation)
    run_trainer(trainer, config, out)
    log = list(trainer.state.log_history)
    metrics = metrics_rows(log)
    if save_model(trainer, out):  # the main process writes the rest
        save_trained(None, processor, out, log)
        write_metrics(out / "metrics.jsonl", metrics)
        plot_curves(metrics, out / "curves.png", title=out.name)
    return {"steps": trainer.state.global_step, "rows": rows, "log": log, "out": str(out),
            "metrics": metrics}  # fmt: skip


def save_model(trainer: Any, out: Path) -> bool:
    """Save the trained weights into ``out``; return whether this is the main process.

    Under DeepSpeed ZeRO-3 the trainer gathers the sharded weights (``save_model``; with
    LoRA that saves the adapters); otherwise the main process saves the unwrapped model
    with any LoRA adapters merged in.
    """
    acc = trainer.accelerator
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is not None and getattr(plugin, "zero_stage", 0) == 3:
        trainer.save_model(str(out))
    elif acc.is_main_process:
        save_trained(acc.unwrap_model(trainer.model), None, out, None)
    acc.wait_for_everyone()
    return bool(acc.is_main_process)


def save_trained(
    model: Any, processor: Any, out_dir: Path, log: list[dict[str, Any]] | None
) -> Path:
    """Save what is given of the model (LoRA merged in), the processor and
    ``train_log.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(out_dir)
    if processor is None or log is None:
        return out_dir
    processor.save_pretrained(out_dir)
    _public_processor_class(out_dir)
    text = json.dumps(log, indent=1, sort_keys=True) + "\n"
    atomic_write_text(out_dir / "train_log.json", text)
    scratch = out_dir / "trainer"
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
    return out_dir


def _public_processor_class(out_dir: Path) -> None:
    """Name the stock ``Qwen2_5_VLProcessor`` in saved configs where the torchvision-free
    stand-in of :func:`baselines.infer.load_qwen_processor` wrote its private class name, so
    that ``AutoProcessor`` loads the checkpoint on a machine with torchvision."""
    for name in ("processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = out_dir / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        if str(data.get("processor_class", "")).startswith("_"):
            data["processor_class"] = "Qwen2_5_VLProcessor"
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
