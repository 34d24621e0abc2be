"""Text-only leakage audit of any MCQ benchmark.

:func:`audit` runs a battery of text-only adversaries (learned ones cross-fitted by
patient, else slide; or fitted on a separate ``train`` set) and reports accuracy per
adversary x question type with Wilson 95% intervals against chance (1/k per question,
averaged; widened by the design effect of complementary sets, whose rows a joint decoder
gets right or wrong together: :func:`clustered_wilson`), the strongest adversary and its
excess over chance, and group accuracy over complementary sets (``set_id``). The verdict
is data, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from curation.adversaries import (
    Adversary,
    _check_questions,
    answered,
    credit,
    cross_fit_scores,
    default_battery,
)
from curation.audit_null import null_summary, permutation_null
from curation.errors import ConfigError
from curation.joint_decoding import JointDecoder, assignment_chance, decode_sets
from curation.records import QUESTION_TYPES, Question, set_rows

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (``successes`` may be fractional)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def clustered_wilson(
    credits: np.ndarray, clusters: np.ndarray, z: float = Z95
) -> tuple[float, float, float]:
    """Wilson interval on ``n / deff`` effective rows, and the design effect ``deff``.

    Rows of one complementary set (``clusters``: a cluster index per row) are not
    independent: decoded as an assignment they are right or wrong together. ``deff`` is the
    cluster-robust variance of the mean over the independent one (at least 1, so the
    interval is never narrower than Wilson's on the rows).
    """
    n = len(credits)
    if n == 0:
        return (0.0, 1.0, 1.0)
    resid = credits - credits.mean()
    iid = float((resid**2).sum())
    per_cluster = np.bincount(clusters, weights=resid)
    deff = max(float((per_cluster**2).sum()) / iid, 1.0) if iid > 0 else 1.0
    n_eff = n / deff
    lo, hi = wilson(float(credits.mean()) * n_eff, n_eff, z)  # type: ignore[arg-type]
    return lo, hi, deff


def evaluate(
    questions: Sequence[Question],
    adversaries: Sequence[Adversary],
    train: Sequence[Question] | None = None,
    seed: int = 0,
    n_folds: int = 5,
    progress: bool = False,
    desc: str = "adversaries",
) -> dict[str, list[np.ndarray]]:
    """Held-out option scores of each adversary on ``questions``, by adversary name.

    With ``train``, learned adversaries are fitted on ``train`` and score ``questions``;
    otherwise they are cross-fitted over patient (else slide) groups, merged across
    complementary sets (:func:`curation.adversaries.fold_groups`). A joint decoder
    (:class:`curation.joint_decoding.JointDecoder`) listed after its base adversary
    decodes the base's held-out scores instead of fitting it again.
    """
    _check_questions(questions, "evaluate")
    names = [a.name for a in adversaries]
    if len(set(names)) != len(names):
        raise ConfigError(f"adversary names must be distinct; got {', '.join(names)}")
    from tqdm.auto import tqdm

    out: dict[str, list[np.ndarray]] = {}
    bar = tqdm(adversaries, desc=desc, unit="adversary", disable=not progress)
    for adv in bar:
        bar.set_postfix_str(adv.name)
        base = getattr(adv, "base", None)
        if isinstance(adv, JointDecoder) and base is not None and base.name in out:
            # joint decoding of an adversary already run: decode its held-out scores
            out[adv.name] = decode_sets(questions, out[base.name])
        elif adv.learned and train is not None:
            _check_questions(train, "train")
            out[adv.name] = adv.clone().fit(list(train)).score(questions)
        else:
            out[adv.name] = cross_fit_scores(adv, questions, n_folds=n_folds, seed=seed)
    return out


def _row(
    name: str,
    qtype: str,
    credits: np.ndarray,
    chances: np.ndarray,
    learned: bool,
    clusters: np.ndarray,
) -> dict[str, Any]:
    n = len(credits)
    _, clusters = np.unique(clusters, return_inverse=True)
    lo, hi, deff = clustered_wilson(credits, clusters)
    if n:  # guard against rounding at 0 and 1
        lo, hi = min(lo, float(credits.mean())), max(hi, float(credits.mean()))
    return {
        "adversary": name,
        "question_type": qtype,
        "accuracy": float(credits.mean()) if n else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "n": n,
        "design_effect": deff,
        "chance": float(chances.mean()) if n else float("nan"),
        "learned": learned,
    }


def summarize(
    questions: Sequence[Question],
    scores: dict[str, list[np.ndarray]],
    learned: dict[str, bool] | None = None,
    extra: dict[str, Any] | None = None,
    joint: Collection[str] = (),
) -> dict[str, Any]:
    """The audit report from held-out scores (see :func:`audit` for the form).

    Adversaries named in ``joint`` decode each complementary set as an assignment of
    distinct keys, so their chance of a set entirely right is 1/k! (for k rows and k
    options), not (1/k)^k.
    """
    learned = learned or {}
    n = len(questions)
    chances = np.array([1.0 / len(q.options) for q in questions])
    keys = np.array([q.key_index for q in questions])
    types = [t for t in QUESTION_TYPES if any(q.question_type == t for q in questions)]
    by_type = {t: np.array([q.question_type == t for q in questions]) for t in types}
    table: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []
    multi = {s: idx for s, idx in set_rows(questions).items() if len(idx) >= 2}
    cluster = np.arange(n)
    for c, idx in enumerate(multi.values()):
        cluster[idx] = n + c
    for name, sc in scores.items():
        cr = np.array([credit(s, k) for s, k in zip(sc, keys)])
        lrn = bool(learned.get(name, False))
        table.append(_row(name, "all", cr, chances, lrn, cluster))
        for t in types:
            m = by_type[t]
            table.append(_row(name, t, cr[m], chances[m], lrn, cluster[m]))
        if multi:
            right = np.array([answered(s, k) for s, k in zip(sc, keys)])
            all_right = [bool(right[idx].all()) for idx in multi.values()]
            if name in joint:
                set_chance = float(
                    np.mean(
                        [
                            assignment_chance(len(idx), len(questions[idx[0]].options))
                            if len(idx) <= len(questions[idx[0]].options)
                            else 0.0
                            for idx in multi.values()
                        ]
                    )
                )
            else:
                set_chance = float(np.mean([np.prod(chances[idx]) for idx in multi.values()]))
            lo, hi = wilson(sum(all_right), len(all_right))
            group.append(
                {
                    "adversary": name,
                    "n_sets": len(all_right),
                    "accuracy": float(np.mean(all_right)),
                    "ci_low": lo,
                    "ci_high": hi,
                    "chance": set_chance,
                    "chance_rule": "1/k! (assignment)" if name in joint else "(1/k)^k",
                }
            )
    overall = [r for r in table if r["question_type"] == "all"]
    chance = float(chances.mean()) if n else float("nan")
    best: dict[str, Any] = {"adversary": None, "question_type": "all", "accuracy": float("nan")}
    if overall:
        top = max(overall, key=lambda r: (r["accuracy"], -overall.index(r)))
        best = {
            "adversary": top["adversary"],
            "question_type": "all",
            "accuracy": top["accuracy"],
            "ci_low": top["ci_low"],
            "ci_high": top["ci_high"],
            "excess": top["accuracy"] - chance,
            "significant": top["ci_low"] > chance,
        }
        per_type = [r for r in table if r["question_type"] != "all" and r["n"] > 0]
        if per_type:
            worst = max(per_type, key=lambda r: (r["ci_low"] - r["chance"], r["accuracy"]))
            best["strongest_by_type"] = {
                "adversary": worst["adversary"],
                "question_type": worst["question_type"],
                "accuracy": worst["accuracy"],
                "excess": worst["accuracy"] - worst["chance"],
            }
    report: dict[str, Any] = {
        "n": n,
        "chance": chance,
        "best": best,
        "table": table,
        "group": group,
        "notes": _notes(table, chance, bool(multi), best),
    }
    if extra:
        report.update(extra)
    return report


def _notes(
    table: list[dict[str, Any]], chance: float, has_sets: bool, best: dict[str, Any]
) -> list[str]:
    notes: list[str] = []
    if best.get("adversary") is not None:
        if best.get("significant"):
            notes.append(
                f"text-only shortcut: {best['adversary']} answers {best['accuracy']:.1%} "
                f"(95% CI {best['ci_low']:.1%}-{best['ci_high']:.1%}) against {chance:.1%} "
                f"chance, {best['excess'] * 100:+.1f} points, without the images"
            )
        else:
            notes.append(
                f"no adversary is significantly above chance ({chance:.1%}); the strongest, "
                f"{best['adversary']}, answers {best['accuracy']:.1%}"
            )
    below = [
        r["adversary"]
        for r in table
        if r["question_type"] == "all" and r["learned"] and r["ci_high"] < r["chance"]
    ]
    if below:
        why = (
            "on complementary sets (one question and option list on several zoom paths, "
            "each making a different option the key) a learner cross-fitted by slide sees "
            "the other members of a set in training and learns which answers that set "
            "already used, so it avoids the right one"
            if has_sets
            else "a cross-fitted learner that memorises which options were keys in the "
            "training folds is pushed below chance when keys are balanced across the "
            "dataset (each option the key about 1/k of the times it appears)"
        )
        notes.append(
            f"below chance, as expected, not an alarm: {', '.join(below)} score significantly "
            f"below chance; {why}. Group accuracy over complementary sets is immune to this."
        )
    return notes


def audit(
    questions: Sequence[Question],
    adversaries: Sequence[Adversary] | None = None,
    train: Sequence[Question] | None = None,
    seed: int = 0,
    n_folds: int = 5,
    embedder: Any = None,
    include_embeddings: bool = True,
    progress: bool = False,
    dataset_level: bool | None = None,
    null: int = 0,
) -> dict[str, Any]:
    """Audit ``questions`` against text-only adversaries.

    Returns ``{"n", "chance", "best": {"adversary", "question_type", "accuracy", "excess",
    ...}, "table": [{"adversary", "question_type", "accuracy", "ci_low", "ci_high", "n",
    "chance", "learned"}], "group": [...], "notes": [...], "dataset_adversaries": [...]}``;
    rows with question_type "all" are overall; ``best`` is the strongest adversary
    overall. ``adversaries`` defaults to :func:`curation.adversaries.default_battery`.
    ``dataset_level`` (default: when ``adversaries`` is None) adds the dataset-level
    adversaries that the columns allow (:func:`curation.dataset_adversaries.dataset_battery`;
    ids, row order, the other questions of a path and patient, joint decoding of sets),
    with a note for each one a missing column rules out. ``null``: refit the learned
    adversaries that many times on within-set permuted keys
    (:func:`curation.audit_null.permutation_null`); each learned row of the table then
    carries ``null_p95`` and ``null_p``, and ``report["null"]`` the whole null.
    """
    _check_questions(questions, "audit")
    if not questions:
        raise ConfigError("audit: no questions to audit; check the input file")
    if dataset_level is None:
        dataset_level = adversaries is None
    if adversaries is None:
        adversaries = default_battery(embedder=embedder, include_embeddings=include_embeddings)
    adversaries = list(adversaries)
    dataset_notes: list[str] = []
    if dataset_level:
        from curation.dataset_adversaries import dataset_battery

        more, dataset_notes = dataset_battery(questions)
        names = {a.name for a in adversaries}
        adversaries += [a for a in more if a.name not in names]
    scores = evaluate(
        questions, adversaries, train=train, seed=seed, n_folds=n_folds, progress=progress
    )
    learned = {a.name: a.learned for a in adversaries}
    extra: dict[str, Any] = {"mode": "train/test" if train is not None else "cross-fitted"}
    if train is not None:
        extra["n_train"] = len(train)
    for a in adversaries:
        stats = getattr(a, "stats_", None)
        if stats:
            extra.setdefault("llm", {})[a.name] = stats
    extra["dataset_adversaries"] = [a.name for a in adversaries if a.reads_dataset]
    joint = {a.name for a in adversaries if getattr(a, "decodes_sets", False)}
    report = summarize(questions, scores, learned, extra, joint=joint)
    for a in adversaries:
        rule = getattr(a, "rule_", None)
        if rule is not None:
            report["notes"].append(f"{a.name}: the ids are {rule.describe()}")
    report["notes"].extend(dataset_notes)
    if null > 0:
        observed = {(r["adversary"], r["question_type"]): r["accuracy"] for r in report["table"]}
        report["null"] = permutation_null(
            questions,
            adversaries,
            observed,
            null,
            train=train,
            seed=seed,
            n_folds=n_folds,
            progress=progress,
            evaluate=evaluate,
        )
        by_cell = {(c["adversary"], c["question_type"]): c for c in report["null"]["cells"]}
        for r in report["table"]:
            c = by_cell.get((r["adversary"], r["question_type"]))
            if c is not None:
                r["null_p95"], r["null_p"] = c["null_p95"], c["p"]
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table (adversary x type) plus the verdict lines."""
    rows = report["table"]
    types = list(dict.fromkeys(r["question_type"] for r in rows))
    advs = list(dict.fromkeys(r["adversary"] for r in rows))
    cell = {(r["adversary"], r["question_type"]): r for r in rows}
    width = max([len(a) for a in advs] + [9])
    col = {t: max(19, len(t)) for t in types}
    head = f"{'adversary':<{width}}  " + "  ".join(f"{t:>{col[t]}}" for t in types)
    lines = [head, "-" * len(head)]
    for a in advs:
        parts = []
        for t in types:
            r = cell.get((a, t))
            if r is None or r["n"] == 0:
                parts.append("-".rjust(col[t]))
                continue
            lo, hi = r["ci_low"] * 100, r["ci_high"] * 100
            parts.append(f"{r['accuracy'] * 100:5.1f} [{lo:4.1f},{hi:5.1f}]".rjust(col[t]))
        lines.append(f"{a:<{width}}  " + "  ".join(parts))
    chance = {t: np.mean([r["chance"] for r in rows if r["question_type"] == t]) for t in types}
    counts = {t: next(r["n"] for r in rows if r["question_type"] == t) for t in types}
    lines.append("-" * len(head))
    lines.append(
        f"{'chance':<{width}}  " + "  ".join(f"{chance[t] * 100:5.1f}".rjust(col[t]) for t in types)
    )
    lines.append(f"{'n':<{width}}  " + "  ".join(str(counts[t]).rjust(col[t]) for t in types))
    best = report["best"]
    if best.get("adversary") is not None:
        lines.append("")
        lines.append(
            f"best adversary: {best['adversary']} {best['accuracy']:.1%} overall, "
            f"chance {report['chance']:.1%}, excess {best['excess'] * 100:+.1f} points"
        )
        sbt = best.get("strongest_by_type")
        if sbt:
            lines.append(
                f"strongest cell: {sbt['adversary']} on {sbt['question_type']} "
                f"{sbt['accuracy']:.1%} ({sbt['excess'] * 100:+.1f} points)"
            )
    for g in report.get("group", []):
        if g is report["group"][0]:
            lines.append("group accuracy over complementary sets (all members right):")
        lines.append(
            f"  {g['adversary']:<{width}} {g['accuracy']:.1%} of {g['n_sets']} sets "
            f"(chance {g['chance']:.2%})"
        )
    for name, stats in report.get("llm", {}).items():
        lines.append(
            f"{name}: {stats.get('unparseable', 0)} unparseable answer(s) of "
            f"{stats.get('answers', 0)}, counted wrong"
        )
    line = null_summary(report)
    if line:
        lines.append(line)
    lines.extend(f"note: {n}" for n in report.get("notes", []))
    return "\n".join(lines)
