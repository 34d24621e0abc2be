"""``scale-vqa evaluate``: accuracy of a model with blind, shuffled, single-scale and
CircularEval controls, on a built dataset folder or a Hub id."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from scale_vqa.commands._common import add_strict_argument

CONTROL_NAMES = "full,blind,shuffled,single,circular"


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on the benchmark with honest controls",
        description=(
            "Ask a model (an OpenAI-compatible endpoint, or a local transformers checkpoint) "
            "every question of one split under the full condition and the chosen controls: "
            "blind (no images), shuffled (images of another slide), single (each "
            "magnification alone) and circular (options rotated; right only if right under "
            "every rotation). Reports accuracy per question type with Wilson 95% intervals, "
            "group accuracy over complementary sets, unparseable replies, vision gain and "
            "cross-scale gain. DATASET is a dataset folder or a Hub id. A rerun reuses "
            "finished predictions (OUT/predictions.jsonl) and cached endpoint answers."
        ),
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder or Hub id (owner/name)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--llm",
        metavar="base_url=URL,model=NAME[,key=value...]",
        help="an OpenAI-compatible vision model (images sent as base64 data URLs)",
    )
    who.add_argument(
        "--model",
        metavar="PATH_OR_HUB_ID",
        help="a Qwen2.5-VL checkpoint (transformers): a local folder, or a Hub model id",
    )
    p.add_argument(
        "--controls",
        default=CONTROL_NAMES,
        metavar="LIST",
        help=f"comma-separated controls (default: {CONTROL_NAMES}; full always runs)",
    )
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="answer key of a hidden-test split (the test_key.jsonl its build wrote)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N rows of the split")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: eval-MODEL)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled control")
    p.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="endpoint answer cache (default: OUT/cache)"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="examples per predictor call"
    )
    p.add_argument(
        "--image-format",
        choices=("PNG", "JPEG"),
        default="PNG",
        help="how images are encoded for an endpoint (default: PNG, lossless)",
    )
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation length of --model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_strict_argument(
        p,
        help="refuse the split at its first unusable row (identical or repeated options, "
        "answer outside the options, no question) instead of leaving such rows out and "
        "listing them in the report",
    )
    p.set_defaults(func=run)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_model_arg(model: str) -> None:
    """A ``--model`` that is neither an existing folder nor shaped like a Hub id ``owner/name``.

    A Hub id is left to the loader (as ``train`` does), which says when it is found
    neither locally nor on the Hub.
    """
    from curation.errors import InputError

    if Path(model).exists() or (_HUB_ID.match(model) and not model.startswith(".")):
        return
    looks_local = model.startswith((".", "/", "~")) or os.sep in model
    if looks_local:
        raise InputError(
            f"{model}: no such model folder; pass a local checkpoint folder or a Hub model id"
        )


def _check_key_use(ds: Any, key: Path | None, where: str) -> None:
    """Before any model is loaded: a hidden split needs ``--key``, a split with its answers
    takes none."""
    from baselines.answer_key import withheld
    from curation.errors import InputError

    note = withheld(ds, where)
    if note and not key:
        raise InputError(note)
    if key and not note:
        raise InputError(
            f"{where} keeps its answers (only the test split of a hidden-test build withholds "
            "them); drop --key, or pass --split test of a hidden-test build"
        )


def _check_report_slot(path: Path, model: str, dataset: str, split: str) -> None:
    """Refuse to replace the report of another model, dataset or split (a rerun of the same
    evaluation replaces its own report; predictions of several models share one file)."""
    import json

    from curation.errors import ConfigError

    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or "model" not in old:
        raise ConfigError(
            f"{path} exists and is not a report of `scale-vqa evaluate`; give another --out folder"
        )
    was = (old.get("model"), old.get("dataset"), old.get("split"))
    if was != (model, dataset, split):
        raise ConfigError(
            f"{path} is the report of model {was[0]!r} on {was[1]} [{was[2]}]; this run "
            f"({model!r} on {dataset} [{split}]) would replace it: give another --out folder"
        )


def run(args: argparse.Namespace) -> int:
    """Load the split, build the predictor, evaluate, write the report and print the table."""
    from baselines.evaluate import evaluate, format_table, load_split
    from curation.errors import ConfigError
    from scale_vqa.commands._common import write_json

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit} must be at least 1")
    if args.model:
        _check_model_arg(args.model)
    ds = load_split(args.dataset, args.split)
    _check_key_use(ds, args.key, f"{args.dataset} split {args.split}")
    if args.key:
        from baselines.answer_key import apply_key, read_key

        ds = apply_key(ds, read_key(args.key), f"{args.dataset} split {args.split}")
    if args.limit is not None and args.limit < len(ds):
        ds = ds.select(range(args.limit))
    predictor: Any
    if args.llm:
        from baselines.infer import EndpointPredictor
        from curation.llm import LLMConfig

        config = LLMConfig.parse(args.llm)
        out = args.out or Path(f"eval-{_slug(config.model)}")
        from curation.llm import LLMClient

        client = LLMClient(config, cache_dir=args.cache_dir or out / "cache" / "llm")
        predictor = EndpointPredictor(client, image_format=args.image_format)
    else:
        from baselines.infer import TransformersPredictor

        predictor = TransformersPredictor.from_pretrained(
            args.model, max_new_tokens=args.max_new_tokens
        )
        out = args.out or Path(f"eval-{_slug(predictor.name)}")
    _check_report_slot(out / "report.json", predictor.name, str(args.dataset), args.split)
    report = evaluate(
        ds,
        predictor,
        args.controls,
        seed=args.seed,
        predictions_path=out / "predictions.jsonl",
        batch_size=args.batch_size,
        progress=not args.quiet,
        on_warning=lambda msg: print(f"warning: {msg}", file=sys.stderr),
        strict=args.strict,
    )
    report = {"dataset": str(args.dataset), "split": args.split, "limit": args.limit, **report}
    write_json(out / "report.json", report)
    print(f"evaluation of {report['model']} on {args.dataset} [{args.split}]: {report['n']} rows")
    print(format_table(report))
    if args.llm:
        print(f"endpoint: {predictor.client.usage.summary()}", file=sys.stderr)
    print(f"report: {out / 'report.json'}")
    print(f"predictions: {out / 'predictions.jsonl'}")
    return 0
