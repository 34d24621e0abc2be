"""Text-only adversaries, cross-fitting, AFLite and the LLM adversary (real loopback server)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from curation.adversaries import (
    BagOfWordsOptions,
    Centrality,
    EmbeddingClassifier,
    Length,
    PositionPrior,
    answered,
    credit,
    cross_fit_scores,
    default_battery,
    group_folds,
    make_adversaries,
)
from curation.aflite import AFLite
from curation.errors import ConfigError
from curation.llm import LLMClient, LLMConfig
from curation.llm_adversary import LLMAdversary, parse_letter
from curation.records import LETTERS, Question
from tests import mcq_factory as F
from tests.openai_server import Fault, OpenAIServer


def _acc(adv, qs, **kw) -> float:
    scores = cross_fit_scores(adv, qs, **kw)
    return float(np.mean([credit(s, q.key_index) for s, q in zip(scores, qs)]))


def test_heuristics_find_planted_artifacts_and_nothing_in_a_square():
    release = F.release_style(200, 20)
    assert _acc(Centrality(), release) == 1.0
    assert _acc(Centrality(measure="tfidf"), release) == 1.0
    longest = F.longest_key(200, 20)
    assert _acc(Length(longest=True), longest) == 1.0
    assert _acc(Length(longest=False), longest) == 0.0
    square = F.symmetric_square(400, 40)
    for adv in default_battery(include_embeddings=False):
        assert abs(_acc(adv, square) - 0.25) < 0.07, adv.name


def test_learned_adversaries_are_cross_fitted_by_group():
    # each slide has its own code word that is always in the key: learnable only in-sample
    qs = []
    for q in F.symmetric_square(300, 30, seed=4):
        code = hashlib.sha256(q.slide_id.encode()).hexdigest()[:6]
        opts = list(q.options)
        opts = [o + f" zq{code}{'k' if i == q.key_index else i}" for i, o in enumerate(opts)]
        qs.append(Question(**{**q.to_dict(), "options": opts, "id": ""}))
    adv = BagOfWordsOptions()
    in_sample = adv.clone().fit(qs).score(qs)
    assert np.mean([credit(s, q.key_index) for s, q in zip(in_sample, qs)]) > 0.85
    assert _acc(adv, qs) < 0.35  # never scored by a model that saw the slide


def test_learned_options_model_finds_relational_artifact():
    assert _acc(BagOfWordsOptions(), F.release_style(200, 20)) > 0.95


def test_group_folds_keep_patients_together_and_are_seeded():
    qs = F.release_style(120, 12)
    folds = group_folds(qs, 5, seed=3)
    by_group: dict[str, set[int]] = {}
    for q, f in zip(qs, folds):
        by_group.setdefault(q.group, set()).add(int(f))
    assert all(len(v) == 1 for v in by_group.values())
    assert len(set(folds.tolist())) == 5
    assert (group_folds(qs, 5, seed=3) == folds).all()
    one_slide = [
        Question(**{**q.to_dict(), "slide_id": "s", "patient_id": "p", "id": ""}) for q in qs[:20]
    ]
    assert all((s == 0).all() for s in cross_fit_scores(PositionPrior(), one_slide))


def test_credit_ties_and_abstentions():
    assert credit(np.array([1.0, 1.0, 0.0, 0.0]), 0) == 0.5
    assert credit(np.array([np.nan] * 4), 0) == 0.0  # no answer is wrong, never a guess
    assert not answered(np.array([1.0, 1.0, 0.0, 0.0]), 0)
    assert answered(np.array([0.0, 2.0, 1.0, np.nan]), 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Centrality(measure="cosine"), "use 'jaccard' or 'tfidf'"),
        (lambda: BagOfWordsOptions(C=0), "positive regularisation"),
        (lambda: AFLite(tau=1.5), "threshold in (0, 1]"),
        (lambda: AFLite(train_fraction=1.0), "strictly between 0 and 1"),
        (lambda: make_adversaries(["centrality", "magic"]), "unknown adversary 'magic'"),
        (lambda: group_folds([], 1), "integer >= 2"),
        (lambda: PositionPrior().score(F.release_style(2, 1)), "call fit() before score()"),
    ],
)
def test_parameters_are_validated_with_a_fix(make, message):
    with pytest.raises(
        ConfigError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("[", r"\[")
        .replace("]", r"\]"),
    ):
        make()


def test_embedding_classifier_embeds_each_distinct_text_once(embedder):
    qs = F.release_style(100, 10)
    adv = EmbeddingClassifier(embedder=embedder)
    assert _acc(adv, qs) > 0.9
    n_cached = len(embedder._memory)
    _acc(adv, qs)
    assert len(embedder._memory) == n_cached


def test_aflite_flags_the_artifact_not_a_square():
    release = AFLite(features="bow", n_models=32).predictability(F.release_style(200, 20))
    assert release.flagged.mean() > 0.95 and release.accuracy > 0.95
    sq = F.symmetric_square(400, 40)
    a = AFLite(features="bow", n_models=32, seed=1).predictability(sq)
    b = AFLite(features="bow", n_models=32, seed=1).predictability(sq)
    assert abs(a.accuracy - 0.25) < 0.06
    assert np.array_equal(a.predictability, b.predictability, equal_nan=True)
    assert a.heldout.min() > 0
    assert np.nanmax(a.predictability) <= 1.0


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("(C)", 2),
        ("D.", 3),
        ("The answer is A.", 0),
        ("<answer>C</answer>", 2),
        ("Answer: (B) because ...", 1),
        ("A) epidermal hyperplasia", 0),
        ("I cannot tell without the images.", None),
        ("E", None),
        ("", None),
    ],
)
def test_parse_letter_is_deterministic(reply, expected):
    assert parse_letter(reply, 4) == expected


def centrality_responder(messages, model):
    """Answers the most central option (the release's artifact), or nothing for some."""
    text = messages[-1]["content"]
    opts = [line[3:] for line in text.splitlines() if line[:3] in ("A. ", "B. ", "C. ", "D. ")]
    if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 7 == 0:
        return "I cannot tell without seeing the slides."
    q = Question(question="q", options=opts, answer="A", question_type="diagnosis")
    return f"The answer is {LETTERS[int(np.argmax(Centrality().score([q])[0]))]}."


def test_llm_adversary_end_to_end_with_faults_and_cache(tmp_path):
    qs = F.release_style(30, 10)
    with OpenAIServer(responder=centrality_responder) as server:
        server.faults.extend([Fault.rate_limit(retry_after=0), Fault.malformed(), Fault.slow(2)])
        cfg = LLMConfig.parse(
            f"base_url={server.base_url},model=m1,timeout=0.5,backoff=0,max_retries=4"
        )
        adv = LLMAdversary(LLMClient(cfg, cache_dir=tmp_path), samples=2, flag_rule="any")
        scores = cross_fit_scores(adv, qs)
        n_http = server.n_chat
        # 30 questions x 2 samples, plus 3 faulty answers retried
        assert n_http == 63
        stats = adv.stats_
        assert stats["answers"] == 60 and stats["unparseable"] > 0
        flags = adv.flags(qs, scores)
        acc = np.mean([credit(s, q.key_index) for s, q in zip(scores, qs)])
        assert acc > 0.6 and flags.sum() == sum(
            1 for s in scores if np.isfinite(s).any() and not np.isnan(s).all()
        ) - sum(1 for s, q in zip(scores, qs) if np.isfinite(s).any() and s[q.key_index] == 0)
        # rerun: a new client on the same cache makes no HTTP call
        adv2 = LLMAdversary(LLMClient(cfg, cache_dir=tmp_path), samples=2, flag_rule="any")
        scores2 = adv2.score(qs)
        assert server.n_chat == n_http
        assert adv2.client.usage.calls == 0 and adv2.client.usage.cache_hits == 60
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(scores, scores2))


def test_clause_embeddings_embed_fewer_texts(embedder):
    qs = F.release_style(60, 10, seed=7)
    adv = EmbeddingClassifier(embedder=embedder, unit="clause")
    assert _acc(adv, qs) > 0.8
    with pytest.raises(ConfigError, match="use 'option' or 'clause'"):
        EmbeddingClassifier(unit="sentence")
