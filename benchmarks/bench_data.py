"""Benchmark of the data steps on datatrove against the one-process paths they replaced.

Measures, on the same documents in the same run:
* documents/s through cleaning + exact + MinHash dedup: the in-memory path (`corpus.build_corpus`:
  one process, one MinHash-LSH in memory; the baseline) vs the datatrove pipeline
  (`corpus.corpus_jobs`) at 1 and at `--tasks` tasks;
* peak memory (RSS summed over the process and all its children, sampled every 50 ms) of the
  datatrove pipeline on the tiny corpus (`--n` documents) and on one `--scale` times larger, and of
  the in-memory path on both: the pipeline's should stay flat (within 1.5x), the in-memory path's grows;
* documents/s of notebook 02's scoring (informative window, all-MiniLM-L6-v2 embedding, random-forest
  probability) on `--n-score` kept files: one process with torch on all cores (the baseline) vs the
  scoring pipeline (`filtering.scoring`) at 1 and at `--tasks` tasks.

Documents are real local files (the tiny profile's candidates in visiting order); the larger
corpus adds `--scale - 1` variants of each file with every identifier of 4+ characters suffixed,
so the variants are neither exact nor near duplicates of each other. Every setting runs in a fresh
interpreter. Usage: `python benchmarks/bench_data.py [--n 3000] [--scale 10] [--tasks 2] [--n-score 400]`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

IDENT = re.compile(r"\b([A-Za-z_]\w{3,})\b")


def make_list(path: Path, n: int, scale: int) -> int:
    """Write `n * scale` candidate rows with their texts (the first n local candidates of the tiny
    profile's visiting order, then the variants); returns the row count."""
    from collections import Counter

    from phi_utils.config import get_profile
    from phi_utils.corpus import examine, local_candidates, visiting_order
    from phi_utils.rundir import write_jsonl_atomic

    cfg = get_profile("tiny")
    cands = visiting_order(local_candidates(cfg.corpus, Counter())[0], cfg.seed)[:n]
    texts = [examine(c, cfg.corpus)[1] or "" for c in cands]  # rejected files stay rejected in every copy

    def rows():
        for k in range(scale):
            for c, t in zip(cands, texts):
                v = t if k == 0 else IDENT.sub(rf"\1_v{k}", t)
                yield {**asdict(c), "path": f"v{k}/{c.path}", "abs_path": None, "text": v}

    write_jsonl_atomic(path, rows())
    return n * scale


def _child(mode: str, list_file: str, n_rows: int, tasks: int, work: str) -> None:
    """One measured setting, in this fresh interpreter; prints a JSON line with its seconds and kept count."""
    from phi_utils.config import get_profile
    from phi_utils.corpus import Candidate, build_corpus, corpus_jobs
    from phi_utils.datapipe.dedup import read_shards
    from phi_utils.datapipe.executor import run_jobs

    cfg = get_profile("tiny", **{"data.tasks": tasks, "data.workers": tasks, "corpus.max_files": 0})
    t0 = time.time()
    if mode == "memory":
        with open(list_file, encoding="utf-8") as f:
            cands = [Candidate(**json.loads(line)) for line in f]
        kept = len(build_corpus(cfg.corpus, candidates=cands).records)
    else:
        run_jobs(corpus_jobs(cfg, Path(work), Path(list_file), n_rows), cfg.data, Path(work), desc="bench")
        kept = sum(1 for _ in read_shards(Path(work) / "kept", tasks))
    print(json.dumps({"seconds": time.time() - t0, "kept": kept}))


def make_scoring_inputs(d: Path, list_file: Path, n: int) -> None:
    """A corpus dataset of the first `n` clean rows of `list_file` and a forest trained on up to 40 of
    their embeddings with alternating labels (only its cost matters here)."""
    import datasets
    import joblib
    import numpy as np

    from phi_utils.config import get_profile
    from phi_utils.filtering.classifier import make_forest
    from phi_utils.filtering.embed import MAX_EMBED_CHARS, load_embedder

    rows = []
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["text"] and len(r["text"].strip()) >= 64:
                rows.append({"path": r["path"], "text": r["text"]})
            if len(rows) == n:
                break
    datasets.Dataset.from_list(rows).save_to_disk(str(d / "corpus"))
    emb = load_embedder("minilm", device="cpu").encode([r["text"][:MAX_EMBED_CHARS] for r in rows[:40]], progress=False)
    joblib.dump(make_forest(get_profile("tiny").filter, 0).fit(emb, np.arange(len(emb)) % 2), d / "forest.joblib")


def _score_child(mode: str, d: str, tasks: int) -> None:
    import datasets
    import joblib
    import torch

    from phi_utils.config import get_profile
    from phi_utils.filtering.embed import MAX_EMBED_CHARS, load_embedder
    from phi_utils.filtering.scoring import score_in_batches, scoring_job, substance_windows
    from phi_utils.datapipe.executor import run_jobs

    cfg = get_profile("tiny", **{"data.tasks": tasks, "data.workers": tasks, "device": "cpu"})
    t0 = time.time()
    if mode == "score-memory":
        torch.set_num_threads(__import__("os").cpu_count() or 1)
        ds = datasets.load_from_disk(f"{d}/corpus")
        shown, _ = substance_windows(ds["path"], ds["text"], MAX_EMBED_CHARS)
        probs = score_in_batches(joblib.load(f"{d}/forest.joblib"),
                                 load_embedder("minilm", device="cpu").encode(shown, batch_size=32, progress=False))
        n = len(probs)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench_score_", dir=d))
        run_jobs([scoring_job(cfg, Path(d) / "corpus", Path(d), Path(d) / "forest.joblib", work, MAX_EMBED_CHARS)],
                 cfg.data, work, desc="bench")
        n = sum(1 for _ in __import__("phi_utils.datapipe.dedup", fromlist=["read_rows"]).read_rows(work / "scores", tasks))
    print(json.dumps({"seconds": time.time() - t0, "kept": n}))


def measure(mode: str, list_file: Path, n_rows: int, tasks: int) -> dict:
    """Run one setting in a fresh interpreter; its wall time, kept count and peak summed RSS."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="bench_data_") as work:
        proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(list_file), str(n_rows), str(tasks), work],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak, stop = [0], threading.Event()

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while not stop.is_set():
                try:
                    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                    peak[0] = max(peak[0], rss)
                except psutil.Error:
                    pass
                time.sleep(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        out, _ = proc.communicate()
        stop.set()
        th.join()
        if proc.returncode:
            raise SystemExit(f"{mode} with {tasks} task(s) failed (exit {proc.returncode})")
        res = json.loads(out.strip().splitlines()[-1])
    return {**res, "peak_mb": peak[0] / 2**20, "docs_per_s": n_rows / res["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="documents of the tiny corpus (tiny examines 3000)")
    ap.add_argument("--scale", type=int, default=10, help="the larger corpus is this many times the tiny one")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--n-score", type=int, default=400, help="files scored per scoring setting")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, list_file, n_rows, tasks, work = args.child
        if mode.startswith("score-"):
            _score_child(mode, list_file, int(tasks))
        else:
            _child(mode, list_file, int(n_rows), int(tasks), work)
        return

    with tempfile.TemporaryDirectory(prefix="bench_data_lists_") as d:
        small, large = Path(d) / "small.jsonl", Path(d) / "large.jsonl"
        n_small, n_large = make_list(small, args.n, 1), make_list(large, args.n, args.scale)
        print(f"documents: {n_small} (tiny) and {n_large} ({args.scale}x); cleaning + exact + MinHash dedup")
        rows = {
            ("memory", 1, "small"): measure("memory", small, n_small, 1),
            ("datatrove", 1, "small"): measure("datatrove", small, n_small, 1),
            ("datatrove", args.tasks, "small"): measure("datatrove", small, n_small, args.tasks),
            ("datatrove", args.tasks, "large"): measure("datatrove", large, n_large, args.tasks),
            ("memory", 1, "large"): measure("memory", large, n_large, 1),
        }
        make_scoring_inputs(Path(d), small, args.n_score)
        scoring = {(m, t): measure(m, Path(d), args.n_score, t)
                   for m, t in (("score-memory", 1), ("score-datatrove", 1), ("score-datatrove", args.tasks))}
    base = rows[("memory", 1, "small")]
    print(f"{'path':<28}{'docs':>8}{'kept':>8}{'seconds':>9}{'docs/s':>9}{'vs memory':>11}{'peak MB':>9}")
    for (mode, tasks, size), r in rows.items():
        label = "in-memory (baseline)" if mode == "memory" else f"datatrove, {tasks} task(s)"
        n = n_small if size == "small" else n_large
        print(f"{label + (' ' + str(args.scale) + 'x' if size == 'large' else ''):<28}{n:>8}{r['kept']:>8}"
              f"{r['seconds']:>9.1f}{r['docs_per_s']:>9.1f}{r['docs_per_s'] / base['docs_per_s']:>10.2f}x{r['peak_mb']:>9.0f}")
    dt_small, dt_large = rows[("datatrove", args.tasks, "small")], rows[("datatrove", args.tasks, "large")]
    mem_small, mem_large = base, rows[("memory", 1, "large")]
    print(f"peak memory {args.scale}x / 1x: datatrove {dt_large['peak_mb'] / dt_small['peak_mb']:.2f}x "
          f"(flat means <= 1.5x), in-memory {mem_large['peak_mb'] / mem_small['peak_mb']:.2f}x")
    sbase = scoring[("score-memory", 1)]
    print(f"\nscoring ({args.n_score} files: window + all-MiniLM-L6-v2 + forest)")
    for (mode, tasks), r in scoring.items():
        label = "one process, all cores (baseline)" if mode == "score-memory" else f"datatrove, {tasks} task(s)"
        print(f"{label:<36}{r['seconds']:>8.1f} s {r['docs_per_s']:>8.1f} docs/s {r['docs_per_s'] / sbase['docs_per_s']:>6.2f}x"
              f" {r['peak_mb']:>6.0f} MB")
    same = rows[("datatrove", 1, "small")]["kept"] == dt_small["kept"]
    print(f"kept files, 1 vs {args.tasks} tasks: {'identical counts' if same else 'DIFFERENT'}; "
          f"in-memory path kept {base['kept']} vs datatrove {dt_small['kept']}")


if __name__ == "__main__":
    main()
