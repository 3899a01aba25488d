"""A scripted OpenAI-compatible teacher for tests of stage logic: a real HTTP server on 127.0.0.1.

It serves what `phi_utils.teacher` asks of an endpoint (`GET /v1/models`, `POST /v1/chat/completions`,
with `logprobs` / `top_logprobs` as ratings ask for them) and answers each chat request from a
script, a function of the request, so a test states exactly what the teacher says: the reply text,
the probabilities of the alternatives at any token (ratings), HTTP errors (429, 500, 400), a body
that is not JSON, a dropped connection, latency. Everything else is the real code: the `Teacher`
client, transport (retries, pacing), response cache and ledger. The reply is cut at the request's
`stop` strings and `max_tokens` as a real server does (tokens: `tokenize`).

    stub.script = lambda req: Reply.rating({7: 0.5, 8: 0.5}, "Clear.") if "def " in req.user else "0 No code."
    stub.queue(Reply.error(429))   # the next request gets a 429, then the script answers again
    t = stub.teacher(rd)           # a real `Teacher` attached to the stub, as a pipeline kernel attaches
    stub.requests                  # every chat request received, in arrival order
"""

from __future__ import annotations

import http.server
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

_TOKEN = re.compile(r"\s*\d|\s*[^\s\d]+|\s+")


def tokenize(text: str) -> list[str]:
    """The stub's tokens: one per digit (as Llama-family tokenizers split numbers), else a word with
    its leading whitespace. Joined, they give the text back."""
    return _TOKEN.findall(text)


@dataclass
class Reply:
    """What the scripted teacher answers to one chat request."""

    text: str = ""
    """The reply's content, before the request's `stop` and `max_tokens` cut it."""
    alternatives: dict[int, dict[str, float]] = field(default_factory=dict)
    """Token index -> {token: probability} of the alternatives there (the token itself included);
    every other token has probability 1. Returned as `top_logprobs` when the request asks."""
    with_logprobs: bool = True
    """False: an endpoint that returns no logprobs even when asked."""
    status: int = 200
    """HTTP status; not 200 answers `{"error": {"message": text}}`."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. `Retry-After`)."""
    body: bytes | None = None
    """A raw response body instead of the JSON completion (e.g. one that is not JSON)."""
    drop: bool = False
    """Close the connection without answering."""
    delay_s: float = 0.0
    """Seconds to wait before answering (latency)."""

    def __post_init__(self) -> None:
        toks = tokenize(self.text)
        for i, alts in self.alternatives.items():
            if i >= len(toks) or toks[i] not in alts:
                raise ValueError(f"alternatives at token {i}: the reply's token there "
                                 f"({toks[i] if i < len(toks) else 'none'!r}) must be among {sorted(alts)}")

    @classmethod
    def rating(cls, probs: dict[int, float], reason: str = "", with_logprobs: bool = True) -> "Reply":
        """A rating reply: the most probable score first, then `reason`; the score token's
        alternatives carry `probs` (score -> probability)."""
        best = max(probs, key=lambda k: probs[k])
        return cls(f"{best} {reason}".rstrip(), {0: {str(k): p for k, p in probs.items()}}, with_logprobs)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", retry_after: float | None = None) -> "Reply":
        """An HTTP error; `retry_after` sets the `Retry-After` header (seconds)."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(message, status=status, headers=headers)

    @classmethod
    def malformed(cls) -> "Reply":
        """HTTP 200 with a body that is not JSON."""
        return cls(body=b"<html>this is not json")


@dataclass
class StubRequest:
    """One chat request as the stub received it."""

    body: dict[str, Any]
    """The parsed JSON body of `POST /v1/chat/completions`."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    @property
    def system(self) -> str | None:
        """The system message's content, if any."""
        return next((m["content"] for m in self.messages if m["role"] == "system"), None)

    @property
    def user(self) -> str:
        """The last user message's content."""
        return [m["content"] for m in self.messages if m["role"] == "user"][-1]


Script = Callable[[StubRequest], Union[Reply, str]]
"""A request -> what the teacher answers (a `str` is `Reply(text)`)."""


def _no_script(req: StubRequest) -> Reply:
    raise AssertionError(f"the stub teacher has no script; it was asked: {req.user[:200]!r}")


def _logprob_entry(token: str, p: float) -> dict[str, Any]:
    return {"token": token, "logprob": math.log(p) if p > 0 else -9999.0, "bytes": list(token.encode())}


def completion(req: StubRequest, reply: Reply, n: int) -> dict[str, Any]:
    """The `/chat/completions` response a server gives for `reply`: cut at the first `stop` string,
    then at `max_tokens` tokens; logprobs per token when asked (at most `top_logprobs` alternatives)."""
    text, finish = reply.text, "stop"
    stops = req.body.get("stop") or []
    for s in [stops] if isinstance(stops, str) else stops:
        if s and s in text:
            text = text[:text.index(s)]
    toks = tokenize(text)
    cap = req.body.get("max_tokens")
    if cap is not None and len(toks) > cap:
        toks, finish = toks[:cap], "length"
    logprobs = None
    if req.body.get("logprobs") and reply.with_logprobs:
        top_n = int(req.body.get("top_logprobs") or 0)
        content = []
        for i, tok in enumerate(toks):
            alts = reply.alternatives.get(i, {})
            alts = alts if tok in alts else {tok: 1.0}  # (a token cut by a stop string has no alternatives)
            top = sorted(alts.items(), key=lambda kv: -kv[1])[:top_n]
            content.append({**_logprob_entry(tok, alts[tok]), "top_logprobs": [_logprob_entry(t, p) for t, p in top]})
        logprobs = {"content": content}
    prompt_tokens = sum(len(tokenize(str(m.get("content") or ""))) for m in req.messages)
    return {"id": f"chatcmpl-stub-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": req.body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(toks)},
                         "logprobs": logprobs, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(toks),
                      "total_tokens": prompt_tokens + len(toks)}}


class StubTeacher:
    """The scripted endpoint (see the module doc). `base_url` ends in `/v1`."""

    def __init__(self, script: Script = _no_script, model: str = "stub-teacher",
                 label: str = "scripted stub teacher") -> None:
        self.script = script
        """Answers each chat request not answered by the queue."""
        self.model = model
        """The one model `GET /v1/models` lists."""
        self.label = label
        """The label of the teachers attached to the stub (`env`)."""
        self.requests: list[StubRequest] = []
        """Every chat request received, in arrival order (retries included)."""
        self.script_errors: list[BaseException] = []
        """Exceptions the script raised (each answered HTTP 400); the fixture fails the test on any."""
        self.max_in_flight = 0
        """Most chat requests being answered at once."""
        self._teachers: list[Any] = []
        self._queue: list[Reply] = []
        self._in_flight = 0
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), name="stub-teacher",
                                        daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def env(self, local_model: str, engine: str = "llama-server") -> dict[str, str]:
        """The variables under which `Teacher.from_config` attaches to the stub for a `local_model`
        teacher, as a pipeline's kernels attach to its server; `engine` picks the rating path
        (`llama-server`: score and reason in one request; `llama-cpp-python`: two)."""
        from phi_utils.teacher.server import ENV_BASE_URL, ENV_ENGINE, ENV_LABEL, ENV_LOCAL_MODEL, ENV_SHA256

        return {ENV_BASE_URL: self.base_url, ENV_LOCAL_MODEL: local_model, ENV_LABEL: self.label,
                ENV_SHA256: "stub", ENV_ENGINE: engine}

    def teacher(self, rd: Any, **changes: Any) -> Any:
        """`Teacher.from_config` on the smoke profile's teacher settings with `changes`, attached
        through `env` (which the caller exported); closed with the stub."""
        import dataclasses

        from phi_utils.config import get_profile
        from phi_utils.teacher import Teacher

        t = Teacher.from_config(dataclasses.replace(get_profile("smoke").teacher, **changes), rd)
        assert t.base_url == self.base_url, "export stub.env(...) first: the teacher did not attach to the stub"
        self._teachers.append(t)
        return t

    def queue(self, *replies: Reply | str) -> None:
        """Answer the next requests with these, in arrival order, before the script answers again."""
        with self._lock:
            self._queue.extend(Reply(r) if isinstance(r, str) else r for r in replies)

    def _answer(self, req: StubRequest) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(req)
            n = len(self.requests)
            queued = self._queue.pop(0) if self._queue else None
        if queued is not None:
            return queued, n
        try:
            reply = self.script(req)
        except Exception as e:  # noqa: BLE001 - reported by the fixture; a 400 is not retried, so it fails fast
            with self._lock:
                self.script_errors.append(e)
            return Reply.error(400, f"stub script raised {type(e).__name__}: {e}"), n
        return (Reply(reply) if isinstance(reply, str) else reply), n

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps({"error": {"message": message, "code": status}}).encode(), headers)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": stub.model, "object": "model", "owned_by": "stub"}]}).encode())
                else:
                    self._error(404, f"no route GET {self.path}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/chat/completions":
                    self._error(404, f"no route POST {self.path}")
                    return
                req = StubRequest(json.loads(body))
                reply, n = stub._answer(req)
                with stub._lock:
                    stub._in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub._in_flight)
                try:
                    time.sleep(reply.delay_s)
                    if reply.drop:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    elif reply.body is not None:
                        self._send(reply.status, reply.body, reply.headers)
                    elif reply.status != 200:
                        self._error(reply.status, reply.text, reply.headers)
                    else:
                        self._send(200, json.dumps(completion(req, reply, n)).encode(), reply.headers)
                finally:
                    with stub._lock:
                        stub._in_flight -= 1

        return Handler

    def close(self) -> None:
        for t in self._teachers:
            t.close()
        self.httpd.shutdown()
        self.httpd.server_close()
