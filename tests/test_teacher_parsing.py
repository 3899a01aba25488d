"""Structured-output parsing, the rate limiter and the cache key (pure functions; no server)."""

from __future__ import annotations

import math
import time

from phi_utils.teacher import RateLimiter, cache_key, extract_code_block, parse_json_object
from phi_utils.teacher.card import auc, load_snippets
from phi_utils.teacher.parsing import rating_from_logprobs, rating_from_text


def test_extract_code_block_prefers_the_block_defining_the_entry_point() -> None:
    text = ("Here you go:\n```python\nimport math\n```\nand the function:\n```python\n"
            "def area(r):\n    return math.pi * r * r\n```\nDone.")
    assert extract_code_block(text, "area") == "def area(r):\n    return math.pi * r * r"
    assert extract_code_block(text) == "import math"
    assert extract_code_block(text, "volume") is None


def test_extract_code_block_handles_cut_replies_and_rejects_broken_code() -> None:
    cut = "Sure:\n```python\ndef f(x):\n    return x + 1\n"  # max_tokens hit before the closing fence
    assert extract_code_block(cut, "f") == "def f(x):\n    return x + 1"
    assert extract_code_block("```python\ndef f(:\n```", "f") is None
    assert extract_code_block("def f():\n    return 1\n", "f") == "def f():\n    return 1"
    assert extract_code_block("no code here") is None and extract_code_block(None) is None


def _lp(token: str, alts: dict[str, float]) -> dict:
    return {"token": token, "logprob": math.log(alts.get(token, 0.5)),
            "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alts.items()]}


def test_rating_from_logprobs_is_the_probability_weighted_mean() -> None:
    content = [_lp("7", {"7": 0.5, "3": 0.25, "Hello": 0.2, "9": 0.05}), _lp(":", {":": 0.9})]
    r = rating_from_logprobs("7: clear and documented", content, range(10))
    assert r is not None and r.method == "logprobs"
    assert r.score == (7 * 0.5 + 3 * 0.25 + 9 * 0.05) / 0.8  # non-digit alternatives renormalised away
    assert r.reason == "clear and documented"
    assert rating_from_logprobs("no digits", [_lp("no", {"no": 1.0})], range(10)) is None
    assert rating_from_logprobs("x", None, range(10)) is None


def test_rating_from_text_falls_back_to_the_first_value_on_the_scale() -> None:
    assert rating_from_text("Score: 8/10 - nice", range(10)).score == 8.0
    r = rating_from_text("I would say 12, no wait, 4. Boilerplate.", range(10))
    assert r.score == 4.0 and r.method == "parsed"
    f = rating_from_text("The code is lovely.", range(10))
    assert f.method == "failed" and f.score is None and f.raw == "The code is lovely."


def test_parse_json_object_accepts_fenced_and_embedded_json() -> None:
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('Result:\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json_object('text {"b": true} text') == {"b": True}
    assert parse_json_object("not json") is None


def test_rate_limiter_spaces_requests() -> None:
    lim = RateLimiter(rpm=600)  # 0.1 s apart
    t0 = time.monotonic()
    for _ in range(4):
        lim.acquire(10)
    assert time.monotonic() - t0 >= 0.29
    tok = RateLimiter(tpm=6000)  # 100 tokens/s: a 50-token request reserves 0.5 s
    t0 = time.monotonic()
    tok.acquire(50)
    tok.acquire(50)
    assert time.monotonic() - t0 >= 0.45


def test_cache_key_covers_model_messages_params_and_sample() -> None:
    m = [{"role": "user", "content": "hi"}]
    base = cache_key("gguf:abc", m, {"temperature": 0.7, "sample_index": 0})
    assert base == cache_key("gguf:abc", [dict(m[0])], {"sample_index": 0, "temperature": 0.7})
    assert base != cache_key("gguf:abd", m, {"temperature": 0.7, "sample_index": 0})
    assert base != cache_key("gguf:abc", m, {"temperature": 0.7, "sample_index": 1})
    assert base != cache_key("gguf:abc", [{"role": "user", "content": "hi!"}], {"temperature": 0.7, "sample_index": 0})


def test_labelled_snippets_are_balanced_and_auc_is_correct() -> None:
    s = load_snippets()
    assert len(s) >= 12 and {x["label"] for x in s} == {"good", "bad"}
    assert [x["label"] for x in s[:4]] == ["good", "bad", "good", "bad"]
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1], [1]) == 0.5 and auc([1, 2], [2, 3]) == 0.125
