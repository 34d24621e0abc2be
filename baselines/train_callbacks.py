"""Trainer callbacks: validation accuracy every N steps, and metrics written as they come.

:class:`ValidationCallback` scores the model being trained on a validation split with
:func:`baselines.evaluate.evaluate` (the ``full`` condition, greedy decoding, the same
prompt and answer extraction as ``scale-vqa evaluate``) before the first step, every
``every`` steps and after the last, and appends ``{"step", "val/accuracy", "val/n",
"val/unparseable", "val/format_rate"}`` (the share of greedy replies that are exactly
``<think>...</think><answer>X</answer>``) to the trainer's log history (so it is kept
in checkpoints).
:class:`MetricsCallback` appends each logged step to ``metrics.jsonl`` as training goes,
so a long run can be watched; the finished run rewrites the file whole
(:func:`baselines.train_log.write_metrics`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from curation.errors import ConfigError


class ValidationCallback(TrainerCallback):
    """Validation accuracy through :func:`baselines.evaluate.evaluate` every ``every`` steps."""

    def __init__(
        self, split: Any, processor: Any, every: int, limit: int | None = None,
        max_new_tokens: int = 256, batch_size: int = 4, seed: int = 0,
    ) -> None:  # fmt: skip
        if every < 1:
            raise ConfigError(f"validation every={every} must be at least 1 (0 turns it off)")
        n = len(split) if limit is None else min(limit, len(split))
        if n == 0:
            raise ConfigError("the validation split has no rows; turn validation off")
        self.rows = split.select(range(n)) if hasattr(split, "select") else split[:n]
        self.processor = processor
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.seed = seed
        self.done: set[int] = set()
        self.skipped_reason: str | None = None

    def score(self, model: Any) -> dict[str, Any]:
        """Accuracy of ``model`` (put back into training mode afterwards)."""
        from baselines.evaluate import evaluate
        from baselines.infer import TransformersPredictor
        from baselines.rewards import format_reward

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        side = getattr(tokenizer, "padding_side", None)
        was_training = model.training
        model.eval()
        try:
            predictor = _Recording(TransformersPredictor(
                model, self.processor, name="validation",
                max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
            ))  # fmt: skip
            report = evaluate(self.rows, predictor, "full", seed=self.seed, progress=False)
        finally:
            if was_training:
                model.train()
            if side is not None:
                tokenizer.padding_side = side
        full = report["conditions"]["full"]
        formatted = format_reward(predictor.replies)
        return {"val/accuracy": full["accuracy"], "val/n": full["n"],
                "val/unparseable": full["unparseable"],
                "val/format_rate": sum(formatted) / max(1, len(formatted))}  # fmt: skip

    def _run(self, state: Any, model: Any) -> None:
        step = int(state.global_step)
        if step in self.done or model is None or not state.is_world_process_zero:
            return
        if _zero3(model):
            self.skipped_reason = "DeepSpeed ZeRO-3 shards the weights; validation skipped"
            return
        self.done.add(step)
        state.log_history.append({"step": step, **self.score(model)})

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        self._run(state, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        if state.global_step % self.every == 0:
            self._run(state, model)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        self._run(state, model)


class _Recording:
    """A predictor that keeps the replies of the predictor it wraps."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.replies: list[str] = []

    def predict(self, examples: Any) -> list[str]:
        replies = self.inner.predict(examples)
        self.replies.extend(replies)
        return replies


def _zero3(model: Any) -> bool:
    """Whether the model's parameters are ZeRO-3 partitions (generation would hang on rank 0)."""
    return any(hasattr(p, "ds_id") for p in list(model.parameters())[:1])


class MetricsCallback(TrainerCallback):
    """Append every logged step (and validation entries) to ``path`` as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.written = 0

    def _flush(self, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        new = state.log_history[self.written :]
        self.written = len(state.log_history)
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for entry in new:
                clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in entry.items()}  # fmt: skip
                fh.write(json.dumps(clean) + "\n")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        self.path.unlink(missing_ok=True)
        self.written = 0
        self._flush(state)

    def on_log(self, args: Any, state: Any, control: Any, **kw: Any):
        self._flush(state)
