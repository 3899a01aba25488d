"""Tokenization into the trainer's packed format as a datatrove pipeline (§2.3).

Job `tokenize` (`data.tasks` tasks): each task reads its contiguous slice of the dataset,
tokenizes it (`data.encode_documents`, `<|endoftext|>` after every document) and appends the
tokens and loss masks of its documents, unpadded, to `<rank>.<split>.tokens.bin` / `.mask.bin`;
which split a document goes to is decided by its global index (`data.val_assignment`). The merge
then concatenates the shards rank by rank and pads the last row, so the packed files are
byte-identical to the one-process packing for any number of tasks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ..datapipe.executor import PipelineJob, run_jobs
from ..datapipe.steps import DatasetShardReader
from ..model.tokenizer import eos_id
from .data import encode_documents, token_dtype, val_assignment, write_meta

SPLITS = ("train", "val")


class TokenizeShard(PipelineStep):
    """Writes this task's documents as flat token / mask streams per split, and their counts."""

    name = "🔢 tokenize into packed streams"
    type = "🔢 - TOKENIZER"

    def __init__(self, tokenizer: Any, out_folder: str, n_docs: int, val_fraction: float, seed: int,
                 exercises: bool, loss_on_solution_only: bool):
        super().__init__()
        self.tokenizer, self.out_folder, self.n_docs = tokenizer, out_folder, n_docs
        self.val_fraction, self.seed = val_fraction, seed
        self.exercises, self.loss_on_solution_only = exercises, loss_on_solution_only

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        out = Path(self.out_folder)
        out.mkdir(parents=True, exist_ok=True)
        is_val = val_assignment(self.n_docs, self.val_fraction, self.seed)
        eos, dtype = eos_id(self.tokenizer), token_dtype(len(self.tokenizer))
        files = {(s, kind): open(out / f"{rank:05d}.{s}.{kind}.bin", "wb") for s in SPLITS for kind in ("tokens", "mask")}
        counts = {s: {"n_documents": 0, "n_tokens": 0, "n_target_tokens": 0} for s in SPLITS}
        batch: list[tuple[int, tuple[str, str | None]]] = []

        def flush() -> None:
            enc = encode_documents(self.tokenizer, [d for _, d in batch], eos, self.loss_on_solution_only)
            for (i, _), (toks, mask) in zip(batch, enc):
                split = "val" if is_val[i] else "train"
                files[(split, "tokens")].write(toks.astype(dtype).tobytes())
                files[(split, "mask")].write(mask.tobytes())
                c = counts[split]
                c["n_documents"] += 1
                c["n_tokens"] += len(toks)
                c["n_target_tokens"] += int(mask.sum())
            batch.clear()

        try:
            for doc in data:
                m = doc.metadata
                batch.append((m["order"], (m["prompt"], m["solution"]) if self.exercises else (doc.text, None)))
                if len(batch) >= 512:
                    flush()
                self.stat_update("tokenized")
            if batch:
                flush()
        finally:
            for f in files.values():
                f.close()
        (out / f"{rank:05d}.json").write_text(json.dumps(counts))
        yield from ()  # the streams are this step's output; no document goes further


def _merge(shards: Path, tasks: int, out_dir: Path, seq_len: int, dtype: np.dtype, eos: int) -> dict[str, dict[str, int]]:
    """Concatenate the tasks' streams per split into fixed-length rows, the last one padded with
    `eos` (mask 0), as `_Packer` writes them."""
    counts = [json.loads((shards / f"{r:05d}.json").read_text()) for r in range(tasks)]
    splits = {}
    for s in SPLITS:
        n_tokens = 0
        for kind in ("tokens", "mask"):
            target = out_dir / f"{s}.{kind}.bin"
            target.unlink(missing_ok=True)  # a new inode: another seed's step may hard-link the old one
            with open(target, "wb") as out:
                for r in range(tasks):
                    with open(shards / f"{r:05d}.{s}.{kind}.bin", "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
                n = sum(c[s]["n_tokens"] for c in counts)
                pad = (-n) % seq_len
                out.write((np.full(pad, eos, dtype=dtype) if kind == "tokens" else np.zeros(pad, np.uint8)).tobytes())
                out.flush()
                os.fsync(out.fileno())
            n_tokens = n
        splits[s] = {"n_documents": sum(c[s]["n_documents"] for c in counts), "n_tokens": n_tokens,
                     "n_sequences": -(-n_tokens // seq_len),
                     "n_target_tokens": sum(c[s]["n_target_tokens"] for c in counts)}
    return splits


def pack_with_pipeline(dataset_path: Path, n_docs: int, tokenizer: Any, out_dir: Path, seq_len: int,
                       val_fraction: float, seed: int, exercises: bool, loss_on_solution_only: bool,
                       fingerprint: str, data: Any) -> dict[str, Any]:
    """`prepare_packed`'s work on `data`'s executor; the per-task streams live in
    `<out_dir>/_tokenize/` until the merge has written the packed files and `meta.json`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)
    work = out_dir / "_tokenize" / f"{fingerprint}_tasks{data.tasks}"
    columns = ("prompt", "solution") if exercises else ()
    job = PipelineJob("tokenize", [DatasetShardReader(dataset_path, columns=columns),
                                   TokenizeShard(tokenizer, str(work / "shards"), n_docs, val_fraction, seed,
                                                 exercises, loss_on_solution_only)],
                      data.tasks, "tokenize each task's slice into packed streams")
    run_jobs([job], data, work, desc=f"tokenizing {dataset_path.name} ({data.tasks} tasks)")
    splits = _merge(work / "shards", data.tasks, out_dir, seq_len, token_dtype(len(tokenizer)), eos_id(tokenizer))
    meta = write_meta(out_dir, splits, tokenizer, seq_len, str(dataset_path), seed, val_fraction,
                      loss_on_solution_only, fingerprint, n_docs)
    shutil.rmtree(out_dir / "_tokenize", ignore_errors=True)
    return meta
