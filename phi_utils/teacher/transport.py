"""One request to an OpenAI-compatible endpoint, paced and retried: the `Teacher`'s wire.

`Transport.send` paces to `requests_per_minute` / `tokens_per_minute` (one limiter per model: GPT-4
rates under lower limits than GPT-3.5 generates), retries with exponential backoff and jitter on
429, 5xx, timeouts, dropped connections and unparseable bodies (honouring `Retry-After`), and after
the last retry returns a `ChatResult` carrying the error instead of raising, so one bad response
cannot crash a stage. A rejected key or model raises `TeacherConfigError` at once: every request
would fail alike.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from .ledger import BUDGET_ERROR, Ledger, TeacherConfigError, usage_tokens

if TYPE_CHECKING:
    from ..config import TeacherConfig


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

    @classmethod
    def from_response(cls, resp: dict[str, Any], cached: bool) -> "ChatResult":
        try:
            text, err = resp["choices"][0]["message"].get("content") or "", None
        except (KeyError, IndexError, TypeError, AttributeError):
            text, err = "", f"response without choices[0].message: {json.dumps(resp)[:500]}"
        return cls(text, *usage_tokens(resp), cached, resp, err)

    @classmethod
    def failed(cls, error: str, raw: dict[str, Any] | None = None) -> "ChatResult":
        return cls("", 0, 0, False, raw or {}, error)


@dataclass
class Prepared:
    """A request ready to send: its cache key and the `/chat/completions` body."""

    key: str
    body: dict[str, Any]


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Rough prompt size (4 characters per token + per-message overhead) for estimates and pacing."""
    return sum(len(str(m.get("content", ""))) // 4 + 4 for m in messages) + 3


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


class Retryable(Exception):
    """A failure worth retrying (rate limit, server error, timeout, bad body)."""

    def __init__(self, msg: str, retry_after: float | None = None, raw_text: str | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after
        self.raw_text = raw_text


class Transport:
    """The `openai` client for one endpoint with our own pacing and retry loop (the client's is off)."""

    def __init__(self, cfg: TeacherConfig, base_url: str, api_key: str, ledger: Ledger, is_local: bool) -> None:
        import openai

        self.cfg, self.base_url, self.ledger, self.is_local = cfg, base_url, ledger, is_local
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=cfg.request_timeout_s)
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        own = cfg.rating_requests_per_minute or cfg.rating_tokens_per_minute
        self.rating_limiter = (RateLimiter(cfg.rating_requests_per_minute, cfg.rating_tokens_per_minute)
                               if own and cfg.rating_model and cfg.rating_model != cfg.model else self.limiter)
        self.backoff_base_s = 0.5
        """First retry delay; doubles per attempt (capped at 60 s), times a 0.5-1.5 jitter."""

    def send_once(self, body: dict[str, Any]) -> dict[str, Any]:
        """The parsed response, or `Retryable`; a rejected key or model raises `TeacherConfigError`."""
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
            raise Retryable(f"429 rate limited: {e}", _retry_after(e)) from e
        except openai.InternalServerError as e:  # 5xx
            raise Retryable(f"{e.status_code} server error: {e}", _retry_after(e)) from e
        except openai.APITimeoutError as e:
            raise Retryable(f"timed out after {self.cfg.request_timeout_s:.0f} s") from e
        except openai.APIConnectionError as e:
            raise Retryable(f"connection to {self.base_url} failed ({e.__cause__ or e})") from e
        text = raw.http_response.text
        try:
            resp = json.loads(text)
        except json.JSONDecodeError as e:
            raise Retryable(f"unparseable response body ({e})", raw_text=text) from e
        if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list) or not resp["choices"]:
            raise Retryable("response JSON has no choices", raw_text=text)
        return resp

    def send(self, body: dict[str, Any]) -> dict[str, Any] | ChatResult:
        """The response, paced and retried; or a failed `ChatResult` (recorded in the ledger) after the
        last retry, on a 4xx, or once the budget is spent."""
        import openai

        last: Retryable | None = None
        for attempt in range(self.cfg.max_retries + 1):
            if self.ledger.budget_exhausted:
                self.ledger.count("budget_skipped")
                return ChatResult.failed(BUDGET_ERROR)
            limiter = self.rating_limiter if body["model"] == self.cfg.rating_model else self.limiter
            limiter.acquire(estimate_tokens(body["messages"]) + body["max_tokens"])
            try:
                return self.send_once(body)
            except Retryable as e:
                last = e
                if attempt == self.cfg.max_retries:
                    break
                self.ledger.count("retries")
                delay = e.retry_after if e.retry_after is not None else min(60.0, self.backoff_base_s * 2 ** attempt)
                time.sleep(delay * random.uniform(0.5, 1.5) if e.retry_after is None else delay)
            except openai.APIStatusError as e:  # 400 etc.: the request itself is wrong, retrying won't help
                error = f"HTTP {e.status_code}: {e.message}"
                self.ledger.failure(error)
                return ChatResult.failed(error, {"raw_text": getattr(e.response, "text", "")})
        assert last is not None
        error = f"{last} (gave up after {self.cfg.max_retries} retries; endpoint {self.base_url})"
        self.ledger.failure(error)
        return ChatResult.failed(error, {"raw_text": last.raw_text} if last.raw_text is not None else None)


def _retry_after(e: Any) -> float | None:
    try:
        v = e.response.headers.get("retry-after")
        return None if v is None else min(120.0, float(v))
    except (AttributeError, ValueError, TypeError):
        return None
