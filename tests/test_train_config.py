"""Training from one YAML config: rewards and weights, per-rollout option shuffling, a
two-step GRPO run from a config file, the dry run of the paper's recipe, precedence of
file < flags < --set, and the README's three-command smoke run on the demo build.

Real trl steps on the tiny random Qwen2.5-VL (baselines/tiny_model.py), a real dataset
folder (Parquet -> load_dataset), real files written and read back.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from baselines.evaluate import load_split
from baselines.grpo import grpo_dataset, reward_setup, train_grpo
from baselines.rewards import shaped_reward
from baselines.shuffle import shuffle_options
from baselines.tiny_model import build_tiny_qwen, make_tiny_model
from baselines.train_common import TrainConfig
from curation.errors import ConfigError, InputError
from scale_vqa.build import write_dataset
from scale_vqa.cli import main
from scale_vqa.train_config import configs_dir, load_train_run, shipped_configs
from tests.test_train import _moved, _weights, make_rows

PAPER = configs_dir() / "grpo_scalereasoner_r1.yaml"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cfgds") / "ds"
    splits = {"train": make_rows(8), "validation": make_rows(4, "v"), "test": make_rows(4, "e")}
    write_dataset(out, splits, progress=False)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny") / "tiny-qwen")


def _total(replies: list[str], key: list[str], config: TrainConfig) -> list[float]:
    """trl's reward: the weighted sum over the reward functions of ``reward_setup``."""
    funcs, weights = reward_setup(config)
    per = [f(replies, answer=key, options=[["a", "b", "c", "d"]] * len(replies)) for f in funcs]
    return [round(sum(w * p[i] for w, p in zip(weights, per)), 6) for i in range(len(replies))]


def test_paper_weights_on_planted_replies():
    cfg = load_train_run(PAPER, "grpo", {"dataset": "x"}).train
    assert cfg.rewards == ("accuracy", "format") and cfg.reward_weights == (0.8, 0.2)
    replies = [
        "<think>nuclei are atypical</think><answer>B</answer>",  # right, well formed
        "<think>nuclei are bland</think><answer>C</answer>",  # wrong, well formed
        "<answer>B</answer>",  # right letter, no think block: malformed
        "<think>x</think><answer>B</answer> so B",  # right, text after the answer
        "<think>a</think><think>b</think><answer>B</answer>",  # two think blocks
        "The answer is B",  # no answer tag: neither
        "<think>x</think><answer>E</answer>",  # well formed, a letter beyond the options
    ]
    assert _total(replies, ["B"] * len(replies), cfg) == [1.0, 0.2, 0.8, 0.8, 0.8, 0.0, 0.2]


def test_format_is_always_scored_at_weight_zero():
    funcs, weights = reward_setup(TrainConfig(rewards=("accuracy", "shaped")))
    assert [f.__name__ for f in funcs] == ["accuracy_reward", "shaped_reward", "format_reward"]
    assert weights == [1.0, 1.0, 0.0]


def test_shuffle_keeps_the_key_and_spreads_its_letter():
    rng = random.Random(0)
    options = ["alpha", "beta", "gamma", "delta"]
    letters = Counter()
    for _ in range(2000):
        new, letter = shuffle_options(options, "C", rng)
        assert sorted(new) == sorted(options)
        assert new["ABCD".index(letter)] == "gamma"
        letters[letter] += 1
    assert set(letters) == set("ABCD") and min(letters.values()) > 400  # ~500 each


def test_rollout_shuffle_on_repeated_access(dataset_dir):
    ds = grpo_dataset(load_split(dataset_dir, "train"), shuffle_seed=0)
    row = load_split(dataset_dir, "train")[1]
    key_text = row["options"]["ABCD".index(row["answer"])]
    batch = ds[[1, 1, 1, 1, 1, 1]]  # as trl's sampler asks: one question, G rollouts
    assert len({tuple(o) for o in batch["options"]}) > 1
    for prompt, options, answer in zip(batch["prompt"], batch["options"], batch["answer"]):
        assert options["ABCD".index(answer)] == key_text
        text = " ".join(b.get("text") or "" for b in prompt[0]["content"])
        assert f"{answer}. {key_text}" in text  # the prompt shows the shuffled order
        assert sum(b["type"] == "image" for b in prompt[0]["content"]) == 3
    plain = grpo_dataset(load_split(dataset_dir, "train"))[[1, 1]]
    assert plain["options"][0] == plain["options"][1] == list(row["options"])


def test_grpo_rollouts_see_shuffled_options(tmp_path, dataset_dir, tiny):
    seen: list[tuple[list[str], str, str]] = []

    def recorder(completions, answer, options, question, **kw):
        seen.extend(zip(options, answer, question))
        return [0.0] * len(completions)

    cfg = TrainConfig(max_steps=1, batch_size=4, num_generations=4, max_completion_length=4,
                      shuffle_options=True, progress=False, limit=4)  # fmt: skip
    train_grpo(tiny, load_split(dataset_dir, "train"), tmp_path / "o", cfg,
               reward_funcs=[shaped_reward, recorder])  # fmt: skip
    assert len(seen) == 4 and len({q for _, _, q in seen}) == 1  # one group of 4 rollouts
    assert len({tuple(o) for o, _, _ in seen}) > 1
    assert len({o["ABCD".index(a)] for o, a, _ in seen}) == 1  # the same key text throughout


def test_two_step_grpo_from_a_config(tmp_path, dataset_dir, tiny, capsys):
    config = tmp_path / "run.yaml"
    out = tmp_path / "grpo"
    config.write_text(yaml.safe_dump({
        "method": "grpo", "model": str(tiny), "dataset": str(dataset_dir), "out": str(out),
        "max_steps": 2, "batch_size": 4, "num_generations": 4, "max_completion_length": 8,
        "learning_rate": 5e-3, "beta": 0.01, "shuffle_options": True,
        "rewards": {"accuracy": 0.8, "format": 0.2, "shaped": 1.0},
        "validation": {"every": 1, "limit": 2, "max_new_tokens": 4},
        "trainer": {"hub_token": "hf_do_not_write_me"},
    }))  # fmt: skip
    assert main(["train", "grpo", "--config", str(config), "--quiet"]) == 0
    assert "trained 2 steps on 8 rows" in capsys.readouterr().out
    vision, language = _moved(_weights(tiny), _weights(out))
    assert vision and language
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows[1:]:
        for key in ("reward", "rewards/accuracy_reward/mean", "rewards/format_reward/mean",
                    "rewards/shaped_reward/mean", "format_rate", "kl", "val/accuracy"):  # fmt: skip
            assert key in r, key
        weighted = (0.8 * r["rewards/accuracy_reward/mean"] + 0.2 * r["format_rate"]
                    + r["rewards/shaped_reward/mean"])  # fmt: skip
        assert r["reward"] == pytest.approx(weighted, abs=1e-6)  # trl applied the weights
    assert rows[0]["val/n"] == 2 and 0.0 <= rows[0]["val/accuracy"] <= 1.0
    assert 0.0 <= rows[0]["val/format_rate"] <= 1.0
    from PIL import Image

    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 1000
    as_run = (out / "config.yaml").read_text()
    assert "hf_do_not_write_me" not in as_run and "<redacted>" in as_run
    assert yaml.safe_load(as_run)["rewards"] == {"accuracy": 0.8, "format": 0.2, "shaped": 1.0}
    from transformers import AutoModelForImageTextToText

    from baselines.infer import load_qwen_processor

    assert AutoModelForImageTextToText.from_pretrained(out).config.model_type == "qwen2_5_vl"
    assert load_qwen_processor(out).image_processor is not None


def test_dry_run_of_the_paper_config_prints_the_trainer_args(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "grpo", "--config", "grpo_scalereasoner_r1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "no weights loaded" in out
    assert "Qwen/Qwen2.5-VL-7B-Instruct: not checked offline" in out
    assert "reward = 0.8 x accuracy_reward + 0.2 x format_reward" in out
    assert "option order shuffled per rollout: on" in out
    expected = [
        "num_generations: 5", "beta: 0.01", "reward_weights: [0.8, 0.2]",
        "num_train_epochs: 5.0", "max_steps: -1", "per_device_train_batch_size: 5",
    ]  # fmt: skip
    for line in expected:
        assert f"  {line}\n" in out, line
    assert not list(tmp_path.iterdir())  # nothing written, nothing downloaded


def test_shipped_configs_all_resolve(capsys):
    assert set(shipped_configs()) >= {"grpo_scalereasoner_r1", "sft_rationales",
                                      "grpo_tiny_cpu", "sft_tiny_cpu"}  # fmt: skip
    for name in shipped_configs():
        method = yaml.safe_load((configs_dir() / f"{name}.yaml").read_text())["method"]
        assert load_train_run(name, method, {}).method == method
    for name in ("multi_gpu", "zero3"):
        acc = yaml.safe_load((configs_dir() / "accelerate" / f"{name}.yaml").read_text())
        assert acc["distributed_type"] in ("MULTI_GPU", "DEEPSPEED")


def test_precedence_file_then_flags_then_set(tmp_path, monkeypatch):
    from scale_vqa.cli import build_parser
    from scale_vqa.commands.train import overrides

    args = build_parser().parse_args(
        ["train", "grpo", "other-ds", "--config", str(PAPER), "--beta", "0.04", "--lora",
         "--rewards", "accuracy:1,shaped:0.5", "--set", "validation.limit=3",
         "--set", "lora.r=8", "--set", "beta=0.05", "--set", "max_pixels=null"]
    )  # fmt: skip
    run = load_train_run(args.config, "grpo", overrides(args))
    c = run.train
    assert run.dataset == "other-ds" and run.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert c.beta == 0.05  # --set after the flag
    assert c.lora and c.lora_r == 8 and c.lora_alpha == 128  # flag + --set + file
    assert c.rewards == ("accuracy", "shaped") and c.reward_weights == (1.0, 0.5)
    assert c.val_limit == 3 and c.val_every == 50 and c.num_generations == 5  # file kept
    assert c.max_steps is None and c.epochs == 5 and c.max_pixels is None  # null wins
    plain = load_train_run(None, "sft", {"model": "m", "dataset": "d", "out": "o"}).train
    assert plain.max_steps == 100 and plain.learning_rate == 2e-5 and not plain.lora


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bogus": 1}, "unknown key(s) 'bogus'"),
        ({"validation.oops": 1}, "unknown key(s) 'validation.oops'"),
        ({"method": "sft"}, "is 'sft' but the command is `train grpo`"),
        ({"num_generations": 4}, "batch size 5 is not a multiple of num_generations 4"),
        ({"rewards": {"accuracy": "high"}}, "must map reward names to weights"),
        ({"rewards": {"accurate": 1.0}}, "unknown reward(s) accurate"),
        ({"vllm_mode": "remote"}, "use colocate or server"),
        ({"model_if_missing": "big"}, "use one of tiny or null"),
    ],
)
def test_bad_configs_say_what_to_fix(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_train_run(PAPER, "grpo", {"dataset": "d", **overrides})
    assert message in str(err.value)


def test_unknown_keys_name_where_they_came_from(tmp_path, capsys):
    tiny_cpu = ["train", "grpo", "--config", "grpo_tiny_cpu", "--dry-run"]
    assert main([*tiny_cpu, "--set", "bogus_key=3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --set: unknown key(s) 'bogus_key'")
    assert "grpo_tiny_cpu" not in err[0] and "known keys here: " in err[0]
    assert "'max_steps'" in err[0] and "'beta'" in err[0]  # the valid keys, as for the file
    assert main([*tiny_cpu, "--set", "validation.limt=3"]) == 1
    err = capsys.readouterr().err
    assert "error: --set: unknown key(s) 'validation.limt'" in err
    assert "did you mean 'validation.limit'" in err and "'validation.every'" in err
    assert main([*tiny_cpu, "--set", "validation={limit: 2, oops: 1}"]) == 1
    assert "error: --set: unknown key(s) 'validation.oops'" in capsys.readouterr().err
    # a key of the file is still blamed on the file, whatever --set adds
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "m", "dataset": "d", "out": "o", "bogus": 1}))
    assert main(["train", "sft", "--config", str(config), "--set", "beta=0", "--dry-run"]) == 1
    assert f"error: {config}: unknown key(s) 'bogus'" in capsys.readouterr().err


def test_missing_settings_and_files(tmp_path, capsys):
    assert main(["train", "sft", "--model", "m", "--out", str(tmp_path / "o")]) == 1
    assert "no dataset given" in capsys.readouterr().err
    assert main(["train", "grpo", "--config", "no_such_config", "--dry-run"]) == 1
    assert "one of grpo_scalereasoner_r1" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("beta: [1\n")
    assert main(["train", "grpo", "--config", str(bad)]) == 1
    assert "not valid YAML" in capsys.readouterr().err


def test_use_vllm_without_vllm_is_a_clear_error(capsys):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    args = ["train", "grpo", "--config", "grpo_scalereasoner_r1", "--use-vllm", "--dry-run"]
    assert main(args) == 1
    assert "vLLM is not installed" in capsys.readouterr().err


def test_tiny_model_command(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["tiny-model", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert main(["tiny-model", str(out)]) == 1  # never overwritten
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(InputError):
        make_tiny_model(out)


def test_readme_smoke_run(tmp_path, monkeypatch, capsys):
    """The README's three commands, from an empty folder, nothing prepared."""
    monkeypatch.chdir(tmp_path)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("### Train a baseline reasoner", 1)[1].split("```bash\n", 1)[1]
    commands = [c for c in block.split("```", 1)[0].splitlines() if c.startswith("scale-vqa")]
    assert len(commands) == 3 and "--config configs/grpo_tiny_cpu.yaml" in commands[1]
    commands[1] = commands[1].replace("configs/grpo_tiny_cpu.yaml", "grpo_tiny_cpu")  # no clone
    for command in commands:
        assert main([*command.split()[1:], "--quiet"]) == 0, command
    out = capsys.readouterr().out
    assert "grpo: trained 8 steps" in out and "made the tiny random model" in out
    report = json.loads(next(tmp_path.glob("eval-*/report.json")).read_text())
    import datasets

    n_test = len(datasets.load_dataset(report["dataset"])["test"])  # the demo's test split
    assert report["n"] == report["conditions"]["full"]["n"] == n_test > 0
    metrics = (tmp_path / "runs" / "grpo-tiny" / "metrics.jsonl").read_text()
    assert re.search(r'"rewards/accuracy_reward/mean"', metrics)
