"""The OpenAI Batch API path (`phi_utils.teacher.batch`) through the real `openai` client, against a
local stand-in for OpenAI's files/batches endpoints whose batches are answered by the real local
LLM server (SmolLM2). Covers submission in chunks, several batches in flight, half-price costs,
resuming a batch submitted before a crash without paying again, and the budget refusing a batch."""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import http.server
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from phi_utils.teacher import BUDGET_ERROR, Teacher
from phi_utils.teacher import batch as B
from phi_utils.teacher.transport import estimate_tokens


class FakeBatchAPI:
    """OpenAI's `/v1/files` and `/v1/batches` in miniature: a batch is answered (by forwarding each
    request body to `upstream`'s chat completions) the first time it is retrieved."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created = 0
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, obj: Any, raw: bytes | None = None) -> None:
                body = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/files":
                    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                    data = next(p.get_content() for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "file")
                    self._send(api.add_file(data if isinstance(data, bytes) else data.encode()))
                elif self.path == "/v1/batches":
                    self._send(api.create_batch(json.loads(body)))
                else:
                    self.send_error(404)

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                    self._send(api.retrieve(parts[2]))
                elif parts[:2] == ["v1", "files"] and parts[-1] == "content":
                    self._send(None, api.files[parts[2]])
                else:
                    self.send_error(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def add_file(self, data: bytes) -> dict[str, Any]:
        with self.lock:
            fid = f"file-{len(self.files)}"
            self.files[fid] = data
        return {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}

    def create_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.created += 1
            bid = f"batch-{len(self.batches)}"
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "status": "validating",
                                 "input_file_id": req["input_file_id"], "completion_window": "24h",
                                 "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
                                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        return self.batches[bid]

    def retrieve(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        if b["status"] == "validating":
            lines = [json.loads(x) for x in self.files[b["input_file_id"]].decode().splitlines() if x.strip()]
            out = []
            for line in lines:  # answered short (<= 8 tokens): costs stay far below max_tokens' worst case
                body = {**line["body"], "max_tokens": min(8, line["body"]["max_tokens"])}
                req = urllib.request.Request(self.upstream + "/v1/chat/completions", method="POST",
                                             data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=300) as r:
                    resp = json.loads(r.read())
                resp["model"] = line["body"]["model"]  # as OpenAI reports the model it ran
                out.append(json.dumps({"id": f"r-{len(out)}", "custom_id": line["custom_id"],
                                       "response": {"status_code": 200, "body": resp}}))
            b["output_file_id"] = self.add_file("\n".join(out).encode())["id"]
            b["status"] = "completed"
            b["request_counts"] = {"total": len(lines), "completed": len(lines), "failed": 0}
        return b

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake_api(local_teacher: Teacher, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(B, "POLL_S", 0.01)
    monkeypatch.setattr(B, "MAX_REQUESTS_PER_BATCH", 2)
    monkeypatch.setattr(B, "BATCHES_IN_FLIGHT", 2)
    api = FakeBatchAPI(local_teacher.base_url.removesuffix("/v1"))
    yield api
    api.close()


def _batch_teacher(api: FakeBatchAPI, rd: RunDir, **changes: Any) -> Teacher:
    cfg = dataclasses.replace(get_profile("paper").teacher, use_batch_api=True, max_tokens=4, **changes)
    return Teacher(cfg, api.base_url, "sk-test", f"{api.base_url}|{cfg.model}", "fake openai",
                   cache_path=Path(rd.path) / "teacher" / "cache" / "responses.sqlite", rd=rd, check=False)


def _requests(n: int, tag: str = "Say") -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": f"{tag} {i}."}], "max_tokens": 2, "temperature": 0}
            for i in range(n)]


def test_batches_in_chunks_at_half_price_and_cached(fake_api: FakeBatchAPI, tmp_path: Path) -> None:
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = _batch_teacher(fake_api, rd)
    try:
        res = t.chat_many(_requests(5), desc="gen")
        assert [r.error for r in res] == [None] * 5 and all(r.text for r in res)
        assert fake_api.created == 3  # chunks of 2, 2, 1
        usage = sum(r.prompt_tokens for r in res), sum(r.completion_tokens for r in res)
        assert t.stats["cost_usd"] == pytest.approx(t.ledger.cost(*usage, batch=True, model="gpt-3.5-turbo"))
        assert t.stats["cost_usd"] == pytest.approx(t.ledger.cost(*usage, model="gpt-3.5-turbo") / 2)
        states = [json.loads(p.read_text()) for p in (rd.path / "teacher" / "batches").glob("*.json")]
        assert sorted(len(s["keys"]) for s in states) == [1, 2, 2]
        again = t.chat_many(_requests(5), desc="gen")  # all cached: nothing submitted
        assert fake_api.created == 3 and [a.text for a in again] == [r.text for r in res]
    finally:
        t.close()


def test_a_batch_submitted_before_a_crash_is_resumed_not_paid_twice(fake_api: FakeBatchAPI, tmp_path: Path) -> None:
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = _batch_teacher(fake_api, rd)
    try:
        reqs = _requests(3, "Name")
        preps = [t._prepare(**r) for r in reqs]
        B._submit(t, preps[1:3])  # submitted by the run that crashed, never collected
        assert fake_api.created == 1
        res = t.chat_many(reqs, desc="gen")
        assert [r.error for r in res] == [None] * 3
        assert fake_api.created == 2  # only request 0 needed a new batch
    finally:
        t.close()


def test_budget_refuses_a_batch_whose_worst_case_does_not_fit(fake_api: FakeBatchAPI, tmp_path: Path) -> None:
    """GPT-4 prices at half: a chunk of two 1000-token requests may cost ~$0.06, two 3000-token ones ~$0.18.
    With $0.07, the second chunk is submitted once the first has been collected (it really cost a
    fraction of a cent); the third never is."""
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = _batch_teacher(fake_api, rd, model="gpt-4-0613", rating_model=None, price_per_1k_prompt=0.03,
                       price_per_1k_completion=0.06, budget_usd=0.07)
    try:
        caps = [1000, 1000, 1000, 1000, 3000, 3000]
        reqs = [{**r, "max_tokens": c} for r, c in zip(_requests(6, "Count"), caps)]
        res = t.chat_many(reqs, desc="gen")
        assert fake_api.created == 2
        assert [r.error for r in res] == [None] * 4 + [BUDGET_ERROR] * 2 and t.stats["errors"] == 0
        assert 0 < t.stats["cost_usd"] < 0.01
    finally:
        t.close()


def test_budget_counts_batches_in_flight(fake_api: FakeBatchAPI, tmp_path: Path) -> None:
    """When answers cost about their worst case, a second batch is refused while the first is in flight
    and after it is collected: together they would pass the budget."""
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = _batch_teacher(fake_api, rd, model="gpt-4-0613", rating_model=None, price_per_1k_prompt=0.03,
                       price_per_1k_completion=0.06)
    reqs = [{**r, "max_tokens": 8} for r in _requests(4, "Spell")]
    chunk = [t._prepare(**r) for r in reqs[:2]]
    w = t.ledger.cost(sum(estimate_tokens(p.body["messages"]) for p in chunk), 16, batch=True, model="gpt-4-0613")
    t.cfg = dataclasses.replace(t.cfg, budget_usd=1.6 * w)
    try:
        res = t.chat_many(reqs, desc="gen")
        assert fake_api.created == 1
        assert [r.error for r in res] == [None, None, BUDGET_ERROR, BUDGET_ERROR]
        assert t.stats["cost_usd"] > w  # the real prompts (chat template included) cost more than the estimate
    finally:
        t.close()

