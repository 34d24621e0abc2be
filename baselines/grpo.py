"""GRPO training of a multi-image reasoner (ScaleReasoner-R1 style) with trl.

:func:`train_grpo` loads a Qwen2.5-VL-style checkpoint (``AutoModelForImageTextToText`` and
its processor), turns one split of any multi-image MCQ dataset into trl's conversational
form (:func:`grpo_dataset`: ``prompt`` from :func:`baselines.prompts.conversation`,
``images`` as PIL lists low -> high magnification, ``answer`` and ``options`` for the
rewards; with ``shuffle_options`` a fresh option order per rollout), runs
``trl.GRPOTrainer`` with the rewards of :mod:`baselines.rewards` and their weights, and
saves the model (LoRA merged) and processor in ``out_dir``, loadable by
``scale-vqa evaluate --model``, with ``metrics.jsonl`` and ``curves.png``
(:func:`baselines.train_common.fit_and_save`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from baselines.prompts import conversation, to_pil
from baselines.rewards import REWARDS
from baselines.shuffle import RolloutShuffle
from baselines.train_common import (
    TrainConfig,
    fit_and_save,
    load_model_and_processor,
    lora_config,
    trainer_args,
)
from curation.errors import InputError

__all__ = ["TrainConfig", "grpo_config_fields", "grpo_dataset", "reward_setup", "train_grpo"]


def example_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """The trl columns of one dataset row: ``prompt``, ``images`` (RGB PIL), ``answer``,
    ``options``, plus ``question`` and ``magnifications`` (to rebuild a shuffled prompt)."""
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
        "question": row["question"],
        "magnifications": example["magnifications"],
    }


def grpo_dataset(split: Any, limit: int | None = None, shuffle_seed: int | None = None) -> Any:
    """A ``datasets.Dataset`` in trl's conversational multi-image form from one split;
    with ``shuffle_seed``, every access draws a new option order (:class:`RolloutShuffle`)."""
    import datasets

    n = len(split) if limit is None else min(limit, len(split))
    if n == 0:
        raise InputError("the split has no rows to train on")
    dataset = datasets.Dataset.from_list([example_columns(split[i]) for i in range(n)])
    if shuffle_seed is not None:
        dataset = dataset.with_transform(RolloutShuffle(shuffle_seed))
    return dataset


def reward_setup(config: TrainConfig) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """The reward functions and their weights (1.0 each unless given); ``format`` is always
    scored, at weight 0 when not asked for, so that every run logs its format rate."""
    names = list(config.rewards)
    given = config.reward_weights
    weights = [float(w) for w in given] if given else [1.0] * len(names)
    if "format" not in names:
        names.append("format")
        weights.append(0.0)
    return [REWARDS[n] for n in names], weights


def grpo_config_fields(config: TrainConfig, out: Path) -> dict[str, Any]:
    """Every keyword argument of ``trl.GRPOConfig`` for ``config`` (also shown by a dry run)."""
    _, weights = reward_setup(config)
    return trainer_args(
        config,
        out,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        beta=config.beta,
        temperature=config.temperature,
        reward_weights=weights,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
    )


def train_grpo(
    model_path: str | os.PathLike[str],
    split: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    reward_funcs: Sequence[Callable[..., list[float]]] | None = None,
    validation: Any = None,
) -> dict[str, Any]:
    """Run GRPO on ``split``; save to ``out_dir``; return a summary (steps, log history).

    ``reward_funcs`` overrides ``config.rewards`` (functions in trl's signature; weights
    then 1.0 each unless ``config.reward_weights`` matches them). ``validation``: a split
    scored every ``config.val_every`` steps.
    """
    from trl import GRPOConfig, GRPOTrainer

    config = config or TrainConfig()
    config.check(grpo=True)
    out = Path(out_dir)
    dataset = grpo_dataset(split, config.limit, config.seed if config.shuffle_options else None)
    model, processor = load_model_and_processor(model_path, config.max_pixels)
    fields = grpo_config_fields(config, out)
    funcs, _ = reward_setup(config)
    if reward_funcs:
        funcs = list(reward_funcs)
        fields["reward_weights"] = list(config.reward_weights) if config.reward_weights else None
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=GRPOConfig(**fields),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    return fit_and_save(trainer, processor, out, config, len(dataset), validation)
