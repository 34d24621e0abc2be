"""curation.evidence and ``scale-vqa evidence`` on the shipped skin vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.annotations import read_annotations
from curation.errors import ConfigError, ValidationError
from curation.evidence import (
    DEFAULT_THRESHOLD,
    caption_messages,
    normalise_annotations,
    parse_caption_answer,
)
from curation.io import atomic_write_jsonl
from curation.llm import LLMClient, LLMConfig
from curation.organs import get_organ
from scale_vqa.cli import main
from tests.openai_server import OpenAIServer


def raw(path_id: str = "p-1", **kw) -> dict:
    base = {"path_id": path_id, "slide_id": "S1", "patient_id": "pt-1", "organ": "skin"}
    base.update(kw)
    return base


# -- mapping free text ---------------------------------------------------------------


def test_exact_ids_phrases_and_synonyms_need_no_embedder():
    anns, report = normalise_annotations(
        [
            raw(
                findings={
                    "low": ["EPIDERMAL-HYPERPLASIA", "Solar elastosis.", "pseudo horn  cysts"],
                    "mid": ["acanthosis", "melanocytic_nests"],
                    "high": ["Mitoses"],
                },
                negatives={"high": ["prominent nucleoli"]},
            )
        ]
    )
    assert anns[0]["findings"] == {
        "low": ["epidermal_hyperplasia", "solar_elastosis", "horn_cysts"],
        "mid": ["epidermal_hyperplasia", "melanocytic_nests"],
        "high": ["mitotic_figures"],
    }
    assert anns[0]["negatives"]["high"] == ["prominent_nucleoli"]
    assert report["counts"]["exact"] == 7 and report["counts"]["embedding"] == 0
    assert "embedding_model" not in report  # no model was loaded


PARAPHRASES = [
    ("low", "the epidermis is thickened", "epidermal_hyperplasia"),
    ("low", "marked acanthosis of the epidermis", "epidermal_hyperplasia"),
    ("low", "basaloid tumor islands", "basaloid_nests"),
    ("low", "erosion of the epidermis", "surface_ulceration"),
    ("mid", "thick keratin layer on the surface", "hyperkeratosis"),
    ("mid", "nuclei palisading at the periphery", "peripheral_palisading"),
    ("mid", "clefts between tumour and stroma", "retraction_clefts"),
    ("high", "frequent mitoses", "mitotic_figures"),
    ("high", "nuclei vary in size and shape", "nuclear_pleomorphism"),
    ("high", "large prominent nucleoli", "prominent_nucleoli"),
]


def test_paraphrases_map_to_the_right_ids_by_embedding(embedder):
    findings: dict[str, list[str]] = {"low": [], "mid": [], "high": []}
    for scale, text, _ in PARAPHRASES:
        findings[scale].append(text)
    anns, report = normalise_annotations([raw(findings=findings)], embedder=embedder)
    got = {(m["scale"], m["text"]): m for m in report["by_embedding"]}
    for scale, text, expected in PARAPHRASES:
        assert got[(scale, text)]["feature"] == expected, (text, got[(scale, text)])
        assert got[(scale, text)]["similarity"] >= DEFAULT_THRESHOLD
        assert expected in anns[0]["findings"][scale]
    assert report["counts"]["embedding"] == len(PARAPHRASES)
    assert report["unmapped"] == [] and report["not_visible"] == []


def test_unrelated_text_is_reported_unmapped_with_file_line_and_candidate(tmp_path, embedder):
    path = tmp_path / "raw.jsonl"
    atomic_write_jsonl(
        path,
        [
            raw("p-1", findings={"low": ["acanthosis"]}),
            raw("p-2", findings={"low": ["coffee stain on the coverslip", "hyperkeratosis"]}),
        ],
    )
    anns, report = normalise_annotations(path, embedder=embedder)
    assert anns[1]["findings"]["low"] == ["hyperkeratosis"]  # the stain is dropped
    [item] = report["unmapped"]
    assert item["file"] == str(path) and item["line"] == 2 and item["path_id"] == "p-2"
    assert item["scale"] == "low" and item["text"] == "coffee stain on the coverslip"
    assert item["best_candidate"] in get_organ("skin").features
    assert 0 < item["similarity"] < DEFAULT_THRESHOLD
    # a stricter threshold reports a good paraphrase too, with its nearest feature
    _, strict = normalise_annotations(
        [raw(findings={"low": ["basaloid tumor islands"]})], embedder=embedder, threshold=0.95
    )
    assert strict["unmapped"][0]["best_candidate"] == "basaloid_nests"


def test_near_tie_between_two_features_is_reported_ambiguous(embedder):
    anns, report = normalise_annotations(
        [raw(findings={"mid": ["nests of cells"]})], embedder=embedder
    )
    assert anns[0]["findings"]["mid"] == []
    [item] = report["unmapped"]
    assert {item["best_candidate"], item["runner_up"]} == {"melanocytic_nests", "basaloid_nests"}
    assert item["similarity"] - item["runner_up_similarity"] < 0.05
    assert item["reason"].startswith("ambiguous")
    anns, _ = normalise_annotations(
        [raw(findings={"mid": ["nests of cells"]})], embedder=embedder, margin=0.0
    )
    assert anns[0]["findings"]["mid"] == [item["best_candidate"]]


def test_high_power_term_at_low_power_is_reported_not_visible(embedder):
    anns, report = normalise_annotations(
        [raw(findings={"low": ["mitoses", "many mitotic figures", "acanthosis"]})],
        embedder=embedder,
    )
    assert anns[0]["findings"]["low"] == ["epidermal_hyperplasia"]
    items = {i["text"]: i for i in report["not_visible"]}
    assert set(items) == {"mitoses", "many mitotic figures"}
    assert items["mitoses"]["method"] == "exact"
    assert items["many mitotic figures"]["method"] == "embedding"
    assert all(
        i["feature"] == "mitotic_figures" and i["visible_at"] == ["high"] for i in items.values()
    )


def test_conflicts_are_dropped_and_reported():
    anns, report = normalise_annotations(
        [
            raw(
                findings={
                    "low": ["ulceration", "hyperkeratosis", "acanthosis"],
                    "high": ["mitoses"],
                },
                negatives={"high": ["mitotic figures"]},
            )
        ]
    )
    assert anns[0]["findings"] == {"low": ["epidermal_hyperplasia"], "mid": [], "high": []}
    assert anns[0]["negatives"]["high"] == []
    reasons = sorted(c["reason"].split(";")[0] for c in report["conflicts"])
    assert reasons == ["both present and absent", "cannot co-occur in one field (exclusive)"]


def test_structural_problems_name_file_and_line(tmp_path):
    path = tmp_path / "raw.jsonl"
    atomic_write_jsonl(
        path, [raw(), {"slide_id": "S2", "organ": "skin"}, raw("p-3", organ="kidneyz")]
    )
    with pytest.raises(ValidationError) as info:
        normalise_annotations(path)
    msg = str(info.value)
    assert f"{path}:2" in msg and "path_id" in msg
    assert f"{path}:3" in msg and "kidneyz" in msg


def test_captions_without_llm_is_a_config_error():
    with pytest.raises(ConfigError, match=r"1 caption.*--llm"):
        normalise_annotations([raw(captions={"low": "thick epidermis"})])


# -- captions through an LLM ---------------------------------------------------------

LOW_CAPTION = "Low power: a thickened, ulcer-free epidermis over islands of basaloid cells."
CAPTION_ANSWERS = {
    LOW_CAPTION: json.dumps(
        {"present": ["epidermal hyperplasia", "basaloid tumour nests"], "absent": []}
    ),
    "Palisading nuclei at the edge of the nests, with clefts; a coffee stain.": (
        "```json\n"
        + json.dumps(
            {
                "present": ["peripheral palisading", "retraction clefts", "coffee stain"],
                "absent": [],
            }
        )
        + "\n```"
    ),
    "Pleomorphic nuclei; no mitoses seen.": 'Here you go: {"present": ["nuclear atypia"], '
    '"absent": ["mitotic figures"]}',
    "Tumour cells at high power.": "The caption describes tumour cells, nothing more.",
}


def caption_of(messages) -> str:
    return messages[-1]["content"].split("Caption:\n", 1)[1].split("\n\n", 1)[0]


def caption_raws() -> list[dict]:
    return [
        raw(
            "p-1",
            captions={
                "low": LOW_CAPTION,
                "mid": "Palisading nuclei at the edge of the nests, with clefts; a coffee stain.",
                "high": "Pleomorphic nuclei; no mitoses seen.",
            },
        ),
        raw(
            "p-2",
            captions={"high": "Tumour cells at high power."},
            findings={"low": ["acanthosis"]},
        ),
    ]


def test_caption_prompt_gives_the_vocabulary_of_that_scale():
    skin = get_organ("skin")
    text = caption_messages(skin, "high", "x")[-1]["content"]
    assert "mitotic figures" in text and "also called mitoses" in text
    assert "solar elastosis" not in text  # low/mid only
    assert '"present"' in text and '"absent"' in text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"present": ["a"], "absent": []}', (["a"], [])),
        ('```json\n{"present": [], "absent": ["b "]}\n```', ([], ["b"])),
        ('Sure. {"present": ["a"]} Hope this helps', (["a"], [])),
    ],
)
def test_parse_caption_answer_accepts_common_wrappings(answer, expected):
    assert parse_caption_answer(answer) == expected


@pytest.mark.parametrize(
    "answer",
    ["no json here", '{"present": "a"}', '["a"]', '{"findings": ["a"]}', '{"present": [1'],
)
def test_parse_caption_answer_rejects_the_rest(answer):
    with pytest.raises(ValueError):
        parse_caption_answer(answer)


def test_captions_end_to_end_through_loopback_llm(tmp_path, embedder):
    with OpenAIServer(responder=lambda m, model: CAPTION_ANSWERS[caption_of(m)]) as server:
        llm = LLMClient(LLMConfig(base_url=server.base_url, model="captioner"), tmp_path / "c")
        anns, report = normalise_annotations(caption_raws(), embedder=embedder, llm=llm)
        assert server.n_chat == 4
    first, second = anns
    assert first["findings"] == {
        "low": ["epidermal_hyperplasia", "basaloid_nests"],
        "mid": ["peripheral_palisading", "retraction_clefts"],
        "high": ["nuclear_pleomorphism"],
    }
    assert first["negatives"]["high"] == ["mitotic_figures"]
    assert "captions" not in first  # canonical output carries ids only
    assert second["findings"] == {"low": ["epidermal_hyperplasia"], "mid": [], "high": []}
    [bad] = report["unparsable_llm_answers"]
    assert bad["path_id"] == "p-2" and bad["line"] == 2 and bad["scale"] == "high"
    assert "nothing more" in bad["answer"]
    [stain] = report["unmapped"]
    assert stain["text"] == "coffee stain" and stain["origin"] == "caption"
    assert report["counts"]["captions"] == 4
    assert report["llm_usage"]["calls"] == 4


# -- command line --------------------------------------------------------------------


def test_cli_writes_canonical_annotations_and_report(tmp_path, capsys):
    raw_path, out, rep = tmp_path / "raw.jsonl", tmp_path / "ann.jsonl", tmp_path / "rep.json"
    atomic_write_jsonl(
        raw_path,
        [
            raw(
                "p-1",
                diagnosis="basal_cell_carcinoma",
                findings={"low": ["basaloid tumor islands"], "high": ["mitoses"]},
            ),
            raw("p-2", findings={"low": ["coffee stain on the coverslip", "mitoses"]}),
        ],
    )
    args = [
        "evidence",
        str(raw_path),
        "--out",
        str(out),
        "--report",
        str(rep),
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "4 terms: 1 mapped exactly, 1 by embedding" in captured.out
    assert "1 unmapped, 1 not visible" in captured.out
    assert "warning: 2 item(s) were dropped" in captured.err
    anns = read_annotations(out)  # the output passes the annotation validator
    assert anns[0].findings["low"] == ["basaloid_nests"] and anns[1].findings["low"] == []
    report = json.loads(rep.read_text())
    assert report["unmapped"][0]["text"] == "coffee stain on the coverslip"
    assert main([*args, "--strict"]) == 1


def test_cli_with_llm_reuses_the_cache_on_rerun(tmp_path, capsys, monkeypatch):
    raw_path, out = tmp_path / "raw.jsonl", tmp_path / "ann.jsonl"
    atomic_write_jsonl(raw_path, caption_raws()[:1])
    monkeypatch.setenv("CAPTION_KEY", "sk-caption-secret-777")
    with OpenAIServer(responder=lambda m, model: CAPTION_ANSWERS[caption_of(m)]) as server:
        args = [
            "evidence",
            str(raw_path),
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "--llm",
            f"base_url={server.base_url},model=captioner,key_env=CAPTION_KEY",
        ]
        assert main(args) == 0
        assert server.n_chat == 3
        assert main(args) == 0
        assert server.n_chat == 3  # every answer came from the cache
    captured = capsys.readouterr()
    assert "captions: 3 decomposed by captioner" in captured.out and "3 cache hits" in captured.out
    assert (tmp_path / "ann.report.json").is_file()  # default report path
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file() and path.suffix == ".json":
            assert "sk-caption-secret-777" not in path.read_text()


def test_cli_bad_llm_spec_is_a_clean_error(tmp_path, capsys):
    raw_path = tmp_path / "raw.jsonl"
    atomic_write_jsonl(raw_path, [raw()])
    code = main(["evidence", str(raw_path), "--out", str(tmp_path / "o.jsonl"), "--llm", "model=x"])
    assert code == 1
    assert "error: LLM spec 'model=x' lacks base_url" in capsys.readouterr().err


def test_missing_input_file_is_a_clean_error(tmp_path, capsys):
    assert main(["evidence", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    assert not Path(tmp_path / "o.jsonl").exists()
