"""Constraint checkers: each reports violations on any list of questions.

Every checker has the signature ``check(questions, annotations=None, organs=None) ->
list[Violation]``; ``annotations`` maps path_id -> :class:`Annotation` and ``organs`` maps
organ name -> :class:`Organ` (checkers that need them and do not get them, or meet a
question without the provenance they read in ``Question.extra``, skip it). Per-question
checkers report the question's id; dataset checkers report the id of the first question
of the offending group (or ``""``) and name the group in the message.

Text-only checks (any question): ``symmetry`` (no option is the hub or the outlier of the
option set under bag-of-words edit distance), ``distinctive_tokens`` (no word only the key
carries; the key is not the one option without words of its own), ``length_parity``,
``rationale_letters``, ``distinct_options``. With provenance (``extra["claims"]``):
``correctness`` (the key true, every distractor false, every claim annotated on the path),
``visibility`` (every claimed feature visible at the scale named), ``plausibility`` (every
feature claimed present has P(feature | diagnosis) >= 0.02, where the diagnosis is the
option's own, else ``extra["diagnosis"]``, else any of the organ's; no exclusive pair claimed
together). Dataset checks: ``letter_balance`` (per split x type), ``marginal_balance``
(each option, and each option clause, is the key ~1/k of the times it appears, per type),
``complementary_sets`` (a set: one text, one option list, distinct keys, one split, one
organ), ``split_integrity`` (a patient, else slide, in one split only), and the information
budget of :mod:`curation.budget` (``premise_conflicts``, ``diagnosis_narrowing``,
``key_coupling``). Type definitions and the text gate (:mod:`curation.type_checks`):
``corroboration_no_diagnosis``, ``explanation_wording``, ``localization_compartments``,
``text_quality``.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from curation.annotations import Annotation
from curation.budget import BUDGET
from curation.options import DX, claim_truth, is_placement, placement_problem, word_bag
from curation.organs import Organ
from curation.records import Question, letters_named
from curation.type_checks import TYPE_CHECKS
from curation.violations import Annotations, Checker, Organs, Violation


def _dist(a: Counter[str], b: Counter[str]) -> int:
    return sum(((a - b) + (b - a)).values())


# ------------------------------------------------------------- per question, text
def check_symmetry(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """The key is neither the unique hub nor the unique outlier of its option set."""
    out = []
    for q in questions:
        bags = [word_bag(o) for o in q.options]
        k = len(bags)
        total = [sum(_dist(bags[i], bags[j]) for j in range(k) if j != i) for i in range(k)]
        key = q.key_index
        others = [t for i, t in enumerate(total) if i != key]
        if total[key] < min(others):
            out.append(
                Violation(
                    "symmetry",
                    q.id,
                    f"the key is the hub of its options (edit distance {total[key]} to the "
                    f"others vs >= {min(others)} for each distractor)",
                )
            )
        elif total[key] > max(others):
            out.append(
                Violation(
                    "symmetry",
                    q.id,
                    f"the key is the outlier of its options (edit distance {total[key]} vs "
                    f"<= {max(others)} for each distractor)",
                )
            )
    return out


def check_distinctive_tokens(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """No word only the key carries; the key is not the only option with no word of its own."""
    out = []
    for q in questions:
        sets = [set(word_bag(o)) for o in q.options]
        own = [
            s - set().union(*(t for j, t in enumerate(sets) if j != i)) for i, s in enumerate(sets)
        ]
        key = q.key_index
        if own[key] and not any(own[i] for i in range(len(own)) if i != key):
            out.append(
                Violation(
                    "distinctive_tokens",
                    q.id,
                    f"only the key carries word(s) of its own: {', '.join(sorted(own[key]))}",
                )
            )
        elif not own[key] and all(own[i] for i in range(len(own)) if i != key):
            out.append(
                Violation(
                    "distinctive_tokens",
                    q.id,
                    "every distractor carries a word of its own but the key does not "
                    "(the one-feature-swap signature)",
                )
            )
    return out


def check_length_parity(
    questions: Sequence[Question],
    annotations: Annotations = None,
    organs: Organs = None,
    tolerance: float = 0.25,
) -> list[Violation]:
    """Option lengths within ``tolerance`` of the longest, and the key not a unique extreme."""
    out = []
    for q in questions:
        lengths = [len(o) for o in q.options]
        spread = (max(lengths) - min(lengths)) / max(lengths)
        if spread > tolerance:
            out.append(
                Violation(
                    "length_parity",
                    q.id,
                    f"option lengths {lengths} differ by {spread:.0%} (> {tolerance:.0%})",
                )
            )
    return out


def check_rationale_letters(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """Rationales never name an option letter."""
    out = []
    for q in questions:
        named = letters_named(q.rationale)
        if named:
            out.append(
                Violation(
                    "rationale_letters",
                    q.id,
                    f"rationale names letter(s) {', '.join(sorted(named))}; letters move when "
                    "options are permuted",
                )
            )
    return out


def check_distinct_options(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """No two options equal up to case and spacing."""
    out = []
    for q in questions:
        norm = [" ".join(o.lower().split()) for o in q.options]
        if len(set(norm)) != len(norm):
            out.append(Violation("distinct_options", q.id, "two options are the same text"))
    return out


# -------------------------------------------------------- per question, provenance
def _claims(q: Question) -> list[list[list]] | None:
    claims = q.extra.get("claims") if q.extra else None
    if not isinstance(claims, list) or len(claims) != len(q.options):
        return None
    return claims


def check_correctness(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """On the question's path: premise and key true, every distractor false."""
    out = []
    if not annotations:
        return out
    for q in questions:
        claims = _claims(q)
        ann = annotations.get(q.path_id)
        if claims is None or ann is None:
            continue
        for c in q.extra.get("premise", []) or []:
            t = claim_truth(ann, c)
            if t is not True:
                out.append(
                    Violation(
                        "correctness",
                        q.id,
                        f"premise {c} is {'false' if t is False else 'not annotated'} "
                        f"on path {q.path_id}",
                    )
                )
        for i, option_claims in enumerate(claims):
            truths = [claim_truth(ann, c) for c in option_claims]
            if i == q.key_index:
                bad = [c for c, t in zip(option_claims, truths) if t is not True]
                if bad:
                    out.append(
                        Violation(
                            "correctness",
                            q.id,
                            f"the key makes claim(s) {bad} that are false or not annotated "
                            f"on path {q.path_id}",
                        )
                    )
            elif not any(t is False for t in truths):
                undetermined = [c for c, t in zip(option_claims, truths) if t is None]
                why = (
                    f"rests on claim(s) {undetermined} that were not looked for"
                    if undetermined
                    else "is true"
                )
                out.append(
                    Violation(
                        "correctness",
                        q.id,
                        f"distractor {i + 1} ({q.options[i]!r}) {why} on path {q.path_id}; "
                        "a distractor must be false by an annotated finding or negative",
                    )
                )
    return out


def check_visibility(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """Every claimed feature is visible at the scale the claim names."""
    out = []
    if not organs:
        return out
    for q in questions:
        claims = _claims(q)
        organ = organs.get(q.organ)
        if claims is None or organ is None:
            continue
        for c in [c for oc in claims for c in oc] + list(q.extra.get("premise", []) or []):
            f, s = c[0], c[1]
            if f == DX:
                if s not in organ.diagnoses:
                    out.append(
                        Violation("visibility", q.id, f"diagnosis {s!r} not in {organ.name}")
                    )
                continue
            feat = organ.features.get(f)
            if feat is None:
                out.append(Violation("visibility", q.id, f"unknown feature {f!r} for {organ.name}"))
            elif is_placement(c):
                msg = placement_problem(organ, c)
                if msg:
                    out.append(Violation("visibility", q.id, msg))
            elif s not in feat.scales:
                out.append(
                    Violation(
                        "visibility",
                        q.id,
                        f"claims {f!r} at {s} power, where it is not visible "
                        f"(visible at {', '.join(feat.scales)})",
                    )
                )
    return out


def _prob(organ: Organ, feature: str, dx: str | None) -> float:
    if dx is None:
        base = organ.features[feature].prevalence
        return max([base] + [d.features.get(feature, base) for d in organ.diagnoses.values()])
    return organ.probability(feature, dx)


def option_problems(
    organ: Organ, claims: Sequence[Sequence], dx: str | None, pmin: float = 0.02
) -> list[str]:
    """Why one option's claims are implausible under ``dx`` (None: any of the organ's)."""
    dx = next((c[1] for c in claims if c[0] == DX and c[2]), dx)
    problems = []
    present: dict[str, set[str]] = defaultdict(set)
    for f, s, p in claims:
        if f == DX or not p or f not in organ.features:
            continue
        present[s].add(f)
        prob = _prob(organ, f, dx)
        if prob < pmin:
            problems.append(f"claims {f!r} with P(feature | {dx}) = {prob:.3f} < {pmin}")
    for s, feats in present.items():
        for a, b in organ.exclusive:
            if a in feats and b in feats:
                problems.append(f"claims exclusive features {a!r} and {b!r} together at {s} power")
    return problems


def check_plausibility(
    questions: Sequence[Question],
    annotations: Annotations = None,
    organs: Organs = None,
    pmin: float = 0.02,
) -> list[Violation]:
    """Features claimed present are plausible under the option's diagnosis; no exclusive pair."""
    out = []
    if not organs:
        return out
    for q in questions:
        claims = _claims(q)
        organ = organs.get(q.organ)
        if claims is None or organ is None:
            continue
        base_dx = q.extra.get("diagnosis")
        for i, oc in enumerate(claims):
            for msg in option_problems(organ, oc, base_dx, pmin):
                out.append(Violation("plausibility", q.id, f"option {i + 1} {msg}"))
    return out


# ------------------------------------------------------------------ dataset level
def _binomial_ok(hits: int, n: int, p: float, z: float = 3.0) -> bool:
    if n == 0:
        return True
    sd = math.sqrt(p * (1 - p) / n)
    return abs(hits / n - p) <= max(z * sd, 0.5 / n)


def check_letter_balance(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """Within each split x type, each letter is the key ~1/k of the time (3 sd)."""
    groups: dict[tuple[str, str, int], list[Question]] = defaultdict(list)
    for q in questions:
        groups[(q.split, q.question_type, len(q.options))].append(q)
    out = []
    for (split, qtype, k), qs in sorted(groups.items()):
        counts = Counter(q.answer for q in qs)
        for i in range(k):
            letter = "ABCDEFGHIJ"[i]
            if not _binomial_ok(counts.get(letter, 0), len(qs), 1 / k):
                out.append(
                    Violation(
                        "letter_balance",
                        qs[0].id,
                        f"split {split or '-'} x {qtype}: letter {letter} is the key "
                        f"{counts.get(letter, 0)} of {len(qs)} times (expected ~{len(qs) / k:.0f})",
                    )
                )
    return out


def _clauses(option: str) -> list[str]:
    return [c.strip().lower() for c in re.split(r"[;,]| and ", option) if c.strip()]


def check_marginal_balance(
    questions: Sequence[Question],
    annotations: Annotations = None,
    organs: Organs = None,
    min_count: int = 8,
) -> list[Violation]:
    """Per type, each option text and each option clause is the key ~1/k of its appearances."""
    out = []
    by_type: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_type[q.question_type].append(q)
    for qtype, qs in sorted(by_type.items()):
        for unit, split_fn in (("option", lambda o: [o.lower()]), ("clause", _clauses)):
            seen: Counter[str] = Counter()
            keyed: Counter[str] = Counter()
            first: dict[str, str] = {}
            expected: dict[str, float] = defaultdict(float)
            for q in qs:
                k = len(q.options)
                for i, o in enumerate(q.options):
                    for part in set(split_fn(o)):
                        seen[part] += 1
                        expected[part] += 1 / k
                        first.setdefault(part, q.id)
                        if i == q.key_index:
                            keyed[part] += 1
            for part, n in seen.items():
                if n < min_count:
                    continue
                p = expected[part] / n
                if not _binomial_ok(keyed[part], n, p):
                    out.append(
                        Violation(
                            "marginal_balance",
                            first[part],
                            f"{qtype}: {unit} {part!r} is the key {keyed[part]} of {n} times "
                            f"(expected ~{p * n:.1f})",
                        )
                    )
    return out


def check_complementary_sets(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """Each set: same question and options, k questions with distinct keys, one split/organ."""
    sets: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        if q.set_id:
            sets[q.set_id].append(q)
    out = []
    for sid, qs in sorted(sets.items()):
        q0 = qs[0]
        k = len(q0.options)
        problems = []
        if len({(q.question, tuple(q.options)) for q in qs}) != 1:
            problems.append("members differ in question text or options")
        if len(qs) != k:
            problems.append(f"has {len(qs)} member(s), expected {k} (one per option)")
        if len({q.answer for q in qs}) != len(qs):
            problems.append("two members share a key")
        if len({q.split for q in qs}) != 1:
            problems.append(f"straddles splits {sorted({q.split for q in qs})}")
        if len({q.organ for q in qs}) != 1:
            problems.append("mixes organs")
        if len({q.path_id for q in qs}) != len(qs):
            problems.append("repeats a zoom path")
        for p in problems:
            out.append(Violation("complementary_sets", q0.id, f"set {sid} {p}"))
    return out


def check_split_integrity(
    questions: Sequence[Question], annotations: Annotations = None, organs: Organs = None
) -> list[Violation]:
    """Every patient (else slide) lies in one split only."""
    splits: dict[str, set[str]] = defaultdict(set)
    first: dict[str, str] = {}
    for q in questions:
        splits[q.group].add(q.split)
        first.setdefault(q.group, q.id)
    return [
        Violation(
            "split_integrity",
            first[g],
            f"patient/slide {g!r} appears in splits {sorted(s)}; a group must stay in one split",
        )
        for g, s in sorted(splits.items())
        if len(s) > 1
    ]


PER_QUESTION: dict[str, Checker] = {
    "symmetry": check_symmetry,
    "distinctive_tokens": check_distinctive_tokens,
    "length_parity": check_length_parity,
    "rationale_letters": check_rationale_letters,
    "distinct_options": check_distinct_options,
    "correctness": check_correctness,
    "visibility": check_visibility,
    "plausibility": check_plausibility,
    **TYPE_CHECKS,
}
DATASET: dict[str, Checker] = {
    "letter_balance": check_letter_balance,
    "marginal_balance": check_marginal_balance,
    "complementary_sets": check_complementary_sets,
    "split_integrity": check_split_integrity,
    **BUDGET,
}
CONSTRAINTS: dict[str, Checker] = {**PER_QUESTION, **DATASET}
"""Every checker by name."""


def check_all(
    questions: Sequence[Question],
    annotations: Annotations | Sequence[Annotation] = None,
    organs: Organs = None,
    only: Sequence[str] | None = None,
) -> list[Violation]:
    """Run every checker (or those named in ``only``); annotations may be a list."""
    if annotations is not None and not isinstance(annotations, Mapping):
        annotations = {a.path_id: a for a in annotations}
    names = list(only) if only is not None else list(CONSTRAINTS)
    unknown = [n for n in names if n not in CONSTRAINTS]
    if unknown:
        from curation.errors import ConfigError

        raise ConfigError(f"unknown constraint(s) {unknown}; known: {', '.join(CONSTRAINTS)}")
    out: list[Violation] = []
    for n in names:
        out.extend(CONSTRAINTS[n](questions, annotations, organs))
    return out


def summarize(violations: Sequence[Violation]) -> dict[str, int]:
    """Count of violations per constraint."""
    return dict(sorted(Counter(v.constraint for v in violations).items()))
