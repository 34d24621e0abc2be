"""GRPO and SFT baselines: real trl steps of a tiny random Qwen2.5-VL on CPU.

A real dataset folder (write_dataset -> Parquet -> load_dataset), three small images per
row; the dense shaped reward keeps GRPO's group advantages non-zero for a random model, and
every training test checks that weights of both the vision tower and the language model
moved (a silent no-op run would pass otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from baselines.evaluate import load_split
from baselines.grpo import TrainConfig, train_grpo
from baselines.rewards import accuracy_reward, format_reward, shaped_reward
from baselines.sft import train_sft
from baselines.tiny_model import build_tiny_qwen
from curation.errors import ConfigError
from scale_vqa.build import write_dataset
from scale_vqa.cli import main
from scale_vqa.schema import Row

MAGS = [5.0, 10.0, 40.0]


def make_rows(n: int = 8, prefix: str = "t") -> list[Row]:
    return [
        Row(
            id=f"{prefix}{i:02d}",
            question="Which finding does the closer view confirm?",
            options=[f"finding {i}-{j}" for j in range(4)],
            answer="ABCD"[i % 4],
            question_type="correspondence",
            images=[Image.new("RGB", (32, 32), (i * 20, 60 * k, 90)) for k in range(3)],
            magnifications=list(MAGS),
            slide_id=f"{prefix}-slide-{i // 2}",
            patient_id=f"{prefix}-pt-{i // 2}",
            rationale="" if i % 2 else f"The high-power view shows finding {i}.",
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trainds") / "ds"
    write_dataset(out, {"train": make_rows(), "test": make_rows(4, "e")}, progress=False)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny") / "tiny-qwen")


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _moved(before: dict, after: dict) -> tuple[bool, bool]:
    """Whether any vision weight (``visual.*``) and any language weight (the rest) changed."""
    import torch

    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    vision = [k for k in changed if k.startswith(("visual.", "model.visual."))]
    return bool(vision), len(changed) > len(vision)


def test_rewards():
    key = ["B", "B", "B", "C", "B"]
    replies = [
        "<think>the nuclei</think><answer>B</answer>",
        "<answer>B</answer>",
        "The answer is B",
        [{"role": "assistant", "content": "<think>x</think> <answer>B</answer>"}],
        "zq",
    ]
    assert accuracy_reward(replies, key) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert format_reward(replies) == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert accuracy_reward(["<answer>E</answer>"], ["E"], options=[["a", "b", "c", "d"]]) == [0.0]
    shaped = shaped_reward(replies, key)
    assert shaped[0] > shaped[3] > shaped[1] > shaped[2] > shaped[4] >= 0.0
    assert all(0.0 <= s <= 1.0 for s in shaped)
    assert len(set(shaped_reward(["abc", "ABC", "a<b", "qqq"], ["A"] * 4))) == 4  # dense


def test_grpo_two_steps_move_vision_and_language(tmp_path, dataset_dir, tiny):
    split = load_split(dataset_dir, "train")
    cfg = TrainConfig(max_steps=2, batch_size=4, num_generations=4, max_completion_length=8,
                      learning_rate=5e-3, rewards=("accuracy", "format", "shaped"),
                      progress=False)  # fmt: skip
    summary = train_grpo(tiny, split, tmp_path / "grpo", cfg)
    assert summary["steps"] == 2 and summary["rows"] == 8
    rewards = [e["reward"] for e in summary["log"] if "reward" in e]
    assert len(rewards) == 2 and all(r > 0 for r in rewards)  # the shaped reward is dense
    vision, language = _moved(_weights(tiny), _weights(tmp_path / "grpo"))
    assert vision and language
    assert json.loads((tmp_path / "grpo" / "train_log.json").read_text())


def test_sft_two_steps(tmp_path, dataset_dir, tiny):
    split = load_split(dataset_dir, "train")
    cfg = TrainConfig(max_steps=2, batch_size=2, learning_rate=5e-3, progress=False)
    summary = train_sft(tiny, split, tmp_path / "sft", cfg)
    losses = [e["loss"] for e in summary["log"] if "loss" in e]
    assert summary["steps"] == 2 and losses and all(0 < x < float("inf") for x in losses)
    vision, language = _moved(_weights(tiny), _weights(tmp_path / "sft"))
    assert vision and language


def test_cli_grpo_then_evaluate(tmp_path, dataset_dir, tiny, capsys):
    out = tmp_path / "ckpt"
    args = ["train", "grpo", str(dataset_dir), "--model", str(tiny), "--out", str(out),
            "--max-steps", "1", "--num-generations", "2", "--batch-size", "2", "--limit", "4",
            "--max-completion-length", "6", "--rewards", "shaped", "--max-pixels", "784",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert "trained 1 step" in capsys.readouterr().out
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    from baselines.infer import load_qwen_processor

    size = load_qwen_processor(out).image_processor.size
    assert size["longest_edge"] == 784  # the image cap travels with the checkpoint
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == (
        "Qwen2_5_VLProcessor"
    )
    ev = ["evaluate", str(dataset_dir), "--model", str(out), "--controls", "full",
          "--limit", "2", "--max-new-tokens", "4", "--out", str(tmp_path / "ev"),
          "--quiet"]  # fmt: skip
    assert main(ev) == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["n"] == 2


def test_cli_errors(tmp_path, dataset_dir, tiny, capsys):
    base = ["--model", str(tiny), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(["train", "grpo", str(tmp_path / "missing"), *base]) == 1
    assert "no such dataset folder" in capsys.readouterr().err
    bad = ["train", "grpo", str(dataset_dir), *base, "--num-generations", "3", "--batch-size", "4"]
    assert main(bad) == 1
    assert "not a multiple of num_generations 3" in capsys.readouterr().err
    assert main(["train", "sft", str(dataset_dir), *base, "--split", "dev"]) == 1
    assert "no split 'dev'" in capsys.readouterr().err
    no_model = ["train", "sft", str(dataset_dir), "--model", str(tmp_path / "none"), "--out",
                str(tmp_path / "o"), "--quiet"]  # fmt: skip
    assert main(no_model) == 1
    assert "cannot load the model" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        TrainConfig(rewards=("nope",)).check()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cli_never_trains_into_a_folder_of_other_files(tmp_path, dataset_dir, tiny, capsys):
    from scale_vqa.train_run import TRAIN_MARKER

    mine = tmp_path / "myrun"
    (mine / "notes").mkdir(parents=True)
    (mine / "config.json").write_text('{"mine": true}')
    (mine / "config.yaml").write_text("# my own settings\nbeta: 1\n")
    (mine / "notes" / "thesis.txt").write_text("keep me")
    before = _snapshot(mine)
    args = ["train", "sft", str(dataset_dir), "--model", str(tiny), "--max-steps", "1",
            "--batch-size", "2", "--limit", "2", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(mine)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: output folder {mine} holds files")
    assert "choose a new or empty folder for --out" in err[0]
    assert _snapshot(mine) == before  # byte for byte, nothing added
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main([*args, "--out", str(afile)]) == 1
    assert f"output folder {afile} is a file" in capsys.readouterr().err
    assert afile.read_text() == "mine"
    # the dry run lists it as a problem and still writes nothing
    assert main([*args, "--out", str(mine), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "choose a new or empty folder for --out (fix this)" in out
    assert out.endswith("1 problem(s) to fix before training\n") and _snapshot(mine) == before
    # its own output folder: an empty one is used, and a rerun writes into it again
    ours = tmp_path / "ours"
    ours.mkdir()
    assert main([*args, "--out", str(ours)]) == 0
    assert "sft: trained 1 step" in capsys.readouterr().out
    assert (ours / TRAIN_MARKER).is_file() and (ours / "config.json").is_file()
    assert main([*args, "--out", str(ours), "--dry-run"]) == 0
    assert capsys.readouterr().out.endswith("\nok\n")
    (ours / TRAIN_MARKER).unlink()  # a run from before the marker: known by its config.yaml
    assert main([*args, "--out", str(ours)]) == 0
    assert "sft: trained 1 step" in capsys.readouterr().out
    assert (ours / TRAIN_MARKER).is_file()


def test_lora_is_merged_on_save_or_asks_for_peft(tmp_path, dataset_dir, tiny, capsys):
    out = tmp_path / "lora"
    args = ["train", "sft", str(dataset_dir), "--model", str(tiny), "--out", str(out),
            "--max-steps", "1", "--batch-size", "2", "--limit", "2", "--lora",
            "--learning-rate", "0.01", "--quiet"]  # fmt: skip
    try:
        import peft  # noqa: F401
    except ImportError:
        assert main(args) == 1
        assert "pip install peft" in capsys.readouterr().err
        return
    assert main(args) == 0
    after = _weights(out)
    assert after.keys() == _weights(tiny).keys()  # merged: no adapter weights left
    assert all(_moved(_weights(tiny), after))  # LoRA on vision and language layers
