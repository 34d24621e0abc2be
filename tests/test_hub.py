"""Publishing: folder validation, dry run, token handling and Hub failures on loopback."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
from huggingface_hub import constants as hf_constants

from curation.errors import ConfigError
from scale_vqa.build import write_dataset
from scale_vqa.cli import main
from scale_vqa.hub import plan_upload, validate_repo_id
from tests.test_build import make_rows

SECRET = "hf_TESTSECRETtoken0123456789abcdef"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "ds"
    write_dataset(out, {"train": make_rows(3, "train"), "test": make_rows(2, "test")},
                  progress=False)  # fmt: skip
    return out


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def online(monkeypatch):
    """Tests talk to loopback only; lift the suite-wide offline switch for them."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)


class HubStub:
    """A loopback HTTP server that answers every request with one status, recording them."""

    def __init__(self, status: int, routes: dict[str, tuple[int, dict]] | None = None):
        self.status = status
        self.routes = routes or {}
        self.requests: list[tuple[str, str, str]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append(
                    (self.command, self.path, self.headers.get("Authorization", ""))
                )
                status, payload = stub.routes.get(
                    self.path, (stub.status, {"error": f"stub says {stub.status}"})
                )
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dry_run_lists_files_and_needs_no_token(built, capsys, no_token):
    argv = ["publish", str(built), "--repo-id", "my-lab/scale-vqa", "--dry-run", "--private"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "target: https://huggingface.co/datasets/my-lab/scale-vqa" in out and "private" in out
    shard = built / "data" / "train-00000-of-00001.parquet"
    digest = hashlib.sha256(shard.read_bytes()).hexdigest()
    assert (
        f"data/train-00000-of-00001.parquet  {shard.stat().st_size} bytes  sha256 {digest}" in out
    )
    plan = plan_upload(built, "my-lab/scale-vqa")
    assert [f.path for f in plan.files] == [
        "README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"
    ]  # fmt: skip
    readme = plan.files[0].data.decode()
    assert 'load_dataset("my-lab/scale-vqa")' in readme
    assert plan.files[0].sha256 == hashlib.sha256(plan.files[0].data).hexdigest()


@pytest.mark.parametrize("bad", ["scale-vqa", "a/b/c", "org/na me", "org/-x", "org/x..y", ""])
def test_repo_id_is_validated(bad):
    with pytest.raises(ConfigError, match="ORG/NAME"):
        validate_repo_id(bad)


def test_invalid_folders_are_refused(tmp_path, built, capsys):
    assert main(["publish", str(tmp_path), "--repo-id", "o/n", "--dry-run"]) == 1
    assert "no README.md" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "README.md").write_text((built / "README.md").read_text())
    assert main(["publish", str(broken), "--repo-id", "o/n", "--dry-run"]) == 1
    assert "no file matches 'data/train-*.parquet'" in capsys.readouterr().err
    (broken / "README.md").write_text("# no metadata\n")
    assert main(["publish", str(broken), "--repo-id", "o/n", "--dry-run"]) == 1
    assert "no 'configs:' block" in capsys.readouterr().err


def test_missing_token_says_how_to_log_in(built, capsys, no_token, online):
    assert main(["publish", str(built), "--repo-id", "o/n"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Hugging Face token") and "HF_TOKEN" in err
    assert "hf auth login" in err


def test_unreachable_hub_is_one_error_line(built, capsys, monkeypatch, online):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert main(["publish", str(built), "--repo-id", "o/n"]) == 1
    out, err = capsys.readouterr()
    assert "error: cannot reach the Hub at http://127.0.0.1:" in err
    assert "Traceback" not in err and SECRET not in out + err


@pytest.mark.parametrize(("status", "message"), [(401, "refused the token"), (500, "HTTP 500")])
def test_hub_errors_are_clear_and_never_show_the_token(
    built, capsys, monkeypatch, online, status, message
):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with HubStub(status) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["publish", str(built), "--repo-id", "my-lab/scale-vqa"]) == 1
    out, err = capsys.readouterr()
    assert err.count("error: ") == 1 and message in err and "Traceback" not in err
    assert SECRET not in out + err
    method, path, auth = hub.requests[0]
    assert (method, path) == ("POST", "/api/repos/create") and auth == f"Bearer {SECRET}"


def test_offline_mode_is_reported(built, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert main(["publish", str(built), "--repo-id", "o/n"]) == 1
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and SECRET not in err


def test_failure_after_repo_creation_is_reported(built, capsys, monkeypatch, online):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with HubStub(403) as hub:
        created = {"url": f"{hub.url}/datasets/my-lab/scale-vqa", "name": "my-lab/scale-vqa"}
        hub.routes["/api/repos/create"] = (200, created)
        hub.routes["/api/validate-yaml"] = (200, {"errors": [], "warnings": []})
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["publish", str(built), "--repo-id", "my-lab/scale-vqa"]) == 1
    out, err = capsys.readouterr()
    assert "refused the token (HTTP 403)" in err and SECRET not in out + err
    assert "uploading 3 file(s)" in err  # got past create_repo into the commit
    paths = [p for _, p, _ in hub.requests]
    assert paths[:2] == ["/api/repos/create", "/api/validate-yaml"]
    assert paths[2].startswith("/api/datasets/my-lab/scale-vqa/preupload/"), paths
