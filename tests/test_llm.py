"""curation.llm against a real loopback OpenAI-compatible server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from curation.errors import ConfigError, LLMError
from curation.llm import LLMClient, LLMConfig, cache_key
from tests.openai_server import Fault, OpenAIServer

SECRET = "sk-test-9f8e7d6c5b4a-SECRET"


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def make_client(server: OpenAIServer, cache: Path | None, **kw) -> tuple[LLMClient, list]:
    waits: list[float] = []
    cfg = LLMConfig(base_url=server.base_url, model="test-model", backoff=0.01, **kw)
    return LLMClient(cfg, cache_dir=cache, sleep=waits.append, seed=0), waits


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


# -- config ------------------------------------------------------------------------


def test_parse_spec_with_types_and_alias():
    cfg = LLMConfig.parse(
        "base_url=http://localhost:8000/v1, model=qwen2.5:7b,temperature=0.7,"
        "key_env=MY_KEY,concurrency=8,max_tokens=64"
    )
    assert cfg.base_url == "http://localhost:8000/v1"
    assert cfg.model == "qwen2.5:7b"
    assert cfg.temperature == 0.7 and cfg.concurrency == 8 and cfg.max_tokens == 64
    assert cfg.api_key_env == "MY_KEY"
    assert cfg.is_local


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("base_url=http://x/v1,model=m,colour=red", "unknown LLM setting 'colour'"),
        ("model=m", "lacks base_url"),
        ("base_url=http://x/v1", "lacks model"),
        ("base_url=http://x/v1,model=m,temperature=hot", "temperature='hot' is not a valid"),
        ("base_url=http://x/v1,model=m,concurrency=0", "concurrency=0 must be at least 1"),
        ("base_url=ftp://x,model=m", "not an http(s) URL"),
        ("base_url=http://x/v1,model", "'model' is not key=value"),
    ],
)
def test_parse_spec_errors_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LLMConfig.parse(spec)


def test_remote_endpoint_without_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = LLMConfig(
        base_url="https://api.example.invalid/v1", model="m", api_key_env="NO_SUCH_KEY_VAR"
    )
    with pytest.raises(ConfigError, match="set the environment variable NO_SUCH_KEY_VAR"):
        LLMClient(cfg).chat(user("hi"))


# -- faults then success -------------------------------------------------------------


def test_rate_limit_honours_retry_after_then_succeeds(server, tmp_path):
    server.faults.append(Fault.rate_limit(retry_after=3))
    client, waits = make_client(server, tmp_path)
    assert client.chat(user("hello")) == "echo: hello"
    assert server.n_chat == 2
    assert len(waits) == 1 and waits[0] >= 3.0  # Retry-After beats the 0.01 s backoff
    assert client.usage.retries == 1 and client.usage.calls == 2 and client.usage.failures == 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error(500),
        Fault.server_error(503),
        Fault.malformed(),
        Fault.no_choices(),
        Fault.empty_content(),
    ],
    ids=["500", "503", "malformed-json", "no-choices", "empty-content"],
)
def test_transient_fault_then_success(server, tmp_path, fault):
    server.faults.append(fault)
    client, waits = make_client(server, tmp_path)
    assert client.chat(user("x")) == "echo: x"
    assert server.n_chat == 2 and client.usage.retries == 1
    assert 0 < waits[0] <= 0.01  # exponential backoff with jitter, first step


def test_timeout_then_success(server, tmp_path):
    server.faults.append(Fault.slow(1.5))
    client, _ = make_client(server, tmp_path, timeout=0.3)
    start = time.monotonic()
    assert client.chat(user("slow")) == "echo: slow"
    assert time.monotonic() - start < 1.4  # the client gave up on the slow one
    assert client.usage.retries == 1 and server.n_chat == 2


def test_backoff_grows_exponentially(server, tmp_path):
    server.faults.extend([Fault.server_error()] * 4)
    client, waits = make_client(server, tmp_path)
    client.chat(user("x"))
    assert len(waits) == 4
    for i, w in enumerate(waits):  # base 0.01 * 2**i, jitter in [0.5, 1]
        assert 0.01 * 2**i * 0.5 <= w <= 0.01 * 2**i


# -- failures ------------------------------------------------------------------------


def test_endpoint_that_always_fails_raises_clear_error(server, tmp_path):
    server.always = Fault.malformed()
    client, waits = make_client(server, tmp_path, max_retries=2)
    with pytest.raises(LLMError) as info:
        client.chat(user("x"))
    msg = str(info.value)
    assert "'test-model'" in msg and "3 attempt(s)" in msg and "malformed response body" in msg
    assert "this is not json" in msg  # what came back, truncated
    assert server.n_chat == 3 and len(waits) == 2
    assert client.usage.failures == 1 and client.usage.retries == 2
    assert cache_files(tmp_path) == []


def test_no_choices_error_shows_what_came_back(server, tmp_path):
    server.always = Fault.no_choices()
    client, _ = make_client(server, tmp_path, max_retries=1)
    with pytest.raises(LLMError, match=r"without choices: .*chat\.completion"):
        client.chat(user("x"))


def test_client_error_is_not_retried(server, tmp_path):
    server.faults.append(Fault.status_code(404))
    client, waits = make_client(server, tmp_path)
    with pytest.raises(LLMError, match="refused the request: HTTP 404"):
        client.chat(user("x"))
    assert server.n_chat == 1 and waits == [] and client.usage.failures == 1


def test_failure_midway_keeps_every_answer_already_obtained(server, tmp_path):
    server.fault_for = lambda messages, model: (
        Fault.server_error() if messages[-1]["content"] == "poison" else None
    )
    items = [user(t) for t in ("a", "b", "c", "poison", "d", "e")]
    client, _ = make_client(server, tmp_path, max_retries=1, concurrency=1)
    with pytest.raises(LLMError, match="HTTP 500"):
        client.chat_many(items)
    answered = server.n_ok
    # a, b, c came back before poison failed; the worker may have started d meanwhile,
    # e is cancelled: whatever was answered is in the cache
    assert 3 <= answered <= 4
    assert len(cache_files(tmp_path)) == answered
    rerun, _ = make_client(server, tmp_path)
    before = server.n_chat
    assert rerun.chat_many(items[:3]) == ["echo: a", "echo: b", "echo: c"]
    assert server.n_chat == before and rerun.usage.cache_hits == 3


# -- cache ---------------------------------------------------------------------------


def test_rerun_makes_zero_http_calls(server, tmp_path):
    items = [user(f"q{i}") for i in range(8)]
    first, _ = make_client(server, tmp_path)
    answers = first.chat_many(items, desc="first")
    assert answers == [f"echo: q{i}" for i in range(8)]  # order kept
    assert server.n_chat == 8 and first.usage.calls == 8
    assert first.usage.prompt_tokens == 8 and first.usage.completion_tokens == 16
    second, _ = make_client(server, tmp_path)
    assert second.chat_many(items) == answers
    assert second.chat(items[0]) == answers[0]
    assert server.n_chat == 8
    assert second.usage.calls == 0 and second.usage.cache_hits == 9
    assert "9 cache hits" in second.usage.summary()


def test_samples_cache_apart_and_duplicates_are_asked_once(server, tmp_path):
    client, _ = make_client(server, tmp_path)
    assert client.chat_many([user("same")] * 3) == ["echo: same"] * 3
    assert server.n_chat == 1
    client.chat(user("same"), sample=1)
    client.chat(user("same"), sample=1)
    assert server.n_chat == 2
    cfg = client.config
    assert cache_key(cfg, user("same"), 0) != cache_key(cfg, user("same"), 1)
    hotter = LLMConfig(base_url=cfg.base_url, model=cfg.model, temperature=0.7)
    assert cache_key(hotter, user("same"), 0) != cache_key(cfg, user("same"), 0)


def test_key_goes_in_the_header_and_never_to_disk_or_errors(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", SECRET)
    client, _ = make_client(server, tmp_path, api_key_env="MY_TEST_KEY")
    client.chat_many([user("one"), user("two")])
    assert {r.headers["authorization"] for r in server.chat_requests} == {f"Bearer {SECRET}"}
    assert len(cache_files(tmp_path)) == 2
    for path in cache_files(tmp_path):
        assert SECRET not in path.read_text() and SECRET not in path.name
    server.faults.append(Fault.status_code(401, echo_auth=True))
    with pytest.raises(LLMError) as info:
        client.chat(user("three"))
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert SECRET not in repr(client) and SECRET not in repr(client.config)
    assert SECRET not in str(client.usage.as_dict())


def test_local_endpoint_without_key_sends_placeholder(server, tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    client, _ = make_client(server, None, api_key_env="UNSET_KEY_VAR")
    client.chat(user("x"))
    assert server.chat_requests[0].headers["authorization"] == "Bearer EMPTY"


# -- concurrency ---------------------------------------------------------------------


def test_concurrency_bound_respected_and_order_kept(tmp_path):
    with OpenAIServer(delay=0.15) as server:
        client, _ = make_client(server, tmp_path, concurrency=3)
        items = [user(f"item {i}") for i in range(12)]
        start = time.monotonic()
        answers = client.chat_many(items)
        elapsed = time.monotonic() - start
    assert answers == [f"echo: item {i}" for i in range(12)]
    assert server.max_in_flight == 3
    assert elapsed < 12 * 0.15  # really ran in parallel


def test_closed_port_fails_at_once_for_every_caller(tmp_path):
    import socket
    import time

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    waits: list[float] = []
    client = LLMClient(LLMConfig(base_url=url, model="m"), cache_dir=tmp_path, sleep=waits.append)
    start = time.monotonic()
    for _ in range(2):  # probed once, refused every time
        with pytest.raises(LLMError, match=f"cannot reach {url}: connection refused"):
            client.chat(user("hi"))
    assert time.monotonic() - start < 5 and waits == []
    assert client.usage.failures == 2 and client.usage.retries == 0
