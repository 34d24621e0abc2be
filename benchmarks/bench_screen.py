"""Throughput of the leakage screen, today's way against the old way in the same run.

Builds ~5,000 questions (simulated annotations + the generator when available, else the
test factory) and screens them twice with the local battery (cross-fitted) and AFLite:

* old: whole options embedded, embeddings in memory only (every run embeds again);
* new: clause-level embeddings (the default) with the persistent cache, cold (empty
  cache) and warm (a second run: vectors read back from disk).

It reports each stage's seconds, the embed-lr accuracy under both units (clause level is
the default only where it measures the same), the ratios old/new, and the load average.

    python benchmarks/bench_screen.py [--n 5000] [--no-embeddings] [--design naive|safe]
        [--only new|old]

Target: the release-style (naive) 5,000-question screen, embeddings included, in under two
minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def corpus(n: int, design: str) -> tuple[list, str]:
    """About ``n`` questions from the simulator + generator, else from the test factory."""
    try:
        from curation.generate import Generator
        from curation.simulate import simulate
    except ImportError:
        from tests import mcq_factory as F

        half = n // 2
        qs = F.release_style(half, n // 8) + F.symmetric_square(n - half, n // 8, start=half)
        return qs, "test factory (half release-style, half 2x2 squares)"
    paths = 600 if design == "naive" else 1800
    for _ in range(6):
        qs = Generator(simulate(paths, seed=0), seed=0, naive=design == "naive").generate()
        if len(qs) >= n:
            return qs[:n], f"simulate({paths}) + Generator(naive={design == 'naive'})"
        paths = int(paths * n / max(len(qs), 1) * 1.1) + 1
    return qs, f"simulate({paths}) + Generator(naive={design == 'naive'})"


def screen_once(qs: list, unit: str, embedder: object | None) -> dict:
    """Embed (timed), then one cross-fitted pass of the battery and one AFLite run."""
    import numpy as np

    from curation.adversaries import credit, cross_fit_scores, default_battery
    from curation.aflite import AFLite
    from curation.option_features import _CLAUSE

    out: dict = {"unit": unit, "embed_s": 0.0, "texts": 0}
    if embedder is not None:
        opts = {o for q in qs for o in q.options}
        if unit == "clause":
            opts = {c.strip() for o in opts for c in _CLAUSE.split(o) if c.strip()}
        texts = sorted(opts | {q.question for q in qs})
        t = time.perf_counter()
        embedder.encode(texts)
        out["embed_s"], out["texts"] = time.perf_counter() - t, len(texts)
        print(f"  [{unit}] embeddings: {len(texts)} distinct texts in {out['embed_s']:.1f} s")
    battery = default_battery(
        embedder=embedder, include_embeddings=embedder is not None, embed_unit=unit
    )
    out["battery_s"], out["accuracy"] = 0.0, {}
    for adv in battery:
        t = time.perf_counter()
        scores = cross_fit_scores(adv, qs, seed=0)
        dt = time.perf_counter() - t
        out["battery_s"] += dt
        acc = float(np.mean([credit(s, q.key_index) for s, q in zip(scores, qs)]))
        out["accuracy"][adv.name] = acc
        print(f"  [{unit}] {adv.name:<12} {dt:6.2f} s  accuracy {acc:.3f}")
    af = AFLite(features="embeddings" if embedder else "bow", embedder=embedder, unit=unit)
    t = time.perf_counter()
    res = af.predictability(qs)
    out["aflite_s"] = time.perf_counter() - t
    out["aflite_accuracy"] = float(res.accuracy)
    out["total_s"] = out["embed_s"] + out["battery_s"] + out["aflite_s"]
    print(
        f"  [{unit}] battery {out['battery_s']:.1f} s, AFLite {out['aflite_s']:.1f} s "
        f"(held-out accuracy {res.accuracy:.3f}), total {out['total_s']:.1f} s"
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--design", choices=("naive", "safe"), default="naive")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--only", choices=("old", "new"), help="run one of the two ways")
    args = ap.parse_args()

    import json
    import shutil
    import tempfile

    t0 = time.perf_counter()
    qs, source = corpus(args.n, args.design)
    print(f"corpus: {len(qs)} questions from {source} ({time.perf_counter() - t0:.1f} s)")
    print(f"load before: {os.getloadavg()}")
    emb = not args.no_embeddings
    report: dict = {"questions": len(qs), "design": args.design, "cores": os.cpu_count()}
    if emb:
        from curation.embeddings import Embedder

        model = Embedder(persist=False)
        model.model  # noqa: B018 - load the weights once, outside both timings
    if args.only != "new":
        print("old: whole options, in-memory embeddings")
        e = Embedder(model.model_path, persist=False) if emb else None
        if e is not None:
            e._model = model.model
        report["old"] = screen_once(qs, "option", e)
    if args.only != "old":
        cache = Path(tempfile.mkdtemp(prefix="bench-screen-cache-"))
        try:
            print("new: clause level, persistent cache (cold)")
            e = Embedder(model.model_path, cache_dir=cache) if emb else None
            if e is not None:
                e._model = model.model
            report["new_cold"] = screen_once(qs, "clause", e)
            if e is not None:
                print("new: clause level, persistent cache (warm: a second run)")
                e = Embedder(model.model_path, cache_dir=cache)
                e._model = model.model
                report["new_warm"] = screen_once(qs, "clause", e)
                report["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*"))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    if "old" in report and "new_cold" in report:
        for k in ("new_cold", "new_warm"):
            if k in report:
                report[f"ratio_old_over_{k}"] = round(
                    report["old"]["total_s"] / report[k]["total_s"], 2
                )
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
