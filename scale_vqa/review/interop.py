"""Decisions in and out: JSONL (lossless) and Label Studio (tasks, labeling config, results).

JSONL: one record per line, ``{"kind": "item" | "answer" | "decision", ...}`` with who
and when; importing the same file twice adds nothing (records are matched on kind, item,
reviewer, time and content), so two labs' files merge.

Label Studio: :func:`export_label_studio` writes tasks (``data`` holds the question, the
options, one image URL and caption per magnification; no key, so a Label Studio annotator
answers blind too) and the matching labeling config (``<Choices>`` for the blind answer,
the verdict and the reject reason, ``<TextArea>`` for a note); with ``with_results`` the
stored decisions go in as ``annotations``. :func:`import_label_studio` reads a Label
Studio JSON export (tasks with ``annotations[].result[]`` of type ``choices``) back as
answers and decisions. Label Studio shows the key nowhere, so its verdict is given in the
same sitting as the blind answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from curation.errors import InputError
from curation.io import atomic_write_bytes, atomic_write_jsonl, atomic_write_text
from curation.records import LETTERS
from scale_vqa.review.items import ItemSource
from scale_vqa.review.store import CANNOT_TELL, REJECT_REASONS, ReviewStore, now

LS_CANNOT_TELL = "cannot tell from these images"


# ------------------------------------------------------------------------ JSONL
def export_jsonl(store: ReviewStore, out: str | Path) -> int:
    """Write every item, answer and decision; return the number of records."""
    rows: list[dict[str, Any]] = []
    for item_id, it in sorted(store.items().items()):
        rows.append({"kind": "item", "item_id": item_id, "record": it["record"]})
    for a in store.answers():
        rows.append({"kind": "answer", **{k: a[k] for k in ("item_id", "reviewer", "choice",
                                                            "created_at", "origin")}})  # fmt: skip
    for d in store.decisions():
        rows.append(
            {"kind": "decision"}
            | {
                k: d[k]
                for k in (
                    "item_id",
                    "reviewer",
                    "verdict",
                    "reason",
                    "note",
                    "edit",
                    "checks",
                    "created_at",
                    "origin",
                )
            }
        )
    return atomic_write_jsonl(Path(out), rows)


def import_jsonl(store: ReviewStore, path: str | Path) -> dict[str, int]:
    """Append the records of an exported file that the database lacks; return counts."""
    from curation.records import Question

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or obj.get("kind") not in ("item", "answer", "decision"):
            raise InputError(f"{path}:{lineno}: expected a record with kind item/answer/decision")
        for k in ("item_id",) + (("reviewer", "created_at") if obj["kind"] != "item" else ()):
            if not obj.get(k):
                raise InputError(f"{path}:{lineno}: missing field {k!r}")
        records.append((lineno, obj))
    items = [
        Question.from_dict(o["record"], f"{path}:{n}") for n, o in records if o["kind"] == "item"
    ]
    counts = {"items": store.register_items(items), "answers": 0, "decisions": 0, "skipped": 0}
    for _, o in records:
        if o["kind"] == "answer":
            counts["answers" if _append_answer(store, o) else "skipped"] += 1
        elif o["kind"] == "decision":
            counts["decisions" if _append_decision(store, o) else "skipped"] += 1
    return counts


def _append_answer(store: ReviewStore, o: dict[str, Any]) -> bool:
    with store.write() as con:
        store.ensure_reviewer(con, o["reviewer"])
        if con.execute(
            "SELECT 1 FROM answers WHERE item_id = ? AND reviewer = ?",
            (o["item_id"], o["reviewer"]),
        ).fetchone():
            return False  # one blind answer per reviewer and item: the first one stands
        con.execute(
            "INSERT INTO answers (item_id, reviewer, choice, created_at, origin) "
            "VALUES (?, ?, ?, ?, ?)",
            (o["item_id"], o["reviewer"], o.get("choice", ""), o["created_at"],
             o.get("origin") or "import"),
        )  # fmt: skip
    return True


def _append_decision(store: ReviewStore, o: dict[str, Any]) -> bool:
    edit = json.dumps(o["edit"], ensure_ascii=False) if o.get("edit") else None
    with store.write() as con:
        store.ensure_reviewer(con, o["reviewer"])
        same = con.execute(
            "SELECT 1 FROM decisions WHERE item_id = ? AND reviewer = ? AND created_at = ? "
            "AND verdict = ? AND reason = ?",
            (o["item_id"], o["reviewer"], o["created_at"], o.get("verdict"), o.get("reason") or ""),
        ).fetchone()
        if same:
            return False
        last = con.execute(
            "SELECT seq FROM decisions WHERE item_id = ? AND reviewer = ? ORDER BY seq DESC",
            (o["item_id"], o["reviewer"]),
        ).fetchone()
        con.execute(
            "INSERT INTO decisions (item_id, reviewer, verdict, reason, note, edit, checks, "
            "replaces, created_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                o["item_id"],
                o["reviewer"],
                o.get("verdict", ""),
                o.get("reason") or "",
                o.get("note") or "",
                edit,
                json.dumps(o["checks"]) if o.get("checks") else None,
                last["seq"] if last else None,
                o["created_at"],
                o.get("origin") or "import",
            ),
        )
    return True


# ------------------------------------------------------------------ Label Studio
def labeling_config(n_images: int, n_options: int = 4) -> str:
    """The Label Studio labeling config matching :func:`export_label_studio`'s tasks."""
    lines = ["<View>", '  <Header value="$question"/>']
    for k in range(n_images):
        lines.append(f'  <Header value="$caption_{k}" size="6"/>')
        lines.append(f'  <Image name="image_{k}" value="$image_{k}" zoom="true"/>')
    lines.append('  <Text name="options" value="$options_text"/>')
    lines.append('  <Choices name="answer" toName="options" choice="single" required="true">')
    lines += [f'    <Choice value="{LETTERS[i]}"/>' for i in range(n_options)]
    lines.append(f"    <Choice value={quoteattr(LS_CANNOT_TELL)}/>")
    lines.append("  </Choices>")
    lines.append('  <Choices name="verdict" toName="options" choice="single" required="true">')
    lines += ['    <Choice value="accept"/>', '    <Choice value="reject"/>']
    lines.append("  </Choices>")
    lines.append(
        '  <Choices name="reason" toName="options" choice="single" visibleWhen="choice-selected" '
        'whenTagName="verdict" whenChoiceValue="reject">'
    )
    lines += [
        f"    <Choice value={quoteattr(k)} hint={quoteattr(v)}/>" for k, v in REJECT_REASONS.items()
    ]
    lines.append("  </Choices>")
    lines.append('  <TextArea name="note" toName="options" rows="2"/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def export_label_studio(
    source: ItemSource,
    store: ReviewStore | None,
    out: str | Path,
    images_dir: str | Path | None = None,
    url_prefix: str = "/data/local-files/?d=",
    with_results: bool = False,
) -> dict[str, Any]:
    """Write Label Studio tasks (``out``), ``out``'s ``.xml`` config and the images.

    Images go to ``images_dir`` (default: ``<out stem>_images/`` beside ``out``) and each
    task names them as ``url_prefix + <folder>/<file>`` (Label Studio's local-files
    serving; give ``url_prefix`` of your own web server otherwise).
    """
    out = Path(out)
    images_dir = Path(images_dir) if images_dir else out.with_name(out.stem + "_images")
    images_dir.mkdir(parents=True, exist_ok=True)
    latest = store.latest_decisions() if (store and with_results) else {}
    answers = {(a["item_id"], a["reviewer"]): a for a in store.answers()} if store else {}
    tasks, n_images, n_options = [], 0, 4
    for it in source.items:
        q = it.question
        if q is None:
            continue
        data: dict[str, Any] = {
            "item_id": it.item_id,
            "question": q.question,
            "options_text": "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(q.options)),
            "question_type": q.question_type,
            "organ": q.organ,
        }
        for k, ref in enumerate(it.images):
            try:
                blob, mime = source.image_bytes(it.item_id, k)
            except InputError:
                continue
            ext = {"image/png": ".png", "image/jpeg": ".jpg"}.get(mime, ".img")
            name = f"{it.item_id}_{k}{ext}"
            atomic_write_bytes(images_dir / name, blob)
            data[f"image_{k}"] = f"{url_prefix}{images_dir.name}/{name}"
            mpp = f", {ref.mpp:.3f} um/px" if ref.mpp else ""
            data[f"caption_{k}"] = f"{ref.magnification:g}x{mpp}"
        n_images = max(n_images, len(it.images))
        n_options = max(n_options, len(q.options))
        task: dict[str, Any] = {"data": data}
        results = []
        for reviewer, d in latest.get(it.item_id, {}).items():
            a = answers.get((it.item_id, reviewer))
            results.append(_ls_annotation(reviewer, a, d))
        if results:
            task["annotations"] = results
        tasks.append(task)
    atomic_write_text(out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    config = out.with_suffix(".xml")
    atomic_write_text(config, labeling_config(n_images, n_options))
    return {"tasks": len(tasks), "config": str(config), "images": str(images_dir)}


def _choice(from_name: str, value: str) -> dict[str, Any]:
    return {
        "from_name": from_name,
        "to_name": "options",
        "type": "choices",
        "value": {"choices": [value]},
    }


def _ls_annotation(reviewer: str, answer: dict | None, decision: dict) -> dict[str, Any]:
    result = []
    if answer:
        choice = LS_CANNOT_TELL if answer["choice"] == CANNOT_TELL else answer["choice"]
        result.append(_choice("answer", choice))
    verdict = decision["verdict"] if decision["verdict"] in ("accept", "reject") else None
    if verdict:
        result.append(_choice("verdict", verdict))
    if decision["verdict"] == "reject" and decision["reason"]:
        result.append(_choice("reason", decision["reason"]))
    if decision.get("note"):
        result.append(
            {"from_name": "note", "to_name": "options", "type": "textarea",
             "value": {"text": [decision["note"]]}}
        )  # fmt: skip
    return {"completed_by": {"email": reviewer}, "created_at": decision["created_at"],
            "result": result}  # fmt: skip


def _ls_user(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("username")
                   or completed_by.get("id") or "")  # fmt: skip
    return f"label-studio-user-{completed_by}" if completed_by not in (None, "") else ""


def import_label_studio(store: ReviewStore, path: str | Path) -> dict[str, int]:
    """Read a Label Studio JSON export; append its answers and verdicts as decisions."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio export is a JSON list of tasks")
    known = store.items()
    counts = {"answers": 0, "decisions": 0, "skipped": 0, "unknown_items": 0}
    for t, task in enumerate(tasks):
        item_id = (task.get("data") or {}).get("item_id") if isinstance(task, dict) else None
        if not item_id:
            raise InputError(f"{path}: task {t} has no data.item_id (export it from these tasks)")
        if item_id not in known:
            counts["unknown_items"] += 1
            continue
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            reviewer = _ls_user(ann.get("completed_by"))
            if not reviewer:
                raise InputError(f"{path}: task {t} has an annotation without completed_by")
            stamp = ann.get("created_at") or now()
            got: dict[str, str] = {}
            for r in ann.get("result") or []:
                v = r.get("value") or {}
                if r.get("type") == "choices" and v.get("choices"):
                    got[r.get("from_name", "")] = str(v["choices"][0])
                elif r.get("type") == "textarea" and v.get("text"):
                    got[r.get("from_name", "")] = " ".join(map(str, v["text"]))
            if "answer" in got:
                choice = CANNOT_TELL if got["answer"] == LS_CANNOT_TELL else got["answer"]
                rec = {"item_id": item_id, "reviewer": reviewer, "choice": choice,
                       "created_at": stamp, "origin": "label-studio"}  # fmt: skip
                counts["answers" if _append_answer(store, rec) else "skipped"] += 1
            if got.get("verdict") in ("accept", "reject"):
                if got["verdict"] == "reject" and got.get("reason") not in REJECT_REASONS:
                    raise InputError(
                        f"{path}: task {t}: a reject needs a reason, one of "
                        f"{', '.join(REJECT_REASONS)}"
                    )
                rec = {"item_id": item_id, "reviewer": reviewer, "verdict": got["verdict"],
                       "reason": got.get("reason", "") if got["verdict"] == "reject" else "",
                       "note": got.get("note", ""), "created_at": stamp,
                       "origin": "label-studio"}  # fmt: skip
                counts["decisions" if _append_decision(store, rec) else "skipped"] += 1
    return counts
