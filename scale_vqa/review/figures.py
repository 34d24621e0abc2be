"""Figures of a review: human accuracy with the images, "cannot tell", acceptance, agreement.

Per reviewer, per question type and per organ (and overall):

* **accuracy**: blind answers that match the key / all blind answers ("cannot tell"
  counts as not matching, as an unparseable model answer does), Wilson 95% interval;
  ``accuracy_answered`` leaves the "cannot tell" answers out;
* **cannot tell rate** and **acceptance rate** (accepts / decided items, each reviewer's
  latest decision), Wilson 95% intervals;
* **agreement** between reviewers, on the blind answers and on the verdicts: Cohen's kappa
  with its asymptotic 95% interval for two reviewers, Fleiss' kappa with a seeded bootstrap
  95% interval (items resampled) for three or more, over the items every one of them rated
  (statsmodels.stats.inter_rater).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from curation.audit import wilson
from curation.io import atomic_write_bytes
from scale_vqa.review.store import CANNOT_TELL, REJECT_REASONS, ReviewStore

N_BOOT = 1000


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else None, "ci_low": lo, "ci_high": hi}


def _group_rows(
    answers: list[dict],
    decisions: list[dict],
    items: dict[str, dict],
    key: Callable[[dict], str],
) -> list[dict[str, Any]]:
    by_a: dict[str, list[dict]] = defaultdict(list)
    by_d: dict[str, list[dict]] = defaultdict(list)
    for a in answers:
        by_a[key(a)].append(a)
    for d in decisions:
        by_d[key(d)].append(d)
    rows = []
    for g in sorted(set(by_a) | set(by_d)):
        a, d = by_a.get(g, []), by_d.get(g, [])
        correct = sum(1 for x in a if x["choice"] == items[x["item_id"]]["answer"])
        ct = sum(1 for x in a if x["choice"] == CANNOT_TELL)
        verdicts = [x["verdict"] for x in d]
        rows.append(
            {
                "group": g,
                "n_answers": len(a),
                "accuracy": _rate(correct, len(a)),
                "accuracy_answered": _rate(correct, len(a) - ct),
                "cannot_tell": _rate(ct, len(a)),
                "n_decided": len(d),
                "acceptance": _rate(verdicts.count("accept"), len(d)),
                "rejected": verdicts.count("reject"),
                "edited": verdicts.count("edit"),
            }
        )
    return rows


def agreement(
    ratings: dict[str, dict[str, str]], categories: Iterable[str], seed: int = 0
) -> dict[str, Any] | None:
    """Kappa over ``ratings`` (item -> rater -> category); None with fewer than 2 raters.

    Items rated by every rater in the pool are used (Fleiss' kappa needs a constant
    number of ratings per item); raters who rated nothing in common are left out.
    """
    from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

    raters = sorted({r for per in ratings.values() for r in per})
    if len(raters) < 2:
        return None
    cats = list(dict.fromkeys(categories))
    index = {c: i for i, c in enumerate(cats)}
    complete = [per for per in ratings.values() if all(r in per for r in raters)]
    if len(raters) > 2 and len(complete) < 2:  # fall back to the two busiest raters
        counts = sorted(raters, key=lambda r: -sum(r in per for per in ratings.values()))
        raters = sorted(counts[:2])
        complete = [per for per in ratings.values() if all(r in per for r in raters)]
    out: dict[str, Any] = {"raters": raters, "n_items": len(complete)}
    if len(complete) < 2:
        return out | {"method": None, "kappa": None, "ci_low": None, "ci_high": None}
    if len(raters) == 2:
        table = np.zeros((len(cats), len(cats)))
        for per in complete:
            table[index[per[raters[0]]], index[per[raters[1]]]] += 1
        agree = float(np.trace(table) / table.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            res = cohens_kappa(table)
        kappa, se = float(res.kappa), float(res.std_kappa)
        finite = np.isfinite(kappa) and np.isfinite(se)
        return out | {
            "method": "cohen",
            "observed_agreement": agree,
            "kappa": kappa if np.isfinite(kappa) else None,
            "se": se if np.isfinite(se) else None,
            "ci_low": max(-1.0, kappa - 1.959963984540054 * se) if finite else None,
            "ci_high": min(1.0, kappa + 1.959963984540054 * se) if finite else None,
            "interval": "asymptotic",
        }
    counts = np.zeros((len(complete), len(cats)))
    for i, per in enumerate(complete):
        for r in raters:
            counts[i, index[per[r]]] += 1

    def fk(t: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(fleiss_kappa(t))

    kappa = fk(counts)
    rng = np.random.default_rng(seed)
    boots = [fk(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(N_BOOT)]
    boots = [b for b in boots if np.isfinite(b)]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return out | {
        "method": "fleiss",
        "kappa": kappa if np.isfinite(kappa) else None,
        "ci_low": float(lo) if np.isfinite(lo) else None,
        "ci_high": float(hi) if np.isfinite(hi) else None,
        "interval": f"bootstrap ({N_BOOT} item resamples, seed {seed})",
    }


def compute_figures(store: ReviewStore, seed: int = 0) -> dict[str, Any]:
    """Every figure of the review in ``store`` (plain JSON-able dict)."""
    items = store.items()
    answers = [a for a in store.answers() if a["item_id"] in items]
    latest = store.latest_decisions()
    decisions = [d for per in latest.values() for d in per.values() if d["item_id"] in items]

    def attr(name: str) -> Callable[[dict], str]:
        return lambda r: items[r["item_id"]][name] or "(not stated)"

    out: dict[str, Any] = {
        "items": len(items),
        "reviewers": sorted({a["reviewer"] for a in answers}),
        "items_answered": len({a["item_id"] for a in answers}),
        "items_decided": len({d["item_id"] for d in decisions}),
        "overall": _group_rows(answers, decisions, items, lambda r: "all"),
        "by_reviewer": _group_rows(answers, decisions, items, lambda r: r["reviewer"]),
        "by_question_type": _group_rows(answers, decisions, items, attr("question_type")),
        "by_organ": _group_rows(answers, decisions, items, attr("organ")),
        "reject_reasons": {
            k: sum(1 for d in decisions if d["verdict"] == "reject" and d["reason"] == k)
            for k in REJECT_REASONS
        },
    }
    n_opts = max((len(v["record"].get("options", [])) for v in items.values()), default=4)
    letters = [chr(65 + i) for i in range(n_opts)]
    blind: dict[str, dict[str, str]] = defaultdict(dict)
    for a in answers:
        blind[a["item_id"]][a["reviewer"]] = a["choice"]
    verdict: dict[str, dict[str, str]] = defaultdict(dict)
    for d in decisions:
        verdict[d["item_id"]][d["reviewer"]] = d["verdict"]
    out["agreement"] = {
        "blind_answers": agreement(blind, [*letters, CANNOT_TELL], seed),
        "verdicts": agreement(verdict, ["accept", "reject", "edit"], seed),
        "blind_answers_by_question_type": {
            t: agreement(
                {i: per for i, per in blind.items() if items[i]["question_type"] == t},
                [*letters, CANNOT_TELL],
                seed,
            )
            for t in sorted({items[i]["question_type"] for i in blind})
        },
    }
    return out


def _pct(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    return f"{100 * r['rate']:.1f}% ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})"


def _kappa(a: dict[str, Any] | None) -> str:
    if not a or a.get("kappa") is None:
        return "-"
    ci = ""
    if a.get("ci_low") is not None:
        ci = f" ({a['ci_low']:.2f} to {a['ci_high']:.2f})"
    name = "Cohen" if a["method"] == "cohen" else "Fleiss"
    return f"{name} {a['kappa']:.2f}{ci}, {len(a['raters'])} raters, {a['n_items']} items"


TABLE_HEADER = ["group", "blind answers", "accuracy (95% CI)", "cannot tell", "decided",
                "accepted", "rejected", "edited"]  # fmt: skip


def table_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            r["group"],
            r["n_answers"],
            _pct(r["accuracy"]),
            _pct(r["cannot_tell"]),
            r["n_decided"],
            _pct(r["acceptance"]),
            r["rejected"],
            r["edited"],
        ]
        for r in rows
    ]


def format_report(fig: dict[str, Any]) -> str:
    """The figures as plain-text tables for the terminal."""
    lines = [
        f"{fig['items']} item(s); {fig['items_answered']} answered blind, "
        f"{fig['items_decided']} decided; reviewers: {', '.join(fig['reviewers']) or 'none'}",
        f"agreement on blind answers: {_kappa(fig['agreement']['blind_answers'])}",
        f"agreement on verdicts: {_kappa(fig['agreement']['verdicts'])}",
    ]
    for title, key in (
        ("overall", "overall"),
        ("per reviewer", "by_reviewer"),
        ("per question type", "by_question_type"),
        ("per organ", "by_organ"),
    ):
        rows = table_rows(fig[key])
        if not rows:
            continue
        cells = [TABLE_HEADER, *[[str(c) for c in r] for r in rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(TABLE_HEADER))]
        lines += ["", title]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    reasons = {k: v for k, v in fig["reject_reasons"].items() if v}
    if reasons:
        lines += ["", "reject reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.items())]
    return "\n".join(lines)


def card_section(fig: dict[str, Any], outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dataset card's "Clinical validation" section as data (see scale_vqa.card)."""
    facts = [
        f"{fig['items_answered']} of {fig['items']} reviewed item(s) answered blind from "
        f"the images by {len(fig['reviewers'])} reviewer(s); {fig['items_decided']} decided",
        "agreement on blind answers: " + _kappa(fig["agreement"]["blind_answers"]),
        "agreement on verdicts: " + _kappa(fig["agreement"]["verdicts"]),
    ]
    if outcome:
        facts.append(
            f"the build obeyed the review: {outcome['dropped_items']} question(s) dropped "
            f"({outcome['rejected']} rejected, the rest their complementary set-mates or "
            f"edits that failed the re-check); {outcome['edited']} edit(s) resolved, "
            f"{outcome['edited_questions']} built question(s) carry an edit; "
            f"{outcome['unreviewed']} question(s) were not reviewed"
        )
    tables = [
        {"title": title, "header": TABLE_HEADER, "rows": table_rows(fig[key])}
        for title, key in (
            ("Per reviewer", "by_reviewer"),
            ("Per question type", "by_question_type"),
            ("Per organ", "by_organ"),
        )
        if fig[key]
    ]
    return {
        "intro": (
            "Pathologists answered each question blind from its images (no key shown), then "
            "saw the key and accepted, rejected or edited it (`scale-vqa review`). Accuracy "
            'is blind answers matching the key, with Wilson 95% intervals; "cannot tell" '
            "counts as not matching."
        ),
        "facts": facts,
        "tables": tables,
    }


def write_plot(fig: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Bar chart: accuracy, cannot-tell and acceptance with 95% CIs, per reviewer and type."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("per reviewer", fig["by_reviewer"]), ("per question type", fig["by_question_type"])]
    f, axes = plt.subplots(1, 2, figsize=(12, 4.4), squeeze=False)
    metrics = [("accuracy", "accuracy with images"), ("cannot_tell", "cannot tell"),
               ("acceptance", "accepted")]  # fmt: skip
    for ax, (title, rows) in zip(axes[0], panels):
        x = np.arange(len(rows))
        w = 0.8 / len(metrics)
        for j, (m, label) in enumerate(metrics):
            vals = [r[m]["rate"] if r[m]["rate"] is not None else np.nan for r in rows]
            lo = [max(0.0, v - r[m]["ci_low"]) if np.isfinite(v) else 0 for v, r in zip(vals, rows)]
            hi = [
                max(0.0, r[m]["ci_high"] - v) if np.isfinite(v) else 0 for v, r in zip(vals, rows)
            ]
            ax.bar(x - 0.4 + w * (j + 0.5), vals, w, yerr=[lo, hi], capsize=3, label=label)
        ax.set_xticks(x, [r["group"] for r in rows], rotation=20, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize=8)
    f.suptitle("Clinical validation — blind answers: " + _kappa(fig["agreement"]["blind_answers"]))
    f.tight_layout()
    buf = io.BytesIO()
    f.savefig(buf, format="png", dpi=110)
    plt.close(f)
    atomic_write_bytes(path, buf.getvalue())
