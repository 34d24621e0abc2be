"""Reward functions for GRPO, in trl's signature ``f(completions, answer, **kwargs)``.

``completions`` are trl's completions: plain strings, or (conversational prompts) lists of
messages whose last one is the assistant's reply. ``answer`` is the dataset's key letter
per completion; ``options`` (the option texts), when the dataset carries it, bounds the
valid letters.

- :func:`accuracy_reward`: 1.0 when the last ``<answer>X</answer>`` names the key, else 0.0;
- :func:`format_reward`: 1.0 for exactly ``<think>...</think><answer>X</answer>``, else 0.0;
- :func:`shaped_reward`: a dense reward in [0, 1] (partial credit for each tag in place,
  a letter in the answer tag, the right letter, and a small share of answer-like
  characters) so that even a random model's completions differ in reward. Use it for
  smoke tests and warm starts: with only the two sparse rewards a random model scores 0
  everywhere, the group advantages are 0 and GRPO changes no weight, silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from baselines.answers import extract_answer
from curation.records import LETTERS

_FORMAT = re.compile(
    r"^\s*<think>(?:(?!</?think>|</?answer>).)+</think>\s*<answer>\s*([A-Z])\s*</answer>\s*$",
    re.DOTALL,
)
_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_ANSWERISH = set("ABCDEFGHIJ<>/answerthik")


def completion_text(completion: Any) -> str:
    """The reply text of one trl completion (a string, or a list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, str):
            return content
        return "".join(b.get("text") or "" for b in content if isinstance(b, dict))
    return ""


def _n_options(options: Sequence[Any] | None, i: int) -> int:
    if options is not None and i < len(options) and options[i] is not None:
        return len(options[i])
    return 4


def accuracy_reward(
    completions: Sequence[Any], answer: Sequence[str], options: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float]:  # fmt: skip
    """1.0 where the reply's ``<answer>X</answer>`` letter equals the key, else 0.0."""
    out = []
    for i, (comp, key) in enumerate(zip(completions, answer, strict=True)):
        text = completion_text(comp)
        if not _ANSWER_TAG.search(text):
            out.append(0.0)
            continue
        opts = list(options[i]) if options is not None else []
        letter = extract_answer(text, _n_options(options, i), opts)
        out.append(1.0 if letter is not None and letter == str(key).strip().upper() else 0.0)
    return out


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1.0 for a reply of the form ``<think>...</think><answer>X</answer>``, else 0.0."""
    return [1.0 if _FORMAT.match(completion_text(c)) else 0.0 for c in completions]


def shaped_reward(
    completions: Sequence[Any], answer: Sequence[str], options: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float]:  # fmt: skip
    """A dense reward in [0, 1]: tags present and in order, a valid letter, the key, and
    the share of answer-like characters (so random completions still differ)."""
    out = []
    for i, (comp, key) in enumerate(zip(completions, answer, strict=True)):
        text = completion_text(comp)
        score = 0.0
        pos = -1
        for tag in _TAGS:  # 0.1 per tag, another 0.05 when it follows the previous one
            at = text.find(tag)
            if at >= 0:
                score += 0.1 + (0.05 if at > pos else 0.0)
                pos = at
        tag = _ANSWER_TAG.findall(text)
        valid = set(LETTERS[: _n_options(options, i)])
        if tag and tag[-1][:1] in valid:
            score += 0.1
            if tag[-1][:1] == str(key).strip().upper():
                score += 0.2
        if text:
            score += 0.1 * sum(ch in _ANSWERISH for ch in text) / len(text)
        out.append(round(min(score, 1.0), 6))
    return out


REWARDS = {"accuracy": accuracy_reward, "format": format_reward, "shaped": shaped_reward}
"""Reward functions by name (the CLI's ``--rewards``)."""
