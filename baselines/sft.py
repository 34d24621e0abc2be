"""Supervised fine-tuning baseline with trl's ``SFTTrainer``, on the same prompts as GRPO.

Each row becomes a prompt-completion pair: the prompt of
:func:`baselines.prompts.conversation` with the row's images, and the target
``<think>RATIONALE</think><answer>X</answer>`` (``<answer>X</answer>`` alone when the row has
no rationale). The loss covers only the completion. The model (LoRA merged) and processor
are saved in ``out_dir``, loadable by ``scale-vqa evaluate --model``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baselines.grpo import example_columns
from baselines.train_common import (
    TrainConfig,
    fit_and_save,
    load_model_and_processor,
    lora_config,
    trainer_args,
)
from curation.errors import InputError


def target_text(row: Mapping[str, Any]) -> str:
    """The SFT target: ``<think>rationale</think><answer>X</answer>`` or ``<answer>X</answer>``."""
    letter = str(row["answer"]).strip().upper()
    rationale = str(row.get("rationale") or "").strip()
    answer = f"<answer>{letter}</answer>"
    return f"<think>{rationale}</think>{answer}" if rationale else answer


def sft_dataset(split: Any, limit: int | None = None) -> Any:
    """A ``datasets.Dataset`` of ``prompt``, ``completion`` (conversational) and ``images``."""
    import datasets

    n = len(split) if limit is None else min(limit, len(split))
    if n == 0:
        raise InputError("the split has no rows to train on")
    rows = []
    for i in range(n):
        row = split[i]
        cols = example_columns(row)
        rows.append(
            {
                "prompt": cols["prompt"],
                "completion": [{"role": "assistant", "content": target_text(row)}],
                "images": cols["images"],
            }
        )
    return datasets.Dataset.from_list(rows)


def sft_config_fields(config: TrainConfig, out: Path) -> dict[str, Any]:
    """Every keyword argument of ``trl.SFTConfig`` for ``config`` (also shown by a dry run)."""
    return trainer_args(config, out, max_length=None)


def train_sft(
    model_path: str | os.PathLike[str],
    split: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    validation: Any = None,
) -> dict[str, Any]:
    """Run SFT on ``split``; save to ``out_dir``; return a summary (steps, log history).

    ``validation``: a split scored every ``config.val_every`` steps."""
    from trl import SFTConfig, SFTTrainer

    config = config or TrainConfig(learning_rate=2e-5)
    config.check(grpo=False)
    out = Path(out_dir)
    dataset = sft_dataset(split, config.limit)
    model, processor = load_model_and_processor(model_path, config.max_pixels)
    args = SFTConfig(**sft_config_fields(config, out))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    return fit_and_save(trainer, processor, out, config, len(dataset), validation)
