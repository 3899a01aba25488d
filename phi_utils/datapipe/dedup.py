"""Exact and near-duplicate removal as a sequence of datatrove jobs, sharded in global order.

`dedup_jobs(head, ...)` turns a caller-specific head (a reader and filters that yield documents
carrying `metadata["order"]`, their position in the global order, and `metadata["shard"]`, the
task that read them) into six pipeline jobs:

1. `clean` (N tasks): the head, then each task writes its documents to `clean/<rank>.jsonl.gz`
   and their content hashes (datatrove's `ExactDedupSignature`);
2. `exact-find` (1 task): duplicate hashes across all shards (`ExactFindDedups`);
3. `minhash-signatures` (N): drops exact duplicates (`ExactDedupFilter`), writes `unique/`, and
   MinHash signatures of 5-token code shingles (`MinhashDedupSignature` with code tokens);
4. `minhash-buckets` (one task per band): candidate pairs whose band signatures collide;
5. `minhash-cluster` (1): union-find over the pairs, one survivor per cluster;
6. `minhash-filter` (N): drops the others and writes `kept/<rank>.jsonl.gz`.

Every dropped document is logged as `{"order", "reason"}` in `dropped/<clean|exact|near>/<rank>.jsonl.gz`.

Why the kept set does not depend on N: shards are contiguous slices of the global order, so
ordering documents by (shard, index in shard) is the global order. MinHash sorts its signatures
by (hash, shard, index), so the same pairs arrive in the same sequence for any N; exact dedup
keeps the highest `priority` of a hash and then the lowest index, and priority `65535 - shard`
makes that the first document in global order.
"""

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter, ExactDedupSignature,
                                                  ExactFindDedups)
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from .executor import PipelineJob
from .text import CODE_TOKEN_RE
MAX_SHARDS = 65534
"""Exact dedup ranks duplicates by a 16-bit priority, one value per shard."""
SHARD_FILE = "${rank}.jsonl.gz"


def minhash_bands(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """(bands, rows per band) with bands * rows <= `num_perm` whose collision curve
    `1 - (1 - s^r)^b` best approximates a step at Jaccard `threshold`: the least false-positive
    area below it plus false-negative area above it (the rule datasketch's MinHashLSH uses)."""
    s = np.linspace(0.0, 1.0, 2001)
    below, above = s <= threshold, s >= threshold
    best: tuple[float, int, int] | None = None
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s ** r) ** b
            err = 0.5 * np.trapezoid(p[below], s[below]) + 0.5 * np.trapezoid(1.0 - p[above], s[above])
            if best is None or err < best[0] - 1e-12:
                best = (err, b, r)
    assert best is not None
    return best[1], best[2]


class CodeTokens(WordTokenizer):
    """datatrove's word-tokenizer interface over `CODE_TOKEN_RE` (no language model, case kept)."""

    def word_tokenize(self, text: str) -> list[str]:
        return CODE_TOKEN_RE.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return text.splitlines()

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in CODE_TOKEN_RE.finditer(text)]


class CodeMinhashSignature(MinhashDedupSignature):
    """MinHash signatures of `n_grams`-token code shingles. datatrove's default shingles simplify
    prose (lower case, no punctuation), which would call `a(b)` and `a[b]` the same code."""

    name = "🎯 MinHash signatures (code shingles)"

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__(output_folder, config, language=CodeTokens())

    def get_shingles(self, text: str) -> np.ndarray:
        return code_shingles(text, self.config.n_grams)


_GRAM_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mod 2^64 is a bijection


def code_shingles(text: str, n: int = 5) -> np.ndarray:
    """Hashes of the text's `n`-token shingles, shape (shingles, 1): each distinct token is hashed
    once (xxh64), and a shingle's hash is the polynomial `((h1 * M + h2) * M + ...)` mod 2^64 of its
    tokens' hashes, so no shingle string is ever built (2-3x faster than hashing joined strings)."""
    import xxhash

    toks = CODE_TOKEN_RE.findall(text)
    if not toks:
        return np.zeros((0, 1), dtype=np.uint64)
    ids: dict[str, int] = {}
    codes = np.fromiter((ids.setdefault(t, len(ids)) for t in toks), dtype=np.int64, count=len(toks))
    table = np.fromiter((xxhash.xxh64_intdigest(t.encode("utf-8", errors="surrogatepass")) for t in ids),
                        dtype=np.uint64, count=len(ids))
    h = table[codes]
    k = min(n, len(h))  # a text shorter than a shingle is one shingle of all its tokens
    out = h[: len(h) - k + 1].copy()
    with np.errstate(over="ignore"):
        for j in range(1, k):
            out = out * _GRAM_MIX + h[j: len(h) - k + 1 + j]
    return out.reshape((-1, 1))


class RankShardReader(PipelineStep):
    """Task `rank` reads exactly `<folder>/<rank>.jsonl.gz` (nothing when that shard is empty).
    datatrove's readers deal files out by list position, which shifts when an empty shard wrote no
    file, and each dedup job must see the very documents the same rank saw before."""

    name = "📖 shard of this rank"
    type = "📖 - READER"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from read_shard(Path(self.folder) / f"{rank:05d}.jsonl.gz")


def read_shard(path: Path) -> Iterator[Document]:
    import gzip

    if not path.exists():
        return
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield Document(text=d.get("text", ""), id=str(d.get("id", "")), metadata=d.get("metadata", {}))


def read_rows(folder: Path, tasks: int) -> Iterator[dict[str, Any]]:
    """The JSON rows of a job's shards written with a flat adapter, rank by rank (global order)."""
    import gzip

    for rank in range(tasks):
        path = Path(folder) / f"{rank:05d}.jsonl.gz"
        if path.exists():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                yield from (json.loads(line) for line in f)


def read_shards(folder: Path, tasks: int) -> Iterator[Document]:
    """All shards of a finished job, rank by rank: the global order."""
    for rank in range(tasks):
        yield from read_shard(Path(folder) / f"{rank:05d}.jsonl.gz")


def _drop_record(self: Any, doc: Document) -> dict[str, Any]:
    return {"order": doc.metadata["order"], "reason": doc.metadata.get("filter_reason") or self.reason,
            "path": doc.metadata.get("path")}


class DropLog(JsonlWriter):
    """An exclusion writer that logs only `{"order", "reason", "path"}` of a dropped document."""

    name = "🗑 drop log"

    def __init__(self, folder: str | Path, reason: str = ""):
        super().__init__(str(folder), output_filename=SHARD_FILE, adapter=_drop_record)
        self.reason = reason


def read_drops(folder: Path) -> Iterator[dict[str, Any]]:
    import gzip

    for path in sorted(Path(folder).glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            yield from (json.loads(line) for line in f)


def _shard_priority(doc: Document) -> int:
    return 65535 - int(doc.metadata["shard"])


def _text_bytes(doc: Document) -> bytes:
    # bytes: xxhash >= 4 hashes no str (datatrove inspects this return annotation)
    return doc.text.encode("utf-8", errors="surrogatepass")


def dedup_jobs(head: Sequence[Any], work_dir: Path, tasks: int, near_dup_threshold: float,
               num_perm: int = 128, n_grams: int = 5, seed: int = 1) -> list[PipelineJob]:
    """The six jobs above after `head` (datatrove steps yielding documents with `order` and
    `shard` in their metadata); kept documents end in `work_dir/kept/<rank>.jsonl.gz`."""
    if tasks > MAX_SHARDS:
        raise ValueError(f"data.tasks={tasks}: exact dedup orders shards by a 16-bit priority (at most {MAX_SHARDS})")
    w = Path(work_dir)
    exact = ExactDedupConfig(content_getter=_text_bytes, document_priority=_shard_priority, hash_config=HashConfig(64, "xxhash"))
    bands, rows = minhash_bands(near_dup_threshold, num_perm)
    mh = MinhashConfig(n_grams=n_grams, num_buckets=bands, hashes_per_bucket=rows, seed=seed,
                       hash_config=HashConfig(64, "xxhash"))
    return [
        PipelineJob("clean", [*head, JsonlWriter(str(w / "clean"), output_filename=SHARD_FILE),
                              ExactDedupSignature(str(w / "exact_sigs"), exact)], tasks,
                    "read, clean, write shards and content hashes"),
        PipelineJob("exact-find", [ExactFindDedups(str(w / "exact_sigs"), str(w / "exact_dups"), exact)], 1,
                    "duplicate hashes across shards"),
        PipelineJob("minhash-signatures", [RankShardReader(w / "clean"),
                                           ExactDedupFilter(str(w / "exact_dups"), exact,
                                                            exclusion_writer=DropLog(w / "dropped" / "exact", "exact_duplicate")),
                                           JsonlWriter(str(w / "unique"), output_filename=SHARD_FILE),
                                           CodeMinhashSignature(str(w / "minhash_sigs"), mh)], tasks,
                    f"drop exact duplicates; MinHash {bands} bands x {rows} rows of {n_grams}-token shingles"),
        PipelineJob("minhash-buckets", [MinhashDedupBuckets(str(w / "minhash_sigs"), str(w / "minhash_buckets"), config=mh)],
                    bands, "pairs whose band signatures collide"),
        PipelineJob("minhash-cluster", [MinhashDedupCluster(str(w / "minhash_buckets"), str(w / "minhash_remove"), config=mh)],
                    1, "one survivor per near-duplicate cluster"),
        PipelineJob("minhash-filter", [RankShardReader(w / "unique"),
                                       MinhashDedupFilter(str(w / "minhash_remove"),
                                                          exclusion_writer=DropLog(w / "dropped" / "near", "near_duplicate")),
                                       JsonlWriter(str(w / "kept"), output_filename=SHARD_FILE)], tasks,
                    "drop near duplicates; write the kept shards"),
    ]
