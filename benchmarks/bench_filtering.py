"""Benchmark of the quality filter's throughput on real corpus files (CPU, 2 cores by default).

Measures
* embeddings/s of all-MiniLM-L6-v2: batch size 1 (baseline) vs `--batch-size` (default 32),
  and 1 process vs `--procs` processes (`datasets.map(num_proc=...)`);
* corpus files scored/s end to end (embedding + random-forest probability) - the work notebook 02
  does per corpus file - for the same two settings.

Files are real: a seeded sample of the local corpus (stdlib + site-packages, cleaned and deduplicated).
Usage: `python benchmarks/bench_filtering.py [--n 256] [--batch-size 32] [--procs 2]`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="corpus files embedded/scored per setting (the same files)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine's cores)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from phi_utils.config import CorpusConfig, FilterConfig
    from phi_utils.corpus import build_corpus
    from phi_utils.filtering.classifier import make_forest
    from phi_utils.filtering.scoring import score_in_batches
    from phi_utils.filtering.embed import MAX_EMBED_CHARS, embed_texts, load_embedder

    t = time.time()
    records = build_corpus(CorpusConfig(max_files=args.n), seed=0).records
    texts = [r["text"] for r in records]
    print(f"corpus sample: {len(texts)} files, median {int(np.median([len(x) for x in texts]))} chars "
          f"(cut to {MAX_EMBED_CHARS} before tokenizing) [{time.time() - t:.1f} s]")

    emb = load_embedder("minilm")
    emb.encode(texts[:8], batch_size=8, progress=False)  # warm-up
    results: list[tuple[str, int, float]] = []

    def timed(name: str, fn, n: int) -> np.ndarray:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        results.append((name, n, dt))
        return out

    base = texts
    timed("embed, batch 1, 1 proc (baseline)", lambda: emb.encode(base, batch_size=1, progress=False), len(base))
    X = timed(f"embed, batch {args.batch_size}, 1 proc", lambda: emb.encode(texts, batch_size=args.batch_size, progress=False), len(texts))
    fcfg = FilterConfig(batch_size=args.batch_size, num_proc=args.procs)
    timed(f"embed, batch {args.batch_size}, {args.procs} proc (datasets.map)", lambda: embed_texts(texts, fcfg), len(texts))

    # A forest like notebook 02's (200 trees) on labels from a simple property of the files.
    y = np.array(['"""' in x for x in texts], dtype=int)
    forest = make_forest(FilterConfig(n_estimators=200), 0).fit(X, y)
    timed("score (embed + forest), batch 1 (baseline)",
          lambda: [forest.predict_proba(emb.encode([x], batch_size=1, progress=False))[:, 1] for x in base], len(base))
    timed(f"score (embed + forest), batch {args.batch_size}",
          lambda: score_in_batches(forest, emb.encode(texts, batch_size=args.batch_size, progress=False)), len(texts))
    timed("forest only (precomputed embeddings)", lambda: score_in_batches(forest, X), len(texts))

    rate = {name: n / dt for name, n, dt in results}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ncores: {os.cpu_count()}, torch threads: {args.threads}, load average (1/5/15 min): {load} "
          f"(a load above the core count means other processes shared the CPU)\n")
    print("| setting | files | seconds | files/s | vs baseline |")
    print("|---|---:|---:|---:|---:|")
    for name, n, dt in results:
        ref = rate["embed, batch 1, 1 proc (baseline)"] if name.startswith("embed") else rate["score (embed + forest), batch 1 (baseline)"]
        print(f"| {name} | {n} | {dt:.2f} | {n / dt:.1f} | {n / dt / ref:.2f}x |")
    b1 = rate["embed, batch 1, 1 proc (baseline)"]
    bb = rate[f"embed, batch {args.batch_size}, 1 proc"]
    bp = rate[f"embed, batch {args.batch_size}, {args.procs} proc (datasets.map)"]
    print(f"\nratio batched/batch-1 embeddings/s: {bb / b1:.2f}x; {args.procs} proc/1 proc: {bp / bb:.2f}x "
          f"(process start and model load included)")
    s1 = rate["score (embed + forest), batch 1 (baseline)"]
    sb = rate[f"score (embed + forest), batch {args.batch_size}"]
    print(f"ratio batched/batch-1 files scored/s: {sb / s1:.2f}x")


if __name__ == "__main__":
    main()
