"""A real loopback HTTP server that speaks the OpenAI chat-completions API, for tests.

Usage::

    from tests.openai_server import Fault, OpenAIServer

    with OpenAIServer(responder=lambda messages, model: "hello") as server:
        server.faults.extend([Fault.rate_limit(retry_after=0), Fault.server_error()])
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m"))
        ...
        assert server.n_chat == 3

or a fixture of your own (``with OpenAIServer() as srv: yield srv``); the
``openai_server`` fixture here can be imported into a conftest.

Faults queued in ``server.faults`` are served first, one per chat request, in order;
``server.always`` (a :class:`Fault`) is served to every request while set;
``server.fault_for(messages, model) -> Fault | None`` picks a fault by content. Every request
is recorded (path, headers, parsed body) in ``server.requests``; ``server.max_in_flight``
is the largest number of chat requests handled at the same time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Responder = Callable[[list[dict[str, Any]], str], str]


def echo_responder(messages: list[dict[str, Any]], model: str) -> str:
    """Default responder: echoes the last user message."""
    return f"echo: {messages[-1].get('content', '')}" if messages else "echo:"


@dataclass
class Fault:
    """One scripted misbehaviour; build with the class methods."""

    kind: str
    status: int = 200
    retry_after: float | None = None
    seconds: float = 0.0
    echo_auth: bool = False

    @classmethod
    def rate_limit(cls, retry_after: float | None = 0) -> Fault:
        """HTTP 429 with a ``Retry-After`` header (seconds; None: no header)."""
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """An HTTP 5xx with an OpenAI-style error body."""
        return cls("status", status=status)

    @classmethod
    def status_code(cls, status: int, echo_auth: bool = False) -> Fault:
        """Any HTTP error status (e.g. 401, 404) with an OpenAI-style error body.

        ``echo_auth``: the error message repeats the Authorization header it received
        (as careless servers do), to test that clients redact the key.
        """
        return cls("status", status=status, echo_auth=echo_auth)

    @classmethod
    def malformed(cls) -> Fault:
        """HTTP 200, ``Content-Type: application/json``, body that is not JSON."""
        return cls("malformed")

    @classmethod
    def no_choices(cls) -> Fault:
        """HTTP 200 with a valid completion object whose ``choices`` is empty."""
        return cls("no_choices")

    @classmethod
    def empty_content(cls) -> Fault:
        """HTTP 200 with one choice whose content is the empty string."""
        return cls("empty_content")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering normally (longer than a client timeout)."""
        return cls("slow", seconds=seconds)


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    raw: bytes = field(repr=False, default=b"")


def _count_tokens(text: str) -> int:
    return len(text.split())


class OpenAIServer:
    """A threaded HTTP server on 127.0.0.1 (free port) with scripted behaviour."""

    def __init__(
        self,
        responder: Responder | None = None,
        faults: list[Fault] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.responder: Responder = responder or echo_responder
        self.faults: deque[Fault] = deque(faults or [])
        self.always: Fault | None = None
        self.fault_for: Callable[[list[dict[str, Any]], str], Fault | None] | None = None
        self.n_ok = 0  # normal answers sent (no fault)
        self.delay = delay
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> OpenAIServer:
        """Bind a free loopback port and serve in a daemon thread."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                server._record(self, b"")
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "test-model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = server._record(self, raw)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._answer(self, body or {})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to do
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(
                self,
                status: int,
                payload: Any,
                headers: dict[str, str] | None = None,
                raw: bytes | None = None,
            ) -> None:
                data = raw if raw is not None else json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded POST /v1/chat/completions requests."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def n_chat(self) -> int:
        """How many chat requests arrived (faulty ones included)."""
        return len(self.chat_requests)

    # -- internals ---------------------------------------------------------------
    def _record(self, handler: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        rec = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body if isinstance(body, dict) else None,
            raw=raw,
        )
        with self._lock:
            self.requests.append(rec)
        return rec.body

    def _next_fault(self, messages: list[dict[str, Any]], model: str) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.popleft()
        if self.fault_for is not None:
            fault = self.fault_for(messages, model)
            if fault is not None:
                return fault
        return self.always

    def _answer(self, handler: Any, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        fault = self._next_fault(messages, model)
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            message = f"scripted {fault.status}"
            if fault.echo_auth:
                message += f" for {handler.headers.get('Authorization', '')}"
            handler._send(
                fault.status, {"error": {"message": message, "type": kind, "code": kind}}, headers
            )
            return
        if fault is not None and fault.kind == "malformed":
            handler._send(200, None, raw=b'{"id": "chatcmpl-x", "choices": [ this is not json')
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        if self.delay:
            time.sleep(self.delay)
        content = "" if fault is not None and fault.kind == "empty_content" else None
        if content is None:
            content = self.responder(messages, model)
        prompt_text = " ".join(str(m.get("content", "")) for m in messages)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": _count_tokens(prompt_text),
                "completion_tokens": _count_tokens(content),
                "total_tokens": _count_tokens(prompt_text) + _count_tokens(content),
            },
        }
        if fault is not None and fault.kind == "no_choices":
            payload["choices"] = []
        if fault is None:
            with self._lock:
                self.n_ok += 1  # counted before sending, so a client that has it sees it
        handler._send(200, payload)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A started :class:`OpenAIServer` (echo responder), stopped after the test."""
    with OpenAIServer() as server:
        yield server
