"""``scale-vqa train grpo|sft``: the reasoner baselines (GRPO with trl, and SFT)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

REWARD_NAMES = "accuracy,format"


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a reasoner baseline (GRPO or SFT) on a split",
        description=(
            "Fine-tune a Qwen2.5-VL-style checkpoint on one split of a multi-image MCQ "
            "dataset with the evaluation prompt (all images, low -> high magnification). "
            "grpo: trl GRPOTrainer with rewards accuracy (the <answer>X</answer> letter is "
            "the key), format (<think>...</think><answer>X</answer>) and shaped (dense, for "
            "smoke tests). sft: trl SFTTrainer with the target "
            "<think>rationale</think><answer>X</answer>. Saves the model (LoRA merged) and "
            "processor to OUT, ready for `scale-vqa evaluate DATASET --model OUT`. Without a "
            "GPU it runs on CPU in float32."
        ),
    )
    p.add_argument("method", choices=("grpo", "sft"), help="training method")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder or Hub id (owner/name)")
    p.add_argument("--model", required=True, metavar="PATH", help="checkpoint folder or Hub id")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--split", default="train", help="split to train on (default: train)")
    p.add_argument("--max-steps", type=int, default=100, metavar="N", help="optimizer steps")
    p.add_argument("--batch-size", type=int, metavar="N", help="per-device batch (default: G)")
    p.add_argument(
        "--num-generations", type=int, default=4, metavar="G", help="GRPO group size (default 4)"
    )
    p.add_argument(
        "--max-completion-length", type=int, default=256, metavar="N", help="GRPO reply tokens"
    )
    p.add_argument("--learning-rate", type=float, metavar="LR", help="default 1e-5 (sft 2e-5)")
    p.add_argument("--beta", type=float, default=0.0, help="GRPO KL weight (default 0)")
    p.add_argument(
        "--rewards",
        default=REWARD_NAMES,
        metavar="LIST",
        help=f"GRPO rewards, comma-separated from accuracy,format,shaped (default {REWARD_NAMES})",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="cap each image at N pixels (image tokens ~ N/784); saved with the processor",
    )
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged on save)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N rows of the split")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the split, train, save, print a one-line summary."""
    from baselines.evaluate import load_split
    from baselines.grpo import TrainConfig, train_grpo
    from baselines.sft import train_sft

    grpo = args.method == "grpo"
    config = TrainConfig(
        max_steps=args.max_steps,
        batch_size=args.batch_size or (args.num_generations if grpo else 4),
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate or (1e-5 if grpo else 2e-5),
        beta=args.beta,
        rewards=tuple(r.strip() for r in args.rewards.split(",") if r.strip()),
        lora=args.lora,
        seed=args.seed,
        limit=args.limit,
        max_pixels=args.max_pixels,
        progress=not args.quiet,
    )
    config.check(grpo=grpo)  # before the (slow) dataset and model loads
    split = load_split(args.dataset, args.split)
    train = train_grpo if grpo else train_sft
    summary = train(args.model, split, args.out, config)
    steps = summary["steps"]
    print(
        f"{args.method}: trained {steps} step{'s' if steps != 1 else ''} on {summary['rows']} "
        f"rows; saved to {summary['out']}"
    )
    return 0
