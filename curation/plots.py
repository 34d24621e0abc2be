"""Figures for audit reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import os
from typing import Any

from curation.io import atomic_write_bytes


def audit_plot(report: dict[str, Any], path: str | os.PathLike[str], title: str = "") -> None:
    """Grouped bar chart: accuracy per adversary (bars) x question type (groups), 95% CI
    error bars, dashed chance line; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in report["table"] if r["n"] > 0]
    types = list(dict.fromkeys(r["question_type"] for r in rows))
    if "all" in types:
        types = ["all"] + [t for t in types if t != "all"]
    advs = list(dict.fromkeys(r["adversary"] for r in rows))
    cell = {(r["adversary"], r["question_type"]): r for r in rows}
    n_adv = max(1, len(advs))
    width = 0.8 / n_adv
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(types) * max(1, n_adv / 4)), 4.6))
    cmap = plt.get_cmap("tab10" if n_adv <= 10 else "tab20")
    x = np.arange(len(types))
    for j, a in enumerate(advs):
        acc, lo, hi = [], [], []
        for t in types:
            r = cell.get((a, t))
            acc.append(r["accuracy"] if r else np.nan)
            lo.append(max(0.0, r["accuracy"] - r["ci_low"]) if r else 0.0)
            hi.append(max(0.0, r["ci_high"] - r["accuracy"]) if r else 0.0)
        ax.bar(
            x - 0.4 + width * (j + 0.5),
            acc,
            width,
            yerr=[lo, hi],
            capsize=2,
            label=a,
            color=cmap(j % cmap.N),
            error_kw={"elinewidth": 0.8, "ecolor": "0.25"},
        )
    for i, t in enumerate(types):
        ch = np.mean([r["chance"] for r in rows if r["question_type"] == t])
        ax.hlines(ch, i - 0.45, i + 0.45, colors="black", linestyles="--", linewidth=1.2)
    ax.plot([], [], "k--", linewidth=1.2, label="chance")
    counts = {t: next(r["n"] for r in rows if r["question_type"] == t) for t in types}
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t}\n(n={counts[t]})" for t in types])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy without images")
    best = report.get("best", {})
    head = title or "Text-only adversaries"
    if best.get("adversary") is not None:
        head += (
            f" - best: {best['adversary']} {best['accuracy']:.0%} vs chance {report['chance']:.0%}"
        )
    ax.set_title(head, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
