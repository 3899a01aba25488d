"""Educational-value scoring of the whole corpus as a datatrove pipeline (paper §2.1, notebook 02).

One job of `data.tasks` tasks: each reads its contiguous slice of the corpus dataset, shows the
embedder every file's most informative window (as the teacher saw it), and writes the trained
forest's probability of "educational" and the file's no-substance reason to
`<work>/scores/<rank>.jsonl.gz`. Each task loads the embedder once (on the GPU when there is one)
and embeds in batches; the driver then reads the scores back in corpus order, one float per file,
and never holds the corpus's texts or embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from ..config import ProfileConfig
from ..datapipe.dedup import SHARD_FILE, read_rows
from ..datapipe.executor import PipelineJob, run_jobs
from ..datapipe.steps import DatasetShardReader


def score_in_batches(model: Any, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Classifier probability of "educational" for every row (batched so memory stays flat at paper scale)."""
    return np.concatenate([model.predict_proba(X[i:i + batch])[:, 1] for i in range(0, len(X), batch)]) if len(X) else np.zeros(0)


WINDOW_RULE = "window-v1"
"""Names the text each file is embedded by (`substance_windows`); part of the embedding cache key."""


def substance_windows(paths: Sequence[str | None], texts: Sequence[str], max_chars: int) -> tuple[list[str], list[str | None]]:
    """Each file's most informative window of `max_chars` (what the embedder sees, as the teacher
    did) and its no-substance reason (None = a file with substance)."""
    from .substance import informative_window, no_substance

    shown, reasons = [], []
    for p, t in zip(paths, texts):
        w = informative_window(t, max_chars)
        shown.append(t[w.start:w.end])
        reasons.append(no_substance(p, t))
    return shown, reasons


class EducationalValueScorer(PipelineStep):
    """Adds `score` (the classifier's probability) and `no_substance` (the rule's reason, or None)
    to every document, embedding `batch_size * 4` windows at a time."""

    name = "🎓 educational value (embedder + forest)"
    type = "🎓 - SCORER"

    def __init__(self, embedder: str, run_path: str, classifier_path: str, batch_size: int, max_chars: int,
                 threads: int = 1, device: str = "auto"):
        super().__init__()
        self.embedder, self.run_path, self.classifier_path = embedder, run_path, classifier_path
        self.batch_size, self.max_chars, self.threads, self.device = batch_size, max_chars, threads, device

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import joblib
        import torch

        from ..rundir import RunDir
        from .embed import load_embedder

        torch.set_num_threads(self.threads)
        model = joblib.load(self.classifier_path)
        emb = load_embedder(self.embedder, RunDir(Path(self.run_path), ""), device=self.device)
        batch: list[Any] = []

        def flush() -> DocumentsPipeline:
            shown, reasons = substance_windows([d.metadata.get("path") for d in batch], [d.text for d in batch],
                                               self.max_chars)
            probs = score_in_batches(model, emb.encode(shown, batch_size=self.batch_size, progress=False))
            for doc, p, why in zip(batch, probs, reasons):
                doc.metadata["score"], doc.metadata["no_substance"] = float(p), why
                self.stat_update("scored")
                yield doc
            batch.clear()

        for doc in data:
            batch.append(doc)
            if len(batch) >= 4 * self.batch_size:
                yield from flush()
        if batch:
            yield from flush()


def _score_record(self: Any, doc: Any) -> dict[str, Any]:
    m = doc.metadata
    return {"order": m["order"], "path": m.get("path"), "score": m["score"], "no_substance": m["no_substance"]}


def scoring_job(cfg: ProfileConfig, corpus_dir: Path, run_path: Path, classifier_path: Path, work: Path,
                max_chars: int) -> PipelineJob:
    import os

    workers = cfg.data.tasks if cfg.data.workers == -1 else min(cfg.data.workers, cfg.data.tasks)
    threads = max(1, (os.cpu_count() or 1) // workers) if cfg.data.executor == "local" else cfg.data.slurm_cpus_per_task
    scorer = EducationalValueScorer(cfg.filter.embedder, str(run_path), str(classifier_path), cfg.filter.batch_size,
                                    max_chars, threads=threads, device=cfg.device)
    return PipelineJob("score", [DatasetShardReader(corpus_dir, columns=("path",)), scorer,
                                 JsonlWriter(str(work / "scores"), output_filename=SHARD_FILE, adapter=_score_record)],
                       cfg.data.tasks, f"embed each file's window ({cfg.filter.embedder}) and score it")


@dataclass
class CorpusScores:
    """What the scoring pipeline gave, in corpus order."""

    probs: np.ndarray
    """The classifier's probability of "educational" per file."""
    reasons: list[str | None]
    """Each file's no-substance reason (None = it has substance)."""
    seconds: float
    """Wall time of the scoring job (0 when it had finished before)."""
    work_dir: Path


def score_corpus(cfg: ProfileConfig, corpus_dir: Path, run_path: Path, classifier_path: Path, work: Path,
                 max_chars: int, n_corpus: int) -> CorpusScores:
    """Run the scoring job (resuming its unfinished tasks) and read the scores back in order."""
    job = scoring_job(cfg, corpus_dir, run_path, classifier_path, work, max_chars)
    seconds = run_jobs([job], cfg.data, work, desc=f"scoring ({cfg.data.executor}, {cfg.data.tasks} tasks)")
    probs = np.empty(n_corpus, dtype=np.float64)
    reasons: list[str | None] = [None] * n_corpus
    seen = 0
    for row in read_rows(work / "scores", cfg.data.tasks):
        probs[row["order"]], reasons[row["order"]] = row["score"], row["no_substance"]
        seen += 1
    if seen != n_corpus:
        raise RuntimeError(f"scoring pipeline in {work} scored {seen} of {n_corpus} corpus files; "
                           f"delete {work} to redo it")
    return CorpusScores(probs, reasons, seconds["score"], work)
