"""What a `Teacher` session spent and what failed: tokens, cost at list prices, the budget, errors.

One thread-safe `Ledger` per session. The synchronous path and the Batch API path (`batch.py`)
record into the same ledger, so the budget and `teacher.max_error_rate` hold across both.
"""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import TeacherConfig

KNOWN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-0613": (0.03, 0.06), "gpt-4": (0.03, 0.06),
    "gpt-3.5-turbo-0301": (0.0015, 0.002), "gpt-3.5-turbo": (0.0005, 0.0015),
}
"""USD per 1k tokens (prompt, completion), OpenAI list prices, for the models the paper profile names;
a dated name without an entry takes its family's (`gpt-3.5-turbo-0125` -> `gpt-3.5-turbo`)."""

BUDGET_ERROR = "budget exhausted"
"""`ChatResult.error` of requests not sent because `teacher.budget_usd` was reached."""


class TeacherError(RuntimeError):
    """The teacher cannot be used as configured (the message names the setting, variable or URL)."""


class TeacherConfigError(TeacherError):
    """A missing API key or an invalid teacher setting."""


class TeacherUnreachableError(TeacherError):
    """The endpoint did not answer; the message names the URL."""


def price_per_1k(model: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """(prompt, completion) USD per 1k tokens of `model`: `KNOWN_PRICES` by exact name or the longest
    known prefix, else `default` (the config's `price_per_1k_prompt/completion`)."""
    if not model:
        return default
    if model in KNOWN_PRICES:
        return KNOWN_PRICES[model]
    family = max((k for k in KNOWN_PRICES if model.startswith(k + "-")), key=len, default=None)
    return KNOWN_PRICES[family] if family else default


def usage_tokens(resp: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens as the endpoint reported them (0 when it did not)."""
    usage = resp.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class Ledger:
    """Counts, cost and failures of one session (`stats` keys: requests, cache_hits, prompt_tokens,
    completion_tokens, cost_usd, retries, errors, budget_skipped)."""

    def __init__(self, cfg: TeacherConfig, free: bool = False) -> None:
        self.cfg = cfg
        """The `TeacherConfig`: its model and prices, `budget_usd` and `max_error_rate`."""
        self.free = free
        """A local server: every request is priced as `teacher.model` (0 in the local profiles)."""
        self.stats: dict[str, float] = {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "cost_usd": 0.0, "retries": 0, "errors": 0, "budget_skipped": 0}
        self.budget_exhausted = False
        self.last_error: str | None = None
        """The most recent request failure (after retries), for error messages."""
        self._lock = threading.Lock()

    @property
    def priced(self) -> bool:
        return bool(self.cfg.price_per_1k_prompt or self.cfg.price_per_1k_completion)

    def cost(self, prompt_tokens: int, completion_tokens: int, batch: bool = False, model: str | None = None) -> float:
        """USD for one request. The config's prices are those of `teacher.model`; another model (the
        rating model: GPT-4 next to GPT-3.5) is priced from `KNOWN_PRICES` when it is listed there.
        The Batch API costs half."""
        own = (self.cfg.price_per_1k_prompt, self.cfg.price_per_1k_completion)
        same = self.free or model is None or model == self.cfg.model or model.startswith(self.cfg.model + "-")
        pp, pc = own if same else price_per_1k(model, own)
        return (prompt_tokens * pp + completion_tokens * pc) / 1000 * (0.5 if batch else 1.0)

    def record(self, resp: dict[str, Any], batch: bool = False, model: str | None = None) -> None:
        """A paid response: its tokens and cost; marks the budget exhausted once reached."""
        pt, ct = usage_tokens(resp)
        with self._lock:
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += pt
            self.stats["completion_tokens"] += ct
            self.stats["cost_usd"] += self.cost(pt, ct, batch, model or resp.get("model"))
            if self.cfg.budget_usd > 0 and self.stats["cost_usd"] >= self.cfg.budget_usd:
                self.budget_exhausted = True

    def count(self, what: str) -> None:
        """One more `cache_hits`, `retries` or `budget_skipped`."""
        with self._lock:
            self.stats[what] += 1

    def failure(self, error: str) -> None:
        """A request that failed for good (after retries): counts towards `teacher.max_error_rate`."""
        with self._lock:
            self.stats["errors"] += 1
            self.last_error = error

    def sent_and_failed(self) -> tuple[float, float]:
        """(requests sent, of which failed after retries) so far; cache hits and budget skips are not sent."""
        with self._lock:
            return self.stats["requests"] + self.stats["errors"], self.stats["errors"]

    def check_error_rate(self, since: tuple[float, float], desc: str, endpoint: str) -> None:
        """Stop a stage whose requests mostly fail (a wrong model, a dead endpoint) instead of letting it
        finish with a few rows; what succeeded is cached, so a re-run only resends the failures.
        `since`: `sent_and_failed()` before the batch."""
        now = self.sent_and_failed()
        sent, failed = int(now[0] - since[0]), int(now[1] - since[1])
        if sent >= 10 and failed > self.cfg.max_error_rate * sent:
            raise TeacherError(f"{desc}: {failed}/{sent} requests to {endpoint} failed after retries "
                               f"(last: {(self.last_error or '')[:300]}); the {sent - failed} that succeeded are "
                               f"cached, re-run to retry the rest (teacher.max_error_rate = {self.cfg.max_error_rate})")

    def postfix(self) -> dict[str, str]:
        """The progress bar's live counts."""
        s = self.stats
        d = {"in": f"{int(s['prompt_tokens'])}", "out": f"{int(s['completion_tokens'])}",
             "hits": f"{int(s['cache_hits'])}", "err": f"{int(s['errors'])}"}
        if self.priced:
            d["$"] = f"{s['cost_usd']:.3f}"
        return d

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return copy.deepcopy(self.stats)
