"""The review app end to end in a real headless browser (Debian's chromium + Playwright).

Skips only when chromium is absent (CI installs it in .ci/run). The screenshot of the
first view, as a pathologist sees it, goes to $SCALE_VQA_SHOTS (default /tmp/h14-shots/).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from scale_vqa.cli import main
from scale_vqa.review.items import load_items
from scale_vqa.review.store import ReviewStore
from tests.review_factory import demo_build, rebuild_with_review, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("SCALE_VQA_SHOTS", "/tmp/h14-shots"))

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="chromium is not installed (apt-get install -y chromium; .ci/run does it)",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str, token: str):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/#reviewer={token}")
    page.wait_for_selector("#fields img")
    page.wait_for_function(
        "[...document.querySelectorAll('#fields img')].every(i => i.complete && i.naturalWidth)"
    )
    return page


def test_review_in_a_browser_blind_accept_reject_edit_restart_report_build(browser, tmp_path):
    out, _ = demo_build()
    total = len(load_items(out).questions)
    db = tmp_path / "review.sqlite"
    token = ReviewStore(db).add_reviewer("dr-ann")
    server = start_server(out, db)
    try:
        page = _open(browser, server.url, token)
        first_id = page.inner_text("#meta").rsplit("· ", 1)[-1].strip()
        rationale = _rationale(out, first_id)
        # blind: images with magnification, field size and scale bar; no key anywhere
        captions = page.locator("#fields figcaption").all_inner_texts()
        assert [c.split(" ")[0] for c in captions] == ["5x", "10x", "20x"]
        assert "field 448 µm x 448 µm" in captions[0] and "2.000 µm/px" in captions[0]
        assert page.locator(".scalebar").first.inner_text() == "100 µm"
        assert page.is_hidden("#reveal")
        assert rationale not in page.content() and "key:" not in page.inner_text("body")
        SHOTS.mkdir(parents=True, exist_ok=True)
        _shot(page, "review-first-view.png")
        # zoom at full crop resolution: click, scroll, Esc
        page.click("#fields .img >> nth=0")
        assert page.is_visible("#zoom")
        before = page.eval_on_selector("#zimg", "e => e.style.transform")
        page.mouse.move(700, 450)
        page.mouse.wheel(0, -600)
        assert page.eval_on_selector("#zimg", "e => e.style.transform") != before
        page.screenshot(path=str(SHOTS / "review-zoom.png"))
        page.keyboard.press("Escape")
        assert page.is_hidden("#zoom")
        # 1) answer blind with the keyboard; only now the key and rationale appear; accept
        page.keyboard.press("1")
        page.wait_for_selector("#reveal:not(.hidden)")
        assert "key:" in page.inner_text("#result") and rationale in page.inner_text("#rationale")
        assert "text-only adversaries" in page.inner_text("#flags")
        _shot(page, "review-revealed.png")
        page.keyboard.press("Enter")
        page.wait_for_selector("#savednote")
        assert "Saved: accept" in page.inner_text("#savednote")
        # 2) next item: cannot tell, reject with a reason (keyboard)
        page.keyboard.press("n")
        page.wait_for_function(
            f"!document.querySelector('#meta').textContent.includes('{first_id}')"
        )
        second_id = page.inner_text("#meta").rsplit("· ", 1)[-1].strip()
        page.keyboard.press("x")
        page.wait_for_selector("#reveal:not(.hidden)")
        assert "cannot tell" in page.inner_text("#result")
        page.keyboard.press("r")
        page.keyboard.press("2")  # wrong key
        page.keyboard.press("Enter")
        page.wait_for_selector("#savednote")
        assert "Saved: reject" in page.inner_text("#savednote")
        # 3) next item: answer by click, edit the key, see the checker's result, save
        page.keyboard.press("n")
        page.wait_for_function(
            f"!document.querySelector('#meta').textContent.includes('{second_id}')"
        )
        third_id = page.inner_text("#meta").rsplit("· ", 1)[-1].strip()
        page.click("#opts button[data-c='B']")
        page.wait_for_selector("#reveal:not(.hidden)")
        key = page.inner_text("#result").split("key: ")[1][0]
        page.click("#edit")
        page.select_option("#ekey", "ABCD"[("ABCD".index(key) + 1) % 4])
        page.click("#echeck")
        page.wait_for_selector("#checkresult")
        check = page.inner_text("#checkresult")
        assert "text-only adversaries pick the new key" in check
        assert "constraint" in check
        _shot(page, "review-edit-check.png")
        page.click("#esave")
        page.wait_for_selector("#savednote")
        assert "Saved: edit" in page.inner_text("#savednote")
        page.wait_for_function("document.querySelector('#ptext').textContent.startsWith('3 of')")
        assert f"3 of {total} decided" in page.inner_text("#ptext")
        # an unknown item shows as an error in the page, the server keeps serving
        page.evaluate("openItem('no-such-item')")
        page.wait_for_selector("#error:not(.hidden)")
        assert "no item 'no-such-item'" in page.inner_text("#error")
        page.close()
    finally:
        server.stop()
    # restart: every decision kept, shown again in the page
    server = start_server(out, db)
    try:
        page = _open(browser, server.url, token)
        assert f"3 of {total} decided, 3 answered blind" in page.inner_text("#ptext")
        page.evaluate(f"openItem('{first_id}')")
        page.wait_for_selector("#reveal:not(.hidden)")
        assert "accept" in page.inner_text("#hist")
        page.close()
    finally:
        server.stop()
    store = ReviewStore(db)
    got = {d["item_id"]: (d["verdict"], d["reason"], d["reviewer"]) for d in store.decisions()}
    assert got == {
        first_id: ("accept", "", "dr-ann"),
        second_id: ("reject", "wrong_key", "dr-ann"),
        third_id: ("edit", "", "dr-ann"),
    }
    # review-report, then a build that obeys the review
    assert main(["review-report", "--db", str(db), "--json", str(tmp_path / "fig.json")]) == 0
    fig = json.loads((tmp_path / "fig.json").read_text())
    assert fig["items_decided"] == 3 and fig["overall"][0]["cannot_tell"]["k"] == 1
    rebuild_with_review(tmp_path, db)
    dropped = {json.loads(x)["id"] for x in (tmp_path / "work" / "review_dropped.jsonl").open()}
    second_set = _set_of(out, second_id)
    assert second_set <= dropped and len(second_set) == 4
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "## Clinical validation" in card and "| dr-ann | 3 |" in card


def _shot(page, name: str) -> None:
    """A full-page screenshot from the top (the sticky header where a reviewer sees it)."""
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / name), full_page=True)


def _row(out: Path, item_id: str) -> dict:
    import datasets

    ds = datasets.load_dataset(str(out))
    for split in ds:
        for r in ds[split].select_columns(["id", "rationale", "set_id"]):
            if r["id"] == item_id:
                return r
    raise AssertionError(item_id)


def _rationale(out: Path, item_id: str) -> str:
    return _row(out, item_id)["rationale"]


def _set_of(out: Path, item_id: str) -> set[str]:
    import datasets

    sid = _row(out, item_id)["set_id"]
    ds = datasets.load_dataset(str(out))
    return {
        r["id"] for s in ds for r in ds[s].select_columns(["id", "set_id"]) if r["set_id"] == sid
    }
