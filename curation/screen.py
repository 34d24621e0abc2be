"""The leakage screen: flag -> regenerate -> re-screen -> drop, with a report.

What "flagged" means. Any adversary answers about 1/k of the questions right by chance;
removing those would cost ~25% of a clean dataset per adversary and remove nothing
systematic. So an adversary flags items only where it is *systematically* predictive. Each
question sits in its finest stratum with at least ``min_stratum`` items (its template,
else its question type, else the rest); inside a stratum the adversary's questions are cut
into up to ``max_bins`` confidence bins (by the margin between its top and second score).
A cell (adversary x stratum x bin) is active when its held-out accuracy is significantly
above chance (one-sided z-test on the summed per-item credit, Bonferroni-corrected over
every cell tested, family-wise ``alpha``) and exceeds chance by at least ``min_excess``.
Inside an active cell the adversary flags the items it answers: the key is its unique top
choice (learned adversaries cross-fitted, so a slide's questions are judged by a model
that never saw that slide); for AFLite (no bins: its cell is the stratum), predictability
>= tau; for an LLM, its flag rule over k samples. When a flagged item belongs to a
complementary set, the whole set is flagged (a partial set leaks which answers remain).

Dataset-level adversaries (:mod:`curation.dataset_adversaries`: ids, row order, the
other questions of a zoom path and patient, joint decoding of sets) screen the same way
when named in the battery; they read the pool as given (its row order included).

Flagged items are handed to ``regenerate(flagged, round)`` (a callback, e.g. the
generator's, with tightened constraints), the pool is screened again, up to ``rounds``
times; what still leaks after the last round is dropped, with the adversaries that caught
it. This module never imports :mod:`scale_vqa`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.adversary_base import Adversary, _check_questions, answered, credit
from curation.aflite import AFLite
from curation.audit import evaluate, summarize
from curation.errors import ConfigError
from curation.records import Question, seeded_order, set_rows

Regenerate = Callable[[list[Question], int], Sequence[Question]]


@dataclass
class ScreenResult:
    """Kept questions, dropped ones with reasons, and the report (JSON-ready)."""

    kept: list[Question]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def _finest_strata(questions: Sequence[Question], min_stratum: int) -> dict[str, np.ndarray]:
    """Each question in its finest stratum with enough items: its template, else its
    question type, else all questions."""
    tpl = Counter(q.template_id for q in questions)
    typ = Counter(q.question_type for q in questions)
    names = []
    for q in questions:
        if q.template_id and tpl[q.template_id] >= min_stratum:
            names.append(f"template={q.template_id}")
        elif typ[q.question_type] >= min_stratum:
            names.append(f"type={q.question_type}")
        else:
            names.append("rest")
    arr = np.array(names, dtype=object)
    return {n: arr == n for n in sorted(set(names))}


def _margin(scores: np.ndarray) -> float:
    s = np.sort(np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf))[::-1]
    if not np.isfinite(s[0]):
        return -np.inf
    return float(s[0] - s[1]) if len(s) > 1 and np.isfinite(s[1]) else float("inf")


def _cells(
    idx: np.ndarray, margins: np.ndarray | None, min_stratum: int, max_bins: int
) -> list[np.ndarray]:
    """Split a stratum into confidence bins (by the adversary's margin) of >= min_stratum."""
    if margins is None:
        return [idx]
    n_bins = max(1, min(max_bins, len(idx) // max(1, min_stratum)))
    order = idx[np.argsort(-margins[idx], kind="stable")]
    return [b for b in np.array_split(order, n_bins) if len(b)]


def _answered(
    adv: Adversary | None, questions: Sequence[Question], scores: list[np.ndarray]
) -> np.ndarray:
    if adv is not None and hasattr(adv, "flags"):
        return np.asarray(adv.flags(questions, scores), dtype=bool)
    return np.array([answered(s, q.key_index) for s, q in zip(scores, questions)])


def flag_round(
    questions: Sequence[Question],
    adversaries: Sequence[Adversary],
    aflite: AFLite | None = None,
    seed: int = 0,
    n_folds: int = 5,
    alpha: float = 0.05,
    min_excess: float = 0.02,
    min_stratum: int = 20,
    max_bins: int = 5,
    progress: bool = False,
    desc: str = "screen",
) -> tuple[dict[int, list[str]], dict[str, Any]]:
    """One screening pass: ``({index: [adversary names]}, details)``.

    ``details`` holds the audit summary of this pass (``"audit"``), the cells where each
    adversary was found systematically predictive (``"active"``) and the other questions
    of those cells (``"tainted"``: index -> reasons), which the last round drops too.
    """
    scores = evaluate(
        questions, adversaries, seed=seed, n_folds=n_folds, progress=progress, desc=desc
    )
    by_name = {a.name: a for a in adversaries}
    chance = np.array([1.0 / len(q.options) for q in questions])
    credits: dict[str, np.ndarray] = {
        name: np.array([credit(s, q.key_index) for s, q in zip(sc, questions)])
        for name, sc in scores.items()
    }
    hits = {name: _answered(by_name[name], questions, sc) for name, sc in scores.items()}
    if aflite is not None:
        res = aflite.predictability(questions)
        scores["aflite"] = res.scores or []
        credits["aflite"] = res.predictability  # NaN where never held out
        hits["aflite"] = res.flagged
    strata = _finest_strata(questions, min_stratum)
    cells: list[tuple[str, str, np.ndarray]] = []
    for name, cr in credits.items():
        margins = (
            None
            if name == "aflite"
            else np.array([_margin(sc) for sc in scores[name]], dtype=float)
        )
        for sname, m in strata.items():
            idx = np.flatnonzero(m & np.isfinite(cr))
            if len(idx) == 0:
                continue
            for b, cell in enumerate(_cells(idx, margins, min_stratum, max_bins)):
                cells.append((name, f"{sname} bin={b}" if margins is not None else sname, cell))
    n_tests = max(1, len(cells))
    active: list[dict[str, Any]] = []
    flags: dict[int, list[str]] = defaultdict(list)
    tainted: dict[int, list[str]] = defaultdict(list)
    for name, label, cell in cells:
        cr = credits[name]
        acc, ch = float(cr[cell].mean()), float(chance[cell].mean())
        sd = math.sqrt(float((chance[cell] * (1 - chance[cell])).sum()))
        z = (float(cr[cell].sum()) - float(chance[cell].sum())) / sd if sd > 0 else 0.0
        if _norm_sf(z) < alpha / n_tests and acc - ch >= min_excess:
            active.append(
                {
                    "adversary": name,
                    "stratum": label,
                    "n": len(cell),
                    "accuracy": acc,
                    "chance": ch,
                    "z": z,
                }
            )
            for i in cell[hits[name][cell]]:
                flags[int(i)].append(name)
            for i in cell[~hits[name][cell]]:
                tainted[int(i)].append(f"in a leaking cell of {name} ({label})")
    flags = {i: sorted(set(v)) for i, v in flags.items()}
    tainted_out = {i: v for i, v in tainted.items() if i not in flags}
    learned = {a.name: a.learned for a in adversaries} | {"aflite": True}
    audit_scores = {k: v for k, v in scores.items() if len(v) == len(questions)}
    joint = {a.name for a in adversaries if getattr(a, "decodes_sets", False)}
    details = {
        "audit": summarize(questions, audit_scores, learned, joint=joint),
        "active": active,
        "tests": n_tests,
        "tainted": tainted_out,
    }
    return flags, details


def _expand_sets(questions: Sequence[Question], flags: dict[int, list[str]]) -> None:
    members = set_rows(questions)
    for i in list(flags):
        sid = questions[i].set_id
        if not sid:
            continue
        for j in members[sid]:
            if j not in flags:
                flags[j] = [f"set-mate of {questions[i].id}"]


def _reason_key(reason: str) -> str:
    if reason.startswith("in a leaking cell of "):
        return reason[len("in a leaking cell of ") :].split(" (")[0] + " (leaking cell)"
    if reason.startswith("set-mate of "):
        return "set-mate"
    return reason


def _by_type(questions: Sequence[Question]) -> Counter[str]:
    return Counter(q.question_type for q in questions)


def _compact(audit: dict[str, Any]) -> dict[str, Any]:
    return {k: audit[k] for k in ("n", "chance", "best", "table", "group", "notes") if k in audit}


def screen(
    questions: Sequence[Question],
    adversaries: Sequence[Adversary],
    aflite: AFLite | None = None,
    regenerate: Regenerate | None = None,
    rounds: int = 2,
    seed: int = 0,
    n_folds: int = 5,
    alpha: float = 0.05,
    min_excess: float = 0.02,
    min_stratum: int = 20,
    max_bins: int = 5,
    drop_cells: bool = True,
    progress: bool = False,
) -> ScreenResult:
    """Screen ``questions``; see the module docstring for the rule.

    ``regenerate(flagged, round)`` returns replacement questions (possibly fewer); without
    it, flagged items are dropped after the first pass. ``rounds`` is the most
    regeneration rounds. With ``drop_cells`` (default), the last round also drops the
    questions of a still-leaking cell that its adversary got wrong: keeping them would leave
    an anti-selected residue (e.g. keys never at the centre) that a learner can exploit.
    Deterministic for a given ``seed`` (and a deterministic callback).
    """
    _check_questions(questions, "screen")
    if not questions:
        raise ConfigError("screen: no questions to screen; check the input file")
    if not (isinstance(rounds, int) and rounds >= 0):
        raise ConfigError(f"screen: rounds={rounds!r}; use an integer >= 0")
    if not (0 < alpha < 1):
        raise ConfigError(f"screen: alpha={alpha!r}; use a level in (0, 1), e.g. 0.05")
    if not (0 <= min_excess < 1):
        raise ConfigError(f"screen: min_excess={min_excess!r}; use a fraction in [0, 1)")
    if not adversaries and aflite is None:
        raise ConfigError("screen: no adversaries; give at least one (or AFLite)")
    kw = dict(
        aflite=aflite,
        seed=seed,
        n_folds=n_folds,
        alpha=alpha,
        min_excess=min_excess,
        min_stratum=min_stratum,
        max_bins=max_bins,
    )
    pool = list(questions)
    history: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    n_regenerated = 0
    for r in range(rounds + 1):
        flags, details = flag_round(
            pool, adversaries, progress=progress, desc=f"screen round {r}", **kw
        )  # type: ignore[arg-type]
        last = regenerate is None or r == rounds
        if last and drop_cells:
            for i, why in details["tainted"].items():
                flags.setdefault(i, why)
        _expand_sets(pool, flags)
        if before is None:
            before = details["audit"]
        entry = {
            "round": r,
            "n": len(pool),
            "flagged": len(flags),
            "flagged_by": dict(
                sorted(Counter(n for names in flags.values() for n in names).items())
            ),
            "active": details["active"],
            "best": details["audit"]["best"],
        }
        llm_stats = {a.name: dict(a.stats_) for a in adversaries if getattr(a, "stats_", None)}
        if llm_stats:
            entry["llm"] = llm_stats
        history.append(entry)
        if not flags:
            after = details["audit"]
            break
        flagged = [pool[i] for i in sorted(flags)]
        rest = [q for i, q in enumerate(pool) if i not in flags]
        if not last:
            new = list(regenerate(flagged, r + 1))
            _check_questions(new, "regenerate callback result")
            entry["regenerated"] = len(new)
            n_regenerated += len(new)
            pool = rest + new
            continue
        for i in sorted(flags):
            q = pool[i]
            dropped.append(
                {
                    "id": q.id,
                    "question_type": q.question_type,
                    "slide_id": q.slide_id,
                    "set_id": q.set_id,
                    "round": r,
                    "reasons": flags[i],
                    "question": q.to_dict(),
                }
            )
        pool = rest
        break
    if after is None:
        if pool:
            scores = evaluate(
                pool, adversaries, seed=seed, n_folds=n_folds, progress=progress, desc="final audit"
            )
            learned = {a.name: a.learned for a in adversaries}
            if aflite is not None:
                res = aflite.predictability(pool)
                scores["aflite"] = res.scores or []
                learned["aflite"] = True
            joint = {a.name for a in adversaries if getattr(a, "decodes_sets", False)}
            after = summarize(pool, scores, learned, joint=joint)
        else:
            after = {"n": 0, "chance": float("nan"), "best": {}, "table": []}
    n_in, n_out = len(questions), len(pool)
    tin, tout = _by_type(questions), _by_type(pool)
    llm = history[0].get("llm", {})  # answers on the input (later rounds: in "rounds")
    report: dict[str, Any] = {
        "n_input": n_in,
        "n_output": n_out,
        "retention": n_out / n_in,
        "retention_by_type": {
            t: {"input": tin[t], "output": tout.get(t, 0), "retention": tout.get(t, 0) / tin[t]}
            for t in sorted(tin)
        },
        "regenerated": n_regenerated,
        "dropped": len(dropped),
        "dropped_by": dict(
            sorted(Counter(_reason_key(n) for d in dropped for n in d["reasons"]).items())
        ),
        "rounds": history,
        "leakage_before": _compact(before or {}),
        "leakage_after": _compact(after),
        "settings": {
            "adversaries": [a.name for a in adversaries] + (["aflite"] if aflite else []),
            "rounds": rounds,
            "seed": seed,
            "n_folds": n_folds,
            "alpha": alpha,
            "min_excess": min_excess,
            "min_stratum": min_stratum,
            "max_bins": max_bins,
            "drop_cells": drop_cells,
            "aflite": (
                {
                    "n_models": aflite.n_models,
                    "tau": aflite.tau,
                    "train_fraction": aflite.train_fraction,
                    "features": aflite.features,
                }
                if aflite
                else None
            ),
            "regenerate": regenerate is not None,
        },
    }
    if llm:
        report["llm"] = llm
    # kept rows in a seeded order of their ids: regenerated ones are not a block at the end
    return ScreenResult(kept=seeded_order(pool, seed), dropped=dropped, report=report)


def format_report(report: dict[str, Any]) -> str:
    """A few lines for humans: retention and leakage before/after."""
    lines = [
        f"retention: {report['n_output']}/{report['n_input']} = {report['retention']:.1%} "
        f"({report['regenerated']} regenerated, {report['dropped']} dropped)"
    ]
    for t, v in report["retention_by_type"].items():
        lines.append(f"  {t:<15} {v['output']:>6}/{v['input']:<6} {v['retention']:.1%}")
    for h in report["rounds"]:
        by = ", ".join(f"{k} {v}" for k, v in h["flagged_by"].items()) or "none"
        lines.append(f"round {h['round']}: {h['n']} screened, {h['flagged']} flagged ({by})")
    for label in ("leakage_before", "leakage_after"):
        a = report[label]
        b = a.get("best") or {}
        if b.get("adversary"):
            lines.append(
                f"{label.replace('_', ' ')}: best {b['adversary']} {b['accuracy']:.1%} vs "
                f"chance {a['chance']:.1%} ({b['excess'] * 100:+.1f} points, n={a['n']})"
            )
    if report["dropped_by"]:
        lines.append(
            "dropped by: " + ", ".join(f"{k} {v}" for k, v in report["dropped_by"].items())
        )
    for name, st in report.get("llm", {}).items():
        lines.append(
            f"{name}: {st['unparseable']} unparseable of {st['answers']} answers (counted wrong)"
        )
    return "\n".join(lines)
