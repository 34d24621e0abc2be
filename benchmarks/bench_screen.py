"""Throughput of the leakage screen: questions per second, local battery and AFLite.

Builds ~5,000 questions (simulated annotations + the generator when available, else the
test factory), computes sentence embeddings once (cached in memory, timed separately),
then times one cross-fitted pass of the local battery and one AFLite run (64 models).

    python benchmarks/bench_screen.py [--n 5000] [--no-embeddings] [--design naive|safe]

Target: the local battery screens 5,000 questions in under two minutes on 2 cores,
embeddings included.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--design", choices=("naive", "safe"), default="naive")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--embed-unit", choices=("option", "clause"), default="option")
    args = ap.parse_args()

    import numpy as np

    from curation.adversaries import credit, cross_fit_scores, default_battery
    from curation.aflite import AFLite
    from curation.option_features import _CLAUSE

    t0 = time.perf_counter()
    qs, source = corpus(args.n, args.design)
    print(f"corpus: {len(qs)} questions from {source} ({time.perf_counter() - t0:.1f} s)")
    embedder = None
    t_emb = 0.0
    if not args.no_embeddings:
        from curation.embeddings import Embedder

        embedder = Embedder()
        opts = {o for q in qs for o in q.options}
        if args.embed_unit == "clause":
            opts = {c.strip() for o in opts for c in _CLAUSE.split(o) if c.strip()}
        texts = sorted(opts | {q.question for q in qs})
        t = time.perf_counter()
        embedder.encode(texts)
        t_emb = time.perf_counter() - t
        print(
            f"embeddings ({args.embed_unit}s + questions): {len(texts)} distinct texts "
            f"in {t_emb:.1f} s "
            f"({len(texts) / t_emb:.0f} texts/s), computed once and cached"
        )
    battery = default_battery(
        embedder=embedder, include_embeddings=embedder is not None, embed_unit=args.embed_unit
    )
    total = 0.0
    for adv in battery:
        t = time.perf_counter()
        scores = cross_fit_scores(adv, qs, seed=0)
        dt = time.perf_counter() - t
        total += dt
        acc = float(np.mean([credit(s, q.key_index) for s, q in zip(scores, qs)]))
        print(f"  {adv.name:<12} {dt:6.2f} s  accuracy {acc:.3f}")
    print(
        f"local battery: {len(qs)} questions in {total:.1f} s "
        f"= {len(qs) / total:.0f} questions/s (embeddings excluded)"
    )
    print(
        f"local battery incl. embeddings: {total + t_emb:.1f} s "
        f"= {len(qs) / (total + t_emb):.0f} questions/s"
    )
    af = AFLite(
        features="embeddings" if embedder else "bow", embedder=embedder, unit=args.embed_unit
    )
    t = time.perf_counter()
    res = af.predictability(qs)
    dt = time.perf_counter() - t
    print(
        f"AFLite ({af.n_models} models, tau {af.tau}): {dt:.1f} s = {len(qs) / dt:.0f} "
        f"questions/s; flagged {res.flagged.mean():.1%}, held-out accuracy {res.accuracy:.3f}"
    )
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
