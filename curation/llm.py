"""One client for any OpenAI-compatible chat endpoint, with cache, retries and concurrency.

Works with OpenAI, vLLM, Ollama, and Gemini's or DashScope's compatible endpoints: give
the base URL and the model name. The API key is read from the environment variable the
config names (``OPENAI_API_KEY`` by default); it is never written to the cache, a log, an
exception message or a report.

Answers are cached on disk, addressed by a SHA-256 over (base URL, model, messages,
temperature, max_tokens, sample index), so a rerun never makes the same call twice and a
crash loses nothing already answered. Rate limits (429, ``Retry-After`` honoured), server
errors (5xx), timeouts, connection errors and malformed answers (no choices, empty
content, a body that is not JSON) are retried with exponential backoff and jitter; what
retries cannot fix raises :class:`~curation.errors.LLMError` naming the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from curation.errors import ConfigError, LLMError
from curation.io import atomic_write_text

Messages = list[dict[str, Any]]

PLACEHOLDER_KEY = "EMPTY"
"""Sent when no key is set and the endpoint is local (vLLM, Ollama ignore it)."""

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "host.docker.internal"}
_ALIASES = {"key_env": "api_key_env", "api_key_var": "api_key_env", "url": "base_url"}


def _truncate(text: str, limit: int = 200) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call a chat model.

    ``api_key_env`` names the environment variable that holds the key (the key itself is
    never part of a config). ``backoff`` is the first retry wait in seconds (doubled each
    retry, with jitter, capped at ``backoff_max``).
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    max_retries: int = 5
    concurrency: int = 4
    backoff: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        try:  # a malformed IPv6 host or port raises ValueError here
            parts = urlparse(self.base_url or "")
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 (validates the port)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(
                f"LLM base_url {self.base_url!r} is not an http(s) URL with a valid host "
                "(and port 1-65535); give e.g. base_url=http://localhost:8000/v1 or "
                "http://[::1]:8000/v1"
            )
        if not self.model:
            raise ConfigError("LLM model is empty; give model=NAME")
        checks = [
            ("temperature", 0.0 <= self.temperature <= 2.0, "between 0 and 2"),
            ("max_tokens", self.max_tokens >= 1, "at least 1"),
            ("timeout", self.timeout > 0, "positive"),
            ("max_retries", self.max_retries >= 0, "0 or more"),
            ("concurrency", self.concurrency >= 1, "at least 1"),
            ("backoff", self.backoff >= 0, "0 or more"),
            ("backoff_max", self.backoff_max >= 0, "0 or more"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ConfigError(f"LLM {name}={getattr(self, name)!r} must be {what}")

    @classmethod
    def parse(cls, spec: str) -> LLMConfig:
        """Build from ``"base_url=http://...,model=NAME[,key=value...]"``.

        Keys are the field names (``key_env`` is accepted for ``api_key_env``); values are
        converted to the field's type.
        """
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if "=" not in item:
                raise ConfigError(
                    f"LLM spec item {item!r} is not key=value; "
                    "write e.g. base_url=http://localhost:8000/v1,model=NAME"
                )
            key, value = (s.strip() for s in item.split("=", 1))
            key = _ALIASES.get(key, key)
            if key not in types:
                raise ConfigError(
                    f"unknown LLM setting {key!r}; known: {', '.join(sorted(types))} (and key_env)"
                )
            if key in values:
                raise ConfigError(f"LLM setting {key!r} given twice")
            kind = types[key]
            try:
                if kind in ("int", int):
                    values[key] = int(value)
                elif kind in ("float", float):
                    values[key] = float(value)
                else:
                    values[key] = value
            except ValueError:
                raise ConfigError(f"LLM setting {key}={value!r} is not a valid {kind}") from None
        missing = [k for k in ("base_url", "model") if not values.get(k)]
        if missing:
            raise ConfigError(
                f"LLM spec {spec!r} lacks {' and '.join(missing)}; "
                "write e.g. base_url=http://localhost:8000/v1,model=NAME"
            )
        return cls(**values)

    @property
    def is_local(self) -> bool:
        """True when the endpoint is on this machine (a missing key is then allowed)."""
        host = (urlparse(self.base_url).hostname or "").lower()
        return host in _LOCAL_HOSTS or host.startswith("127.")


@dataclass
class Usage:
    """Running totals for one client (thread-safe updates through :meth:`add`)."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to the named counters."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for reports)."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}

    def summary(self) -> str:
        """One line for humans."""
        d = self.as_dict()
        return (
            f"{d['calls']} calls, {d['cache_hits']} cache hits, {d['prompt_tokens']} prompt + "
            f"{d['completion_tokens']} completion tokens, {d['retries']} retries, "
            f"{d['failures']} failures"
        )


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""

    def __init__(self, what: str, wait: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait = wait


def cache_key(config: LLMConfig, messages: Messages, sample: int) -> str:
    """SHA-256 that addresses one answer (the API key is not part of it)."""
    payload = {
        "base_url": config.base_url.rstrip("/"),
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "sample": sample,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _without_inline_data(messages: Messages) -> Messages:
    """``messages`` as stored in a cache entry: inline ``data:`` URLs (base64 images) are
    replaced by their SHA-256, so the cache does not hold a copy of every image (the cache
    key is still computed over the full messages)."""

    def strip(part: Any) -> Any:
        url = part.get("image_url", {}).get("url") if isinstance(part, dict) else None
        if not isinstance(url, str) or not url.startswith("data:"):
            return part
        head = url.split(",", 1)[0].split(";", 1)[0]
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return {**part, "image_url": {**part["image_url"], "url": f"{head};sha256={digest}"}}

    out: Messages = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            message = {**message, "content": [strip(p) for p in content]}
        out.append(message)
    return out


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            continue
    return None


def endpoint_unreachable(base_url: str, timeout: float = 3.0) -> str | None:
    """Why ``base_url``'s host:port refuses a TCP connection, or None when it accepts."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def _announce_and_sleep(config: LLMConfig) -> Callable[[float], None]:
    """The default wait between retries: one line on stderr, then sleep."""

    def sleep(seconds: float) -> None:
        from tqdm import tqdm

        tqdm.write(
            f"retrying {config.model!r} at {config.base_url} in {seconds:.1f} s "
            f"(transient failure; up to {config.max_retries} retries per request)",
            file=sys.stderr,
        )
        time.sleep(seconds)

    return sleep


class LLMClient:
    """Chat with one model through an OpenAI-compatible endpoint.

    ``cache_dir``: where answers are kept (``None``: no disk cache). ``sleep`` is the
    function used to wait between retries (default: say so on stderr, then
    ``time.sleep``; tests may record instead). Before its first uncached call the client
    checks that the endpoint accepts connections, so a server that is down fails at once
    instead of after every retry.
    """

    def __init__(
        self,
        config: LLMConfig,
        cache_dir: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.usage = Usage()
        self._sleep = sleep or _announce_and_sleep(config)
        self._unreachable: str | None = None
        self._probed = False
        self._rng = random.Random(seed)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._secret = ""

    def __repr__(self) -> str:
        return f"LLMClient(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # -- public API --------------------------------------------------------------
    def chat(self, messages: Messages, sample: int = 0) -> str:
        """The model's answer to ``messages`` (cached; ``sample`` k caches apart)."""
        key = cache_key(self.config, messages, sample)
        cached = self._cache_get(key)
        if cached is not None:
            self.usage.add(cache_hits=1)
            return cached
        content = self._call(messages)
        self._cache_put(key, messages, sample, content)
        return content

    def chat_many(
        self,
        list_of_messages: Sequence[Messages],
        sample: int = 0,
        desc: str | None = None,
        progress: bool = True,
    ) -> list[str]:
        """Answers to each conversation, in order, at most ``config.concurrency`` at once.

        Every answer is cached as soon as it arrives, so when one item finally fails (its
        :class:`LLMError` propagates) the others already answered are kept for the rerun.
        Identical conversations are asked once. ``progress=False`` hides the progress bar.
        """
        from tqdm.auto import tqdm

        keys = [cache_key(self.config, m, sample) for m in list_of_messages]
        results: dict[str, str] = {}
        todo: dict[str, Messages] = {}
        for key, messages in zip(keys, list_of_messages):
            if key in results or key in todo:
                continue
            cached = self._cache_get(key)
            if cached is not None:
                results[key] = cached
                self.usage.add(cache_hits=1)
            else:
                todo[key] = messages
        if todo:
            bar = tqdm(
                total=len(todo),
                desc=desc or f"LLM {self.config.model}",
                unit="call",
                disable=not progress,
            )
            try:
                with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
                    futures = {pool.submit(self._ask, k, m, sample): k for k, m in todo.items()}
                    pending = set(futures)
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                        for fut in done:
                            if fut.exception() is None:
                                results[futures[fut]] = fut.result()
                                bar.update(1)
                        failed = [f for f in done if f.exception() is not None]
                        if failed:
                            for fut in pending:
                                fut.cancel()
                            wait(pending)  # let calls in flight finish (and cache)
                            raise failed[0].exception()  # type: ignore[misc]
            finally:
                bar.close()
        return [results[k] for k in keys]

    # -- internals ---------------------------------------------------------------
    def _ask(self, key: str, messages: Messages, sample: int) -> str:
        content = self._call(messages)
        self._cache_put(key, messages, sample, content)
        return content

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _cache_get(self, key: str) -> str | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            content = entry["content"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable entry: ask again and overwrite it
        return content if isinstance(content, str) else None

    def _cache_put(self, key: str, messages: Messages, sample: int, content: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        entry = {
            "base_url": self.config.base_url,
            "model": self.config.model,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "sample": sample,
            "messages": _without_inline_data(messages),
            "content": content,
        }
        atomic_write_text(path, json.dumps(entry, ensure_ascii=False, indent=1) + "\n")

    def _openai(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                key = os.environ.get(self.config.api_key_env, "")
                if not key:
                    if not self.config.is_local:
                        raise ConfigError(
                            f"no API key for {self.config.base_url}: set the environment "
                            f"variable {self.config.api_key_env} (or name another one with "
                            "key_env=VAR)"
                        )
                    key = PLACEHOLDER_KEY
                self._secret = key if key != PLACEHOLDER_KEY else ""
                self._client = openai.OpenAI(
                    base_url=self.config.base_url,
                    api_key=key,
                    timeout=self.config.timeout,
                    max_retries=0,
                )
            return self._client

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _wait(self, attempt: int, hint: float | None) -> float:
        base = min(self.config.backoff_max, self.config.backoff * (2**attempt))
        delay = base * (0.5 + self._rng.random() * 0.5)
        if hint is not None:
            delay = max(delay, hint)  # honour Retry-After
        return delay

    def _check_reachable(self) -> None:
        """Raise at once (and on every later call) if the endpoint refuses connections."""
        with self._client_lock:
            if not self._probed:
                self._unreachable = endpoint_unreachable(self.config.base_url)
                self._probed = True
        if self._unreachable:
            self.usage.add(failures=1)
            raise LLMError(
                f"cannot reach {self.config.base_url}: {self._unreachable}; is the server "
                "running? (check base_url's host and port; answers obtained so far are cached)"
            )

    def _call(self, messages: Messages) -> str:
        client = self._openai()  # configuration errors (no key) before the network
        self._check_reachable()
        cfg = self.config
        last = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self.usage.add(retries=1)
            try:
                return self._attempt(client, messages)
            except _Retryable as exc:
                last = exc.what
                if attempt < cfg.max_retries:
                    self._sleep(self._wait(attempt, exc.wait))
        self.usage.add(failures=1)
        raise LLMError(
            self._redact(
                f"model {cfg.model!r} at {cfg.base_url} failed after {cfg.max_retries + 1} "
                f"attempt(s); last: {last}. Check that the endpoint is up and serves this "
                "model; answers obtained so far are cached, rerun to resume"
            )
        )

    def _attempt(self, client: Any, messages: Messages) -> str:
        import openai

        cfg = self.config
        try:
            response = client.chat.completions.create(
                model=cfg.model,
                messages=messages,
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
            )
        except openai.APITimeoutError:
            self.usage.add(calls=1)
            raise _Retryable(f"timed out after {cfg.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            self.usage.add(calls=1)
            raise _Retryable(f"connection error ({_truncate(self._redact(str(exc)))})") from None
        except openai.APIStatusError as exc:
            self.usage.add(calls=1)
            status = exc.status_code
            body = _truncate(self._redact(str(exc)))
            if status == 429:
                raise _Retryable(f"HTTP 429 rate limited ({body})", _retry_after(exc)) from None
            if status >= 500 or status in (408, 409):
                raise _Retryable(f"HTTP {status} ({body})", _retry_after(exc)) from None
            self.usage.add(failures=1)
            raise LLMError(
                f"model {cfg.model!r} at {cfg.base_url} refused the request: HTTP {status} "
                f"({body}); check the model name, the key in ${cfg.api_key_env} and the "
                "request size"
            ) from None
        except (ValueError, openai.APIResponseValidationError) as exc:
            self.usage.add(calls=1)
            body = getattr(exc, "doc", None) or getattr(exc, "body", None) or ""
            shown = f": {_truncate(self._redact(str(body)))!r}" if body else ""
            raise _Retryable(
                f"malformed response body ({_truncate(self._redact(str(exc)), 120)}){shown}"
            ) from None
        self.usage.add(calls=1)
        return self._content(response)

    def _content(self, response: Any) -> str:
        if isinstance(response, (str, bytes)):
            raise _Retryable(f"response is not a chat completion: {_truncate(str(response))!r}")
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.usage.add(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            )
        choices = getattr(response, "choices", None)
        if not choices:
            raise _Retryable(f"response without choices: {self._dump(response)}")
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str) or not content.strip():
            raise _Retryable(f"empty content in the first choice: {self._dump(response)}")
        return content

    def _dump(self, response: Any) -> str:
        try:
            text = response.model_dump_json()
        except Exception:
            text = repr(response)
        return repr(_truncate(self._redact(text)))
