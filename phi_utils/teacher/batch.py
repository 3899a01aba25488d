"""OpenAI Batch API path (half price, results within 24 h) for paper-scale jobs.

Enabled by `teacher.use_batch_api` on the `openai` backend. The requests not yet cached are written
as a JSONL file, uploaded (`client.files.create(purpose="batch")`), submitted
(`client.batches.create`), polled, and the output file's responses go into the same response cache
as synchronous calls. Each batch's id and request keys are stored under `teacher/batches/`, so a
re-run after a crash resumes polling the batches that hold its requests instead of paying again.

Up to `BATCHES_IN_FLIGHT` batches run at once. With `teacher.budget_usd` set, a batch whose
worst-case cost (completion = max_tokens) could pass the budget is not submitted, and its requests
come back with `BUDGET_ERROR`.

A real run needs an OpenAI account; `tests/test_teacher_batch.py` drives this code through the
`openai` client against a local stand-in for the files/batches endpoints answered by the local LLM.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

from ..progress import tqdm
from .ledger import BUDGET_ERROR
from .transport import ChatResult, Prepared, estimate_tokens

POLL_S = 30.0
"""Seconds between status polls."""
MAX_WAIT_S = 26 * 3600.0
"""Give up polling after this long (the completion window is 24 h)."""
MAX_REQUESTS_PER_BATCH = 50_000
"""OpenAI's per-batch request limit."""
BATCHES_IN_FLIGHT = 4
"""Batches submitted before the oldest is awaited (they run concurrently on OpenAI's side; the
organisation's enqueued-token limit caps how many fit)."""


def _state_dir(teacher: Any) -> Path:
    base = Path(teacher.rd.path) if teacher.rd is not None else Path(teacher.cache.path).parent
    d = base / "teacher" / "batches"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _resume_submitted(teacher: Any, preps: Sequence[Prepared]) -> tuple[list[tuple[str, list[Prepared]]], list[Prepared]]:
    """Batches submitted earlier (state files under `teacher/batches/`) that still hold some of `preps`:
    (batch id, its pending requests) each, and the requests no live batch holds, in order. Matching by
    request key, not by chunk, so a crash that changed which requests are cached never pays twice."""
    by_key = {p.key: p for p in preps}
    resumed = []
    for state in sorted(_state_dir(teacher).glob("*.json")):
        info = json.loads(state.read_text())
        mine = [k for k in info.get("keys", []) if k in by_key]
        if not mine:
            continue
        b = teacher.transport.client.batches.retrieve(info["batch_id"])
        if b.status in ("failed", "expired", "cancelled"):
            continue
        resumed.append((str(b.id), [by_key.pop(k) for k in mine]))
    return resumed, [p for p in preps if p.key in by_key]


def _submit(teacher: Any, chunk: Sequence[Prepared]) -> str:
    digest = hashlib.sha256("\n".join(p.key for p in chunk).encode()).hexdigest()[:24]
    lines = [json.dumps({"custom_id": p.key, "method": "POST", "url": "/v1/chat/completions", "body": p.body})
             for p in chunk]
    upload = teacher.transport.client.files.create(file=(f"phi-batch-{digest}.jsonl", io.BytesIO("\n".join(lines).encode())),
                                         purpose="batch")
    b = teacher.transport.client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h", metadata={"phi_utils": digest})
    (_state_dir(teacher) / f"{digest}.json").write_text(json.dumps({
        "batch_id": b.id, "input_file_id": upload.id, "n": len(chunk), "keys": [p.key for p in chunk],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return str(b.id)


def _collect(teacher: Any, batch_id: str, chunk: Sequence[Prepared], bar: Any) -> None:
    """Poll until done, then cache every successful response (costs at half price)."""
    start = time.monotonic()
    while True:
        b = teacher.transport.client.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            break
        if time.monotonic() - start > MAX_WAIT_S:
            raise TimeoutError(f"OpenAI batch {batch_id} still '{b.status}' after {MAX_WAIT_S / 3600:.0f} h; "
                               f"re-run later to resume polling it")
        counts = getattr(b, "request_counts", None)
        if counts is not None:
            bar.set_postfix(batch=b.status, done=f"{counts.completed}/{counts.total}", refresh=True)
        time.sleep(POLL_S)
    by_key = {p.key: p for p in chunk}
    for file_id in (b.output_file_id, b.error_file_id):
        if not file_id:
            continue
        for line in teacher.transport.client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            p = by_key.get(row.get("custom_id"))
            resp = ((row.get("response") or {}).get("body")) if row.get("response") else None
            if p is None or not resp or (row.get("response") or {}).get("status_code") != 200:
                continue
            teacher.cache.put(p.key, resp, teacher.model_id, p.body)
            teacher.ledger.record(resp, batch=True)
            bar.update(1)


def run_batch(teacher: Any, preps: Sequence[Prepared], desc: str) -> list[ChatResult]:
    """Results for `preps` in order (`teacher`: the `Teacher` whose transport, cache and ledger are used);
    requests the batch did not answer carry an error."""
    def worst_cost(chunk: Sequence[Prepared]) -> float:
        return teacher.ledger.cost(sum(estimate_tokens(p.body["messages"]) for p in chunk),
                             sum(p.body["max_tokens"] for p in chunk), batch=True, model=chunk[0].body["model"])

    budget = teacher.cfg.budget_usd
    resumed, todo = _resume_submitted(teacher, preps)
    submitted = {p.key for _, chunk in resumed for p in chunk}
    # (batch id, requests, worst-case cost): batches already paid for are resumed whatever the budget
    in_flight: deque[tuple[str, Sequence[Prepared], float]] = deque((b, c, worst_cost(c)) for b, c in resumed)
    with tqdm(total=len(preps), desc=f"{desc} (batch API)", unit="req") as bar:
        for i in range(0, len(todo), MAX_REQUESTS_PER_BATCH):
            chunk = todo[i:i + MAX_REQUESTS_PER_BATCH]
            worst = worst_cost(chunk)
            # A batch cannot be stopped halfway: start one only if its worst case fits the budget,
            # after the batches in flight have been collected and cost what they really cost.
            while budget > 0 and in_flight and teacher.stats["cost_usd"] + sum(w for *_, w in in_flight) + worst > budget:
                batch_id, done, _ = in_flight.popleft()
                _collect(teacher, batch_id, done, bar)
            if budget > 0 and teacher.stats["cost_usd"] + worst > budget:
                tqdm.write(f"[teacher] {desc}: the next batch (up to ${worst:.2f}) could pass teacher.budget_usd "
                           f"${budget:.2f} (spent ${teacher.stats['cost_usd']:.2f}); not submitted", file=sys.stderr)
                break
            in_flight.append((_submit(teacher, chunk), chunk, worst))
            submitted.update(p.key for p in chunk)
            while len(in_flight) >= BATCHES_IN_FLIGHT:
                batch_id, done, _ = in_flight.popleft()
                _collect(teacher, batch_id, done, bar)
        while in_flight:
            batch_id, done, _ = in_flight.popleft()
            _collect(teacher, batch_id, done, bar)
    out = []
    for p in preps:
        hit = teacher.cache.get(p.key)
        if hit is not None:
            out.append(ChatResult.from_response(hit, cached=False))
        elif p.key in submitted:
            why = "not answered by the OpenAI batch (see its error file)"
            teacher.ledger.failure(why)  # counts towards teacher.max_error_rate like a failed synchronous request
            out.append(ChatResult.failed(why))
        else:
            out.append(ChatResult.failed(BUDGET_ERROR))
    return out
