"""Per-scale evidence in the organ's vocabulary: raw annotations -> canonical feature ids.

A raw annotation (COMMON.md #2) may name its findings and negatives in free text, or give
one caption per magnification. Each term is mapped to a feature id of its organ:

1. exactly: the feature id, its phrase or a synonym, ignoring case, spacing and
   punctuation;
2. else by meaning: the nearest vocabulary entry (id, phrase or synonym) by sentence
   embedding (all-MiniLM-L6-v2, offline), when the cosine similarity reaches
   ``threshold`` (default :data:`DEFAULT_THRESHOLD`).

Only features visible at the term's scale are kept. What cannot be mapped is reported
(file, line, scale, text, best candidate and its similarity) and left out, never guessed;
so is a term whose feature is not visible at the scale it was given for (the nearest
feature is reported, never swapped for a visible runner-up).

Captions are first decomposed by an LLM (:mod:`curation.llm`) into
``{"present": [...], "absent": [...]}`` using the organ's vocabulary for that scale; an
answer that is not such JSON is reported per line and scale; the terms of the others go
through the same mapping.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curation.annotations import Annotation, parse_annotation
from curation.errors import ConfigError, ValidationError
from curation.io import read_jsonl
from curation.organs import SCALES, Organ, get_organ

DEFAULT_THRESHOLD = 0.65
"""Cosine similarity needed to map a term by meaning.

Chosen on the skin vocabulary: of 30 paraphrases of real terms, 27 map to the right
feature at 0.65 and none to a wrong one; none of 18 unrelated or off-vocabulary phrases
(artefacts, other lesions) maps; at 0.60 one paraphrase maps to the wrong feature. Checked
on held-out colon and lung phrases: 14 of 20 paraphrases right, 1 wrong (plus one stopped
by the margin), 1 of 16 off-vocabulary phrases mapped ("perineural invasion" -> invasion of
the submucosa). Every mapping by meaning is listed in the report for review.
"""

DEFAULT_MARGIN = 0.05
"""Lead the nearest feature needs over the next one; closer calls are reported ambiguous.

On held-out colon and lung paraphrases it turned one wrong mapping ("fibrotic alveolar
walls" -> preserved alveoli, lead 0.014) into a report, and no right one (smallest lead of a
right mapping above the threshold: 0.067).
"""

SCALE_NAMES = {
    "low": "low power (architecture, about 2.5-5x)",
    "mid": "medium power (about 10x)",
    "high": "high power (cytology, about 20-40x)",
}

OrganSource = Callable[[str], Organ] | Mapping[str, Organ]
_PUNCT = re.compile(r"[^0-9a-z]+")


def norm_text(text: str) -> str:
    """Case-, space- and punctuation-insensitive key (``"Pseudo-horn  cysts"`` ->
    ``"pseudo horn cysts"``)."""
    return _PUNCT.sub(" ", text.lower()).strip()


@dataclass
class _Vocab:
    """One organ's lookup tables (exact keys and embedded entries)."""

    organ: Organ
    exact: dict[str, set[str]] = field(default_factory=dict)
    entries: list[tuple[str, str]] = field(default_factory=list)  # (feature id, text)
    matrix: np.ndarray | None = None

    @classmethod
    def build(cls, organ: Organ) -> _Vocab:
        vocab = cls(organ)
        for f in organ.features.values():
            texts = [f.id.replace("_", " "), f.phrase, *f.synonyms]
            for text in dict.fromkeys(texts):  # unique, order kept
                vocab.exact.setdefault(norm_text(text), set()).add(f.id)
                vocab.entries.append((f.id, text))
        vocab.exact.pop("", None)
        return vocab


@dataclass
class _Term:
    """One free-text term awaiting a feature id."""

    index: int  # annotation index
    scale: str
    kind: str  # "findings" or "negatives"
    text: str
    origin: str  # "text" or "caption"


def _rank_features(vocab: _Vocab, sims: np.ndarray) -> list[tuple[str, str, float]]:
    """Features by their best entry's similarity: ``[(id, entry text, similarity)]``."""
    best: dict[str, tuple[str, float]] = {}
    for (fid, text), sim in zip(vocab.entries, sims.tolist()):
        if fid not in best or sim > best[fid][1]:
            best[fid] = (text, sim)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][1])
    return [(fid, text, round(sim, 4)) for fid, (text, sim) in ranked]


def caption_messages(organ: Organ, scale: str, caption: str) -> list[dict[str, str]]:
    """The chat that asks an LLM to decompose one caption into vocabulary terms."""
    lines = []
    for fid in organ.visible_at(scale):
        f = organ.features[fid]
        syn = f"; also called {', '.join(f.synonyms)}" if f.synonyms else ""
        lines.append(f"- {f.phrase}{syn}")
    vocabulary = "\n".join(lines)
    system = (
        "You decompose pathology captions into atomic findings from a fixed vocabulary. "
        "Answer with one JSON object and nothing else."
    )
    user = (
        f"Organ: {organ.display_name}. Field of view: {SCALE_NAMES.get(scale, scale)}.\n"
        f"Vocabulary of features visible at this magnification:\n{vocabulary}\n\n"
        f"Caption:\n{caption.strip()}\n\n"
        'Return {"present": [...], "absent": [...]}: under "present" the features the '
        'caption says are seen, under "absent" those it explicitly says are not seen '
        '(e.g. "no mitoses"). Use the vocabulary phrases exactly; leave out anything the '
        "vocabulary does not name; use empty lists when nothing applies."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


def parse_caption_answer(answer: str) -> tuple[list[str], list[str]]:
    """``(present, absent)`` from an LLM answer; ValueError when it is not that JSON.

    Accepts a bare object, one inside a Markdown code fence, or one surrounded by prose.
    """
    text = answer.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("no JSON object in the answer") from None
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"present", "absent"}
    if unknown or not obj:
        raise ValueError(f"expected keys 'present' and 'absent', got {sorted(obj)}")
    out: list[list[str]] = []
    for key in ("present", "absent"):
        items = obj.get(key, [])
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"'{key}' must be a list of strings")
        out.append([i.strip() for i in items if i.strip()])
    return out[0], out[1]


def _organ_getter(organs: OrganSource | None) -> Callable[[str], Organ]:
    if organs is None:
        return get_organ
    if isinstance(organs, Mapping):

        def lookup(name: str) -> Organ:
            if name not in organs:
                raise ValidationError(f"unknown organ {name!r}; known: {', '.join(organs)}")
            return organs[name]

        return lookup
    return organs


def _load_raw(
    raw: str | os.PathLike[str] | Sequence[dict[str, Any]],
) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    if isinstance(raw, (str, os.PathLike)):
        return str(raw), list(read_jsonl(raw))
    return "<input>", [(i + 1, obj) for i, obj in enumerate(raw)]


def normalise_annotations(
    raw: str | os.PathLike[str] | Sequence[dict[str, Any]],
    organs: OrganSource | None = None,
    embedder: Any = None,
    llm: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turn raw annotations into canonical ones; return ``(annotations, report)``.

    ``raw``: a JSONL path or a list of dicts. ``organs``: ``get_organ``-like callable or
    a name -> Organ mapping (default: the registry). ``embedder``: a
    :class:`curation.embeddings.Embedder` (created on first need). ``llm``: a
    :class:`curation.llm.LLMClient`, needed only when captions are given. Structural
    problems (missing fields, unknown organ) raise :class:`ValidationError` listing each
    with file and line; unmappable terms go to the report. A match by meaning needs
    similarity >= ``threshold`` and a lead of ``margin`` over the next-nearest feature.
    """
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold={threshold} must be in (0, 1]; the default is 0.65")
    if not 0.0 <= margin < 1.0:
        raise ConfigError(f"margin={margin} must be in [0, 1); the default is 0.05")
    source, rows = _load_raw(raw)
    get = _organ_getter(organs)
    anns: list[Annotation] = []
    lines: list[int] = []
    organ_of: list[Organ] = []
    vocabs: dict[str, _Vocab] = {}
    problems: list[str] = []
    for lineno, obj in rows:
        where = f"{source}:{lineno}"
        try:
            ann = parse_annotation(obj, where)
            organ = get(ann.organ)
        except ValidationError as exc:
            problems.extend(
                f"{where}: {p}" if not p.startswith(where) else p for p in str(exc).splitlines()
            )
            continue
        anns.append(ann)
        lines.append(lineno)
        organ_of.append(organ)
        if organ.name not in vocabs:
            vocabs[organ.name] = _Vocab.build(organ)
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in raw annotations:\n  " + "\n  ".join(problems[:50])
        )

    report: dict[str, Any] = {
        "source": source,
        "n_annotations": len(anns),
        "threshold": threshold,
        "margin": margin,
        "counts": {},
        "by_embedding": [],
        "unmapped": [],
        "not_visible": [],
        "conflicts": [],
        "unparsable_llm_answers": [],
    }

    def loc(term: _Term) -> dict[str, Any]:
        return {
            "file": source,
            "line": lines[term.index],
            "path_id": anns[term.index].path_id,
            "scale": term.scale,
            "kind": term.kind,
            "origin": term.origin,
            "text": term.text,
        }

    terms: list[_Term] = []
    for i, ann in enumerate(anns):
        for kind, table in (("findings", ann.findings), ("negatives", ann.negatives)):
            for scale in SCALES:
                terms.extend(_Term(i, scale, kind, t, "text") for t in table.get(scale, []))
    caption_terms, n_captions = _caption_terms(anns, organ_of, lines, source, llm, report)
    terms.extend(caption_terms)

    # exact pass, then one batched embedding pass for the rest
    resolved: list[tuple[_Term, str, str, float | None]] = []  # term, fid, method, sim
    leftovers: list[_Term] = []
    for term in terms:
        vocab = vocabs[organ_of[term.index].name]
        ids = vocab.exact.get(norm_text(term.text))
        if not ids:
            leftovers.append(term)
        elif len(ids) > 1:
            report["unmapped"].append(
                {**loc(term), "reason": f"ambiguous: names {sorted(ids)}", "similarity": 1.0}
            )
        else:
            resolved.append((term, next(iter(ids)), "exact", None))
    if leftovers:
        if embedder is None:
            from curation.embeddings import Embedder

            embedder = Embedder()
        report["embedding_model"] = str(getattr(embedder, "model_path", "custom"))
        for vocab in vocabs.values():
            if vocab.matrix is None and any(
                organ_of[t.index].name == vocab.organ.name for t in leftovers
            ):
                vocab.matrix = embedder.encode([text for _, text in vocab.entries])
        vecs = embedder.encode([t.text for t in leftovers])
        for term, vec in zip(leftovers, vecs):
            vocab = vocabs[organ_of[term.index].name]
            assert vocab.matrix is not None
            sims = vocab.matrix @ vec
            ranked = _rank_features(vocab, sims)
            best, text, sim = ranked[0]
            runner = ranked[1] if len(ranked) > 1 else None
            if sim < threshold:
                report["unmapped"].append(
                    {**loc(term), "best_candidate": best, "best_phrase": text, "similarity": sim}
                )
                continue
            if runner is not None and sim - runner[2] < margin:
                report["unmapped"].append(
                    {
                        **loc(term),
                        "best_candidate": best,
                        "best_phrase": text,
                        "similarity": sim,
                        "runner_up": runner[0],
                        "runner_up_similarity": runner[2],
                        "reason": f"ambiguous: {best} and {runner[0]} within margin {margin:g}",
                    }
                )
                continue
            # the nearest feature wins even if not visible here: then it is reported below,
            # never replaced by a runner-up that happens to be visible
            resolved.append((term, best, "embedding", sim))
            if term.scale in vocab.organ.features[best].scales:
                report["by_embedding"].append(
                    {**loc(term), "feature": best, "matched": text, "similarity": sim}
                )

    # place every mapped id; report ids not visible at their scale
    counts = {"exact": 0, "embedding": 0}
    placed: list[dict[str, dict[str, list[str]]]] = [
        {"findings": {s: [] for s in SCALES}, "negatives": {s: [] for s in SCALES}} for _ in anns
    ]
    order = {id(t): n for n, t in enumerate(terms)}
    resolved.sort(key=lambda r: order[id(r[0])])  # ids in the order the terms came
    for term, fid, method, sim in resolved:
        feat = organ_of[term.index].features[fid]
        if term.scale not in feat.scales:
            report["not_visible"].append(
                {
                    **loc(term),
                    "feature": fid,
                    "method": method,
                    "similarity": sim,
                    "visible_at": list(feat.scales),
                }
            )
            continue
        counts[method] += 1
        bucket = placed[term.index][term.kind][term.scale]
        if fid not in bucket:
            bucket.append(fid)

    out: list[dict[str, Any]] = []
    for i, ann in enumerate(anns):
        findings, negatives = placed[i]["findings"], placed[i]["negatives"]
        _resolve_conflicts(organ_of[i], findings, negatives, source, lines[i], ann.path_id, report)
        canonical = Annotation(
            path_id=ann.path_id,
            slide_id=ann.slide_id,
            organ=ann.organ,
            patient_id=ann.patient_id,
            diagnosis=ann.diagnosis,
            centre=ann.centre,
            findings=findings,
            negatives=negatives,
            compartments=list(ann.compartments),
            locations={
                f: c for f, c in ann.locations.items() if any(f in v for v in findings.values())
            },
            slide_path=ann.slide_path,
            source=ann.source,
            extra=dict(ann.extra),
        )
        out.append(canonical.to_dict())

    report["counts"] = {
        "terms": len(terms),
        "exact": counts["exact"],
        "embedding": counts["embedding"],
        "unmapped": len(report["unmapped"]),
        "not_visible": len(report["not_visible"]),
        "conflicts": len(report["conflicts"]),
        "captions": n_captions,
        "unparsable_llm_answers": len(report["unparsable_llm_answers"]),
    }
    if llm is not None and hasattr(llm, "usage"):
        report["llm_usage"] = llm.usage.as_dict()
    return out, report


def _caption_terms(
    anns: Sequence[Annotation],
    organ_of: Sequence[Organ],
    lines: Sequence[int],
    source: str,
    llm: Any,
    report: dict[str, Any],
) -> tuple[list[_Term], int]:
    """Ask the LLM to decompose every caption; unparsable answers go to the report."""
    jobs = [
        (i, scale, text)
        for i, ann in enumerate(anns)
        for scale, text in ann.captions.items()
        if scale in SCALES and text.strip()
    ]
    if not jobs:
        return [], 0
    if llm is None:
        raise ConfigError(
            f"{source}: {len(jobs)} caption(s) need an LLM to be decomposed into findings; "
            "give one (--llm base_url=...,model=...)"
        )
    answers = llm.chat_many(
        [caption_messages(organ_of[i], scale, text) for i, scale, text in jobs],
        desc="decomposing captions",
    )
    terms: list[_Term] = []
    for (i, scale, _text), answer in zip(jobs, answers):
        try:
            present, absent = parse_caption_answer(answer)
        except ValueError as exc:
            shown = answer if len(answer) <= 300 else answer[:300] + "..."
            report["unparsable_llm_answers"].append(
                {
                    "file": source,
                    "line": lines[i],
                    "path_id": anns[i].path_id,
                    "scale": scale,
                    "error": str(exc),
                    "answer": shown,
                }
            )
            continue
        terms.extend(_Term(i, scale, "findings", t, "caption") for t in present)
        terms.extend(_Term(i, scale, "negatives", t, "caption") for t in absent)
    return terms, len(jobs)


def _resolve_conflicts(
    organ: Organ,
    findings: dict[str, list[str]],
    negatives: dict[str, list[str]],
    source: str,
    line: int,
    path_id: str,
    report: dict[str, Any],
) -> None:
    """Drop (and report) ids both present and absent, and present exclusive pairs."""
    for scale in SCALES:
        both = [f for f in findings[scale] if f in negatives[scale]]
        for fid in both:
            report["conflicts"].append(
                {
                    "file": source,
                    "line": line,
                    "path_id": path_id,
                    "scale": scale,
                    "features": [fid],
                    "reason": "both present and absent; dropped from both",
                }
            )
        present = [f for f in findings[scale] if f not in both]
        clash = {f for a, b in organ.exclusive if a in present and b in present for f in (a, b)}
        for a, b in organ.exclusive:
            if a in present and b in present:
                report["conflicts"].append(
                    {
                        "file": source,
                        "line": line,
                        "path_id": path_id,
                        "scale": scale,
                        "features": [a, b],
                        "reason": "cannot co-occur in one field (exclusive); dropped both",
                    }
                )
        findings[scale] = [f for f in present if f not in clash]
        negatives[scale] = [f for f in negatives[scale] if f not in both]


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write the normalisation report as indented JSON (atomically)."""
    from curation.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(report, indent=1, ensure_ascii=False) + "\n")
