"""A training run's metrics: ``metrics.jsonl`` (a line per logged step) and ``curves.png``.

The lines come from the trainer's log history (trl's keys as logged: ``reward``,
``rewards/<function>/mean``, ``kl``, ``completions/mean_length``, ``loss``, ...) merged by
step with the validation entries of :class:`baselines.train_callbacks.ValidationCallback`
(``val/accuracy``, ``val/n``, ``val/format_rate``). ``format_rate`` repeats
``rewards/format_reward/mean``: the share of rollouts that are exactly
``<think>...</think><answer>X</answer>``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curation.io import atomic_write_bytes, atomic_write_jsonl

FORMAT_KEY = "rewards/format_reward/mean"
SUMMARY_KEYS = ("train_runtime", "train_loss")  # the trainer's end-of-run entry


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_rows(log_history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per logged step (``step`` first), training and validation entries merged."""
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "step" not in entry or any(k in entry for k in SUMMARY_KEYS):
            continue
        row = by_step.setdefault(int(entry["step"]), {"step": int(entry["step"])})
        row.update({k: _clean(v) for k, v in entry.items() if k != "step"})
    rows = [by_step[s] for s in sorted(by_step)]
    for row in rows:
        if FORMAT_KEY in row:
            row["format_rate"] = row[FORMAT_KEY]
    return rows


def write_metrics(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> int:
    """Atomically write ``metrics.jsonl``; return the number of lines."""
    return atomic_write_jsonl(path, [dict(r) for r in rows])


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [s for s, _ in pts], [float(v) for _, v in pts]


def plot_curves(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str = ""
) -> None:
    """Reward (total and per function), format rate (of the rollouts, and of the greedy
    validation replies) and validation accuracy against step (the training loss for SFT,
    where there is no reward); PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k in r})
    reward_keys = [k for k in keys if k.startswith("rewards/") and k.endswith("/mean")]
    top = (["reward"] if "reward" in keys else []) + reward_keys
    panels = [
        ("reward" if top else "loss", top or ["loss"]),
        ("format rate", ["format_rate", "val/format_rate"]),
        ("validation accuracy", ["val/accuracy"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (label, series) in zip(axes, panels, strict=True):
        drawn = 0
        for key in series:
            x, y = _series(rows, key)
            if x:
                ax.plot(x, y, marker="o", markersize=3, label=key)
                drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        if label in ("format rate", "validation accuracy"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if drawn > 1:
            ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
