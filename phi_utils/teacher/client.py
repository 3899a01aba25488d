"""`Teacher`: every stage's one door to a chat LLM, through the official `openai` client.

The same code talks to OpenAI, any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI) or the
embedded local llama.cpp server. A request goes through:

* the persistent response cache (`cache.py`), checked before anything is sent;
* the wire (`transport.py`): pacing to the rate limits, retries with backoff, errors recorded in the
  `ChatResult` rather than raised;
* the ledger (`ledger.py`): tokens, cost, a budget that stops sending once spent (keeping what was
  paid), and a stop when most requests of a stage fail;
* a thread pool of `teacher.concurrency` (order kept, results independent of completion order), with
  a progress bar of live token, cost and cache-hit counts;
* optionally OpenAI's Batch API (`batch.py`, half price) for paper-scale jobs.

Ratings (`rating.py`) are read from the score token's probabilities. Configuration problems (missing
API key, unreachable endpoint, wrong model hash) raise at once with one clear message naming the
variable, URL or file.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..progress import tqdm
from .cache import ResponseCache, cache_key
from .ledger import Ledger, TeacherConfigError, TeacherUnreachableError
from .parsing import Rating, parse_json_object, validate_schema
from .rating import rate_one, rating_request
from .server import ENV_BASE_URL, ENV_ENGINE, ENV_LABEL, ENV_LOCAL_MODEL, ENV_SHA256, LocalServer, server_log_path
from .transport import ChatResult, Prepared, Transport, estimate_tokens

if TYPE_CHECKING:
    from ..config import TeacherConfig
    from ..rundir import RunDir

log = logging.getLogger("phi_utils.teacher")


class Teacher:
    """A chat LLM with cache, retries, rate limits, budget and progress bars. See the module doc."""

    def __init__(self, cfg: TeacherConfig, base_url: str, api_key: str, model_id: str, label: str,
                 cache_path: str | Path, rd: RunDir | None = None, server: LocalServer | None = None,
                 check: bool = True, request_model: str | None = None) -> None:
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
        self.ledger = Ledger(cfg, free=self.is_local)
        """Tokens, cost, budget and failures of this session (`ledger.stats`)."""
        self.transport = Transport(cfg, base_url, api_key, self.ledger, self.is_local)
        """The paced, retried wire to the endpoint (`transport.client` is the `openai` client)."""
        self.cache = ResponseCache(cache_path)  # last: nothing above can fail and leave it open
        self._closed = False
        atexit.register(self.close)  # a notebook that never calls close() still records its usage
        if check:
            try:
                self.check_endpoint()
            except BaseException:
                self.close()
                raise

    @property
    def stats(self) -> dict[str, float]:
        """This session's counts: requests, cache_hits, tokens, cost_usd, retries, errors, budget_skipped."""
        return self.ledger.stats

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: TeacherConfig, rd: RunDir, check: bool = True) -> "Teacher":
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
            listed = {m.id for m in self.transport.client.with_options(timeout=10.0, max_retries=1).models.list()}
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
                 model: str | None = None, grammar: str | None = None) -> Prepared:
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
        return Prepared(key, {"model": req_model, "messages": messages, **params})

    def _adapt_response_format(self, rf: dict[str, Any]) -> dict[str, Any]:
        # llama.cpp takes {"type": "json_object", "schema": ...}; OpenAI wants "json_schema" for a schema.
        if self.is_local or rf.get("type") != "json_object" or "schema" not in rf:
            return rf
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": rf["schema"], "strict": False}}

    def _execute(self, prep: Prepared) -> ChatResult:
        """The cached response, or one sent (paced, retried) and cached; a failure comes back as a
        `ChatResult` with `error`."""
        hit = self.cache.get(prep.key)
        if hit is not None:
            self.ledger.count("cache_hits")
            return ChatResult.from_response(hit, cached=True)
        resp = self.transport.send(prep.body)
        if isinstance(resp, ChatResult):
            return resp
        self.cache.put(prep.key, resp, self.model_id, prep.body)
        self.ledger.record(resp, model=prep.body["model"])
        return ChatResult.from_response(resp, cached=False)

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
        cost = sum(self.ledger.cost(estimate_tokens(p.body["messages"]), p.body["max_tokens"], self._use_batch(),
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
        since = self.ledger.sent_and_failed()
        for i, p in enumerate(preps):
            hit = self.cache.get(p.key)
            if hit is not None:
                results[i] = ChatResult.from_response(hit, cached=True)
                self.ledger.count("cache_hits")
            else:
                pending.append(i)
        if pending and self.ledger.priced:
            est = self.estimate([requests[i] for i in pending])
            tqdm.write(f"[teacher] {desc}: {len(pending)} requests to send, at most ~${est['cost_usd_max']:.2f} "
                       f"(spent so far ${self.stats['cost_usd']:.2f}, budget "
                       f"{'none' if not self.cfg.budget_usd else f'${self.cfg.budget_usd:.2f}'})", file=sys.stderr)
        if pending and self._use_batch():
            from .batch import run_batch

            for i, res in zip(pending, run_batch(self, [preps[i] for i in pending], desc)):
                results[i] = res
            self.ledger.check_error_rate(since, desc, self.base_url)
            return [r for r in results if r is not None]
        sent = self._map(self._execute, [preps[i] for i in pending], desc, unit="req", already=len(preps) - len(pending))
        for i, res in zip(pending, sent):
            results[i] = res
        self.ledger.check_error_rate(since, desc, self.base_url)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ structured helpers
    def _rate_one(self, system: str, user: str, scale: Sequence[int], max_tokens: int, sample_index: int) -> Rating:
        req = rating_request(system, user, scale, max_tokens, sample_index, self.cfg.rating_model, self.is_local)
        # llama-server takes the top-k in C++ (a partial sort): score token and reason in one request.
        # llama-cpp-python sorts the whole vocabulary in Python for every token it returns logprobs
        # for (~0.15 s/token with Qwen's 152k vocab), so there the score token is asked for alone and
        # the reason in a second request without logprobs that reuses the server's cached prefix.
        one_request = not self.is_local or self.engine == "llama-server"
        return rate_one(self.chat, req, scale, one_request)

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
        since = self.ledger.sent_and_failed()
        out = self._map(lambda it: self._rate_one(it[0], it[1], scale, max_tokens, sample_index), list(items), desc)
        self.ledger.check_error_rate(since, desc, self.base_url)
        return out

    def _map(self, fn: Callable[[Any], Any], items: list[Any], desc: str, unit: str = "item",
             already: int = 0) -> list[Any]:
        """`fn` over `items` on `teacher.concurrency` threads, results in input order. On an error or
        Ctrl-C the pending items are cancelled; those in flight finish (and are cached)."""
        out: list[Any] = [None] * len(items)
        bar = tqdm(total=len(items) + already, initial=already, desc=desc, unit=unit,
                   disable=len(items) + already <= 1)
        ex = ThreadPoolExecutor(max_workers=max(1, int(self.cfg.concurrency)), thread_name_prefix="teacher")
        try:
            futures = {ex.submit(fn, it): i for i, it in enumerate(items)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
                bar.set_postfix(self.ledger.postfix(), refresh=False)
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
        return {"label": self.label, "endpoint": self.base_url, **self.ledger.snapshot()}

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
