"""Helpers for the review tests: one demo build per test process, a real review server.

The demo build is the bundled demo pipeline (real slide, real Parquet) with the
embedding adversaries off (faster; the review does not depend on them), built once per
pytest process and shared by the review test modules.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_BUILD: dict[str, Path] = {}


def demo_build() -> tuple[Path, Path]:
    """(dataset folder, work folder) of the demo, built once per process."""
    if not _BUILD:
        from scale_vqa.pipeline import demo_config, run_pipeline

        root = Path(tempfile.mkdtemp(prefix="svqa-review-demo-"))
        atexit.register(shutil.rmtree, root, True)
        cfg = demo_config(root / "ds", root / "work")
        cfg.screen.embeddings = False
        run_pipeline(cfg, quiet=True)
        _BUILD["out"], _BUILD["work"] = root / "ds", root / "work"
    return _BUILD["out"], _BUILD["work"]


def rebuild_with_review(tmp: Path, db: Path, **policy: Any) -> Any:
    """The demo rebuilt in ``tmp`` from a copy of its work folder, obeying review ``db``."""
    from scale_vqa.config import ReviewConfig
    from scale_vqa.pipeline import demo_config, run_pipeline

    _, work = demo_build()
    shutil.copytree(work, tmp / "work", ignore=shutil.ignore_patterns(".lock"))
    cfg = demo_config(tmp / "ds", tmp / "work")
    cfg.screen.embeddings = False
    cfg.review = ReviewConfig(db=db, **policy)
    return run_pipeline(cfg, quiet=True)


@dataclass
class Server:
    """A ``scale-vqa review`` process on a free loopback port."""

    proc: subprocess.Popen
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(path: Path, db: Path, *extra: str, timeout: float = 60.0) -> Server:
    """Start the CLI server (port 0 = any free) and wait for its address line."""
    env = os.environ | {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "scale_vqa.cli", "review", str(path), "--db", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + timeout
    lines = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"review app on (http://\S+/)", line)
        if m:
            return Server(proc, m.group(1).rstrip("/"))
    proc.kill()
    raise AssertionError("review server did not start:\n" + "".join(lines))


def call(
    url: str, path: str, token: str | None = None, body: Any = None, headers: Any = None
) -> tuple[int, Any]:
    """(status, decoded JSON or bytes) of one request to the review API."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            status, raw, ctype = res.status, res.read(), res.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in ctype else raw


def wait_checks(url: str, token: str, timeout: float = 120.0) -> None:
    """Wait until the server's machine checks are fitted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, s = call(url, "/api/session", token)
        if status == 200 and s["checks_ready"]:
            return
        time.sleep(0.3)
    raise AssertionError("machine checks did not become ready")
