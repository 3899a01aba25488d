"""Ratings read from the score token's probabilities (GPT-4's annotation role, §2.1).

The prompt asks for the score first (each scale value one token, e.g. 0-9), then a short reason.
The score is the probability-weighted mean over the scale's tokens (`logprobs`), a parsed integer
where the endpoint gives no logprobs (`parsed`), else `failed`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .parsing import Rating, rating_from_logprobs, rating_from_text
from .transport import ChatResult


def scale_grammar(scale: Sequence[int]) -> str:
    """GBNF (llama.cpp): the reply starts with one scale value, then one line of reason. Keeps even a
    model that ignores instructions parseable; the logprobs are still read from the unconstrained
    distribution, so the grammar does not bias the probability-weighted score."""
    alts = " | ".join(f'"{v}"' for v in scale)
    return f'root ::= ({alts}) rest\nrest ::= [^\n]{{0,300}}'


def rating_request(system: str, user: str, scale: Sequence[int], max_tokens: int, sample_index: int,
                   rating_model: str | None, is_local: bool) -> dict[str, Any]:
    """`Teacher.chat` keyword arguments of one rating: greedy, with the top logprobs of each token."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return {"messages": msgs, "temperature": 0.0, "max_tokens": max_tokens, "logprobs": True,
            # OpenAI returns at most 20 alternatives per token
            "top_logprobs": max(len(scale), 10) if is_local else min(20, max(len(scale), 10)),
            "sample_index": sample_index, "model": rating_model or None, "grammar": scale_grammar(scale)}


def to_rating(res: ChatResult, scale: Sequence[int]) -> Rating:
    if res.error:
        return Rating(None, "failed", res.error, res.raw.get("raw_text") or res.text or "")
    r = rating_from_logprobs(res.text, res.logprobs, scale)
    return r if r is not None else rating_from_text(res.text, scale)


def rate_one(chat: Callable[..., ChatResult], req: dict[str, Any], scale: Sequence[int], one_request: bool) -> Rating:
    """A rating through `chat` (the `Teacher`'s). `one_request`: the score token and the reason in one
    request; otherwise the score token alone with logprobs and the reason in a second request without."""
    if one_request or req["max_tokens"] <= 1:
        res = chat(**req)
        rating = to_rating(res, scale)
        if rating.method == "logprobs" and req["max_tokens"] > 1:  # the reason, parsed as on the two-request path
            rating.reason = rating_from_text(res.text, scale).reason
        return rating
    first = chat(**{**req, "max_tokens": 1})
    rating = to_rating(first, scale)
    if first.error:
        return rating
    second = chat(**{**req, "logprobs": False, "top_logprobs": None})
    if second.error:
        return rating
    if rating.method != "logprobs":
        return rating_from_text(second.text, scale)
    rating.raw = second.text
    rating.reason = rating_from_text(second.text, scale).reason
    return rating
