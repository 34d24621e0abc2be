"""The record, the schema and the CLI shell."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from curation.errors import ScaleVQAError, ValidationError
from curation.records import Question, letters_named, read_questions, write_questions
from scale_vqa import __version__
from scale_vqa.schema import COLUMNS, FEATURES, Row, validate_row


def _q(**kw) -> Question:
    base = dict(
        question="Which?",
        options=["a", "b", "c", "d"],
        answer="B",
        question_type="diagnosis",
        slide_id="s1",
        path_id="p1",
    )
    base.update(kw)
    return Question(**base)


def test_errors_form_one_family():
    assert issubclass(ValidationError, ScaleVQAError)


def test_question_roundtrip_and_stable_id(tmp_path):
    q = _q()
    assert q.id == _q().id and len(q.id) == 16
    assert q.id == _q(answer="C").id  # the id never depends on the key
    assert q.id != _q(options=["a", "b", "c", "e"]).id
    path = tmp_path / "q.jsonl"
    assert write_questions(path, [q, _q(answer="A")]) == 2
    back = list(read_questions(path))
    assert back[0] == q and back[1].answer == "A"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"options": ["only one"]}, "has 1 option"),
        ({"answer": "E"}, "must be one of A, B, C, D"),
        ({"question_type": "type_F"}, "use one of correspondence"),
        ({"options": ["a", "a", "b", "c"]}, "same option twice"),
        ({"split": "dev"}, "use one of train, validation, test"),
    ],
)
def test_question_validation_names_field_and_fix(change, message):
    data = _q().to_dict() | change
    with pytest.raises(ValidationError, match=message) as err:
        Question.from_dict(data, where="file.jsonl:7")
    assert "file.jsonl:7" in str(err.value)


def test_letters_named():
    assert letters_named("Only option B matches; (C) does not.") == {"B", "C"}
    assert letters_named("A basal layer is intact.") == set()


def test_schema_features_are_the_columns():
    assert tuple(FEATURES) == COLUMNS
    assert COLUMNS[:4] == ("id", "question", "options", "answer")


def _row(**kw) -> dict:
    row = Row.from_question(
        _q(),
        images=[],
        magnifications=[5.0, 10.0, 20.0],
        mpp=[2.0, 1.0, 0.5],
        regions=[{"x": 0, "y": 0, "width": 40, "height": 40}] * 3,
    ).to_dict()
    row.update(kw)
    return row


def test_valid_row_passes():
    validate_row(_row())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": [b"x", b"y"]}, "2 image\\(s\\) but 3 magnification"),
        ({"magnifications": [20.0, 10.0, 5.0]}, "not strictly ascending"),
        ({"mpp": [1.0]}, "field 'mpp' has 1 value"),
        ({"answer": "Z"}, "field 'answer'"),
        ({"regions": [{"x": 0}] * 3}, "regions\\[0\\]"),
        ({"magnifications": [0.0, 10.0, 20.0]}, "positive objective power"),
    ],
)
def test_row_validation(change, message):
    with pytest.raises(ValidationError, match=message):
        validate_row(_row(**change), "row 3")


def test_cli_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "scale_vqa.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"scale-vqa {__version__}"
    helptext = subprocess.run(
        [sys.executable, "-m", "scale_vqa.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "scale-vqa" in helptext


def test_atomic_write_into_a_pipe_keeps_the_pipe(tmp_path):
    # `--report /dev/null` or `--out /dev/stdout`: renaming over a device or pipe would
    # replace it with a regular file (as root, /dev/null itself)
    import stat
    import threading

    from curation.io import atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "report\n")
    reader.join(timeout=10)
    assert got == ["report\n"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary left
    atomic_write_text(tmp_path / "r.json", "{}")  # a regular file still goes by rename
    assert (tmp_path / "r.json").read_text() == "{}"
