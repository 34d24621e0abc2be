"""Option order shuffled per GRPO rollout, a guard against position shortcuts.

trl's GRPO sampler asks the training dataset for each question ``num_generations`` times
in a row; :class:`RolloutShuffle`, installed with ``Dataset.with_transform``, gives every
such access its own option order and rewrites the prompt, the ``options`` column and the
``answer`` letter to match, so that the rewards score the letter the model saw. A model
that learns "the key is usually B" gains nothing. The order comes from one seeded
generator, so the same seed and the same access sequence give the same orders.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from baselines.prompts import conversation
from curation.errors import ValidationError
from curation.records import LETTERS


def shuffle_options(
    options: Sequence[str], answer: str, rng: random.Random
) -> tuple[list[str], str]:
    """``options`` in a random order and the key's letter in that order."""
    key = str(answer).strip().upper()
    if key not in LETTERS[: len(options)]:
        raise ValidationError(
            f"answer {answer!r} is not one of the letters of {len(options)} options"
        )
    order = list(range(len(options)))
    rng.shuffle(order)
    return [options[i] for i in order], LETTERS[order.index(LETTERS.index(key))]


class RolloutShuffle:
    """A batched ``datasets`` transform: a fresh option order per row access.

    Reads the columns ``question``, ``options``, ``answer``, ``images`` and
    ``magnifications`` and returns trl's ``prompt``, ``images``, ``answer`` and
    ``options`` (``prompt`` rebuilt by :func:`baselines.prompts.conversation`), with
    ``question`` and ``magnifications`` passed through.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        keys = ("prompt", "images", "answer", "options", "question", "magnifications")
        out: dict[str, list[Any]] = {k: [] for k in keys}
        for i, question in enumerate(batch["question"]):
            options, answer = shuffle_options(batch["options"][i], batch["answer"][i], self.rng)
            images = list(batch["images"][i] or [])
            example = {
                "question": question,
                "options": options,
                "images": images,
                "magnifications": list(batch["magnifications"][i] or []),
            }
            example.update(prompt=conversation(example), answer=answer)
            for k in keys:
                out[k].append(example[k])
        return out
