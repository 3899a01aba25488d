"""Readers and a filter that put a stage's own logic (a picklable function) into a datatrove pipeline.

Both readers give every document `metadata["order"]` (its position in the global order) and
`metadata["shard"]` (the task that read it), which `dedup` needs; a document the stage's function
rejects travels with `metadata["skip"]` set and is dropped, and logged, by `SkipFilter`.
"""

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

Examine = Callable[[dict[str, Any]], tuple[str | None, str | None]]
"""row -> (skip reason or None, text or None)."""
HUB_ORDER_STRIDE = 1 << 40
"""Order of a streamed document: shard * stride + index in its shard (shards are contiguous in order)."""


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous slice [lo, hi) of n items that task `rank` of `world_size` takes."""
    return n * rank // world_size, n * (rank + 1) // world_size


def _document(row: dict[str, Any], order: int, rank: int, examine: Examine) -> Document:
    reason, text = examine(row)
    meta = {k: v for k, v in row.items() if k != "text"}
    return Document(text=text or "", id=str(order), metadata={**meta, "order": order, "shard": rank, "skip": reason})


class ListShardReader(PipelineStep):
    """Task `rank` reads its contiguous slice of the first `n` rows of a JSONL list (e.g. candidate
    files in visiting order) and turns each row into a document with `examine`."""

    name = "📖 list slice"
    type = "📖 - READER"

    def __init__(self, list_file: str | Path, n: int, examine: Examine):
        super().__init__()
        self.list_file, self.n, self.examine = str(list_file), n, examine

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        lo, hi = shard_bounds(self.n, rank, world_size)
        with open(self.list_file, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= hi:
                    break
                if i >= lo:
                    self.stat_update("read")
                    yield _document(json.loads(line), i, rank, self.examine)


class StreamShardReader(PipelineStep):
    """Task `rank` reads the rows `stream(rank, world_size)` yields (its shard of a streamed
    dataset), at most `limit` of them (0 = all)."""

    name = "📖 stream shard"
    type = "📖 - READER"

    def __init__(self, stream: Callable[[int, int], Iterator[dict[str, Any]]], examine: Examine, limit: int = 0):
        super().__init__()
        self.stream, self.examine, self.limit = stream, examine, limit

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for i, row in enumerate(self.stream(rank, world_size)):
            if self.limit and i >= self.limit:
                break
            self.stat_update("read")
            yield _document(row, rank * HUB_ORDER_STRIDE + i, rank, self.examine)


class SkipFilter(PipelineStep):
    """Drops documents whose `metadata["skip"]` is set, logging each to `drop_log` with that reason."""

    name = "🔻 skip rules"
    type = "🔻 - FILTER"

    def __init__(self, drop_log: Any):
        super().__init__()
        self.drop_log = drop_log

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.drop_log as log:
            for doc in data:
                reason = doc.metadata.pop("skip", None)
                if reason:
                    self.stat_update(f"dropped_{reason.split(':')[0]}")
                    doc.metadata["filter_reason"] = reason
                    log.write(doc, rank)
                    continue
                self.stat_update("forwarded")
                yield doc


class DatasetShardReader(PipelineStep):
    """Task `rank` reads its contiguous slice of the rows of a `datasets` dataset saved on disk
    (memory-mapped: no task holds more than one row at a time); `columns` go into the metadata."""

    name = "📖 dataset slice"
    type = "📖 - READER"

    def __init__(self, dataset_dir: str | Path, text_column: str = "text", columns: tuple[str, ...] = ()):
        super().__init__()
        self.dataset_dir, self.text_column, self.columns = str(dataset_dir), text_column, tuple(columns)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import datasets

        ds = datasets.load_from_disk(self.dataset_dir)
        lo, hi = shard_bounds(len(ds), rank, world_size)
        for i, row in enumerate(ds.select_columns([self.text_column, *self.columns]).select(range(lo, hi)), lo):
            self.stat_update("read")
            yield Document(text=row[self.text_column], id=str(i),
                           metadata={**{c: row[c] for c in self.columns}, "order": i, "shard": rank})
