"""The expert review: store, blind-first API over real HTTP, figures, interop, the build."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from curation.errors import ConfigError, ValidationError
from scale_vqa.cli import main
from scale_vqa.review.items import load_items, nice_bar
from scale_vqa.review.server import ReviewApp, make_server
from scale_vqa.review.store import CANNOT_TELL, ReviewConflict, ReviewStore
from tests.review_factory import call, demo_build, rebuild_with_review, start_server


@pytest.fixture(scope="module")
def demo() -> tuple[Path, Path]:
    return demo_build()


@contextmanager
def serving(app: ReviewApp):
    """``app`` on a real loopback HTTP server in a thread; yields its URL."""
    server = make_server(app, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _app(path: Path, db: Path, **kw) -> ReviewApp:
    from scale_vqa.review.checks import Checker

    source = load_items(path, **kw)
    return ReviewApp(source, ReviewStore(db), Checker(source.questions, source.annotations))


def test_store_is_append_only_and_refuses_silent_overwrites(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.add_reviewer("ann")
    with pytest.raises(ReviewConflict, match="exists already"):
        store.add_reviewer("ann")
    with pytest.raises(ReviewConflict, match="answer first"):
        store.decide("q1", "ann", "accept")
    store.answer("q1", "ann", "B")
    with pytest.raises(ReviewConflict, match="cannot be changed"):
        store.answer("q1", "ann", "C")
    first = store.decide("q1", "ann", "accept")
    with pytest.raises(ReviewConflict, match="changed elsewhere"):
        store.decide("q1", "ann", "reject", reason="wrong_key")  # does not name #first
    store.decide("q1", "ann", "reject", reason="wrong_key", replaces=first["seq"])
    with pytest.raises(ValidationError, match="reject reason"):
        store.decide("q1", "ann", "reject", reason="meh", replaces=first["seq"] + 1)
    assert [d["verdict"] for d in store.decisions("q1")] == ["accept", "reject"]
    assert store.latest_decisions()["q1"]["ann"]["verdict"] == "reject"
    con = sqlite3.connect(tmp_path / "r.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE decisions SET verdict = 'accept'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM answers")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_scale_bar_and_field_size():
    assert nice_bar(448.1) == 100.0  # a quarter of a 448 um field -> 100 um
    assert nice_bar(1796.0) == 200.0
    assert nice_bar(7.5) == 1.0


def test_api_sends_no_key_before_the_blind_answer(demo, tmp_path):
    out, _ = demo
    app = _app(out, tmp_path / "r.sqlite")
    token = app.store.add_reviewer("ann")
    with serving(app) as url:
        status, err = call(url, "/api/session")
        assert status == 401 and "reviewer token" in err["error"]
        _, queue = call(url, "/api/queue?name=unreviewed", token)
        n = len(app.source.questions)
        assert len(queue["items"]) == n > 4
        item_id = queue["items"][0]["id"]
        q = app.source.by_id[item_id].question
        status, raw = call(url, f"/api/items/{item_id}", token, headers={"Accept": "*/*"})
        assert status == 200
        assert set(raw) >= {"question", "options", "images"}
        assert not {"answer", "rationale", "flags", "my_decisions"} & set(raw)
        blob = json.dumps(raw)
        assert q.rationale not in blob and '"answer"' not in blob
        mags = [im["magnification"] for im in raw["images"]]
        assert mags == sorted(mags) and len(mags) == 3
        low = raw["images"][0]
        assert low["field"] == "448 um x 448 um" and low["bar_label"] == "100 um"
        status, img = call(url, low["url"], token)
        assert status == 200 and Image.open(io.BytesIO(img)).size == (224, 224)  # the crop
        # neither a decision nor an edit check may come before the blind answer
        for action, body in (("decision", {"verdict": "accept"}), ("check", {"answer": "A"})):
            status, err = call(url, f"/api/items/{item_id}/{action}", token, body)
            assert status == 409 and "blind first" in err["error"]
        status, view = call(url, f"/api/items/{item_id}/answer", token, {"choice": CANNOT_TELL})
        assert status == 200 and view["answer"] == q.answer and view["rationale"] == q.rationale
        assert view["answered"]["choice"] == CANNOT_TELL and "flags" in view
        status, err = call(url, f"/api/items/{item_id}/answer", token, {"choice": "A"})
        assert status == 409
        status, saved = call(url, f"/api/items/{item_id}/decision", token, {"verdict": "accept"})
        assert status == 200 and saved["saved"]["verdict"] == "accept"
        _, again = call(url, f"/api/items/{item_id}/decision", token, {"verdict": "accept"})
        assert "changed elsewhere" in again["error"]  # names no previous decision: refused
        _, s = call(url, "/api/session", token)
        assert s["progress"] == {"total": n, "answered": 1, "decided": 1}
        assert s["queues"]["unreviewed"] == n - 1
        # a second reviewer sees only counts of others' verdicts; an adjudicator sees them all
        bob = app.store.add_reviewer("bob")
        judge = app.store.add_reviewer("judge", role="adjudicator")
        _, v = call(url, f"/api/items/{item_id}/answer", bob, {"choice": q.answer})
        assert v["other_decisions"] == {"accept": 1}
        _, v = call(url, f"/api/items/{item_id}/answer", judge, {"choice": q.answer})
        assert [(d["reviewer"], d["verdict"]) for d in v["other_decisions"]] == [("ann", "accept")]
        _, queue = call(url, "/api/queue?name=disagreed", judge)
        assert queue["items"] and queue["items"][0]["id"] == item_id  # blind answers differ


def test_bad_input_is_shown_not_fatal(demo, tmp_path):
    _, work = demo
    lines = (work / "screened.jsonl").read_text().splitlines()[:3]
    broken = json.loads(lines[1])
    broken["path_id"] = "no-such-path"
    zoom = tmp_path / "zoom"
    shutil.copytree(work / "zoom", zoom)
    first = json.loads(lines[0])
    zp = [json.loads(x) for x in (zoom / "zoom_paths.jsonl").read_text().splitlines()]
    victim = next(z for z in zp if z["path_id"] == first["path_id"])
    (zoom / victim["crops"][2]["image"]).unlink()  # the high-power crop of item 1
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text(
        "\n".join([lines[0], json.dumps(broken), "{not json", '{"question": "x"}', lines[2]]) + "\n"
    )
    app = _app(qfile, tmp_path / "r.sqlite", zoom=zoom)
    token = app.store.add_reviewer("ann")
    with serving(app) as url:
        _, queue = call(url, "/api/queue?name=all", token)
        errors = [r["error"] for r in queue["items"]]
        assert len(errors) == 5 and errors[0] == "" and errors[4] == ""
        assert "no-such-path" in errors[1]
        assert "not JSON" in errors[2] and "missing field(s) options" in errors[3]
        status, err = call(url, f"/api/items/{queue['items'][2]['id']}", token)
        assert status == 422 and "cannot be reviewed" in err["error"]
        status, view = call(url, f"/api/items/{queue['items'][0]['id']}", token)
        assert status == 200 and "is missing" in view["images"][2]["error"]
        status, err = call(url, view["images"][2]["url"], token)
        assert status == 404 and "is missing" in err["error"]
        status, err = call(url, f"/api/items/{view['id']}/frobnicate", token, {})
        assert status == 404 and "unknown action" in err["error"]
        status, err = call(url, f"/api/items/{view['id']}/answer", token, b"{oops")
        assert status == 400 and "not JSON" in err["error"]
        status, err = call(url, f"/api/items/{view['id']}/answer", token, {"choice": "Z"})
        assert status == 422 and "cannot_tell" in err["error"]
        status, err = call(url, "/api/queue?name=mine", token)
        assert status == 404 and "unknown queue" in err["error"]
        status, _ = call(url, "/api/session", token)  # still serving
        assert status == 200


def test_edit_reruns_the_constraint_checkers_and_adversaries(demo, tmp_path):
    _, work = demo
    app = _app(work / "screened.jsonl", tmp_path / "r.sqlite")  # annotations found beside it
    token = app.store.add_reviewer("ann")
    q = app.source.questions[0]
    wrong = "ABCD"[(q.key_index + 1) % 4]
    with serving(app) as url:
        call(url, f"/api/items/{q.id}/answer", token, {"choice": q.answer})
        status, res = call(url, f"/api/items/{q.id}/check", token, {"answer": wrong})
        assert status == 200 and res["ok"] is False
        assert {v["constraint"] for v in res["violations"]} >= {"correctness"}
        names = {a["name"] for a in res["adversaries"]}
        assert {"centrality", "longest", "bow-options", "bow-qa", "position"} <= names
        # an option reworded the same way on its whole set keeps the set consistent
        opts = list(q.options)
        opts[0] = opts[0] + " in this field"
        status, res = call(url, f"/api/items/{q.id}/check", token, {"options": opts})
        assert res["set_members_changed"] == 3
        assert not [v for v in res["violations"] if v["constraint"] == "complementary_sets"]
        # the extra words are carried by one option only: the text checkers say so
        assert {v["constraint"] for v in res["violations"]} == {"symmetry", "distinctive_tokens"}
        edit = {"verdict": "edit", "edit": {"answer": wrong}}
        status, saved = call(url, f"/api/items/{q.id}/decision", token, edit)
        assert status == 200 and saved["checks"]["ok"] is False
    stored = app.store.decisions(q.id)[0]
    assert stored["edit"]["answer"] == wrong and stored["checks"]["violations"]


def test_server_token_required_off_loopback(demo, tmp_path, capsys):
    out, _ = demo
    code = main(["review", str(out), "--db", str(tmp_path / "r.sqlite"), "--host", "0.0.0.0"])
    assert code == 1 and "--token" in capsys.readouterr().err
    app = _app(out, tmp_path / "r2.sqlite")
    with pytest.raises(ConfigError, match="--token"):
        make_server(app, "0.0.0.0", 0)
    app.server_token = "s3cret"
    token = app.store.add_reviewer("ann")
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = app.handle("GET", "/api/session", auth)
    assert status == 403 and b"--token" in body
    status, _, _ = app.handle("GET", "/api/session", auth | {"X-Server-Token": "s3cret"})
    assert status == 200
    status, hdrs, _ = app.handle("GET", "/?token=s3cret", {})
    assert status == 200 and "svqa_server=s3cret" in hdrs["Set-Cookie"]
    status, _, _ = app.handle("GET", "/api/session", auth | {"Cookie": "svqa_server=s3cret"})
    assert status == 200


def test_two_reviewers_saving_on_the_same_items_at_once_keep_every_record(demo, tmp_path):
    """Two server processes over one database, two reviewers, every item at the same time."""
    _, work = demo
    qfile = tmp_path / "questions.jsonl"  # 20 questions: the servers start faster
    qfile.write_text("\n".join((work / "screened.jsonl").read_text().splitlines()[:20]) + "\n")
    db = tmp_path / "r.sqlite"
    store = ReviewStore(db)
    tokens = {n: store.add_reviewer(n) for n in ("ann", "bob")}
    zoom = ("--zoom", str(work / "zoom"))
    servers = [start_server(qfile, db, *zoom), start_server(qfile, db, *zoom)]
    try:
        _, queue = call(servers[0].url, "/api/queue?name=all", tokens["ann"])
        ids = [r["id"] for r in queue["items"]]
        assert len(ids) == 20
        barrier = threading.Barrier(2)
        errors: list[str] = []

        def work(name: str, url: str) -> None:
            barrier.wait()
            for i in ids:
                for path, body in (
                    ("answer", {"choice": "A"}),
                    ("decision", {"verdict": "reject", "reason": "ambiguous"}),
                ):
                    status, res = call(url, f"/api/items/{i}/{path}", tokens[name], body)
                    if status != 200:
                        errors.append(f"{name} {path} {status} {res}")

        threads = [
            threading.Thread(target=work, args=(n, s.url)) for n, s in zip(("ann", "bob"), servers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in servers:
            s.stop()
    assert errors == []
    check = ReviewStore(db)
    answers = check.answers()
    decisions = check.decisions()
    assert len(answers) == 2 * len(ids) and len(decisions) == 2 * len(ids)
    for i in ids:
        assert {d["reviewer"] for d in decisions if d["item_id"] == i} == {"ann", "bob"}
    assert len({d["seq"] for d in decisions}) == 2 * len(ids)


def _rated_store(tmp_path: Path, demo_out: Path, ratings: dict[str, list[str]]) -> ReviewStore:
    """A store with the first items of the demo answered as ``ratings[reviewer]`` says."""
    source = load_items(demo_out)
    store = ReviewStore(tmp_path / "fig.sqlite")
    store.register_items(source.questions)
    for name, choices in ratings.items():
        store.add_reviewer(name)
        for q, c in zip(source.questions, choices):
            choice = q.answer if c == "key" else ("ABCD"[(q.key_index + 1) % 4] if c == "x" else c)
            store.answer(q.id, name, choice)
            verdict = "accept" if c == "key" else "reject"
            store.decide(q.id, name, verdict, reason="" if verdict == "accept" else "wrong_key")
    return store


def test_figures_against_independent_computations(demo, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    from curation.audit import wilson
    from scale_vqa.review.figures import compute_figures

    out, _ = demo
    ann = ["key"] * 14 + ["x"] * 4 + [CANNOT_TELL] * 2
    bob = ["key"] * 10 + ["x"] * 6 + ["key"] * 2 + [CANNOT_TELL] * 2
    store = _rated_store(tmp_path, out, {"ann": ann, "bob": bob})
    fig = compute_figures(store)
    row = next(r for r in fig["by_reviewer"] if r["group"] == "ann")
    assert row["n_answers"] == 20 and row["accuracy"]["k"] == 14
    assert (row["accuracy"]["ci_low"], row["accuracy"]["ci_high"]) == wilson(14, 20)
    assert row["cannot_tell"]["rate"] == pytest.approx(0.1)
    assert row["acceptance"]["rate"] == pytest.approx(14 / 20)
    answers = {(a["item_id"], a["reviewer"]): a["choice"] for a in store.answers()}
    items = sorted({i for i, _ in answers})
    expected = cohen_kappa_score(
        [answers[(i, "ann")] for i in items], [answers[(i, "bob")] for i in items]
    )
    kappa = fig["agreement"]["blind_answers"]
    assert kappa["method"] == "cohen" and kappa["kappa"] == pytest.approx(expected)
    assert kappa["ci_low"] < kappa["kappa"] < kappa["ci_high"]
    assert sum(r["n_answers"] for r in fig["by_question_type"]) == 40
    # three reviewers: Fleiss' kappa, bootstrap interval, same seed -> same numbers
    store3 = _rated_store(tmp_path / "3", out, {"ann": ann, "bob": bob, "cy": ann})
    f1, f2 = compute_figures(store3, seed=1), compute_figures(store3, seed=1)
    fk = f1["agreement"]["blind_answers"]
    assert fk["method"] == "fleiss" and fk["n_items"] == 20 and len(fk["raters"]) == 3
    assert fk["ci_low"] <= fk["kappa"] <= fk["ci_high"]
    assert f1 == f2


def test_review_report_cli_and_jsonl_and_label_studio_roundtrips(demo, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    from scale_vqa.review.figures import compute_figures

    out, _ = demo
    ann = ["key"] * 8 + ["x"] * 2
    store = _rated_store(tmp_path, out, {"ann": ann, "bob": ["key"] * 10})
    db = tmp_path / "fig.sqlite"
    args = ["review-report", "--db", str(db), "--json", str(tmp_path / "f.json")]
    assert main([*args, "--plot", str(tmp_path / "f.png")]) == 0
    text = capsys.readouterr().out
    assert "per reviewer" in text and "Cohen" in text and "ann" in text
    assert json.loads((tmp_path / "f.json").read_text())["items_answered"] == 10
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    # JSONL out and into a fresh database: the same figures; a second import adds nothing
    assert main(["review-export", "--db", str(db), "--out", str(tmp_path / "d.jsonl")]) == 0
    fresh = tmp_path / "fresh.sqlite"
    assert main(["review-import", str(tmp_path / "d.jsonl"), "--db", str(fresh)]) == 0
    assert "answers 20, decisions 20" in capsys.readouterr().out
    assert main(["review-import", str(tmp_path / "d.jsonl"), "--db", str(fresh)]) == 0
    assert "answers 0, decisions 0, skipped 40" in capsys.readouterr().out
    f_old, f_new = compute_figures(store), compute_figures(ReviewStore(fresh))
    assert f_old["by_reviewer"] == f_new["by_reviewer"]
    assert f_old["agreement"] == f_new["agreement"]
    # Label Studio: tasks + config + images; results back in as another lab's decisions
    ls = tmp_path / "ls" / "tasks.json"
    code = main(["review-export", "--db", str(db), "--format", "label-studio", "--out", str(ls),
                 "--items", str(out), "--with-results"])  # fmt: skip
    assert code == 0
    tasks = json.loads(ls.read_text())
    assert len(tasks) == len(load_items(out).questions) and "answer" not in tasks[0]["data"]
    assert tasks[0]["data"]["image_0"].startswith("/data/local-files/?d=tasks_images/")
    assert (ls.parent / "tasks_images" / tasks[0]["data"]["image_0"].split("/")[-1]).is_file()
    view = ET.fromstring(ls.with_suffix(".xml").read_text())
    names = {el.get("name") for el in view.iter() if el.get("name")}
    assert {"image_0", "image_2", "answer", "verdict", "reason", "note"} <= names
    assert {el.get("value") for el in view.iter("Image")} == {"$image_0", "$image_1", "$image_2"}
    annotated = [t for t in tasks if t.get("annotations")]
    assert len(annotated) == 10 and len(annotated[0]["annotations"]) == 2
    # what a Label Studio export of another lab looks like: completed_by ids, choices
    for t in annotated:
        for user, a in enumerate(t["annotations"], 7):
            a["completed_by"] = user
            a["created_at"] = "2026-01-02T03:04:05.000000Z"
    (tmp_path / "ls_export.json").write_text(json.dumps(annotated))
    assert main(["review-import", str(tmp_path / "ls_export.json"), "--db", str(fresh)]) == 0
    assert "answers 20, decisions 20, skipped 0" in capsys.readouterr().out
    lab = [a for a in ReviewStore(fresh).answers() if a["reviewer"] == "label-studio-user-7"]
    assert len(lab) == 10 and {a["origin"] for a in lab} == {"label-studio"}
    fig = compute_figures(ReviewStore(fresh))
    assert fig["agreement"]["blind_answers"]["method"] == "fleiss"  # ann, bob and two LS users


def test_build_obeys_the_review_and_the_card_reports_it(demo, tmp_path):
    import datasets

    out, _ = demo
    source = load_items(out)
    store = ReviewStore(tmp_path / "r.sqlite")
    store.register_items(source.questions)
    store.add_reviewer("ann")
    store.add_reviewer("judge", role="adjudicator")
    qs = source.questions
    rejected = qs[0]
    mates = {q.id for q in qs if q.set_id == rejected.set_id}
    assert len(mates) == 4
    edited = next(q for q in qs if q.set_id != rejected.set_id)
    new_opts = [o.rstrip(".") + " in these fields" for o in edited.options]  # all alike
    broken = next(q for q in qs if q.set_id not in (rejected.set_id, edited.set_id))
    lopsided = [broken.options[0] + " with marked atypia", *broken.options[1:]]
    for q in qs[:20]:
        store.answer(q.id, "ann", q.answer)
        if q.id == rejected.id:
            store.decide(q.id, "ann", "reject", reason="key_not_visible")
        elif q.id == broken.id:
            store.decide(q.id, "ann", "edit", edit={"options": lopsided, "answer": q.answer})
        elif q.id != edited.id:
            store.decide(q.id, "ann", "accept")
    store.answer(edited.id, "judge", edited.answer)
    store.decide(edited.id, "judge", "edit", edit={"options": new_opts, "answer": edited.answer})
    result = rebuild_with_review(tmp_path, tmp_path / "r.sqlite")
    ran = [r.name for r in result.reports if not r.skipped]
    assert ran == ["build"]  # the review changes the build only
    dropped = [json.loads(x) for x in (tmp_path / "work" / "review_dropped.jsonl").open()]
    broken_set = {q.id for q in qs if q.set_id == broken.set_id}
    assert {d["id"] for d in dropped} == mates | broken_set
    why = {d["id"]: d["reason"] for d in dropped}
    assert why[rejected.id] == "rejected by ann: key_not_visible"
    assert why[broken.id].startswith("edit failed the re-check: [symmetry]")
    ds = datasets.load_dataset(str(tmp_path / "ds"))
    ids = {i for s in ds for i in ds[s]["id"]}
    assert not ids & (mates | broken_set) and len(ids) == len(qs) - 8
    rows = [r for s in ds for r in ds[s].select_columns(["set_id", "options", "id"])]
    edited_set = [r for r in rows if r["set_id"] == edited.set_id]
    assert len(edited_set) == 4 and all(r["options"][1] == new_opts[1] for r in edited_set)
    assert edited.id not in ids  # content changed, so did the id
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "## Clinical validation" in card
    assert "8 question(s) dropped (1 rejected" in card
    assert "2 edit(s) resolved, 4 built question(s) carry an edit" in card
    assert "### Per reviewer" in card and "| ann | 20 |" in card


def test_config_review_key(tmp_path):
    from scale_vqa.config import parse_config

    ann = tmp_path / "a.jsonl"
    ann.write_text("{}\n")
    base = {"annotations": "a.jsonl"}
    with pytest.raises(ConfigError, match=r"key 'review\.db' names .* does not exist"):
        parse_config(base | {"review": "r.sqlite"}, tmp_path)
    ReviewStore(tmp_path / "r.sqlite")
    cfg = parse_config(base | {"review": "r.sqlite"}, tmp_path)
    assert cfg.review.db == tmp_path / "r.sqlite" and cfg.review.disagreement == "drop"
    cfg = parse_config(base | {"review": {"db": "r.sqlite", "unreviewed": "drop"}}, tmp_path)
    assert cfg.review.unreviewed == "drop"
    with pytest.raises(ConfigError, match=r"review\.unreviewed"):
        parse_config(base | {"review": {"db": "r.sqlite", "unreviewed": "maybe"}}, tmp_path)
