"""`Teacher`: every stage's one door to a chat LLM, through the official `openai` client.

The same code talks to OpenAI, any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI) or the
embedded local llama.cpp server. Around each request it adds:

* a persistent response cache (`cache.py`) checked before anything is sent;
* client-side pacing to `requests_per_minute` / `tokens_per_minute`;
* retries with exponential backoff + jitter on 429, 5xx, timeouts, dropped connections and
  unparseable bodies (honouring `Retry-After`); after the last retry the error is *recorded* in the
  `ChatResult`, never raised, so one bad response cannot crash a stage;
* a cost estimate before a batch and a budget that stops sending once spent, keeping what was paid;
* tqdm bars with live token, cost and cache-hit counts;
* optionally OpenAI's Batch API (half price) for paper-scale jobs.

Configuration problems (missing API key, unreachable endpoint, wrong model hash) raise at once with
one clear message naming the variable, URL or file.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..progress import tqdm

from .cache import ResponseCache, cache_key
from .parsing import Rating, parse_json_object, rating_from_logprobs, rating_from_text, validate_schema
from .server import ENV_BASE_URL, ENV_ENGINE, ENV_LABEL, ENV_LOCAL_MODEL, ENV_SHA256, LocalServer, server_log_path

log = logging.getLogger("phi_utils.teacher")

KNOWN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-0613": (0.03, 0.06), "gpt-4": (0.03, 0.06),
    "gpt-3.5-turbo-0301": (0.0015, 0.002), "gpt-3.5-turbo": (0.0005, 0.0015),
}
"""USD per 1k tokens (prompt, completion), OpenAI list prices, for the models the paper profile names;
a dated name without an entry takes its family's (`gpt-3.5-turbo-0125` -> `gpt-3.5-turbo`)."""


def price_per_1k(model: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """(prompt, completion) USD per 1k tokens of `model`: `KNOWN_PRICES` by exact name or the longest
    known prefix, else `default` (the config's `price_per_1k_prompt/completion`)."""
    if not model:
        return default
    if model in KNOWN_PRICES:
        return KNOWN_PRICES[model]
    family = max((k for k in KNOWN_PRICES if model.startswith(k + "-")), key=len, default=None)
    return KNOWN_PRICES[family] if family else default


BUDGET_ERROR = "budget exhausted"
"""`ChatResult.error` of requests not sent because `teacher.budget_usd` was reached."""


class TeacherError(RuntimeError):
    """The teacher cannot be used as configured (the message names the setting, variable or URL)."""


class TeacherConfigError(TeacherError):
    """A missing API key or an invalid teacher setting."""


class TeacherUnreachableError(TeacherError):
    """The endpoint did not answer; the message names the URL."""


@dataclass
class ChatResult:
    """One chat completion (from the endpoint or the cache)."""

    text: str
    """The reply (`""` when `error` is set)."""
    prompt_tokens: int
    """Prompt tokens as reported by the endpoint."""
    completion_tokens: int
    """Completion tokens as reported by the endpoint."""
    cached: bool
    """Served from the response cache (nothing paid)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The endpoint's JSON response; for an unparseable body `{"raw_text": ...}`."""
    error: str | None = None
    """Why no usable reply was obtained (after retries), else None."""

    @property
    def finish_reason(self) -> str | None:
        try:
            return self.raw["choices"][0].get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None

    @property
    def logprobs(self) -> list[dict[str, Any]] | None:
        try:
            return (self.raw["choices"][0].get("logprobs") or {}).get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None


class RateLimiter:
    """Spaces requests so neither `rpm` requests/min nor `tpm` tokens/min is exceeded (0 = off)."""

    def __init__(self, rpm: float = 0.0, tpm: float = 0.0) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self, tokens: int) -> float:
        """Block until this request may go; returns the seconds waited."""
        if self.rpm <= 0 and self.tpm <= 0:
            return 0.0
        interval = max(60.0 / self.rpm if self.rpm > 0 else 0.0, tokens * 60.0 / self.tpm if self.tpm > 0 else 0.0)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait


@dataclass
class _Prepared:
    key: str
    body: dict[str, Any]


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: float | None = None, raw_text: str | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after
        self.raw_text = raw_text


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Rough prompt size (4 characters per token + per-message overhead) for estimates and pacing."""
    return sum(len(str(m.get("content", ""))) // 4 + 4 for m in messages) + 3


class Teacher:
    """A chat LLM with cache, retries, rate limits, budget and progress bars. See the module doc."""

    def __init__(self, cfg: Any, base_url: str, api_key: str, model_id: str, label: str,
                 cache_path: str | Path, rd: Any = None, server: LocalServer | None = None,
                 check: bool = True, request_model: str | None = None) -> None:
        import openai

        self.cfg = cfg
        self.base_url = base_url
        self.model_id = model_id
        self.label = label
        self.rd = rd
        self.server = server
        self.request_model = request_model or cfg.model
        self.is_local = cfg.backend == "local"
        self.engine = (server.engine if server is not None else os.environ.get(ENV_ENGINE)
                       or "llama-cpp-python") if self.is_local else "openai-compatible endpoint"
        """What serves the requests: `llama-server`, `llama-cpp-python` or an API endpoint."""
        # Our own retry loop (with budget and recording) replaces the client's.
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=cfg.request_timeout_s)
        self.cache = ResponseCache(cache_path)
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        # GPT-4 (ratings) has its own, lower limits than GPT-3.5 (generation): one limiter per model
        own = cfg.rating_requests_per_minute or cfg.rating_tokens_per_minute
        self.rating_limiter = (RateLimiter(cfg.rating_requests_per_minute, cfg.rating_tokens_per_minute)
                               if own and cfg.rating_model and cfg.rating_model != cfg.model else self.limiter)
        self._lock = threading.Lock()
        self.stats: dict[str, float] = {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "cost_usd": 0.0, "retries": 0, "errors": 0, "budget_skipped": 0}
        self.budget_exhausted = False
        self.last_error: str | None = None
        """The most recent request failure (after retries), for error messages."""
        self.backoff_base_s = 0.5
        """First retry delay; doubles per attempt (capped at 60 s), times a 0.5-1.5 jitter."""
        self._closed = False
        atexit.register(self.close)  # a notebook that never calls close() still records its usage
        if check:
            try:
                self.check_endpoint()
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: Any, rd: Any, check: bool = True) -> "Teacher":
        """Local: attach to `$PHI_TEACHER_BASE_URL` when it serves `cfg.local_model`, else start a
        server (stopped on close/exit). OpenAI: read the key from `cfg.api_key_env`."""
        cache_path = Path(rd.path) / "teacher" / "cache" / "responses.sqlite"
        if cfg.backend == "local":
            env_url = os.environ.get(ENV_BASE_URL)
            if env_url and os.environ.get(ENV_LOCAL_MODEL, cfg.local_model) == cfg.local_model:
                from .models import MODELS

                known = MODELS.get(cfg.local_model)
                sha = os.environ.get(ENV_SHA256) or (known.sha256 if known else f"server {env_url}")
                return cls(cfg, env_url, "local", model_id=f"gguf:{sha}",
                           label=os.environ.get(ENV_LABEL) or f"local server at {env_url}",
                           cache_path=cache_path, rd=rd, check=check)
            from .engine import make_server
            from .models import resolve_model

            path, digest, label = resolve_model(cfg.local_model)
            server = make_server(cfg, path, server_log_path(rd), alias=Path(path).stem).start()
            try:
                return cls(cfg, server.base_url, "local", model_id=f"gguf:{digest}", label=label,
                           cache_path=cache_path, rd=rd, server=server, check=check)
            except BaseException:
                server.stop()
                raise
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise TeacherConfigError(
                f"the teacher's API key is missing: set the environment variable {cfg.api_key_env} "
                f"(named by teacher.api_key_env) or use teacher.backend='local'")
        base_url = cfg.base_url or "https://api.openai.com/v1"
        return cls(cfg, base_url, key, model_id=f"{base_url}|{cfg.model}", label=f"{cfg.model} @ {base_url}",
                   cache_path=cache_path, rd=rd, check=check)

    @property
    def rating_label(self) -> str:
        """Who rates and grades (GPT-4's role): `teacher.rating_model` on this endpoint when set, else `label`."""
        if self.is_local or not self.cfg.rating_model:
            return self.label
        return f"{self.cfg.rating_model} @ {self.base_url}"

    def check_endpoint(self) -> None:
        """One cheap `GET /models`: fail now, naming the URL or key variable, rather than per request."""
        import openai

        try:
            listed = {m.id for m in self.client.with_options(timeout=10.0, max_retries=1).models.list()}
        except openai.AuthenticationError as e:
            raise TeacherConfigError(f"{self.base_url} rejected the API key from ${self.cfg.api_key_env}: {e}") from e
        except openai.APITimeoutError:
            # llama.cpp answers /models only between generations: slow means busy, not unreachable
            log.warning("%s/models did not answer within 10 s (busy?); continuing", self.base_url)
        except openai.APIConnectionError as e:
            raise TeacherUnreachableError(
                f"cannot reach the teacher endpoint {self.base_url} ({type(e).__name__}: {e}); "
                f"check teacher.base_url and that the server is running") from e
        except openai.APIStatusError as e:
            log.warning("GET %s/models answered %s; continuing", self.base_url, e.status_code)
        else:
            wanted = {"teacher.model": self.cfg.model, "teacher.rating_model": self.cfg.rating_model}
            absent = {k: v for k, v in wanted.items() if v and v not in listed}
            if listed and absent and not self.is_local:
                msg = (f"{self.base_url} does not list {', '.join(f'{k}={v!r}' for k, v in absent.items())} "
                       f"(it lists {len(listed)} models, e.g. {', '.join(sorted(listed)[:5])})")
                if "api.openai.com" in self.base_url:
                    raise TeacherConfigError(msg)
                # Ollama, TGI, llama.cpp accept names they do not list; a real miss 404s at the first request
                log.warning("%s; continuing", msg)

    # ------------------------------------------------------------------ requests
    def _prepare(self, messages: list[dict[str, Any]], temperature: float | None = None,
                 max_tokens: int | None = None, seed: int | None = None, sample_index: int = 0,
                 stop: str | list[str] | None = None, response_format: dict[str, Any] | None = None,
                 logprobs: bool = False, top_logprobs: int | None = None, top_p: float | None = None,
                 model: str | None = None, grammar: str | None = None) -> _Prepared:
        temperature = self.cfg.temperature if temperature is None else float(temperature)
        params: dict[str, Any] = {
            "temperature": temperature,
            "top_p": 1.0 if temperature == 0 else (self.cfg.top_p if top_p is None else top_p),
            "max_tokens": int(max_tokens or self.cfg.max_tokens),
            "seed": int(self.cfg.seed + sample_index if seed is None else seed),
        }
        if stop:
            params["stop"] = stop
        if response_format:
            params["response_format"] = self._adapt_response_format(response_format)
        if grammar and self.is_local:  # GBNF: llama.cpp only; other endpoints get the plain prompt
            params["grammar"] = grammar
        if logprobs:
            params["logprobs"] = True
            if top_logprobs:
                params["top_logprobs"] = int(top_logprobs)
        req_model = model or self.request_model
        messages = [dict(m) for m in messages]
        key = cache_key(self.model_id if self.is_local else f"{self.model_id}|{req_model}", messages,
                        {**params, "sample_index": sample_index})
        return _Prepared(key, {"model": req_model, "messages": messages, **params})

    def _adapt_response_format(self, rf: dict[str, Any]) -> dict[str, Any]:
        # llama.cpp takes {"type": "json_object", "schema": ...}; OpenAI wants "json_schema" for a schema.
        if self.is_local or rf.get("type") != "json_object" or "schema" not in rf:
            return rf
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": rf["schema"], "strict": False}}

    def _cost(self, prompt_tokens: int, completion_tokens: int, batch: bool = False, model: str | None = None) -> float:
        """USD for one request. The config's prices are those of `teacher.model`; another model (the
        rating model: GPT-4 next to GPT-3.5) is priced from `KNOWN_PRICES` when it is listed there."""
        own = (self.cfg.price_per_1k_prompt, self.cfg.price_per_1k_completion)
        same = self.is_local or model is None or model == self.cfg.model or model.startswith(self.cfg.model + "-")
        pp, pc = own if same else price_per_1k(model, own)
        return (prompt_tokens * pp + completion_tokens * pc) / 1000 * (0.5 if batch else 1.0)

    @staticmethod
    def _result(resp: dict[str, Any], cached: bool) -> ChatResult:
        usage = resp.get("usage") or {}
        try:
            text = resp["choices"][0]["message"].get("content") or ""
            err = None
        except (KeyError, IndexError, TypeError, AttributeError):
            text, err = "", f"response without choices[0].message: {json.dumps(resp)[:500]}"
        return ChatResult(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          cached, resp, err)

    def _record(self, resp: dict[str, Any], batch: bool = False, model: str | None = None) -> None:
        usage = resp.get("usage") or {}
        pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        with self._lock:
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += pt
            self.stats["completion_tokens"] += ct
            self.stats["cost_usd"] += self._cost(pt, ct, batch, model or resp.get("model"))
            if self.cfg.budget_usd > 0 and self.stats["cost_usd"] >= self.cfg.budget_usd:
                self.budget_exhausted = True

    def _send_once(self, body: dict[str, Any]) -> dict[str, Any]:
        import openai

        extra = {k: body[k] for k in ("response_format", "grammar") if k in body and self.is_local}
        kwargs = {k: v for k, v in body.items() if k not in extra}
        try:
            raw = self.client.chat.completions.with_raw_response.create(**kwargs, extra_body=extra or None)
        except openai.AuthenticationError as e:
            raise TeacherConfigError(f"{self.base_url} rejected the API key from ${self.cfg.api_key_env}: {e}") from e
        except (openai.NotFoundError, openai.PermissionDeniedError) as e:  # every request would fail alike
            raise TeacherConfigError(
                f"{self.base_url} refused model {body.get('model')!r} (HTTP {e.status_code}: {e.message}); "
                f"check teacher.model / teacher.rating_model") from e
        except openai.RateLimitError as e:
            raise _Retryable(f"429 rate limited: {e}", _retry_after(e)) from e
        except openai.InternalServerError as e:  # 5xx
            raise _Retryable(f"{e.status_code} server error: {e}", _retry_after(e)) from e
        except openai.APITimeoutError as e:
            raise _Retryable(f"timed out after {self.cfg.request_timeout_s:.0f} s") from e
        except openai.APIConnectionError as e:
            raise _Retryable(f"connection to {self.base_url} failed ({e.__cause__ or e})") from e
        text = raw.http_response.text
        try:
            resp = json.loads(text)
        except json.JSONDecodeError as e:
            raise _Retryable(f"unparseable response body ({e})", raw_text=text) from e
        if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list) or not resp["choices"]:
            raise _Retryable("response JSON has no choices", raw_text=text)
        return resp

    def _execute(self, prep: _Prepared) -> ChatResult:
        """Send with pacing and retries; cache and return the response, or a result with `error`."""
        import openai

        hit = self.cache.get(prep.key)
        if hit is not None:
            with self._lock:
                self.stats["cache_hits"] += 1
            return self._result(hit, cached=True)
        last: _Retryable | None = None
        for attempt in range(self.cfg.max_retries + 1):
            if self.budget_exhausted:
                with self._lock:
                    self.stats["budget_skipped"] += 1
                return ChatResult("", 0, 0, False, {}, BUDGET_ERROR)
            limiter = self.rating_limiter if prep.body["model"] == self.cfg.rating_model else self.limiter
            limiter.acquire(estimate_tokens(prep.body["messages"]) + prep.body["max_tokens"])
            try:
                resp = self._send_once(prep.body)
            except _Retryable as e:
                last = e
                if attempt == self.cfg.max_retries:
                    break
                with self._lock:
                    self.stats["retries"] += 1
                delay = e.retry_after if e.retry_after is not None else min(60.0, self.backoff_base_s * 2 ** attempt)
                time.sleep(delay * random.uniform(0.5, 1.5) if e.retry_after is None else delay)
                continue
            except openai.APIStatusError as e:  # 400 etc.: the request itself is wrong, retrying won't help
                error = f"HTTP {e.status_code}: {e.message}"
                with self._lock:
                    self.stats["errors"] += 1
                    self.last_error = error
                body = getattr(e.response, "text", "")
                return ChatResult("", 0, 0, False, {"raw_text": body}, error)
            self.cache.put(prep.key, resp, self.model_id, prep.body)
            self._record(resp, model=prep.body["model"])
            return self._result(resp, cached=False)
        assert last is not None
        error = f"{last} (gave up after {self.cfg.max_retries} retries; endpoint {self.base_url})"
        with self._lock:
            self.stats["errors"] += 1
            self.last_error = error
        return ChatResult("", 0, 0, False, {"raw_text": last.raw_text} if last.raw_text is not None else {}, error)

    def chat(self, messages: list[dict[str, Any]], temperature: float | None = None, max_tokens: int | None = None,
             seed: int | None = None, sample_index: int = 0, stop: str | list[str] | None = None,
             response_format: dict[str, Any] | None = None, logprobs: bool = False,
             top_logprobs: int | None = None, **kw: Any) -> ChatResult:
        """One chat completion. `sample_index` (or `seed`) makes distinct cached samples of one prompt."""
        return self._execute(self._prepare(messages, temperature, max_tokens, seed, sample_index, stop,
                                           response_format, logprobs, top_logprobs, **kw))

    # ------------------------------------------------------------------ many requests
    def estimate(self, requests: Sequence[dict[str, Any]]) -> dict[str, float]:
        """Upper-bound tokens and cost of the requests not yet cached (completion = max_tokens)."""
        preps = [self._prepare(**kw) for kw in requests]
        todo = [p for p in preps if self.cache.get(p.key) is None]
        pt = sum(estimate_tokens(p.body["messages"]) for p in todo)
        ct = sum(p.body["max_tokens"] for p in todo)
        cost = sum(self._cost(estimate_tokens(p.body["messages"]), p.body["max_tokens"], self._use_batch(),
                              p.body["model"]) for p in todo)
        return {"requests": len(preps), "to_send": len(todo), "prompt_tokens_est": pt,
                "completion_tokens_max": ct, "cost_usd_max": cost}

    def _use_batch(self) -> bool:
        return bool(self.cfg.use_batch_api) and not self.is_local

    def chat_many(self, requests: Sequence[dict[str, Any]], desc: str = "teacher") -> list[ChatResult]:
        """Run chat() on each kwargs dict with `teacher.concurrency` threads; order kept.

        Cached responses return at once; on Ctrl-C the pending ones are cancelled and everything
        completed so far stays in the cache. Once the budget is reached, the rest come back with
        `error == BUDGET_ERROR`."""
        preps = [self._prepare(**kw) for kw in requests]
        results: list[ChatResult | None] = [None] * len(preps)
        pending: list[int] = []
        since = self._sent_and_failed()
        for i, p in enumerate(preps):
            hit = self.cache.get(p.key)
            if hit is not None:
                results[i] = self._result(hit, cached=True)
                with self._lock:
                    self.stats["cache_hits"] += 1
            else:
                pending.append(i)
        if pending and (self.cfg.price_per_1k_prompt or self.cfg.price_per_1k_completion):
            est = self.estimate([requests[i] for i in pending])
            tqdm.write(f"[teacher] {desc}: {len(pending)} requests to send, at most ~${est['cost_usd_max']:.2f} "
                       f"(spent so far ${self.stats['cost_usd']:.2f}, budget "
                       f"{'none' if not self.cfg.budget_usd else f'${self.cfg.budget_usd:.2f}'})", file=sys.stderr)
        if pending and self._use_batch():
            from .batch import run_batch

            for i, res in zip(pending, run_batch(self, [preps[i] for i in pending], desc)):
                results[i] = res
            self._check_error_rate(since, desc)
            return [r for r in results if r is not None]
        bar = tqdm(total=len(preps), initial=len(preps) - len(pending), desc=desc, unit="req",
                   disable=len(preps) <= 1)
        ex = ThreadPoolExecutor(max_workers=max(1, int(self.cfg.concurrency)), thread_name_prefix="teacher")
        try:
            futures = {ex.submit(self._execute, preps[i]): i for i in pending}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
                bar.set_postfix(self._postfix(), refresh=False)
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)  # in-flight requests finish and are cached
            raise
        finally:
            ex.shutdown(wait=True)
            bar.close()
        self._check_error_rate(since, desc)
        return [r for r in results if r is not None]

    def _sent_and_failed(self) -> tuple[float, float]:
        """(requests sent, of which failed after retries) so far; cache hits and budget skips are not sent."""
        with self._lock:
            return self.stats["requests"] + self.stats["errors"], self.stats["errors"]

    def _check_error_rate(self, since: tuple[float, float], desc: str) -> None:
        """Stop a stage whose requests mostly fail (a wrong model, a dead endpoint) instead of letting it
        finish with a few rows; what succeeded is cached, so a re-run only resends the failures.
        `since`: `_sent_and_failed()` before the batch."""
        now = self._sent_and_failed()
        sent, failed = int(now[0] - since[0]), int(now[1] - since[1])
        if sent >= 10 and failed > self.cfg.max_error_rate * sent:
            raise TeacherError(f"{desc}: {failed}/{sent} requests to {self.base_url} failed after retries "
                               f"(last: {(self.last_error or '')[:300]}); the {sent - failed} that succeeded are "
                               f"cached, re-run to retry the rest (teacher.max_error_rate = {self.cfg.max_error_rate})")

    def _postfix(self) -> dict[str, str]:
        s = self.stats
        d = {"in": f"{int(s['prompt_tokens'])}", "out": f"{int(s['completion_tokens'])}",
             "hits": f"{int(s['cache_hits'])}", "err": f"{int(s['errors'])}"}
        if self.cfg.price_per_1k_prompt or self.cfg.price_per_1k_completion:
            d["$"] = f"{s['cost_usd']:.3f}"
        return d

    # ------------------------------------------------------------------ structured helpers
    def _rating_request(self, system: str, user: str, scale: Sequence[int], max_tokens: int,
                        sample_index: int) -> dict[str, Any]:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return {"messages": msgs, "temperature": 0.0, "max_tokens": max_tokens, "logprobs": True,
                "top_logprobs": max(len(scale), 10) if self.is_local else min(20, max(len(scale), 10)),
                "sample_index": sample_index, "model": self.cfg.rating_model or None,
                "grammar": _scale_grammar(scale)}

    @staticmethod
    def _to_rating(res: ChatResult, scale: Sequence[int]) -> Rating:
        if res.error:
            return Rating(None, "failed", res.error, res.raw.get("raw_text") or res.text or "")
        r = rating_from_logprobs(res.text, res.logprobs, scale)
        return r if r is not None else rating_from_text(res.text, scale)

    def _rate_one(self, system: str, user: str, scale: Sequence[int], max_tokens: int, sample_index: int) -> Rating:
        req = self._rating_request(system, user, scale, max_tokens, sample_index)
        # llama-server takes the top-k in C++ (a partial sort): score token and reason in one request
        if not self.is_local or max_tokens <= 1 or self.engine == "llama-server":
            res = self.chat(**req)
            rating = self._to_rating(res, scale)
            if rating.method == "logprobs" and max_tokens > 1:  # the reason, parsed as on the two-request path
                rating.reason = rating_from_text(res.text, scale).reason
            return rating
        # llama-cpp-python sorts the whole vocabulary in Python for every token it returns logprobs
        # for (~0.15 s/token with Qwen's 152k vocab), so the score token is asked for alone, and the
        # reason in a second request without logprobs that reuses the server's cached prompt prefix.
        first = self.chat(**{**req, "max_tokens": 1})
        rating = self._to_rating(first, scale)
        if first.error:
            return rating
        second = self.chat(**{**req, "logprobs": False, "top_logprobs": None})
        if second.error:
            return rating
        if rating.method != "logprobs":
            return rating_from_text(second.text, scale)
        rating.raw = second.text
        rating.reason = rating_from_text(second.text, scale).reason
        return rating

    def rate(self, system: str, user: str, scale: Sequence[int] = tuple(range(10)), max_tokens: int = 32,
             sample_index: int = 0) -> Rating:
        """Score from the score token's logprobs (probability-weighted mean over the scale, method
        `logprobs`); a parsed integer where the endpoint gives no logprobs (`parsed`); else `failed`.
        The prompt should ask for the score first (each scale value must be a single token, e.g. 0-9);
        `max_tokens` bounds the short reason that follows."""
        return self._rate_one(system, user, scale, max_tokens, sample_index)

    def rate_many(self, items: Sequence[tuple[str, str]], desc: str = "rating", scale: Sequence[int] = tuple(range(10)),
                  max_tokens: int = 32, sample_index: int = 0) -> list[Rating]:
        """`rate` for each (system, user), `teacher.concurrency` at a time; order kept. Stops like
        `chat_many` when most requests fail (`teacher.max_error_rate`)."""
        since = self._sent_and_failed()
        out = self._map(lambda it: self._rate_one(it[0], it[1], scale, max_tokens, sample_index), list(items), desc)
        self._check_error_rate(since, desc)
        return out

    def _map(self, fn: Any, items: list[Any], desc: str) -> list[Any]:
        out: list[Any] = [None] * len(items)
        bar = tqdm(total=len(items), desc=desc, unit="item", disable=len(items) <= 1)
        ex = ThreadPoolExecutor(max_workers=max(1, int(self.cfg.concurrency)), thread_name_prefix="teacher")
        try:
            futures = {ex.submit(fn, it): i for i, it in enumerate(items)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
                bar.set_postfix(self._postfix(), refresh=False)
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            ex.shutdown(wait=True)
            bar.close()
        return out

    def json_object(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None,
                    **kw: Any) -> dict[str, Any] | None:
        """A JSON object reply (constrained with `response_format`), validated against `schema`;
        None when it cannot be parsed or does not validate (the raw reply stays in the cache)."""
        rf: dict[str, Any] = {"type": "json_object"}
        if schema is not None:
            rf["schema"] = schema
        res = self.chat(messages, response_format=rf, **kw)
        if res.error:
            log.warning("json_object: %s", res.error)
            return None
        obj = parse_json_object(res.text)
        if not isinstance(obj, dict):
            log.warning("json_object: unparseable reply %r", res.text[:200])
            return None
        err = validate_schema(obj, schema)
        if err:
            log.warning("json_object: reply does not match the schema (%s): %r", err, res.text[:200])
            return None
        return obj

    # ------------------------------------------------------------------ lifecycle
    def usage(self) -> dict[str, Any]:
        return {"label": self.label, "endpoint": self.base_url, **copy.deepcopy(self.stats)}

    def close(self) -> None:
        """Append this session's usage to `teacher/usage.jsonl`, close the cache, stop an own server."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self.rd is not None and (self.stats["requests"] or self.stats["cache_hits"]):
            path = Path(self.rd.path) / "teacher" / "usage.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid(),
                                    **self.usage()}) + "\n")
        self.cache.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> "Teacher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Teacher({self.label!r}, endpoint={self.base_url!r})"


def _scale_grammar(scale: Sequence[int]) -> str:
    """GBNF (llama.cpp): the reply starts with one scale value, then one line of reason. Keeps even a
    model that ignores instructions parseable; the logprobs are still read from the unconstrained
    distribution, so the grammar does not bias the probability-weighted score."""
    alts = " | ".join(f'"{v}"' for v in scale)
    return f'root ::= ({alts}) rest\nrest ::= [^\n]{{0,300}}'


def _retry_after(e: Any) -> float | None:
    try:
        v = e.response.headers.get("retry-after")
        return None if v is None else min(120.0, float(v))
    except (AttributeError, ValueError, TypeError):
        return None
