"""The review database: SQLite, append-only, safe with several reviewers saving at once.

Tables: ``reviewers`` (name, SHA-256 of the access token, role), ``items`` (a snapshot of
each question as it was reviewed: key, type, organ, set), ``answers`` (the blind answer of a
reviewer to an item: one per reviewer and item, given before the key is shown) and
``decisions`` (accept / reject with a reason / edit, each with who and when). Answers and
decisions are never updated or deleted (triggers refuse it); a new decision of a reviewer
on an item is a new record that names the one it replaces. Every connection runs in WAL
mode with a busy timeout, and every write is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from curation.errors import ConfigError, InputError, ValidationError
from curation.records import LETTERS, Question

CANNOT_TELL = "cannot_tell"
"""The blind answer "cannot tell from these images"."""

VERDICTS: tuple[str, ...] = ("accept", "reject", "edit")
REJECT_REASONS: dict[str, str] = {
    "key_not_visible": "key not visible in these images",
    "wrong_key": "wrong key",
    "ambiguous": "ambiguous (more than one option defensible)",
    "distractor_implausible": "a distractor is clinically implausible",
    "field_inadequate": "field too small or blurred",
    "wording": "wording",
}
"""Reasons a reviewer may give for a reject (id -> label shown in the page)."""

ROLES: tuple[str, ...] = ("reviewer", "adjudicator")
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviewers (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL DEFAULT 'reviewer',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    set_id TEXT NOT NULL DEFAULT '',
    question_type TEXT NOT NULL,
    organ TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL,
    record TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    choice TEXT NOT NULL,
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'app',
    UNIQUE (item_id, reviewer)
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    edit TEXT,
    checks TEXT,
    replaces INTEGER,
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'app'
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions (item_id, reviewer, seq);
CREATE TRIGGER IF NOT EXISTS answers_append_only_u BEFORE UPDATE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
CREATE TRIGGER IF NOT EXISTS answers_append_only_d BEFORE DELETE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_append_only_u BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_append_only_d BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""


class ReviewConflict(ValidationError):
    """A write that would silently overwrite or contradict what is stored."""


def now() -> str:
    """UTC time with microseconds, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str = "reviewer"


class ReviewStore:
    """One review database; safe to share between threads (one connection per thread)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError(
                f"{self.path}: no such review database; pass the --db of `scale-vqa review`"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self._conn().executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"{self.path}: not a review database ({exc}); give another --db file"
            ) from None

    # ------------------------------------------------------------------ plumbing
    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = FULL")
            self._local.con = con
        return con

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue, none is lost)."""
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # ------------------------------------------------------------------ reviewers
    def add_reviewer(self, name: str, role: str = "reviewer", token: str | None = None) -> str:
        """Create a reviewer; return the access token (shown once, stored hashed)."""
        name = (name or "").strip()
        if not name or len(name) > 64 or any(c in name for c in "\n\r\t"):
            raise ConfigError(f"reviewer name {name!r}: give a short name (1-64 characters)")
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: use one of {', '.join(ROLES)}")
        token = token or secrets.token_urlsafe(18)
        with self.write() as con:
            if con.execute("SELECT 1 FROM reviewers WHERE name = ?", (name,)).fetchone():
                raise ReviewConflict(
                    f"reviewer {name!r} exists already; pick another name or "
                    "`scale-vqa review-users --db DB --reset-token NAME`"
                )
            con.execute(
                "INSERT INTO reviewers VALUES (?, ?, ?, ?)",
                (name, token_digest(token), role, now()),
            )
        return token

    def reset_token(self, name: str) -> str:
        """Give a reviewer a new token (the old one stops working)."""
        token = secrets.token_urlsafe(18)
        with self.write() as con:
            cur = con.execute(
                "UPDATE reviewers SET token_sha256 = ? WHERE name = ?", (token_digest(token), name)
            )
            if cur.rowcount != 1:
                raise ConfigError(f"no reviewer named {name!r}; list them with review-users")
        return token

    def ensure_reviewer(self, con: sqlite3.Connection, name: str) -> None:
        """Create an imported reviewer without a usable token (reset one to log in)."""
        if not con.execute("SELECT 1 FROM reviewers WHERE name = ?", (name,)).fetchone():
            con.execute(
                "INSERT INTO reviewers VALUES (?, ?, 'reviewer', ?)",
                (name, token_digest(secrets.token_hex(32)), now()),
            )

    def reviewer_for(self, token: str) -> Reviewer | None:
        """The reviewer whose token this is, or None."""
        if not token:
            return None
        rows = self.query(
            "SELECT name, role FROM reviewers WHERE token_sha256 = ?", (token_digest(token),)
        )
        return Reviewer(rows[0]["name"], rows[0]["role"]) if rows else None

    def reviewers(self) -> list[Reviewer]:
        return [Reviewer(r["name"], r["role"]) for r in self.query("SELECT * FROM reviewers")]

    # ------------------------------------------------------------------ items
    def register_items(self, questions: Sequence[Question]) -> int:
        """Record the reviewed content of each item (kept as first seen); return new ones."""
        stamp = now()
        with self.write() as con:
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        q.id,
                        q.set_id,
                        q.question_type,
                        q.organ,
                        q.answer,
                        json.dumps(q.to_dict(), ensure_ascii=False, sort_keys=True),
                        stamp,
                    )
                    for q in questions
                ],
            )
            return con.total_changes - before

    def items(self) -> dict[str, dict[str, Any]]:
        """item_id -> {set_id, question_type, organ, answer, record}."""
        return {
            r["item_id"]: {
                "set_id": r["set_id"],
                "question_type": r["question_type"],
                "organ": r["organ"],
                "answer": r["answer"],
                "record": json.loads(r["record"]),
            }
            for r in self.query("SELECT * FROM items")
        }

    # ------------------------------------------------------------------ answers
    def answer(self, item_id: str, reviewer: str, choice: str, n_options: int = 4) -> dict:
        """Save a blind answer; a second one by the same reviewer is refused."""
        valid = [*LETTERS[:n_options], CANNOT_TELL]
        if choice not in valid:
            raise ValidationError(
                f"answer {choice!r}: give one of {', '.join(valid)} ({CANNOT_TELL} = cannot "
                "tell from these images)"
            )
        with self.write() as con:
            old = con.execute(
                "SELECT * FROM answers WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
            ).fetchone()
            if old is not None:
                raise ReviewConflict(
                    f"{reviewer} answered item {item_id} blind already ({old['choice']} at "
                    f"{old['created_at']}); a blind answer cannot be changed after the key "
                    "was shown"
                )
            stamp = now()
            cur = con.execute(
                "INSERT INTO answers (item_id, reviewer, choice, created_at) VALUES (?, ?, ?, ?)",
                (item_id, reviewer, choice, stamp),
            )
            return {"seq": cur.lastrowid, "choice": choice, "created_at": stamp}

    def answer_of(self, item_id: str, reviewer: str) -> dict | None:
        rows = self.query(
            "SELECT * FROM answers WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
        )
        return dict(rows[0]) if rows else None

    def answers(self) -> list[dict]:
        return [dict(r) for r in self.query("SELECT * FROM answers ORDER BY seq")]

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        item_id: str,
        reviewer: str,
        verdict: str,
        reason: str = "",
        note: str = "",
        edit: dict | None = None,
        checks: dict | None = None,
        replaces: int | None = None,
    ) -> dict:
        """Append a decision; it must name the reviewer's previous one on this item, if any."""
        if verdict not in VERDICTS:
            raise ValidationError(f"verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
        if verdict == "reject" and reason not in REJECT_REASONS:
            raise ValidationError(
                f"reject reason {reason!r}: use one of {', '.join(REJECT_REASONS)}"
            )
        if verdict == "edit" and not edit:
            raise ValidationError("an edit decision needs the edited options and key")
        with self.write() as con:
            if not con.execute(
                "SELECT 1 FROM answers WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
            ).fetchone():
                raise ReviewConflict(
                    f"{reviewer} has not answered item {item_id} blind yet; answer first"
                )
            last = con.execute(
                "SELECT seq FROM decisions WHERE item_id = ? AND reviewer = ? "
                "ORDER BY seq DESC LIMIT 1",
                (item_id, reviewer),
            ).fetchone()
            last_seq = last["seq"] if last else None
            if last_seq != replaces:
                raise ReviewConflict(
                    f"item {item_id}: {reviewer}'s latest decision is "
                    f"{last_seq if last_seq is not None else 'none'}, not {replaces}; it was "
                    "changed elsewhere (another tab?): reload the item before deciding again"
                )
            stamp = now()
            cur = con.execute(
                "INSERT INTO decisions (item_id, reviewer, verdict, reason, note, edit, checks, "
                "replaces, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    reviewer,
                    verdict,
                    reason,
                    note,
                    json.dumps(edit, ensure_ascii=False) if edit else None,
                    json.dumps(checks, ensure_ascii=False) if checks else None,
                    replaces,
                    stamp,
                ),
            )
            return {"seq": cur.lastrowid, "verdict": verdict, "created_at": stamp}

    def decisions(self, item_id: str | None = None) -> list[dict]:
        """Every decision (or an item's), oldest first, JSON fields decoded."""
        sql = "SELECT * FROM decisions" + (" WHERE item_id = ?" if item_id else "")
        rows = self.query(sql + " ORDER BY seq", (item_id,) if item_id else ())
        out = []
        for r in rows:
            d = dict(r)
            d["edit"] = json.loads(d["edit"]) if d["edit"] else None
            d["checks"] = json.loads(d["checks"]) if d["checks"] else None
            out.append(d)
        return out

    def latest_decisions(self) -> dict[str, dict[str, dict]]:
        """item_id -> reviewer -> that reviewer's latest decision."""
        out: dict[str, dict[str, dict]] = {}
        for d in self.decisions():
            out.setdefault(d["item_id"], {})[d["reviewer"]] = d
        return out

    def digest(self) -> str:
        """Hash of every item, answer and decision (changes whenever the review does)."""
        h = hashlib.sha256()
        for table, order in (("items", "item_id"), ("answers", "seq"), ("decisions", "seq")):
            for r in self.query(f"SELECT * FROM {table} ORDER BY {order}"):
                h.update(json.dumps(list(r), default=str).encode())
        return h.hexdigest()
