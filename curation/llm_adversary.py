"""LLM adversaries: chat models asked the question (or the options alone) without images.

Any OpenAI-compatible endpoint through :mod:`curation.llm` (cached, retried, concurrent),
``samples`` answers per question (sample index is part of the cache key, so a rerun costs
nothing). Answer extraction is deterministic (:func:`parse_letter`); an unparseable answer
is counted as wrong and reported, never replaced by a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from curation.adversary_base import Adversary, _check_questions
from curation.errors import ConfigError
from curation.records import LETTERS, Question

FLAG_RULES = ("any", "majority")

SYSTEM = (
    "You answer multiple-choice questions about pathology slides. The images are not "
    "available to you; choose the most likely option anyway. Reply with the letter only."
)

_TAGGED = re.compile(r"<answer>\s*\(?\s*([A-J])\s*\)?\s*</answer>", re.I)
_KEYWORD = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?\s*([A-J])\b\)?", re.I)
_BARE = re.compile(r"^\s*\(?\**([A-J])\**\)?\s*[.):]?\s*$")
_LEADING = re.compile(r"^\s*\(?\**([A-J])\**[.):]\s")


def parse_letter(text: str, n_options: int) -> int | None:
    """Index of the option a reply names, or None when it names none (or an invalid one).

    Tried in order: ``<answer>X</answer>``; "answer/option/choice (is) X"; a reply that is
    just the letter ("B", "(B)", "B."); a reply starting "B." or "B)".
    """
    text = text or ""
    for pattern in (_TAGGED, _KEYWORD, _BARE, _LEADING):
        m = pattern.search(text)
        if m:
            idx = LETTERS.index(m.group(1).upper())
            return idx if idx < n_options else None
    return None


def build_messages(q: Question, choices_only: bool = False) -> list[dict[str, str]]:
    """The chat messages asking ``q`` (without its question text when ``choices_only``)."""
    opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(q.options))
    letters = f"{LETTERS[0]}-{LETTERS[len(q.options) - 1]}"
    if choices_only:
        user = (
            "These are the options of a multiple-choice question about pathology images; "
            "the question itself is hidden. Which option is most likely the correct answer?"
            f"\n{opts}\nAnswer with one letter ({letters})."
        )
    else:
        user = f"Question: {q.question}\nOptions:\n{opts}\nAnswer with one letter ({letters})."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class LLMAdversary(Adversary):
    """A chat model as a zero-shot adversary; option score = number of samples choosing it.

    ``client``: a :class:`curation.llm.LLMClient`. ``samples``: answers per question.
    ``flag_rule``: "any" (a question is answered when at least one sample picks the key)
    or "majority" (more than half do). Questions with no parseable sample score NaN
    (wrong, never a guess). After :meth:`score`, ``stats_`` holds the counts.
    """

    learned = False

    def __init__(
        self,
        client: Any,
        samples: int = 1,
        choices_only: bool = False,
        flag_rule: str = "majority",
        name: str | None = None,
    ) -> None:
        if not (isinstance(samples, int) and samples >= 1):
            raise ConfigError(f"LLM adversary: samples={samples!r}; use an integer >= 1")
        if flag_rule not in FLAG_RULES:
            raise ConfigError(f"LLM adversary: flag_rule={flag_rule!r}; use 'any' or 'majority'")
        if not hasattr(client, "chat_many"):
            raise ConfigError("LLM adversary: client must be a curation.llm.LLMClient")
        self.client = client
        self.samples = samples
        self.choices_only = choices_only
        self.flag_rule = flag_rule
        model = getattr(getattr(client, "config", None), "model", "model")
        self.name = name or f"llm{'-choices' if choices_only else ''}:{model}"
        self.stats_: dict[str, Any] = {}

    def clone(self) -> LLMAdversary:
        return self  # stateless apart from stats; shares the client and its cache

    def score(self, questions: Sequence[Question]) -> list[np.ndarray]:
        _check_questions(questions, f"{self.name}.score")
        votes = [np.zeros(len(q.options)) for q in questions]
        parsed = np.zeros(len(questions), dtype=int)
        msgs = [build_messages(q, self.choices_only) for q in questions]
        unparseable = 0
        examples: list[str] = []
        for s in range(self.samples):
            replies = self.client.chat_many(msgs, sample=s, desc=f"{self.name} sample {s + 1}")
            for i, (q, reply) in enumerate(zip(questions, replies)):
                idx = parse_letter(reply, len(q.options))
                if idx is None:
                    unparseable += 1
                    if len(examples) < 3:
                        examples.append(reply[:120])
                else:
                    votes[i][idx] += 1
                    parsed[i] += 1
        self.stats_ = {
            "answers": len(questions) * self.samples,
            "unparseable": unparseable,
            "unparseable_examples": examples,
            "samples": self.samples,
            "choices_only": self.choices_only,
            "flag_rule": self.flag_rule,
            "usage": self.client.usage.as_dict() if hasattr(self.client, "usage") else {},
        }
        return [v if n else np.full(len(v), np.nan) for v, n in zip(votes, parsed)]

    def flags(self, questions: Sequence[Question], scores: Sequence[np.ndarray]) -> np.ndarray:
        """Per question: answered under the flag rule (from the vote counts of :meth:`score`)."""
        out = np.zeros(len(questions), dtype=bool)
        for i, (q, s) in enumerate(zip(questions, scores)):
            right = np.nan_to_num(s, nan=0.0)[q.key_index]
            out[i] = right >= 1 if self.flag_rule == "any" else right > self.samples / 2
        return out


def llm_adversaries(
    specs: Sequence[str],
    samples: int = 1,
    flag_rule: str = "majority",
    cache_dir: Any = None,
    variants: Sequence[str] = ("full", "choices"),
) -> list[LLMAdversary]:
    """Adversaries from ``"base_url=...,model=..."`` specs: one per model and variant."""
    from curation.llm import LLMClient, LLMConfig

    bad = [v for v in variants if v not in ("full", "choices")]
    if bad or not variants:
        raise ConfigError(f"LLM variants {list(variants)!r}; use 'full' and/or 'choices'")
    out: list[LLMAdversary] = []
    for spec in specs:
        client = LLMClient(LLMConfig.parse(spec), cache_dir=cache_dir)
        for v in variants:
            out.append(LLMAdversary(client, samples, v == "choices", flag_rule))
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"two --llm endpoints serve the same model name: {names}")
    return out
