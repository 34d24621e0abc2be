"""The review web app: a JSON API over :class:`ReviewApp` and one static page.

Stdlib only (``http.server.ThreadingHTTPServer``). Every request carries the reviewer's
token (``Authorization: Bearer ...``); a server started on a non-loopback address also
needs the server token (``--token``; header ``X-Server-Token``, or the cookie the page
gets from ``/?token=...``). The key, the rationale and the machine's flags of an item are
sent only after this reviewer's blind answer to it is saved. Any error, ours or the
client's, is a JSON ``{"error": ...}`` with a 4xx/5xx status; the server keeps serving.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import sys
import threading
import traceback
from collections import Counter
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from curation.errors import ConfigError, InputError, ScaleVQAError, ValidationError
from scale_vqa.review.checks import Checker
from scale_vqa.review.items import ItemSource, ReviewItem, geometry
from scale_vqa.review.store import (
    CANNOT_TELL,
    REJECT_REASONS,
    ReviewConflict,
    Reviewer,
    ReviewStore,
)

QUEUES: tuple[str, ...] = ("unreviewed", "disagreed", "flagged", "all")
MAX_BODY = 1 << 20
COOKIE = "svqa_server"
REVIEWER_COOKIE = "svqa_reviewer"


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Response = tuple[int, dict[str, str], bytes]


def _json(status: int, obj: Any) -> Response:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


class ReviewApp:
    """The API, independent of HTTP: ``handle(method, path, headers, body)``."""

    def __init__(
        self,
        source: ItemSource,
        store: ReviewStore,
        checker: Checker | None = None,
        server_token: str | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.server_token = server_token
        store.register_items(source.questions)
        self._checker = checker
        self._ready = threading.Event()
        self._checker_error: str | None = None
        self.flagged: set[str] = set()
        if checker is not None:
            self._finish_checker(checker)
        else:  # fitting the adversaries takes seconds: serve blind views meanwhile
            threading.Thread(target=self._build_checker, daemon=True).start()

    def _build_checker(self) -> None:
        try:
            self._finish_checker(Checker(self.source.questions, self.source.annotations))
        except Exception as exc:  # shown in the page as a JSON error, never fatal
            traceback.print_exc(file=sys.stderr)
            self._checker_error = f"the machine checks failed to start: {exc}"
            self._ready.set()

    def _finish_checker(self, checker: Checker) -> None:
        self._checker = checker
        self.flagged = {q.id for q in self.source.questions if checker.flags(q)["flagged"]}
        self._ready.set()

    @property
    def checker(self) -> Checker:
        """The machine checks (waits while they are being fitted)."""
        if not self._ready.wait(timeout=600) or self._checker is None:
            raise ApiError(503, self._checker_error or "the machine checks are still starting")
        return self._checker

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, target: str, headers: Any, body: bytes = b"") -> Response:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/") or "/"
        try:
            if path == "/" and method == "GET":
                return self._page(query, headers)
            if path == "/favicon.ico":
                return 204, {}, b""
            self._check_server_token(headers)
            if not path.startswith("/api/"):
                raise ApiError(404, f"no page {path}; open / for the review app")
            who = self._reviewer(headers, allow_cookie=method == "GET")
            return self._api(method, path, query, who, body)
        except ApiError as exc:
            return _json(exc.status, {"error": str(exc)})
        except ReviewConflict as exc:
            return _json(409, {"error": str(exc)})
        except (ValidationError, ConfigError) as exc:
            return _json(422, {"error": str(exc)})
        except InputError as exc:
            return _json(404, {"error": str(exc)})
        except ScaleVQAError as exc:
            return _json(400, {"error": str(exc)})

    def _page(self, query: dict[str, str], headers: Any) -> Response:
        hdrs = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
        if self.server_token:
            given = query.get("token", "")
            if given:
                if not hmac.compare_digest(given, self.server_token):
                    raise ApiError(403, "wrong server token in the address")
                hdrs["Set-Cookie"] = f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"
            else:
                self._check_server_token(headers)
        page = resources.files("scale_vqa.review").joinpath("page.html").read_bytes()
        return 200, hdrs, page

    def _check_server_token(self, headers: Any) -> None:
        if not self.server_token:
            return
        given = headers.get("X-Server-Token") or ""
        if not given:
            cookie = SimpleCookie(headers.get("Cookie") or "")
            given = cookie[COOKIE].value if COOKIE in cookie else ""
        if not hmac.compare_digest(given, self.server_token):
            raise ApiError(403, "this server needs its --token: open /?token=TOKEN once")

    def _reviewer(self, headers: Any, allow_cookie: bool = False) -> Reviewer:
        """The reviewer of a request: the Bearer token; for GETs (images) also the cookie.

        Writes need the header, so another site cannot make a browser post a decision.
        """
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token and allow_cookie:
            cookie = SimpleCookie(headers.get("Cookie") or "")
            token = cookie[REVIEWER_COOKIE].value if REVIEWER_COOKIE in cookie else ""
        who = self.store.reviewer_for(token)
        if who is None:
            raise ApiError(
                401,
                "unknown or missing reviewer token; get one with "
                "`scale-vqa review-users --db DB --add NAME`",
            )
        return who

    def _api(
        self, method: str, path: str, query: dict[str, str], who: Reviewer, body: bytes
    ) -> Response:
        if method == "GET" and path == "/api/session":
            return _json(200, self.session(who))
        if method == "GET" and path == "/api/queue":
            return _json(200, self.queue(who, query.get("name", "unreviewed")))
        m = re.fullmatch(r"/api/items/([^/]+)(?:/(answer|check|decision|images/(\d+)))?", path)
        if m is None:
            raise ApiError(404, f"unknown action {method} {path}")
        item = self._item(m.group(1))
        action = m.group(2)
        if method == "GET" and action is None:
            return _json(200, self.item_view(item, who))
        if method == "GET" and m.group(3) is not None:
            data, mime = self.source.image_bytes(item.item_id, int(m.group(3)))
            return 200, {"Content-Type": mime, "Cache-Control": "private, max-age=3600"}, data
        if method == "POST" and action in ("answer", "check", "decision"):
            payload = _payload(body)
            if action == "answer":
                return _json(200, self.answer(item, who, payload))
            if action == "check":
                return _json(200, self.check(item, who, payload))
            return _json(200, self.decide(item, who, payload))
        raise ApiError(404, f"unknown action {method} {path}")

    # ------------------------------------------------------------------ views
    def _item(self, item_id: str) -> ReviewItem:
        it = self.source.by_id.get(item_id)
        if it is None:
            raise ApiError(404, f"no item {item_id!r} in {self.source.description}")
        return it

    def session(self, who: Reviewer) -> dict[str, Any]:
        return {
            "reviewer": who.name,
            "role": who.role,
            "source": self.source.description,
            "progress": self.progress(who),
            "queues": {q: len(self._queue_ids(who, q)) for q in QUEUES},
            "reasons": REJECT_REASONS,
            "cannot_tell": CANNOT_TELL,
            "checks_ready": self._ready.is_set(),
        }

    def progress(self, who: Reviewer) -> dict[str, int]:
        latest = self.store.latest_decisions()
        mine = {i for i, d in latest.items() if who.name in d}
        answered = {a["item_id"] for a in self.store.answers() if a["reviewer"] == who.name}
        total = len(self.source.items)
        return {"total": total, "answered": len(answered), "decided": len(mine)}

    def _queue_ids(self, who: Reviewer, name: str) -> list[str]:
        if name not in QUEUES:
            raise ApiError(404, f"unknown queue {name!r}; use one of {', '.join(QUEUES)}")
        ids = [it.item_id for it in self.source.items]
        if name == "all":
            return ids
        if name == "flagged":
            flagged = self.flagged if self._ready.is_set() else set()
            return [i for i in ids if i in flagged]
        latest = self.store.latest_decisions()
        if name == "unreviewed":
            return [i for i in ids if who.name not in latest.get(i, {})]
        answers: dict[str, set[str]] = {}
        for a in self.store.answers():
            answers.setdefault(a["item_id"], set()).add(a["choice"])
        out = []
        for i in ids:
            verdicts = {d["verdict"] for d in latest.get(i, {}).values()}
            if len(verdicts) > 1 or len(answers.get(i, ())) > 1:
                out.append(i)
        return out

    def queue(self, who: Reviewer, name: str) -> dict[str, Any]:
        ids = self._queue_ids(who, name)
        latest = self.store.latest_decisions()
        rows = []
        for i in ids:
            it = self.source.by_id[i]
            q = it.question
            mine = latest.get(i, {}).get(who.name)
            rows.append(
                {
                    "id": i,
                    "question_type": q.question_type if q else "",
                    "organ": q.organ if q else "",
                    "error": it.error,
                    "my_verdict": mine["verdict"] if mine else None,
                }
            )
        return {"queue": name, "items": rows}

    def item_view(self, item: ReviewItem, who: Reviewer) -> dict[str, Any]:
        """The blind view; plus key, rationale and flags once this reviewer answered."""
        q = item.question
        if q is None:
            raise ApiError(422, f"this line cannot be reviewed: {item.error}")
        images = []
        for k, ref in enumerate(item.images):
            entry: dict[str, Any] = {
                "index": k,
                "magnification": ref.magnification,
                "mpp": ref.mpp,
                "url": f"/api/items/{item.item_id}/images/{k}",
                "error": ref.error,
            }
            if not ref.error:
                try:
                    entry |= geometry(ref, *self.source.image_size(item.item_id, k))
                except InputError as exc:
                    entry["error"] = str(exc)
            images.append(entry)
        view: dict[str, Any] = {
            "id": item.item_id,
            "question": q.question,
            "options": q.options,
            "question_type": q.question_type,
            "organ": q.organ,
            "split": q.split,
            "images": images,
            "error": item.error,
            "answered": None,
        }
        answer = self.store.answer_of(item.item_id, who.name)
        if answer is None:
            return view  # blind: nothing about the key leaves the server
        view["answered"] = {"choice": answer["choice"], "created_at": answer["created_at"]}
        view |= self._reveal(item, who)
        return view

    def _reveal(self, item: ReviewItem, who: Reviewer) -> dict[str, Any]:
        q = item.question
        assert q is not None
        decisions = self.store.decisions(item.item_id)
        mine = [d for d in decisions if d["reviewer"] == who.name]
        others = [d for d in decisions if d["reviewer"] != who.name]
        return {
            "answer": q.answer,
            "rationale": q.rationale,
            "flags": self.checker.flags(q),
            "set_id": q.set_id,
            "my_decisions": mine,
            "latest_seq": mine[-1]["seq"] if mine else None,
            "other_decisions": (
                others
                if who.role == "adjudicator"
                else dict(Counter(d["verdict"] for d in self._latest(others)))
            ),
        }

    @staticmethod
    def _latest(decisions: list[dict]) -> list[dict]:
        by: dict[str, dict] = {}
        for d in decisions:
            by[d["reviewer"]] = d
        return list(by.values())

    # ------------------------------------------------------------------ writes
    def answer(self, item: ReviewItem, who: Reviewer, payload: dict) -> dict[str, Any]:
        q = item.question
        if q is None:
            raise ApiError(422, f"this line cannot be reviewed: {item.error}")
        self.store.answer(item.item_id, who.name, str(payload.get("choice", "")), len(q.options))
        return self.item_view(item, who)

    def _answered(self, item: ReviewItem, who: Reviewer) -> None:
        if item.question is None:
            raise ApiError(422, f"this line cannot be reviewed: {item.error}")
        if self.store.answer_of(item.item_id, who.name) is None:
            raise ApiError(409, "answer the item blind first; the key is shown after that")

    def check(self, item: ReviewItem, who: Reviewer, payload: dict) -> dict[str, Any]:
        self._answered(item, who)
        assert item.question is not None
        return self.checker.check_edit(item.question, _edit(payload))

    def decide(self, item: ReviewItem, who: Reviewer, payload: dict) -> dict[str, Any]:
        self._answered(item, who)
        q = item.question
        assert q is not None
        verdict = str(payload.get("verdict", ""))
        edit, checks = None, None
        if verdict == "edit":
            edit = _edit(payload)
            checks = self.checker.check_edit(q, edit)
            edit = {
                "options": checks["question"]["options"],
                "answer": checks["question"]["answer"],
            }
            if edit == {"options": q.options, "answer": q.answer}:
                raise ApiError(422, "the edit changes nothing; accept the item instead")
        replaces = payload.get("replaces")
        if replaces is not None and not isinstance(replaces, int):
            raise ApiError(422, "'replaces' must be the seq of your previous decision, or null")
        saved = self.store.decide(
            item.item_id,
            who.name,
            verdict,
            reason=str(payload.get("reason") or ""),
            note=str(payload.get("note") or "")[:2000],
            edit=edit,
            checks=checks and {k: checks[k] for k in ("ok", "violations", "answering")},
            replaces=replaces,
        )
        return {"saved": saved, "checks": checks, "item": self.item_view(item, who)}


def _payload(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return obj


def _edit(payload: dict) -> dict[str, Any]:
    edit = payload.get("edit", payload)
    if not isinstance(edit, dict) or not ({"options", "answer"} & set(edit)):
        raise ApiError(422, "an edit needs 'options' (list of strings) and/or 'answer' (a letter)")
    return {k: edit[k] for k in ("options", "answer") if k in edit}


class _Handler(BaseHTTPRequestHandler):
    app: ReviewApp
    server_version = "scale-vqa-review"
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, hdrs, body = _json(413, {"error": "request body too large"})
                self.rfile.read(length)
            else:
                raw = self.rfile.read(length) if length else b""
                status, hdrs, body = self.app.handle(method, self.path, self.headers, raw)
        except Exception as exc:  # never let one request take the server down
            traceback.print_exc(file=sys.stderr)
            status, hdrs, body = _json(500, {"error": f"internal error: {exc}"})
        self.send_response(status)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


def make_server(
    app: ReviewApp, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False
) -> ThreadingHTTPServer:
    """A threading HTTP server for ``app``; refuses a non-loopback host without a token."""
    if not is_loopback(host) and not app.server_token:
        raise ConfigError(
            f"--host {host} is not a loopback address: anyone on the network could reach the "
            "review; pass --token SECRET too (reviewers open /?token=SECRET once)"
        )
    handler = type("Handler", (_Handler,), {"app": app})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc}); pick another --port") from None
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server
