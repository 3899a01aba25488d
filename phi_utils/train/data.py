"""Tokenize, pack and serve training data (§2.3).

Documents are tokenized with the run's tokenizer, concatenated into one 1-D stream with
`<|endoftext|>` after every document, and sliced into fixed-length sequences (the paper's
"concatenated ... sliced into sequences of 2048"). The sequences are streamed to disk as a
memory-mapped token file (`uint16` when the vocabulary fits, else `uint32`) plus a `uint8` loss
mask, so nothing is held in RAM at paper scale. A held-out share of *documents* (not sequences,
so no document straddles the split) forms the validation file.

Exercises are formatted as prompt + solution; with `loss_on_solution_only` the mask is 1 only on
solution tokens (and the closing `<|endoftext|>`), otherwise on every token. The choice is
recorded in `meta.json`. The last partial sequence is padded with `<|endoftext|>` and masked out.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from ..progress import tqdm

from ..rundir import write_json_atomic
from ..model.tokenizer import eos_id

IGNORE_INDEX = -100
DATA_FORMAT_VERSION = 1


def token_dtype(vocab: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


class _Packer:
    """Streams (tokens, mask) pieces into fixed-length rows of two append-only files."""

    def __init__(self, prefix: Path, seq_len: int, dtype: np.dtype, pad_id: int) -> None:
        self.seq_len, self.dtype, self.pad_id = seq_len, dtype, pad_id
        self.tok_path, self.mask_path = Path(f"{prefix}.tokens.bin"), Path(f"{prefix}.mask.bin")
        for p in (self.tok_path, self.mask_path):  # a new inode: an old file may be hard-linked by another seed's step
            p.unlink(missing_ok=True)
        self._tok_f = open(self.tok_path, "wb")
        self._mask_f = open(self.mask_path, "wb")
        self._buf_t: list[np.ndarray] = []
        self._buf_m: list[np.ndarray] = []
        self._buffered = 0
        self.n_rows = 0
        self.n_docs = 0
        self.n_tokens = 0
        self.n_target_tokens = 0

    def add(self, tokens: np.ndarray, mask: np.ndarray) -> None:
        self._buf_t.append(tokens.astype(self.dtype, copy=False))
        self._buf_m.append(mask.astype(np.uint8, copy=False))
        self._buffered += len(tokens)
        self.n_docs += 1
        self.n_tokens += len(tokens)
        self.n_target_tokens += int(mask.sum())
        if self._buffered >= 64 * self.seq_len:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buf_t:
            return
        t = np.concatenate(self._buf_t)
        m = np.concatenate(self._buf_m)
        n_full = len(t) // self.seq_len
        cut = n_full * self.seq_len
        if final and cut < len(t):
            pad = self.seq_len - (len(t) - cut)
            t = np.concatenate([t, np.full(pad, self.pad_id, dtype=self.dtype)])
            m = np.concatenate([m, np.zeros(pad, dtype=np.uint8)])
            cut = len(t)
        self._tok_f.write(t[:cut].tobytes())
        self._mask_f.write(m[:cut].tobytes())
        self.n_rows += cut // self.seq_len
        self._buf_t, self._buf_m = ([t[cut:]], [m[cut:]]) if cut < len(t) else ([], [])
        self._buffered = len(t) - cut

    def close(self) -> None:
        self._flush(final=True)
        for f in (self._tok_f, self._mask_f):
            f.flush()
            os.fsync(f.fileno())
            f.close()


@dataclass
class PackedData:
    """One split of packed sequences, memory-mapped (`tokens`, `mask`: shape (n, seq_len))."""

    tokens: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any]

    @classmethod
    def open(cls, directory: Path, split: str) -> "PackedData":
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        info = meta["splits"][split]
        n, seq_len = info["n_sequences"], meta["seq_len"]
        dtype = np.dtype(meta["dtype"])
        tok_path, mask_path = directory / f"{split}.tokens.bin", directory / f"{split}.mask.bin"
        expect = n * seq_len
        for p, itemsize in ((tok_path, dtype.itemsize), (mask_path, 1)):
            if not p.exists() or p.stat().st_size != expect * itemsize:
                raise ValueError(f"{p}: packed data missing or truncated (expected {expect * itemsize} bytes); "
                                 f"delete {directory} to re-pack")
        tokens = np.memmap(tok_path, dtype=dtype, mode="r", shape=(n, seq_len))
        mask = np.memmap(mask_path, dtype=np.uint8, mode="r", shape=(n, seq_len))
        return cls(tokens, mask, meta)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels) for rows `idx`; labels are IGNORE_INDEX where the mask is 0."""
        order = np.sort(idx)  # memmap reads are faster in file order; rows are then put back
        tok = np.asarray(self.tokens[order], dtype=np.int64)
        msk = np.asarray(self.mask[order], dtype=bool)
        back = np.argsort(np.argsort(idx, kind="stable"), kind="stable")
        tok, msk = tok[back], msk[back]
        input_ids = torch.from_numpy(tok)
        labels = torch.from_numpy(np.where(msk, tok, IGNORE_INDEX))
        return input_ids, labels

    def n_targets(self, idx: np.ndarray) -> int:
        """Loss-bearing positions of rows `idx` (the first token of a row is never predicted)."""
        return int(np.asarray(self.mask[np.sort(idx)][:, 1:], dtype=np.int64).sum())


def tokenizer_fingerprint(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]


def pack_documents(docs: Iterable[tuple[str, str | None]], n_docs: int, tokenizer: Any, out_dir: Path,
                   seq_len: int, val_fraction: float, seed: int, loss_on_solution_only: bool = False,
                   source: str = "", fingerprint: str = "", desc: str = "packing") -> dict[str, Any]:
    """Tokenize `docs` and write `train`/`val` packed files + `meta.json` into `out_dir`.

    Each doc is `(text, None)` for plain documents or `(prompt, solution)` for exercises.
    Returns the metadata (counts of documents, tokens, sequences and loss-bearing tokens per split).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)  # written last: its presence means complete
    eos = eos_id(tokenizer)
    dtype = token_dtype(len(tokenizer))
    is_val = val_assignment(n_docs, val_fraction, seed)
    packers = {s: _Packer(out_dir / s, seq_len, dtype, eos) for s in ("train", "val")}
    batch: list[tuple[str, str | None]] = []
    i = 0

    def flush() -> None:
        nonlocal i
        for toks, mask in encode_documents(tokenizer, batch, eos, loss_on_solution_only):
            packers["val" if is_val[i] else "train"].add(toks, mask)
            i += 1
        batch.clear()

    for doc in tqdm(docs, total=n_docs, desc=desc, unit="doc", mininterval=1.0):
        batch.append(doc)
        if len(batch) >= 512:
            flush()
    if batch:
        flush()
    for p in packers.values():
        p.close()
    splits = {s: {"n_documents": p.n_docs, "n_tokens": p.n_tokens, "n_sequences": p.n_rows,
                  "n_target_tokens": p.n_target_tokens} for s, p in packers.items()}
    return write_meta(out_dir, splits, tokenizer, seq_len, source, seed, val_fraction, loss_on_solution_only,
                      fingerprint, n_docs)


def val_assignment(n_docs: int, val_fraction: float, seed: int) -> np.ndarray:
    """Which documents (by global index) go to the validation split: a seeded draw, with at least
    one document on each side whatever the fraction."""
    rng = np.random.default_rng(seed)
    is_val = rng.random(n_docs) < val_fraction
    if n_docs >= 2:
        if not is_val.any():
            is_val[rng.integers(n_docs)] = True
        if is_val.all():
            is_val[0] = False
    return is_val


def encode_documents(tokenizer: Any, batch: list[tuple[str, str | None]], eos: int,
                     loss_on_solution_only: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens, loss mask) of each `(text, None)` or `(prompt, solution)` document, `eos` appended."""
    enc_p = tokenizer([p for p, _ in batch], add_special_tokens=False)["input_ids"]
    sols = [s for _, s in batch]
    has_sol = [s is not None for s in sols]
    enc_s = tokenizer([s for s in sols if s is not None], add_special_tokens=False)["input_ids"] if any(has_sol) else []
    it_s = iter(enc_s)
    out = []
    for ids_p, hs in zip(enc_p, has_sol):
        ids_s = next(it_s) if hs else []
        toks = np.array(list(ids_p) + list(ids_s) + [eos], dtype=np.int64)
        mask = np.ones(len(toks), dtype=np.uint8)
        if hs and loss_on_solution_only:
            mask[: len(ids_p)] = 0
        out.append((toks, mask))
    return out


def write_meta(out_dir: Path, splits: dict[str, dict[str, int]], tokenizer: Any, seq_len: int, source: str, seed: int,
               val_fraction: float, loss_on_solution_only: bool, fingerprint: str, n_docs: int) -> dict[str, Any]:
    """`meta.json` of a finished packing, written last (its presence means complete)."""
    meta = {
        "format_version": DATA_FORMAT_VERSION, "seq_len": seq_len, "dtype": token_dtype(len(tokenizer)).name,
        "eos_id": eos_id(tokenizer), "vocab_size": len(tokenizer), "source": source, "seed": seed,
        "val_fraction": val_fraction, "loss_on_solution_only": bool(loss_on_solution_only),
        "separator": "<|endoftext|>", "fingerprint": fingerprint, "splits": splits,
    }
    if meta["splits"]["train"]["n_sequences"] == 0:
        raise ValueError(f"{source}: no training sequences after packing ({n_docs} documents)")
    write_json_atomic(Path(out_dir) / "meta.json", meta)
    return meta


def write_packed_arrays(out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], vocab: int, eos: int,
                        source: str = "arrays") -> dict[str, Any]:
    """Write already-packed (tokens, mask) arrays of shape (n, seq_len) per split (tests, benchmarks)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab)
    seq_len = None
    info = {}
    for split, (tok, msk) in splits.items():
        seq_len = tok.shape[1]
        np.ascontiguousarray(tok, dtype=dtype).tofile(out_dir / f"{split}.tokens.bin")
        np.ascontiguousarray(msk, dtype=np.uint8).tofile(out_dir / f"{split}.mask.bin")
        info[split] = {"n_documents": int(tok.shape[0]), "n_tokens": int(tok.size), "n_sequences": int(tok.shape[0]),
                       "n_target_tokens": int(msk.sum())}
    meta = {"format_version": DATA_FORMAT_VERSION, "seq_len": seq_len, "dtype": dtype.name, "eos_id": eos,
            "vocab_size": vocab, "source": source, "loss_on_solution_only": False, "separator": "<|endoftext|>",
            "fingerprint": "", "splits": info}
    write_json_atomic(out_dir / "meta.json", meta)
    return meta


# ---------------------------------------------------------------------------- sampling
class BatchSampler:
    """Deterministic global batches: step s uses samples [s*G, (s+1)*G) of an endless stream of
    per-epoch permutations (seeded by `seed + epoch`). The data position is therefore a pure
    function of the step, which makes resume exact and lets every rank compute any batch."""

    def __init__(self, n: int, global_batch: int, seed: int) -> None:
        if n <= 0:
            raise ValueError("no sequences to sample from")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng(self.seed + epoch).permutation(self.n)
        return self._perms[epoch]

    def global_indices(self, step: int) -> np.ndarray:
        g = np.arange(step * self.global_batch, (step + 1) * self.global_batch, dtype=np.int64)
        epochs, pos = g // self.n, g % self.n
        return np.array([self._perm(int(e))[p] for e, p in zip(epochs, pos)], dtype=np.int64)

    def epochs_done(self, steps: int) -> float:
        return steps * self.global_batch / self.n

    def rank_micro_batches(self, step: int, rank: int, world: int, micro: int) -> list[np.ndarray]:
        """This rank's contiguous share of the global batch, cut into micro-batches."""
        idx = self.global_indices(step)
        per_rank = self.global_batch // world
        mine = idx[rank * per_rank:(rank + 1) * per_rank]
        return [mine[i:i + micro] for i in range(0, per_rank, micro)]
