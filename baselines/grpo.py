"""GRPO training of a multi-image reasoner (ScaleReasoner-R1 style) with trl.

:func:`train_grpo` loads a Qwen2.5-VL-style checkpoint (``AutoModelForImageTextToText`` and
its processor), turns one split of any multi-image MCQ dataset into trl's conversational
form (:func:`grpo_dataset`: ``prompt`` from :func:`baselines.prompts.conversation`,
``images`` as PIL lists low -> high magnification, ``answer`` and ``options`` for the
rewards), runs ``trl.GRPOTrainer`` with the rewards of :mod:`baselines.rewards` and saves the
model (LoRA merged) and processor in ``out_dir``, loadable by ``scale-vqa evaluate --model``.

On a machine without a GPU the trainer runs on CPU in float32 without activation
checkpointing (trl's defaults, bf16 and checkpointing on, are for GPUs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines.infer import load_image_text_model, load_qwen_processor
from baselines.prompts import conversation, to_pil
from baselines.rewards import REWARDS
from curation.errors import ConfigError, InputError


@dataclass
class TrainConfig:
    """Settings shared by GRPO and SFT (defaults: a short real run on one GPU)."""

    max_steps: int = 100
    batch_size: int = 4  # per device; for GRPO a multiple of num_generations
    num_generations: int = 4  # GRPO group size
    max_completion_length: int = 256
    learning_rate: float = 1e-5
    beta: float = 0.0  # GRPO KL weight (0: no reference model)
    temperature: float = 1.0
    rewards: tuple[str, ...] = ("accuracy", "format")
    reward_weights: tuple[float, ...] | None = None
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    limit: int | None = None  # first N rows of the split
    max_pixels: int | None = None  # per image; caps image tokens (saved with the processor)
    gradient_accumulation_steps: int = 1
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # more trl config fields

    def check(self, grpo: bool = True) -> None:
        """Raise :class:`ConfigError` for settings trl would reject later, less clearly."""
        for name in ("max_steps", "batch_size", "max_completion_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.max_pixels is not None and self.max_pixels < 28 * 28:
            raise ConfigError(f"max_pixels must be at least 784 (28 x 28), got {self.max_pixels}")
        if not grpo:
            return
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


def example_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """The trl columns of one dataset row: ``prompt``, ``images`` (RGB PIL), ``answer``,
    ``options``."""
    images = [to_pil(im).convert("RGB") for im in row.get("images") or []]
    example = {
        "question": row["question"],
        "options": list(row["options"]),
        "images": images,
        "magnifications": list(row.get("magnifications") or []),
    }
    return {
        "prompt": conversation(example),
        "images": images,
        "answer": str(row["answer"]).strip().upper(),
        "options": list(row["options"]),
    }


def grpo_dataset(split: Any, limit: int | None = None) -> Any:
    """A ``datasets.Dataset`` in trl's conversational multi-image form from one split."""
    import datasets

    n = len(split) if limit is None else min(limit, len(split))
    if n == 0:
        raise InputError("the split has no rows to train on")
    return datasets.Dataset.from_list([example_columns(split[i]) for i in range(n)])


def trainer_args(config: TrainConfig, out_dir: Path, **fields: Any) -> dict[str, Any]:
    """Keyword arguments common to ``GRPOConfig`` and ``SFTConfig``; CPU-safe without a GPU."""
    gpu = has_gpu()
    args = dict(
        output_dir=str(out_dir / "trainer"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        save_strategy="no",
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


def run_trainer(trainer: Any, config: TrainConfig) -> None:
    """``trainer.train()``; without progress, also without the per-step log lines on stdout."""
    if not config.progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    trainer.train()


def fit_and_save(
    trainer: Any, processor: Any, out: Path, config: TrainConfig, rows: int
) -> dict[str, Any]:
    """Train, save the result into ``out`` and return the run's summary."""
    run_trainer(trainer, config)
    log = list(trainer.state.log_history)
    save_trained(trainer.model, processor, out, log)
    return {"steps": trainer.state.global_step, "rows": rows, "log": log, "out": str(out)}


def save_trained(model: Any, processor: Any, out_dir: Path, log: list[dict[str, Any]]) -> Path:
    """Save the model (LoRA merged in), the processor and ``train_log.json``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _public_processor_class(out_dir)
    (out_dir / "train_log.json").write_text(json.dumps(log, indent=1, sort_keys=True) + "\n")
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


def train_grpo(
    model_path: str | os.PathLike[str],
    split: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    reward_funcs: Sequence[Callable[..., list[float]]] | None = None,
) -> dict[str, Any]:
    """Run GRPO on ``split``; save to ``out_dir``; return a summary (steps, log history).

    ``reward_funcs`` overrides ``config.rewards`` (functions in trl's signature).
    """
    from trl import GRPOConfig, GRPOTrainer

    config = config or TrainConfig()
    config.check(grpo=True)
    out = Path(out_dir)
    dataset = grpo_dataset(split, config.limit)
    model, processor = load_model_and_processor(model_path, config.max_pixels)
    funcs = list(reward_funcs) if reward_funcs else [REWARDS[r] for r in config.rewards]
    args = GRPOConfig(
        **trainer_args(
            config,
            out,
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            beta=config.beta,
            temperature=config.temperature,
            reward_weights=list(config.reward_weights) if config.reward_weights else None,
        )
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    return fit_and_save(trainer, processor, out, config, rows=len(dataset))
