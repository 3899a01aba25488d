"""Open synthetic datasets as an alternative (or top-up) source, mapped to this project's schema.

A source is a Hugging Face hub name (`jinaai/code_exercises`, `nampdn-ai/tiny-textbooks`; needs
network) or a local path: a file or folder of JSON / JSONL / Markdown. Relative paths resolve under
`SHARED_DATA` when they exist there (e.g. `synthetic/jina-code-exercises-sample`). The data are
read at run time and never copied into the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from ..config import SHARED_DATA
from .parsing import join_problem_solution

# Which model wrote each known open set (recorded as the `teacher` of its rows).
KNOWN_GENERATORS = {
    "jina-code-exercises-sample": "gpt-3.5 (jinaai/code_exercises, CC-BY-NC-SA-4.0)",
    "jinaai/code_exercises": "gpt-3.5 (jinaai/code_exercises, CC-BY-NC-SA-4.0)",
    "library-of-phi-textbooks": "gpt-4 / gpt-3.5-turbo-instruct (SciPhi library-of-phi, CC BY-NC-SA 4.0)",
    "nampdn-ai/tiny-textbooks": "Nous-Hermes-Llama2-13b (nampdn-ai/tiny-textbooks)",
    "gpteacher-codegen": "gpt-4 (GPTeacher code-instruct, MIT)",
    "evol-codealpaca-2k": "gpt-3.5-turbo (evol-teacher)",
    "codealpaca-2k": "text-davinci-003 (Code Alpaca)",
}


class OpenDataError(RuntimeError):
    """An open dataset cannot be read (missing path, no hub access, unknown layout); names the source."""


def resolve_source(source: str) -> Path | None:
    """A local path for `source` (absolute, relative to cwd, or under SHARED_DATA), else None (= hub name)."""
    p = Path(source).expanduser()
    if p.exists():
        return p
    q = SHARED_DATA / source
    return q if q.exists() else None


def missing_local(source: str) -> bool:
    """True for a path-like source (absolute, ./, ~, or under SHARED_DATA's `synthetic/`) that does not exist:
    such a source is reported missing instead of being tried on the hub."""
    looks_local = source.startswith(("/", "./", "../", "~", "synthetic/")) or source.endswith((".json", ".jsonl", ".md"))
    return looks_local and resolve_source(source) is None


def generator_label(source: str) -> str:
    name = Path(source).name if resolve_source(source) else source
    return KNOWN_GENERATORS.get(name, KNOWN_GENERATORS.get(source, f"open dataset {source}"))


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON array / JSONL file (non-UTF-8 or malformed files raise one clear error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OpenDataError(f"{path}: not UTF-8 ({e})") from e
    s = text.lstrip()
    if s.startswith("["):
        try:
            yield from json.loads(s)
        except json.JSONDecodeError as e:
            raise OpenDataError(f"{path}: not valid JSON ({e})") from e
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise OpenDataError(f"{path}:{n}: malformed JSONL line ({e})") from e


def _files(path: Path, exts: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    # a dataset folder's README / licence files describe the data; they are not rows
    return sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in exts
                  and not f.name.upper().startswith(("README", "LICENSE", "DATA_LICENSE")))


def _hub_rows(name: str, limit: int) -> Iterator[dict[str, Any]]:
    try:
        from datasets import load_dataset

        ds = load_dataset(name, split="train", streaming=True)
    except Exception as e:  # noqa: BLE001 - offline, unknown name, gated: one clear message
        raise OpenDataError(f"open dataset {name!r} is neither a local path (also tried under {SHARED_DATA}) "
                            f"nor loadable from the Hugging Face hub: {type(e).__name__}: {e}") from e
    for i, row in enumerate(ds):
        if limit and i >= limit:
            break
        yield dict(row)


# --------------------------------------------------------------------------- exercises
def exercise_rows(source: str, limit: int = 0) -> list[dict[str, Any]]:
    """Open exercises as {problem, solution, code (joined, parses) or None, origin, teacher}."""
    path = resolve_source(source)
    label = generator_label(source)
    raw: Iterator[dict[str, Any]]
    if path is not None:
        raw = (r for f in _files(path, (".json", ".jsonl")) for r in _read_records(f))
    else:
        raw = _hub_rows(source, limit)
    out = []
    for r in raw:
        problem = r.get("problem") or r.get("prompt") or ""
        solution = r.get("solution") or r.get("completion") or r.get("canonical_solution") or ""
        if not isinstance(problem, str) or not isinstance(solution, str) or not problem.strip():
            continue
        out.append({"problem": problem, "solution": solution, "code": join_problem_solution(problem, solution),
                    "origin": f"open:{Path(source).name if path else source}", "teacher": label})
        if limit and len(out) >= limit:
            break
    if path is not None and not out:
        raise OpenDataError(f"{path}: no rows with `problem`/`solution` (or `prompt`/`completion`) fields")
    return out


# --------------------------------------------------------------------------- textbooks
_HEADING = re.compile(r"^(#{2,4}) ", re.M)


def split_markdown_sections(text: str, max_chars: int = 6000) -> list[str]:
    """Split a Markdown book into `##`-`####` sections, cutting long ones at paragraph breaks."""
    starts = [m.start() for m in _HEADING.finditer(text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    secs = [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)])]
    out = []
    for s in secs:
        while len(s) > max_chars:
            cut = s.rfind("\n\n", 0, max_chars)
            # never cut inside a code fence: an odd number of fences before the cut means we are inside
            while cut > 0 and s[:cut].count("```") % 2:
                cut = s.rfind("\n\n", 0, cut)
            if cut <= 0:
                break
            out.append(s[:cut].strip())
            s = s[cut:].strip()
        if s:
            out.append(s)
    return out


def _passage_text(r: dict[str, Any]) -> str:
    """A passage from one open row: `textbook`, `completion` or `text`, or an explained solution
    (`instruction` + `output`, e.g. evol-codealpaca: a question and a prose-and-code answer)."""
    text = r.get("textbook") or r.get("completion") or r.get("text")
    if text:
        return str(text)
    if r.get("instruction") and r.get("output"):
        return f"{str(r['instruction']).strip()}\n\n{str(r['output']).strip()}"
    return ""


PYTHON_ONLY = ":python"
"""Suffix of a source in a list whose passages must hold a ```python block (`a:python,b`)."""


def split_sources(sources: str) -> list[tuple[str, bool]]:
    """`a:python,b` -> [(`a`, True), (`b`, False)]: several open sources in one setting, read in order,
    each with whether only its passages holding Python code are taken."""
    out = []
    for item in (x.strip() for x in sources.split(",")):
        if item:
            python_only = item.endswith(PYTHON_ONLY)
            out.append((item[:-len(PYTHON_ONLY)] if python_only else item, python_only))
    return out


def textbook_rows(source: str, limit: int = 0, max_chars: int = 6000, require_code: bool = True) -> list[dict[str, Any]]:
    """Open textbook passages as {text, origin, teacher}; Markdown books are split into sections.
    With `require_code`, only passages holding a ```python block are returned (the others could
    never pass validation); else those come first."""
    path = resolve_source(source)
    label = generator_label(source)
    texts: list[str] = []
    # `textbook` before `text`: in nampdn-ai/tiny-textbooks, `text` is the web seed and `textbook` the generated passage
    if path is not None:
        for f in _files(path, (".md", ".markdown", ".txt", ".json", ".jsonl")):
            if f.suffix.lower() in (".json", ".jsonl"):
                texts += [_passage_text(r) for r in _read_records(f)]
            else:
                try:
                    texts += split_markdown_sections(f.read_text(encoding="utf-8"), max_chars)
                except UnicodeDecodeError as e:
                    raise OpenDataError(f"{f}: not UTF-8 ({e})") from e
    else:
        for r in _hub_rows(source, limit * 4 if limit else 0):
            texts.append(_passage_text(r))
    texts = [t for t in texts if t.strip()]
    with_code = [t for t in texts if "```python" in t or "```py\n" in t]
    rest = [t for t in texts if t not in set(with_code)]
    ordered = with_code if require_code else with_code + rest
    if limit:
        ordered = ordered[:limit]
    origin = f"open:{Path(source).name if path else source}"
    return [{"text": t, "origin": origin, "teacher": label} for t in ordered]
