"""Structured-output helpers: fenced code blocks, ratings from logprobs or text, JSON objects."""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def extract_code_block(text: str | None, entry_point: str | None = None) -> str | None:
    """The first fenced Python block (```python or bare ```) that parses, and defines `entry_point`
    when given; a block left open at the end (a reply cut by max_tokens) counts if it parses.
    Falls back to the whole text when it is itself valid Python defining `entry_point`. None otherwise."""
    if not text:
        return None
    blocks = [(lang.lower(), body.strip("\n")) for lang, body in _FENCE.findall(text)]
    blocks = [b for lang, b in blocks if lang in ("", "python", "py", "python3") and b.strip()]
    for body in blocks:
        if _parses(body) and (entry_point is None or _defines(body, entry_point)):
            return body
    if entry_point and "```" not in text and _defines(text, entry_point) and _parses(text):
        return text.strip("\n")
    return None


@dataclass
class Rating:
    """A score on the requested scale, how it was obtained, and the reply."""

    score: float | None
    """Probability-weighted mean (`logprobs`), the first scale value in the text (`parsed`), or None."""
    method: str
    """`logprobs`, `parsed` or `failed`."""
    reason: str | None
    """The short explanation the teacher gave after the score (if any)."""
    raw: str
    """The raw reply text (or the error) - kept so a failed parse can be inspected."""
    probs: dict[str, float] | None = None
    """Renormalised probabilities of the scale values at the score token (logprobs method)."""


def _reason_after(text: str, start: int) -> str | None:
    rest = text[start:].strip().lstrip(".:-)/ ").strip()
    rest = re.sub(r"^(?:/\s*\d+|out of \d+)\s*[.:-]?\s*", "", rest).strip()
    return rest.split("\n")[0][:300] or None


def rating_from_logprobs(text: str, content_logprobs: Sequence[dict[str, Any]] | None,
                         scale: Sequence[int]) -> Rating | None:
    """Expected score over the scale values among the top alternatives at the first score token.

    Every scale value must be one token (e.g. 0-9); the first generated token whose text is a scale
    value is taken as the score position."""
    if not content_logprobs:
        return None
    values = {str(v): v for v in scale}
    pos = 0
    for entry in content_logprobs:
        tok = str(entry.get("token", ""))
        if tok.strip() in values:
            probs: dict[str, float] = {}
            for alt in entry.get("top_logprobs") or [{"token": tok, "logprob": entry.get("logprob", 0.0)}]:
                t = str(alt.get("token", "")).strip()
                lp = alt.get("logprob")
                if t in values and lp is not None and math.isfinite(lp):
                    probs[t] = probs.get(t, 0.0) + math.exp(lp)
            total = sum(probs.values())
            if total <= 0:
                return None
            probs = {k: p / total for k, p in probs.items()}
            score = sum(values[k] * p for k, p in probs.items())
            idx = text.find(tok.strip(), pos) if text else -1
            reason = _reason_after(text, idx + len(tok.strip())) if idx >= 0 else None
            return Rating(float(score), "logprobs", reason, text, probs)
        pos += len(tok)
    return None


def rating_from_text(text: str | None, scale: Sequence[int]) -> Rating:
    """The first integer in the text that lies on the scale (`parsed`), else `failed`."""
    text = text or ""
    lo, hi = min(scale), max(scale)
    for m in re.finditer(r"(?<![\d.])(\d{1,3})(?![\d.]\d)", text):
        v = int(m.group(1))
        if lo <= v <= hi:
            return Rating(float(v), "parsed", _reason_after(text, m.end()), text)
    return Rating(None, "failed", None, text)


def parse_json_object(text: str | None) -> Any:
    """A JSON value from the reply: the whole text, a ```json block, or the outermost {...}."""
    if not text:
        return None
    candidates = [text.strip()]
    candidates += [b for _, b in _FENCE.findall(text)]
    i, j = text.find("{"), text.rfind("}")
    if 0 <= i < j:
        candidates.append(text[i:j + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except (json.JSONDecodeError, ValueError):
            continue
    return None


def validate_schema(obj: Any, schema: dict[str, Any] | None) -> str | None:
    """None when `obj` satisfies `schema` (JSON Schema via `jsonschema`), else the first error."""
    if schema is None:
        return None
    import jsonschema

    try:
        jsonschema.validate(obj, schema)
        return None
    except jsonschema.ValidationError as e:
        return e.message
