"""``scale-vqa train grpo|sft``: the reasoner baselines (GRPO with trl, and SFT).

Every setting can come from one YAML file (``--config FILE`` or a shipped name such as
``grpo_tiny_cpu``); flags and ``--set KEY=VALUE`` override it (see
:mod:`scale_vqa.train_config`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag destination -> config key (flags left unset do not override the file)
FLAG_KEYS = {
    "dataset": "dataset", "model": "model", "out": "out", "split": "split",
    "max_steps": "max_steps", "epochs": "epochs", "batch_size": "batch_size",
    "num_generations": "num_generations", "max_completion_length": "max_completion_length",
    "learning_rate": "learning_rate", "beta": "beta", "rewards": "rewards",
    "max_pixels": "max_pixels", "lora": "lora.enabled", "limit": "limit", "seed": "seed",
    "shuffle_options": "shuffle_options", "use_vllm": "use_vllm",
    "val_every": "validation.every",
}  # fmt: skip


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a reasoner baseline (GRPO or SFT) from a config file and/or flags",
        description=(
            "Fine-tune a Qwen2.5-VL-style checkpoint on one split of a multi-image MCQ "
            "dataset with the evaluation prompt (all images, low -> high magnification). "
            "grpo: trl GRPOTrainer with weighted rewards accuracy (the <answer>X</answer> "
            "letter is the key), format (<think>...</think><answer>X</answer>) and shaped "
            "(dense, for smoke tests). sft: trl SFTTrainer with the target "
            "<think>rationale</think><answer>X</answer>. Settings: --config FILE (or a "
            "shipped name: grpo_scalereasoner_r1, sft_rationales, grpo_tiny_cpu, "
            "sft_tiny_cpu), then flags. Saves the model (LoRA merged), processor, "
            "metrics.jsonl, curves.png and config.yaml to OUT, ready for `scale-vqa "
            "evaluate DATASET --model OUT`. Without a GPU it runs on CPU in float32."
        ),
    )
    p.add_argument("method", choices=("grpo", "sft"), help="training method")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="dataset folder or Hub id")
    p.add_argument("--config", metavar="FILE", help="YAML config file or shipped config name")
    p.add_argument("--dry-run", action="store_true", help="resolve and print; load no weights")
    p.add_argument("--model", metavar="PATH", help="checkpoint folder or Hub id")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder: new, empty or an earlier run's"
    )
    p.add_argument("--split", help="split to train on (default: train)")
    p.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (default 100)")
    p.add_argument("--epochs", type=float, metavar="E", help="epochs when max_steps is null")
    p.add_argument("--batch-size", type=int, metavar="N", help="per-device batch (default: G)")
    p.add_argument("--num-generations", type=int, metavar="G", help="GRPO rollouts (default 4)")
    p.add_argument("--max-completion-length", type=int, metavar="N", help="reply tokens")
    p.add_argument("--learning-rate", type=float, metavar="LR", help="default 1e-5 (sft 2e-5)")
    p.add_argument("--beta", type=float, help="GRPO KL weight (default 0)")
    p.add_argument(
        "--rewards",
        metavar="LIST",
        help="GRPO rewards: NAME[:WEIGHT],... from accuracy,format,shaped (default "
        "accuracy,format; the paper: accuracy:0.8,format:0.2)",
    )
    p.add_argument("--max-pixels", type=int, metavar="N", help="cap each image at N pixels")
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, help="LoRA adapters")
    p.add_argument(
        "--shuffle-options",
        action=argparse.BooleanOptionalAction,
        help="GRPO: a fresh option order per rollout",
    )
    p.add_argument("--use-vllm", action=argparse.BooleanOptionalAction, help="vLLM generation")
    p.add_argument("--val-every", type=int, metavar="N", help="validation accuracy every N steps")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N rows of the split")
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, dotted for nested ones (--set validation.limit=32); repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _rewards_flag(text: str) -> dict[str, float] | list[str]:
    """``accuracy:0.8,format:0.2`` -> weights; ``accuracy,format`` -> names."""
    from curation.errors import ConfigError

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not any(":" in t for t in items):
        return items
    out = {}
    for t in items:
        name, _, weight = t.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--rewards {text!r}: {weight!r} is not a number") from None
    return out


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys the command line sets (unset flags excluded), then ``--set``."""
    from scale_vqa.train_config import parse_set

    out: dict[str, Any] = {}
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if dest == "rewards":
            value = _rewards_flag(value)
        out[key] = str(value) if isinstance(value, Path) else value
    out.update(parse_set(args.set))
    return out


def run(args: argparse.Namespace) -> int:
    """Resolve the settings; dry-run, or train and print a one-line summary."""
    from scale_vqa.train_config import load_train_run
    from scale_vqa.train_run import dry_run, execute

    train_run = load_train_run(args.config, args.method, overrides(args))
    if args.dry_run:
        print(dry_run(train_run))
        return 0
    summary = execute(train_run, quiet=args.quiet)
    steps = summary["steps"]
    print(
        f"{args.method}: trained {steps} step{'s' if steps != 1 else ''} on {summary['rows']} "
        f"rows; saved to {summary['out']} (metrics.jsonl, curves.png, config.yaml)"
    )
    return 0
